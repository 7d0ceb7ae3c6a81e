"""Background runs' holder file and live-run listing (orphans of a dead harness)."""

from __future__ import annotations

import socket

from harness.device.background import (
    ORPHAN_MARK,
    holder_text,
    live_runs_command,
    parse_live_runs,
)
from harness.holder import Holder


def test_holder_text_round_trips_through_the_listing() -> None:
    holder = Holder("lab host\nevil=1", 4242, "boot:77")
    text = holder_text(holder, "01RUN", 1700000000.5)
    assert text.count("\n") == 5  # a newline in a value cannot add a field
    listing = f"{ORPHAN_MARK}20261202-sdxl-unet-ab12 3131\n{text}\n{ORPHAN_MARK}x 77\n\n"
    runs = parse_live_runs(listing)
    assert [r.run_id for r in runs] == ["20261202-sdxl-unet-ab12", "x"]
    first = runs[0]
    assert first.pid == 3131 and first.harness_run == "01RUN" and first.started == 1700000000.5
    assert first.holder == Holder("lab host evil=1", 4242, "boot:77")
    assert runs[1].holder is None  # no holder file: never taken for an orphan
    assert "phone pid 3131" in first.describe() and "01RUN" in first.describe()


def test_a_malformed_listing_is_skipped() -> None:
    assert parse_live_runs(f"{ORPHAN_MARK}only-a-name\npid=3\n") == []
    assert parse_live_runs("garbage\n") == []


def test_live_runs_command_checks_the_wrapper_command_line() -> None:
    command = live_runs_command()
    assert "/proc/$p/cmdline" in command and "run.sh" in command
    assert socket.gethostname() not in command
