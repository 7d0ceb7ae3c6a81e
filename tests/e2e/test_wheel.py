"""The built wheel holds every file of the package, not only its modules.

A source checkout (and ``pip install -e``) reads data files from the tree, so a file that
setup.cfg's ``package_data`` forgets works in every other test and is missing only for a
user who installs the wheel: the telemetry sampler was read from outside the package and
no wheel had it. This builds the wheel the way pip does (PEP 517, build isolation) from a
copy of the sources, so nothing is written into the checkout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_FILES = ("setup.cfg", "pyproject.toml", "README.md")


def _package_files() -> set[str]:
    return {p.relative_to(ROOT).as_posix() for p in (ROOT / "harness").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    src = tmp_path_factory.mktemp("src")
    for name in BUILD_FILES:
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "harness", src / "harness",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                           str(out), str(src)], capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = out.glob("harness-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_holds_every_file_of_the_package(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    missing = sorted(_package_files() - names)
    assert not missing, f"not in the wheel: {missing}"


def test_the_sampler_is_read_from_inside_the_package() -> None:
    from harness.run import telemetry

    assert telemetry.SAMPLER_FILE.is_relative_to(ROOT / "harness")
    assert telemetry.sampler_script().startswith("#")
