"""The per-phone sandbox in which device paths are real paths.

A phone's process enters a private mount namespace (plus a user namespace when not root),
builds a root directory in which the host's top-level directories are bind-mounted (so host
tools and Python work unchanged) and the phone's own ``/data``, ``/system``, ``/vendor``,
``/sdcard``, ``/sys`` and ``/.sim`` (its control directory) are its own, bind-mounts its
generated meminfo over ``/proc/meminfo``, hides the farm's directory, and chroots there.
Every command the phone runs inherits that view, so two phones never see each other's files.

Who the phone's commands run as (:func:`identity`): a real phone's ``adb shell`` is uid 2000
(``shell``) and adbd, itself running as shell, leaves pushed files owned by shell. In
``root`` mode the phone process stays root (it mounts, kills and writes the phone's /sys) and
starts each command with uid/gid 2000 and Android's shell groups; it chowns what it creates
for the shell user (pushed files, /data/local/tmp, the control directory the simulated
binaries write). In ``userns`` mode the host user is mapped to uid 2000 inside the namespace,
so the phone process and its commands are uid 2000 (the process keeps the namespace's
capabilities for its mounts; its commands lose them at exec). Rooted profiles opt out: their
commands run as (namespace) root, which the simulated ``su`` relies on. ``rewrite`` mode
cannot change users: commands run as the host user.

Where namespaces are unavailable (e.g. Ubuntu's AppArmor restriction on unprivileged user
namespaces) the phone runs in ``rewrite`` mode: no namespace; device paths in sync requests
and in command lines are rewritten to the phone's directory, and the simulated binaries
translate paths through ``HARNESS_SIM_ROOT``. It is cruder but runs the built-in recipes.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from harness.sim.errors import SimError

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

# Directories each phone has of its own; every other top-level host directory is shared.
PHONE_OWN_DIRS = ("data", "system", "vendor", "sdcard", "storage", "sys", "product", "odm",
                  "apex", ".sim")
# Device path prefixes translated in rewrite mode.
DEVICE_PREFIXES = ("/data", "/system", "/vendor", "/sdcard", "/storage", "/sys", "/product")
SIM_ENV_FORCE_MODE = "HARNESS_SIM_MODE"
# The host's tool directories a phone's shell may use (after its own /system/bin and friends).
HOST_BIN_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
# Host tools a phone must not see: the host's su would make every phone look rooted.
HIDDEN_HOST_TOOLS = frozenset({"su"})


# AID_SHELL and the groups adbd's shell has (system/core/libcutils/include/private/
# android_filesystem_config.h; adbd's drop_privileges in daemon/main.cpp): input, log, adb,
# sdcard_rw, sdcard_r, ext_data_rw, ext_obb_rw, net_bt_admin, net_bt, inet, net_bw_stats,
# readproc, uhid, readtracefs.
SHELL_UID = SHELL_GID = 2000
SHELL_GROUPS = (1004, 1007, 1011, 1015, 1028, 1078, 1079, 3001, 3002, 3003, 3006, 3009,
                3011, 3012)
# Trees of the phone the shell user owns (a real phone: /data/local/tmp is shell:shell 0771).
SHELL_OWNED = ("data/local/tmp", "sdcard", "storage/emulated")
READ_ONLY_DIRS = ("system", "vendor", "product", "odm")


class SandboxMode(StrEnum):
    ROOT = "root"  # we are root: a mount namespace is enough
    USERNS = "userns"  # unprivileged: user + mount namespace
    REWRITE = "rewrite"  # no namespaces: path rewriting


@dataclass(frozen=True)
class Identity:
    """Who a phone's commands run as and who owns the files its adbd creates."""

    run_as: tuple[int, int] | None  # (uid, gid) commands switch to; None: the phone's own
    groups: tuple[int, ...]  # supplementary groups with run_as
    owner: tuple[int, int] | None  # chown pushed files and dirs to this; None: as created
    inner_uid: int | None  # userns mode: the uid the host user is mapped to
    summary: str

    @property
    def as_shell(self) -> bool:
        return self.summary.startswith("uid 2000")


def identity(mode: SandboxMode, rooted: bool) -> Identity:
    """What ``mode`` can do about uid 2000 (see the module docstring)."""
    shell = (SHELL_UID, SHELL_GID)
    if mode is SandboxMode.ROOT:
        if rooted:
            return Identity(None, (), shell, None, "root (rooted profile: adb shell as root)")
        return Identity(shell, SHELL_GROUPS, shell, None, "uid 2000 (shell)")
    if mode is SandboxMode.USERNS:
        if rooted:
            return Identity(None, (), None, 0, "root in a user namespace (rooted profile)")
        return Identity(None, (), None, SHELL_UID, "uid 2000 (shell, host user mapped)")
    return Identity(None, (), None, None,
                    f"host uid {os.geteuid()} (rewrite mode cannot change users)")


