"""Start-up cost: what a command imports that it does not need (issue 12).

Each check runs a fresh interpreter, so the modules other tests imported do not count.
"""

from __future__ import annotations

import subprocess
import sys

import pytest


def imported_by(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\nprint(*sys.modules)"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return set(out.split())


@pytest.mark.parametrize("module", ["harness.cli", "harness.cli.sync", "harness.assets.sync",
                                    "harness.farm.inventory", "harness.recipes.plan"])
def test_a_push_imports_neither_numpy_nor_requests(module: str) -> None:
    mods = imported_by(f"import {module}")
    assert "requests" not in mods and "urllib3" not in mods  # adbutils.install's
    assert "numpy" not in mods
    assert "adbutils" not in mods  # harness speaks the adb protocol itself (adbseam)


def test_adbutils_without_its_apk_install_still_has_what_harness_uses() -> None:
    mods = imported_by("import tests.simfarm, adbutils\n"
                       "assert hasattr(adbutils.AdbDevice, 'sync')\n"
                       "assert hasattr(adbutils.AdbDevice, 'shell')\n"
                       "assert not hasattr(adbutils.AdbDevice, 'install')")
    assert "adbutils.install" in mods and "requests" not in mods


def test_an_earlier_real_adbutils_install_is_left_alone() -> None:
    mods = imported_by("import adbutils.install, tests.simfarm, adbutils\n"
                       "assert hasattr(adbutils.AdbDevice, 'install')")
    assert "requests" in mods


def test_help_registers_every_command_without_rich_jinja2_matplotlib_or_numpy() -> None:
    # ``harness --help`` imports every command module (cli._register); a module-level import
    # of rich (tables), jinja2 (reports), matplotlib (plots) or numpy there costs every command
    # its start-up time. Import them inside the functions that print or render.
    mods = imported_by("import contextlib, io, harness.cli as c\n"
                       "with contextlib.redirect_stdout(io.StringIO()), "
                       "contextlib.suppress(SystemExit):\n"
                       "    c.main(['--help'])")
    assert {"harness.cli.bench", "harness.cli.repro", "harness.cli.report"} <= mods
    assert not {m for m in mods if m.split(".")[0] in ("rich", "jinja2", "matplotlib",
                                                        "numpy")}
