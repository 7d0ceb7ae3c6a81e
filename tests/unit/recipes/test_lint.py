"""Lint: each of the seed's pitfalls is found on a mutated plan; sdxl-1024 is clean."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from harness.device.facts import Requirements
from harness.recipes.lint import RULES, lint, unexpected
from harness.recipes.load import RecipeBook, lint_recipe, render_recipe
from harness.recipes.plan import Plan


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def mutate(plan: Plan, step: str, env: dict[str, str | None] | None = None,
           **fields: Any) -> Plan:
    steps = []
    for s in plan.steps:
        if s.name == step:
            new_env = dict(s.env)
            for key, value in (env or {}).items():
                if value is None:
                    new_env.pop(key, None)
                else:
                    new_env[key] = value
            s = dataclasses.replace(s, env=new_env, **fields)
        steps.append(s)
    return dataclasses.replace(plan, steps=tuple(steps))


def rules(plan: Plan) -> set[str]:
    return {f.rule for f in lint(plan)}


@pytest.mark.parametrize("name", ["sdxl-1024", "sd15-512", "sdxl-1024-unet"])
def test_builtins_are_clean(name: str) -> None:
    assert lint(render_recipe(name)) == []


def test_single_process_is_flagged_and_expected() -> None:
    plan = render_recipe("sdxl-1024-single")
    findings = lint(plan)
    assert {f.rule for f in findings} == {"SDXL_SINGLE_PROCESS"}
    assert unexpected(findings, plan.expect_lint) == []
    assert findings[0].step == "pipeline"
    assert "OOM" in findings[0].reason or "out of memory" in findings[0].reason


def test_every_builtin_passes_recipe_lint() -> None:
    book = RecipeBook()
    for name in book.names():
        assert lint_recipe(book, name).ok, name


@pytest.mark.parametrize("value", ["0", None])
def test_tnn_reuse(value: str | None) -> None:
    plan = mutate(render_recipe("sdxl-1024"), "vae", {"CLML_NO_REUSE_TNN": value})
    findings = lint(plan)
    assert [(f.rule, f.step) for f in findings] == [("CLML_NO_REUSE_TNN", "vae")]
    assert "colour blocks" in findings[0].reason


def test_tnn_reuse_in_sd15() -> None:
    plan = mutate(render_recipe("sd15-512"), "pipeline", {"CLML_NO_REUSE_TNN": None})
    assert rules(plan) == {"CLML_NO_REUSE_TNN"}


def test_library_path_order() -> None:
    bad = "/data/local/tmp:/data/local/tmp/MNN_fuse:/system/lib64:/vendor/lib64"
    plan = mutate(render_recipe("sdxl-1024"), "vae", {"LD_LIBRARY_PATH": bad})
    findings = lint(plan)
    assert [f.rule for f in findings] == ["LD_LIBRARY_PATH_ORDER"]
    assert "older MNN" in findings[0].reason


def test_library_path_without_fuse() -> None:
    plan = mutate(render_recipe("sdxl-1024"), "vae",
                  {"LD_LIBRARY_PATH": "/data/local/tmp/:/system/lib64"})
    assert rules(plan) == {"LD_LIBRARY_PATH_ORDER", "MNN_FUSE"}


def test_vae_without_mnn_cl_lib() -> None:
    plan = mutate(render_recipe("sdxl-1024"), "vae", {"MNN_CL_LIB": None})
    assert rules(plan) == {"MNN_FUSE"}


@pytest.mark.parametrize("cwd", [None, "/data/local", "/sdcard"])
def test_vae_working_directory(cwd: str | None) -> None:
    plan = mutate(render_recipe("sdxl-1024"), "vae", cwd=cwd)
    findings = lint(plan)
    assert [f.rule for f in findings] == ["VAE_CWD"]
    assert "output/" in findings[0].reason


def test_vae_cwd_with_trailing_slash_is_fine() -> None:
    assert lint(mutate(render_recipe("sdxl-1024"), "vae", cwd="/data/local/tmp/")) == []


@pytest.mark.parametrize("ram", [12.0, None])
def test_sdxl_on_a_small_phone(ram: float | None) -> None:
    plan = dataclasses.replace(render_recipe("sdxl-1024"), requirements=Requirements(ram))
    findings = lint(plan)
    assert [(f.rule, f.step) for f in findings] == [("SDXL_RAM", None)]
    assert "16 GB" in findings[0].reason


def test_sdxl_small_image_on_a_small_phone_is_fine() -> None:
    plan = render_recipe("sdxl-1024", set_pairs=["height=512", "width=512"])
    plan = dataclasses.replace(plan, requirements=Requirements(12.0))
    assert "SDXL_RAM" not in rules(plan)


def test_early_decode_zero_without_x0_export() -> None:
    plan = render_recipe("sdxl-1024", set_pairs=["early_decode_k=0"])
    assert lint(plan) == []  # the recipe adds SDXL_EXPORT_X0=1 by itself
    plan = mutate(plan, "unet", {"SDXL_EXPORT_X0": None})
    findings = lint(plan)
    assert [f.rule for f in findings] == ["EARLY_DECODE_X0"]
    assert "colour blocks" in findings[0].reason


def test_early_decode_without_x0() -> None:
    plan = mutate(render_recipe("sdxl-1024"), "unet", {"SDXL_EARLY_DECODE_X0": None})
    assert rules(plan) == {"EARLY_DECODE_NO_X0"}


def test_unet_only_unset_is_a_single_process() -> None:
    plan = mutate(render_recipe("sdxl-1024"), "unet", {"SDXL_UNET_ONLY": None})
    findings = lint(plan)
    assert [f.rule for f in findings] == ["SDXL_SINGLE_PROCESS"]
    assert "SDXL_UNET_ONLY" in findings[0].message


def test_preinit() -> None:
    plan = mutate(render_recipe("sdxl-1024"), "unet", {"SDXL_PREINIT": "1"})
    assert rules(plan) == {"SDXL_PREINIT"}
    # with precomputed embeddings CLIP does not run, so nothing is resident together
    plan = mutate(render_recipe("sdxl-1024-unet"), "unet", {"SDXL_PREINIT": "1"})
    assert rules(plan) == set()


def test_declared_memory_above_the_phone() -> None:
    plan = mutate(render_recipe("sdxl-1024"), "unet", memory_gb=20.0)
    assert rules(plan) == {"STEP_MEMORY"}


# The one rule harness adds on its own judgement; every other rule comes from the seed's notes.
HARNESS_OWN_RULES = {"STEP_MEMORY"}


def test_every_rule_has_a_reason_naming_its_source() -> None:
    assert set(RULES) >= HARNESS_OWN_RULES
    for rule_id, rule in RULES.items():
        assert rule.id == rule_id and rule.severity in ("error", "warning")
        if rule_id in HARNESS_OWN_RULES:
            assert rule.reason and not rule.reason.startswith("seed"), rule_id
        else:
            source, _, why = rule.reason.partition(": ")
            assert source == "seed" and len(why.split()) >= 5, (rule_id, rule.reason)


def test_recipe_file_with_a_pitfall(tmp_path: Path) -> None:
    (tmp_path / "reuse.yaml").write_text(
        "extends: sdxl-1024\nsteps:\n  - name: vae\n    env: {CLML_NO_REUSE_TNN: '0'}\n")
    report = lint_recipe(RecipeBook([tmp_path]), "reuse")
    assert not report.ok
    assert [f.rule for f in report.unexpected] == ["CLML_NO_REUSE_TNN"]
