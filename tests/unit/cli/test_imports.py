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


def test_help_imports_no_command_module_and_no_logging() -> None:
    # ``harness --help`` lists the commands from cli.COMMAND_TABLE: it imports none of the
    # command modules, nor logging, dataclasses, shutil or socket (issue 12: its start-up is
    # the interpreter's and click's).
    mods = imported_by("import contextlib, io, harness.cli as c\n"
                       "with contextlib.redirect_stdout(io.StringIO()), "
                       "contextlib.suppress(SystemExit):\n"
                       "    c.main(['--help'])")
    assert not {m for m in mods if m.startswith("harness.cli.")}
    assert not {"logging", "dataclasses", "shutil", "socket"} & mods


def test_a_command_imports_only_its_own_module() -> None:
    mods = imported_by("import contextlib, io, harness.cli as c\n"
                       "with contextlib.redirect_stdout(io.StringIO()), "
                       "contextlib.suppress(SystemExit):\n"
                       "    c.main(['push', '--help'])")
    assert {m for m in mods if m.startswith("harness.cli.")} == {
        "harness.cli.sync", "harness.cli.options", "harness.cli.logsetup"}


def test_command_modules_import_no_rich_jinja2_matplotlib_or_numpy() -> None:
    # A module-level import of rich (tables), jinja2 (reports), matplotlib (plots) or numpy
    # in a command module costs that command its start-up time even when it does not print
    # or render. Import them inside the functions that print or render.
    mods = imported_by("import harness.cli as c\nc.cli.load_all()")
    assert {"harness.cli.bench", "harness.cli.repro", "harness.cli.report"} <= mods
    assert not {m for m in mods if m.split(".")[0] in ("rich", "jinja2", "matplotlib",
                                                        "numpy")}
