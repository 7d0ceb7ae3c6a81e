"""Step overrides of --set (shared by `harness run` and `harness recipes render`)."""

from __future__ import annotations

import pytest

from harness.errors import UsageError
from harness.recipes.load import render_recipe
from harness.recipes.overrides import StepOverride, apply_overrides, split_set_pairs


def test_split_keeps_parameters_and_parses_overrides() -> None:
    params, overrides = split_set_pairs(["steps=3", "vae.env.K=a=b", "unet.unset=X",
                                         "vae.cwd="])
    assert params == ["steps=3"]
    assert overrides == [StepOverride("vae", "env", "K", "a=b"),
                         StepOverride("unet", "unset", "X", "X"),
                         StepOverride("vae", "cwd", "", "")]


def test_apply_sets_unsets_and_moves() -> None:
    plan = render_recipe("sdxl-1024")
    _, overrides = split_set_pairs(["vae.env.CLML_NO_REUSE_TNN=0", "unet.unset=SDXL_EXPORT_X0",
                                    "vae.cwd=/data"])
    with pytest.raises(UsageError, match="sets no SDXL_EXPORT_X0"):
        apply_overrides(plan, overrides)  # k=2: the recipe omits SDXL_EXPORT_X0
    changed = apply_overrides(plan, [overrides[0], overrides[2]])
    assert changed.step("vae").env["CLML_NO_REUSE_TNN"] == "0"
    assert changed.step("vae").cwd == "/data"
    assert plan.step("vae").env["CLML_NO_REUSE_TNN"] == "1"


def test_unknown_step_gets_a_suggestion() -> None:
    with pytest.raises(UsageError, match="did you mean 'vae'"):
        apply_overrides(render_recipe("sdxl-1024"), split_set_pairs(["vea.env.X=1"])[1])
