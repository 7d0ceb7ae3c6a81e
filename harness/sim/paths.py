"""Where a device path lives on this host, and where the phone keeps its control files.

Everything that runs *on* a virtual phone (the device-side tools, the simulated pipeline
binaries, the phone's state) goes through these two functions, so the same code works in
the three places it runs:

- inside the phone's mount namespace, where ``/data/local/tmp`` is a real directory and the
  control directory is mounted at ``/.sim`` (no environment variable set);
- in the sandbox's fallback ``rewrite`` mode, where ``HARNESS_SIM_ROOT`` names the phone's root
  directory on the host and ``HARNESS_SIM_DIR`` its control directory;
- in unit tests, which set both variables to temporary directories.
"""

from __future__ import annotations

import os
from pathlib import Path

SIM_ROOT_ENV = "HARNESS_SIM_ROOT"  # the phone's root on the host (rewrite mode, tests)
SIM_DIR_ENV = "HARNESS_SIM_DIR"  # the phone's control directory (rewrite mode, tests)
DEFAULT_CTL_DIR = "/.sim"  # where the sandbox bind-mounts the control directory
SHELL_WRITABLE = ("/data/local/tmp", "/sdcard", "/storage/emulated")  # uid 2000 may write
READ_ONLY_ROOTS = ("/system", "/vendor", "/product", "/proc", "/sys")  # plus "/" itself


def sim_root() -> str | None:
    """The phone's root on the host when device paths are translated, else None."""
    root = (os.environ.get(SIM_ROOT_ENV) or "").rstrip("/")
    return root or None


def device_path(path: str) -> Path:
    """The host path holding device path ``path``.

    Idempotent: in rewrite mode the adbd already translates paths in command lines, so a path
    that is already under the phone's root is returned unchanged. Relative paths are left
    relative (they are relative to the current directory, which is already translated).
    """
    root = sim_root()
    if root is None or not path.startswith("/"):
        return Path(path)
    if path == root or path.startswith(root + "/"):
        return Path(path)
    return Path(root + path)


def to_device(path: Path) -> str:
    """The device path of host path ``path`` (the inverse of :func:`device_path`)."""
    text = str(path)
    root = sim_root()
    if root is None:
        return text
    for base in dict.fromkeys((root, os.path.realpath(root))):
        if text == base:
            return "/"
        if text.startswith(base + "/"):
            return text[len(base):]
    return text


def strip_root(text: str) -> str:
    """``text`` with the phone's root taken out of every path in it (rewrite mode).

    In rewrite mode the adbd has already turned device paths in command lines into host
    paths; the simulated binaries print device paths, as a phone would.
    """
    root = sim_root()
    if root is None:
        return text
    return "/" if text == root else text.replace(root + "/", "/")


def ctl_dir() -> Path:
    """The phone's control directory (state, meminfo, logcat, process records)."""
    return Path(os.environ.get(SIM_DIR_ENV) or DEFAULT_CTL_DIR)


def _under(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


def shell_write_denial(device_dir: str) -> str | None:
    """Why the adb shell user (uid 2000) could not write in ``device_dir``, or None."""
    if any(_under(device_dir, d) for d in SHELL_WRITABLE):
        return None
    if device_dir == "/" or any(_under(device_dir, d) for d in READ_ONLY_ROOTS):
        return "Read-only file system"
    return "Permission denied"
