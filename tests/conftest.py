"""Shared fixtures: a virtual farm started once per test session, on its own adb server.

The farm lives in a temporary ``HARNESS_HOME`` and uses a private adb port, so the tests
never touch a developer's real adb server (port 5037) or their harness state.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.simfarm import SimFarm

# Tests run the simulated binaries this much faster than a real phone.
TEST_TIME_SCALE = 0.005
TEST_PROFILES = ("sm8650-16g", "sm8550-12g", "sm8475-8g", "sm8650-24g")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness")
    group.addoption("--real-phone", metavar="SERIAL", default=None,
                    help="also run the tests marked realphone against this physical phone")
    group.addoption("--real-adb-port", type=int, default=5037,
                    help="port of the adb server that has the real phone (default 5037)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--real-phone"):
        return
    skip = pytest.mark.skip(reason="needs a physical phone: pytest --real-phone SERIAL")
    for item in items:
        if "realphone" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def host_lease_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Leases are host-wide (/tmp/harness-leases); the tests keep theirs to themselves."""
    path = tmp_path_factory.mktemp("host-leases")
    old = os.environ.get("HARNESS_LEASE_DIR")
    os.environ["HARNESS_LEASE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("HARNESS_LEASE_DIR", None)
    else:
        os.environ["HARNESS_LEASE_DIR"] = old


@pytest.fixture(scope="session")
def harness_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("harness-home")
    old = os.environ.get("HARNESS_HOME")
    os.environ["HARNESS_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("HARNESS_HOME", None)
    else:
        os.environ["HARNESS_HOME"] = old


@pytest.fixture(scope="session")
def sim_farm(harness_home: Path) -> Iterator[SimFarm]:
    """A running virtual farm with one phone per profile in TEST_PROFILES."""
    from harness.sim.farm import Farm
    from tests.simfarm import SimFarm

    farm = Farm(harness_home / "sim")
    farm.up(TEST_PROFILES, time_scale=TEST_TIME_SCALE)
    try:
        yield SimFarm(farm)
    finally:
        farm.down()
