"""Pure parts of asset sync: the phone's sha256sum output, free space, block overhead."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harness.assets.sync import (
    DEFAULT_BLOCK_BYTES,
    SECTION,
    LocalFile,
    SetPlan,
    parse_sha256sum,
    parse_space,
    space_needed,
)

DIGEST = "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"


def test_toybox_prints_names_raw() -> None:
    # toybox md5sum.c do_hash(): printf("%s  %s\n", hash, name), no escaping.
    out = f"{DIGEST}  /data/local/tmp/a\\b.bin\n{DIGEST}  /data/local/tmp/plain\n"
    assert parse_sha256sum(out) == {"/data/local/tmp/a\\b.bin": DIGEST,
                                    "/data/local/tmp/plain": DIGEST}


def test_gnu_escapes_backslashes_and_newlines() -> None:
    out = f"\\{DIGEST}  /d/a\\\\b\n\\{DIGEST}  /d/x\\ny\n{DIGEST}  /d/two  spaces\n"
    assert parse_sha256sum(out) == {"/d/a\\b": DIGEST, "/d/x\ny": DIGEST,
                                    "/d/two  spaces": DIGEST}


def test_a_name_with_a_carriage_return_stays_one_line() -> None:
    assert parse_sha256sum(f"{DIGEST}  /d/a\rb\n") == {"/d/a\rb": DIGEST}


@pytest.mark.parametrize("tool", ["toybox", "sha256sum"])
def test_real_tools_parse_back(tool: str, tmp_path: Path) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    name = tmp_path / "back\\slash"
    name.write_bytes(b"x")
    argv = [tool, "sha256sum", str(name)] if tool == "toybox" else [tool, str(name)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    assert parse_sha256sum(out) == {str(name): DIGEST}


def test_parse_space_reads_df_and_stat() -> None:
    out = (f"/dev/block/dm-8  115000000 60000000 55000000  53% /data\n{SECTION}\n"
           "4096 3085440\n")
    space = parse_space(out)
    assert space.free_bytes == 55000000 * 1024
    assert (space.block_bytes, space.free_inodes) == (4096, 3085440)


def test_parse_space_without_stat_assumes_4k_blocks() -> None:
    space = parse_space(f"tmpfs 65536 0 65536 0% /data\n{SECTION}\n")
    assert (space.block_bytes, space.free_inodes) == (DEFAULT_BLOCK_BYTES, None)
    assert parse_space("").free_bytes is None


def _plan(count: int, size: int) -> SetPlan:
    files = [LocalFile("/data/local/tmp/s", f"d{i % 10}/f{i}", "/x", size, 0, 0o644, "0" * 64)
             for i in range(count)]
    return SetPlan("s", files, push=list(files))


def test_small_files_cost_whole_blocks() -> None:
    # 20,000 files of 100 bytes are 2 MB of data but at least 80 MB on a 4 KiB filesystem.
    needed = space_needed([_plan(20_000, 100)], 4096)
    assert needed >= 20_000 * 4096
    assert space_needed([_plan(10, 4096)], 4096) < space_needed([_plan(10, 4097)], 4096)
