"""The bench matrix: eligible phone x recipe, each rejection with its reason; shards."""

from __future__ import annotations

import pytest

from harness.bench.config import BenchConfig, BenchRecipe
from harness.bench.matrix import build_matrix, parse_shard, shard_of
from harness.device.facts import DeviceFacts
from harness.errors import UsageError
from harness.farm.inventory import DeviceSpec, Farm, FarmConfig, FarmDevice, ServerSpec
from harness.recipes.load import render_recipe
from harness.recipes.plan import Plan

GIB_KB = 1024 * 1024


def _dev(serial: str, ram_gb: float, state: str = "device",
         tags: tuple[str, ...] = ()) -> FarmDevice:
    facts = DeviceFacts(serial, soc_model="SM8650", mem_total_kb=int(ram_gb * GIB_KB * 0.93),
                        android_release="14")
    return FarmDevice(serial, ServerSpec("s"), state, DeviceSpec(tags=tags), facts)


@pytest.fixture(scope="module")
def plans() -> dict[str, Plan | str]:
    return {"sd15-512": render_recipe("sd15-512"), "sdxl-1024": render_recipe("sdxl-1024"),
            "single": render_recipe("sdxl-1024-single")}


def test_every_phone_x_recipe_with_each_rejection_and_its_reason(
        plans: dict[str, Plan | str]) -> None:
    pool = [_dev("A16", 16), _dev("B12", 12), _dev("C8", 8), _dev("D16", 16, "offline")]
    config = BenchConfig(recipes=(BenchRecipe("sd15-512"), BenchRecipe("sdxl-1024")))
    matrix = build_matrix(config, plans, Farm(FarmConfig(servers=())), pool)
    assert {(c.serial, c.series) for c in matrix.cells} == {
        ("A16", "sd15-512"), ("B12", "sd15-512"), ("C8", "sd15-512"), ("A16", "sdxl-1024")}
    why = {(r.serial, r.series): r.reason for r in matrix.rejected}
    assert why[("B12", "sdxl-1024")] == "needs 16 GB of RAM, the phone has 12 GB"
    assert why[("C8", "sdxl-1024")] == "needs 16 GB of RAM, the phone has 8 GB"
    assert why[("D16", "sd15-512")] == "state is offline"
    assert matrix.phones() == ["A16", "B12", "C8"]


def test_a_selector_and_a_group_limit_the_phones(plans: dict[str, Plan | str]) -> None:
    pool = [_dev("A16", 16, tags=("nightly",)), _dev("B12", 12)]
    config = BenchConfig(recipes=(BenchRecipe("sd15-512", device="night"),),
                         groups={"night": "tag:nightly"})
    matrix = build_matrix(config, plans, Farm(FarmConfig(servers=())), pool)
    assert [c.serial for c in matrix.cells] == ["A16"]
    assert [(r.serial, r.reason) for r in matrix.rejected] == [
        ("B12", "not selected by tag:nightly")]


def test_a_recipe_whose_lint_it_expects_is_benched(plans: dict[str, Plan | str]) -> None:
    # sdxl-1024-single expects its SDXL_SINGLE_PROCESS finding: it runs (and OOMs) on 16 GB.
    config = BenchConfig(recipes=(BenchRecipe("single"),))
    matrix = build_matrix(config, {"single": plans["single"]}, Farm(FarmConfig(servers=())),
                          [_dev("A16", 16)])
    assert [c.serial for c in matrix.cells] == ["A16"]


def test_an_unrenderable_entry_is_rejected_everywhere() -> None:
    config = BenchConfig(recipes=(BenchRecipe("broken"),))
    matrix = build_matrix(config, {"broken": "no recipe 'broken'"},
                          Farm(FarmConfig(servers=())), [_dev("A16", 16)])
    assert matrix.cells == []
    assert [(r.serial, r.reason) for r in matrix.rejected] == [(None, "no recipe 'broken'")]


def test_shards_split_by_phone_and_cover_the_matrix_once(plans: dict[str, Plan | str]) -> None:
    pool = [_dev(f"P{i:02d}", 16) for i in range(12)]
    config = BenchConfig(recipes=(BenchRecipe("sd15-512"), BenchRecipe("sdxl-1024")))
    farm = Farm(FarmConfig(servers=()))
    whole = build_matrix(config, plans, farm, pool)
    parts = [build_matrix(config, plans, farm, pool, (i, 3)) for i in (1, 2, 3)]
    cells = [(c.serial, c.series) for p in parts for c in p.cells]
    assert sorted(cells) == sorted((c.serial, c.series) for c in whole.cells)
    for part in parts:  # one phone, one shard: its recipes never split over hosts
        assert all(shard_of(c.serial, 3) == parts.index(part) + 1 for c in part.cells)


def test_a_phone_keeps_its_shard_when_phones_are_added(plans: dict[str, Plan | str]) -> None:
    config = BenchConfig(recipes=(BenchRecipe("sd15-512"),))
    farm = Farm(FarmConfig(servers=()))
    old = [_dev(f"R5CW{i:04d}", 16) for i in range(8)]
    grown = [_dev("A0000", 16), *old[:4], _dev("M0000", 16), *old[4:], _dev("Z0000", 16)]
    for i in (1, 2, 3):
        before = {c.serial for c in build_matrix(config, plans, farm, old, (i, 3)).cells}
        after = {c.serial for c in build_matrix(config, plans, farm, grown, (i, 3)).cells}
        assert before == after & {d.serial for d in old}
    serials = [f"R5CW{i:04d}" for i in range(40)]
    assert {shard_of(s, 4) for s in serials} == {1, 2, 3, 4}  # 40 phones reach every shard
    assert shard_of("x", 1) == 1


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "a/b", "1", "1/2/3", "-1/2"])
def test_bad_shards_are_refused(text: str) -> None:
    with pytest.raises(UsageError, match="--shard"):
        parse_shard(text)


def test_good_shards() -> None:
    assert parse_shard("1/2") == (1, 2) and parse_shard(" 4/4 ") == (4, 4)
