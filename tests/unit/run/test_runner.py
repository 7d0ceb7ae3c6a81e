"""The runner's pure parts: --set splitting, step overrides, the run folder, temperatures."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.device.facts import DeviceFacts
from harness.errors import UsageError
from harness.recipes.load import render_recipe
from harness.recipes.overrides import StepOverride, apply_overrides, split_set_pairs
from harness.run.runner import (
    RunRequest,
    RunSummary,
    StepSummary,
    _temps,
    build_plan,
    run_folder,
)


def test_split_set_pairs_separates_parameters_from_step_overrides() -> None:
    params, overrides = split_set_pairs([
        "steps=30", "unet.env.CLML_NO_REUSE_TNN=0", "vae.unset=LD_LIBRARY_PATH",
        "vae.cwd=/data/local/tmp/x", "vae.cwd=", "unet.env.X=a=b c", "width=1024"])
    assert params == ["steps=30", "width=1024"]
    assert overrides == [
        StepOverride("unet", "env", "CLML_NO_REUSE_TNN", "0"),
        StepOverride("vae", "unset", "LD_LIBRARY_PATH", "LD_LIBRARY_PATH"),
        StepOverride("vae", "cwd", "/data/local/tmp/x", "/data/local/tmp/x"),
        StepOverride("vae", "cwd", "", ""),
        StepOverride("unet", "env", "X", "a=b c")]


@pytest.mark.parametrize("pair", [
    "unet.env.1BAD=x",  # not a variable name: a recipe parameter, which the recipe refuses
    "unet.envX=1", "unet.cwd", "unet.timeout=5", ".env.A=1", "a.b.env.A=1"])
def test_pairs_that_are_not_step_overrides_stay_parameters(pair: str) -> None:
    assert split_set_pairs([pair]) == ([pair], [])


def test_apply_overrides_env_unset_and_cwd() -> None:
    plan = render_recipe("sdxl-1024")
    unet, vae = plan.step("unet"), plan.step("vae")
    assert "LD_LIBRARY_PATH" in vae.env
    changed = apply_overrides(plan, [StepOverride("unet", "env", "CLML_NO_REUSE_TNN", "0"),
                                     StepOverride("unet", "env", "NEW_VAR", "v"),
                                     StepOverride("vae", "unset", "LD_LIBRARY_PATH", ""),
                                     StepOverride("vae", "cwd", "/sdcard", "/sdcard")])
    new_unet, new_vae = changed.step("unet"), changed.step("vae")
    assert new_unet.env["CLML_NO_REUSE_TNN"] == "0" and new_unet.env["NEW_VAR"] == "v"
    assert list(new_unet.env)[: len(unet.env)] == list(unet.env)  # order kept, new ones last
    assert "LD_LIBRARY_PATH" not in new_vae.env and new_vae.cwd == "/sdcard"
    assert [s.name for s in changed.steps] == [s.name for s in plan.steps]
    assert unet.env["CLML_NO_REUSE_TNN"] == "1", "the original plan is left alone"
    with pytest.raises(UsageError, match="absolute device folder"):  # empty: refused
        apply_overrides(plan, [StepOverride("vae", "cwd", "", "")])


def test_apply_overrides_refuses_unknown_steps_and_keys() -> None:
    plan = render_recipe("sdxl-1024")
    with pytest.raises(UsageError, match="has no step 'vea'.*vae"):
        apply_overrides(plan, [StepOverride("vea", "env", "A", "1")])
    with pytest.raises(UsageError, match="the step sets no LD_LIBRARY_PAT.*LD_LIBRARY_PATH"):
        apply_overrides(plan, [StepOverride("vae", "unset", "LD_LIBRARY_PAT", "")])


def test_build_plan_applies_the_overrides() -> None:
    plan = build_plan(RunRequest("sdxl-1024", set_pairs=("steps=4", "vae.cwd=/sdcard")))
    assert plan.params["steps"] == 4 and plan.step("vae").cwd == "/sdcard"


def test_run_folder_is_new_and_path_safe(tmp_path: Path) -> None:
    first = run_folder(tmp_path, "sdxl-1024", "127.0.0.1:5555/x y")
    assert first.is_dir() and first.parent == tmp_path
    assert first.name.endswith("-sdxl-1024-127.0.0.1_5555_x_y")
    second = run_folder(tmp_path, "sdxl-1024", "127.0.0.1:5555/x y")
    assert second != first and second.is_dir()


def test_temps_and_summary_dict(tmp_path: Path) -> None:
    assert _temps(None) == {}
    facts = DeviceFacts("S1", battery_temp_c=31.5, thermal_c={"cpu-0": 44.0}, battery_level=80)
    assert _temps(facts) == {"battery_c": 31.5, "max_c": 44.0, "zones": {"cpu-0": 44.0},
                             "battery_level": 80}
    summary = RunSummary("r1", "sd15-512", "S1", "ok", tmp_path,
                         [StepSummary("sd15", 0, 1.5, {"steps": 20.0})], None, [], 2.0, {}, {})
    data = summary.to_dict()
    assert data["run_dir"] == str(tmp_path) and data["steps"][0]["metrics"] == {"steps": 20.0}
