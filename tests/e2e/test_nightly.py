"""``scripts/nightly``: the cron wrapper's lock, log and exit code (a real bash, real CLI)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "nightly"


def nightly(tmp_path: Path, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HARNESS_HOME": str(tmp_path / "home"),
           "NIGHTLY_CONFIG": str(config), "NIGHTLY_LOGS": str(tmp_path / "logs"),
           "HARNESS": str(Path(sys.executable).parent / "harness")}
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_the_bench_exit_code_and_its_log(tmp_path: Path) -> None:
    config = tmp_path / "nightly.yaml"
    config.write_text("repeats: 3\n")
    result = nightly(tmp_path, config)
    assert result.returncode == 2, result.stderr  # harness bench's code, passed on
    log = (tmp_path / "logs" / "latest.log").read_text()
    assert "unknown key 'repeats' in the bench config (did you mean 'repeat'?)" in log
    assert log.rstrip().endswith("nightly: exit 2")


def test_a_second_nightly_does_not_start_while_one_runs(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    fd = os.open(tmp_path / "home" / "nightly.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        result = nightly(tmp_path, tmp_path / "absent.yaml")
    finally:
        os.close(fd)
    assert result.returncode == 75
    assert "another nightly holds" in result.stderr
    assert not list((tmp_path / "logs").glob("2*.log"))  # no bench was started
