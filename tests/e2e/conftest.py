"""Fixtures the end-to-end modules share."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.simfarm import SimFarm


@pytest.fixture()
def farm_file(tmp_path: Path, sim_farm: SimFarm) -> Path:
    """A farm file naming only the virtual farm's adb server, with thermal limits out of the
    way: other tests leave phones warm; hot starts are tested on phones of their own
    (test_fidelity.py, test_bench.py). A module with other needs defines its own."""
    path = tmp_path / "farm.yaml"
    path.write_text(f"servers: [{{name: virtual, port: {sim_farm.state.adb_port}}}]\nsim: false\n"
                    "thermal: {battery_c: 90, cpu_c: 110}\n")
    return path
