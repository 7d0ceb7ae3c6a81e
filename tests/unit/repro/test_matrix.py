"""The sweep matrix: axes parsed, resolved against a plan, expanded in order."""

from __future__ import annotations

import pytest

from harness.errors import UsageError
from harness.recipes.load import render_recipe
from harness.recipes.plan import Plan
from harness.repro.matrix import expand, parse_axes, parse_axis, resolve_axis


@pytest.fixture(scope="module")
def sdxl() -> Plan:
    return render_recipe("sdxl-1024")


@pytest.mark.parametrize(("text", "match"), [
    ("SDXL_EARLY_DECODE_K=", "empty value list"),
    ("SDXL_EARLY_DECODE_K=0,,2", "empty value"),
    ("SDXL_EARLY_DECODE_K", "VAR=a,b,c"),
    ("=1,2", "VAR=a,b,c"),
    ("K=1,1", "repeated"),
])
def test_bad_axes_are_refused(text: str, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        parse_axis(text)


def test_no_axis_or_a_twice_given_axis_is_refused() -> None:
    with pytest.raises(UsageError, match="at least one"):
        parse_axes([])
    with pytest.raises(UsageError, match="twice"):
        parse_axes(["steps=1,2", "steps=3"])


def test_values_are_kept_verbatim() -> None:
    assert parse_axis("unet.env.X=$(touch /tmp/x),a b").values == ("$(touch /tmp/x)", "a b")


def test_resolution_param_env_override(sdxl: Plan) -> None:
    assert resolve_axis(parse_axis("steps=2,3"), sdxl).kind == "param"
    env = resolve_axis(parse_axis("CLML_NO_REUSE_TNN=0,1"), sdxl)
    assert (env.kind, env.steps) == ("env", ("unet", "vae"))
    assert env.set_pairs("0") == ("unet.env.CLML_NO_REUSE_TNN=0", "vae.env.CLML_NO_REUSE_TNN=0")
    assert resolve_axis(parse_axis("vae.env.NEW_SWITCH=1"), sdxl).kind == "override"


def test_unknown_var_is_refused_with_a_suggestion(sdxl: Plan) -> None:
    with pytest.raises(UsageError, match=r"no parameter or environment switch 'SDXL_EARLY_DECODE_KK'"
                                         r".*did you mean 'SDXL_EARLY_DECODE_K'"):
        resolve_axis(parse_axis("SDXL_EARLY_DECODE_KK=0,2"), sdxl)


def test_expansion_is_the_cartesian_product_last_axis_fastest(sdxl: Plan) -> None:
    axes = [resolve_axis(parse_axis(t), sdxl)
            for t in ("SDXL_EARLY_DECODE_K=0,2", "SDXL_EARLY_DECODE_X0=0,1", "steps=3,4,5")]
    cells = expand(axes)
    assert len(cells) == 12
    assert cells[0].label == "SDXL_EARLY_DECODE_K=0 SDXL_EARLY_DECODE_X0=0 steps=3"
    assert cells[1].label.endswith("steps=4")
    assert cells[-1].set_pairs == ("unet.env.SDXL_EARLY_DECODE_K=2",
                                   "unet.env.SDXL_EARLY_DECODE_X0=1", "steps=5")
    assert [c.index for c in cells] == list(range(12))


def test_a_huge_matrix_is_refused(sdxl: Plan) -> None:
    axes = [resolve_axis(parse_axis("steps=" + ",".join(map(str, range(1, 40)))), sdxl),
            resolve_axis(parse_axis("seed=" + ",".join(map(str, range(10)))), sdxl)]
    with pytest.raises(UsageError, match="cells"):
        expand(axes)