@dataclass(frozen=True)
class PhoneLayout:
    """Host directories of one phone."""

    base: Path

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def ctl(self) -> Path:
        return self.base / "ctl"

    @property
    def log(self) -> Path:
        return self.base / "phone.log"

    @property
    def host_tools(self) -> Path:
        """Rewrite mode: links to the host's tools, minus :data:`HIDDEN_HOST_TOOLS`."""
        return self.base / "hostbin"


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise SimError(f"{what}: {os.strerror(errno)}")


def _mount(src: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    libc = _libc()
    result = libc.mount(src.encode(), target.encode(), fstype.encode() if fstype else None,
                        ctypes.c_ulong(flags), data.encode() if data else None)
    _check(result, f"mount {src} on {target}")


def detect_mode() -> SandboxMode:
    """The best mode this host allows (``HARNESS_SIM_MODE`` forces one)."""
    forced = os.environ.get(SIM_ENV_FORCE_MODE)
    if forced:
        try:
            return SandboxMode(forced)
        except ValueError as exc:
            choices = ", ".join(m.value for m in SandboxMode)
            raise SimError(f"{SIM_ENV_FORCE_MODE}={forced!r} is not one of {choices}") from exc
    if os.geteuid() == 0:
        return SandboxMode.ROOT
    probe = ["unshare", "--user", "--map-root-user", "--mount", "true"]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        if subprocess.run(probe, capture_output=True, timeout=10, check=False).returncode == 0:
            return SandboxMode.USERNS
    return SandboxMode.REWRITE


def enter(layout: PhoneLayout, mode: SandboxMode, hide: Path, data_size_mb: int | None,
          rooted: bool = False, who: Identity | None = None) -> None:
    """Turn the calling (single-threaded) process into the phone's sandboxed root.

    ``hide`` is the farm directory: other phones live there and must not be visible.
    """
    if mode is SandboxMode.REWRITE:
        link_host_tools(layout.host_tools)
        return
    libc = _libc()
    uid, gid = os.geteuid(), os.getegid()
    flags = CLONE_NEWNS | (CLONE_NEWUSER if mode is SandboxMode.USERNS else 0)
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1 and mode is SandboxMode.USERNS:
        raise SimError(f"cannot enter a user namespace from a process with {threads} threads")
    _check(libc.unshare(ctypes.c_int(flags)), "unshare")
    who = who or identity(mode, rooted)
    if mode is SandboxMode.USERNS:
        inner = who.inner_uid or 0
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{inner} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{inner} {gid} 1")
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    root = layout.root
    for entry in os.scandir("/"):
        if entry.name in PHONE_OWN_DIRS or entry.name in ("proc", "lost+found"):
            continue
        target = root / entry.name
        if entry.is_symlink():
            if not target.is_symlink():
                with contextlib.suppress(FileExistsError):
                    target.symlink_to(os.readlink(entry.path))
        elif entry.is_dir():
            target.mkdir(exist_ok=True)
            _mount(entry.path, str(target), None, MS_BIND | MS_REC)
    (root / "proc").mkdir(exist_ok=True)
    _mount("/proc", str(root / "proc"), None, MS_BIND | MS_REC)
    _mount(str(layout.ctl / "meminfo"), str(root / "proc" / "meminfo"), None, MS_BIND)
    # The phone's own memory pressure (harness.sim.sensors), where the kernel has PSI.
    psi = root / "proc" / "pressure" / "memory"
    if (layout.ctl / "pressure_memory").is_file() and psi.exists():
        _mount(str(layout.ctl / "pressure_memory"), str(psi), None, MS_BIND)
    (root / ".sim").mkdir(exist_ok=True)
    _mount(str(layout.ctl), str(root / ".sim"), None, MS_BIND)
    if data_size_mb:
        _mount("tmpfs", str(root / "data"), "tmpfs", MS_NOSUID | MS_NODEV,
               f"size={data_size_mb}m,mode=0771")
        (root / "data" / "local" / "tmp").mkdir(parents=True, exist_ok=True)
    else:
        # A mount point of its own, so that `df /data` reports /data as on a phone.
        _mount(str(root / "data"), str(root / "data"), None, MS_BIND)
    if not rooted:
        # The host's own su would make every phone look rooted to `command -v su`.
        for tool in (root / d.lstrip("/") / n for d in HOST_BIN_DIRS for n in HIDDEN_HOST_TOOLS):
            if tool.exists() and not tool.is_symlink():
                _mount("/dev/null", str(tool), None, MS_BIND)
    hidden = root / hide.relative_to("/")
    if hidden.is_dir():
        _mount("tmpfs", str(hidden), "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0700")
    if not rooted:
        for name in READ_ONLY_DIRS:  # mounted read-only on a phone
            if (root / name).is_dir():
                _mount(str(root / name), str(root / name), None, MS_BIND)
                _mount("none", str(root / name), None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    if who.owner is not None:
        hand_to_shell(root, layout.ctl, who.owner)
    if who.run_as is not None:
        expose_to_shell(root, shell_needs())
    os.chroot(root)
    os.chdir("/")


def mount_proc_status(pid: int, status_file: Path) -> bool:
    """Show a simulated binary's ``/proc/<pid>/status`` (VmRSS ...). The phone process does
    it: the binary runs as the shell user, which may not mount."""
    target = f"/proc/{pid}/status"
    # A binary running as root (rooted profiles) mounts it itself; mounting again would
    # land on the status file (the top of the stack) and make it busy.
    with contextlib.suppress(OSError):
        if f" {target} " in Path("/proc/self/mountinfo").read_text():
            return True
    try:
        _mount(str(status_file), target, None, MS_BIND)
    except SimError:
        return False
    return True


def shell_needs() -> list[Path]:
    """Host directories the shell user must reach: the Python that runs the simulated
    binaries (their ``#!`` line), its environment and harness's source."""
    import sys

    repo = Path(__file__).resolve().parents[2]
    found = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), repo,
             Path(sys.executable).resolve().parent}
    return sorted(found)


