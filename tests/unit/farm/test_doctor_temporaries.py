"""Doctor's survey of harness temporaries (the command it runs and what it reads back)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness.assets import sync
from harness.farm import doctor


def test_doctor_looks_for_what_sync_writes() -> None:
    command = doctor.temporaries_command()  # one definition (harness/device/layout.py)
    assert f"*{sync.TMP_MARK}*" in command
    assert f"{sync.SCRIPT_DIR}/*" in command


def test_parse_temporaries() -> None:
    assert doctor.parse_temporaries("") == (0, 0)
    assert doctor.parse_temporaries("4\t/a.harness-tmp-x\n40960\t/b.harness-tmp-y\n") == \
        (2, 40964 * 1024)


def test_the_command_runs_in_a_posix_shell(tmp_path: Path) -> None:
    root = tmp_path / "data" / "local" / "tmp"
    (root / "w.harness-tmp-abc").mkdir(parents=True)
    (root / "w.harness-tmp-abc" / "f").write_bytes(b"x" * 10000)
    (root / "keep.bin").write_bytes(b"y" * 10000)
    command = doctor.temporaries_command().replace("/data/local/tmp", str(root))
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True).stdout
    count, size = doctor.parse_temporaries(out)
    assert count == 1 and size >= 10000
