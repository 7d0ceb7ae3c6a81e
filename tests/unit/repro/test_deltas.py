"""Plan differences: env switches one by one, library paths element by element."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from harness.errors import UsageError
from harness.recipes.load import render_recipe
from harness.recipes.overrides import apply_overrides, split_set_pairs
from harness.recipes.plan import Plan
from harness.repro.deltas import apply, apply_path, differences, path_changes, plan_digest

F, T, S, V = "/data/local/tmp/MNN_fuse", "/data/local/tmp", "/system/lib64", "/vendor/lib64"


def with_sets(plan: Plan, *pairs: str) -> Plan:
    return apply_overrides(plan, split_set_pairs(pairs)[1])


@pytest.fixture(scope="module")
def sdxl() -> Plan:
    return render_recipe("sdxl-1024", set_pairs=["steps=3"])


@pytest.mark.parametrize(("good", "bad"), [
    ([F, S, V], [T, F, S, V]),
    ([F, S, V, T], [T, F, V, S, "/vendor/lib64/egl"]),
    ([F, S, V], [V, S]),
    ([F, S, V], [S, V, F]),
    (["a", "b", "c", "d"], ["d", "c", "b", "a"]),
])
def test_all_path_changes_give_the_bad_path_and_none_the_good(good: list[str],
                                                              bad: list[str]) -> None:
    changes = path_changes("unet", "LD_LIBRARY_PATH", ":".join(good), ":".join(bad))
    assert apply_path(":".join(good), changes) == ":".join(bad)
    assert apply_path(":".join(good), []) == ":".join(good)
    for k in range(len(changes) + 1):  # every subset gives a path of unique folders
        for subset in itertools.combinations(changes, k):
            dirs = apply_path(":".join(good), subset).split(":")
            assert len(dirs) == len(set(dirs))


def test_tmp_first_is_one_move_whatever_else_moved() -> None:
    changes = path_changes("unet", "LD_LIBRARY_PATH", f"{F}:{S}:{V}:{T}", f"{T}:{F}:{V}:{S}")
    culprit = [c for c in changes if c.item == T]
    assert len(culprit) == 1 and culprit[0].kind == "path-move" and culprit[0].anchor is None
    assert apply_path(f"{F}:{S}:{V}:{T}", culprit) == f"{T}:{F}:{S}:{V}"
    assert "moves /data/local/tmp first" in culprit[0].describe()


def test_env_args_cwd_differences_round_trip(sdxl: Plan) -> None:
    bad = with_sets(sdxl, "unet.env.CLML_NO_REUSE_TNN=0", "unet.unset=SDXL_EXPORT_X0"
                    if "SDXL_EXPORT_X0" in sdxl.step("unet").env else "unet.env.NEW=1",
                    "vae.env.MNN_PREC=2", "vae.cwd=/data/local/tmp/output",
                    f"unet.env.LD_LIBRARY_PATH={T}:{F}:{S}:{V}")
    unet = bad.steps[0]
    bad = replace(bad, steps=(replace(unet, argv=(*unet.argv[:5], "4", *unet.argv[6:])),
                              bad.steps[1]))
    changes = differences(sdxl, bad)
    kinds = sorted(c.kind for c in changes)
    assert kinds == ["arg", "cwd", "env", "env", "env", "path-add"]
    full = apply(sdxl, bad, changes)
    assert [dict(s.env) for s in full.steps] == [dict(s.env) for s in bad.steps]
    assert [(s.argv, s.cwd) for s in full.steps] == [(s.argv, s.cwd) for s in bad.steps]
    assert plan_digest(apply(sdxl, bad, [])) == plan_digest(sdxl)


def test_unset_switch_is_a_change(sdxl: Plan) -> None:
    bad = with_sets(sdxl, "vae.unset=MNN_MEM")
    (change,) = differences(sdxl, bad)
    assert change.bad is None and "unset MNN_MEM" in change.describe()
    assert "MNN_MEM" not in apply(sdxl, bad, [change]).step("vae").env


def test_plans_of_other_steps_are_refused(sdxl: Plan) -> None:
    with pytest.raises(UsageError, match="different steps"):
        differences(sdxl, render_recipe("sd15-512"))