def _blocked(path: Path) -> Path | None:
    """The first directory on ``path`` that others may not search (mode without o+x)."""
    here = Path("/")
    for part in path.parts[1:]:
        here = here / part
        with contextlib.suppress(OSError):
            if not here.stat().st_mode & 0o001:
                return here
    return None


def expose_to_shell(root: Path, needs: list[Path]) -> None:
    """Make ``needs`` reachable by the shell user without opening anything else: a directory
    on the way that others cannot search (``/root`` 0700 holding pyenv, say) is covered, in
    the phone only, by a tmpfs with just the path down to each needed tree bound in."""
    covered: set[Path] = set()
    for need in needs:
        block = _blocked(need)
        if block is None:
            continue
        target = root / block.relative_to("/")
        if block not in covered:
            _mount("tmpfs", str(target), "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755")
            covered.add(block)
        inner = target / need.relative_to(block)
        inner.mkdir(parents=True, exist_ok=True)
        for parent in [inner, *inner.parents]:
            if parent == target:
                break
            parent.chmod(0o755)
        _mount(str(need), str(inner), None, MS_BIND | MS_REC)


def hand_to_shell(root: Path, ctl: Path, owner: tuple[int, int]) -> None:
    """Give the shell user its trees (what a phone's init does for /data/local/tmp) and the
    control directory the simulated binaries, running as the shell user, write."""
    uid, gid = owner
    (root / "data").chmod(0o771)  # root-owned: the shell can cross it, not list or write it
    for top in [root / rel for rel in SHELL_OWNED] + [ctl]:
        if not top.is_dir():
            continue
        for folder, dirs, files in os.walk(top):
            for name in (folder, *(os.path.join(folder, n) for n in dirs + files)):
                with contextlib.suppress(OSError):
                    os.lchown(name, uid, gid)
    (root / "data/local/tmp").chmod(0o771)


# ---- rewrite mode ------------------------------------------------------------------------

def host_path(layout: PhoneLayout, mode: SandboxMode) -> list[str]:
    """The PATH entries through which a phone's shell reaches the host's everyday tools.

    In a sandbox the host's directories are mounted with su masked; in rewrite mode there is
    nothing to mask with, so the shell gets a directory of links that leaves su out.
    """
    if mode is SandboxMode.REWRITE:
        return [str(layout.host_tools)]
    return list(HOST_BIN_DIRS)


def link_host_tools(target: Path) -> None:
    """(Re)build ``target`` as links to every host tool on :data:`HOST_BIN_DIRS` (first name
    wins, as on PATH) except :data:`HIDDEN_HOST_TOOLS`."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    seen = set(HIDDEN_HOST_TOOLS)
    for directory in HOST_BIN_DIRS:
        with contextlib.suppress(OSError):
            for entry in os.scandir(directory):
                if entry.name in seen or not os.access(entry.path, os.X_OK):
                    continue
                with contextlib.suppress(OSError):
                    if entry.is_file():
                        (target / entry.name).symlink_to(entry.path)
                        seen.add(entry.name)

_PREFIX_RE = re.compile(
    r"(?<![\w./-])(" + "|".join(re.escape(p) for p in DEVICE_PREFIXES) + r")(?=/|\b|$)"
)


def path_mapper(layout: PhoneLayout, mode: SandboxMode) -> Callable[[str], str]:
    if mode is not SandboxMode.REWRITE:
        return lambda path: path
    root = str(layout.root)

    def map_path(path: str) -> str:
        if path.startswith("/") and any(
            path == pre or path.startswith(pre + "/") for pre in DEVICE_PREFIXES
        ):
            return root + path
        if path == "/":
            return root
        return path

    return map_path


def command_mapper(layout: PhoneLayout, mode: SandboxMode) -> Callable[[str], str]:
    if mode is not SandboxMode.REWRITE:
        return lambda command: command
    root = str(layout.root)
    meminfo = str(layout.ctl / "meminfo")

    def map_command(command: str) -> str:
        command = command.replace("/proc/meminfo", meminfo)
        command = command.replace("/proc/pressure/memory", str(layout.ctl / "pressure_memory"))
        return _PREFIX_RE.sub(lambda m: root + m.group(1), command)

    return map_command
