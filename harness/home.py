"""Where harness keeps its state: one home directory, overridable with ``HARNESS_HOME``.

Everything the tool keeps between invocations lives under this directory, so that tests and
parallel users never collide: the virtual farm (``sim/``), the results database, caches and
the default farm file. The default follows the XDG base directory convention:
``$XDG_DATA_HOME/harness`` or ``~/.local/share/harness``.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "HARNESS_HOME"


def harness_home() -> Path:
    """Return the home directory (created on first use)."""
    env = os.environ.get(HOME_ENV)
    if env:
        home = Path(env).expanduser()
    else:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        home = Path(base) / "harness"
    home.mkdir(parents=True, exist_ok=True)
    return home.resolve()


def sim_dir() -> Path:
    """Directory of the virtual phone farm (state file, phones, its adb server's home)."""
    path = harness_home() / "sim"
    path.mkdir(parents=True, exist_ok=True)
    return path


def safe_name(text: str) -> str:
    """``text`` as a file-name part: letters, digits, ``-``, ``_`` and ``.`` kept, anything
    else (``:`` of a network serial, ``/``, spaces) as ``_``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
