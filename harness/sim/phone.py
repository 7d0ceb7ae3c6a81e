"""One virtual phone: a process that sandboxes itself and serves ADB on a loopback port.

Started by :mod:`harness.sim.farm` as ``python -m harness.sim.phone ...``. It prepares the
phone's filesystem and state, binds its port, enters the sandbox, then serves connections
and ticks the phone's physical state (cooling, meminfo, sysfs) until SIGTERM. SIGUSR1 drops
every host connection without stopping the phone (a simulated USB/Wi-Fi drop).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

from harness.logs import get_logger
from harness.sim import devtools, profiles, state, userland
from harness.sim.adbd import AdbDaemon, DeviceIdentity
from harness.sim.sandbox import (
    PhoneLayout,
    SandboxMode,
    command_mapper,
    enter,
    host_path,
    identity,
    mount_proc_status,
    path_mapper,
)
from harness.sim.services import Services, ShellConfig

log = get_logger("harness.sim.phone")

# How often meminfo, thermal zones and battery files are refreshed; a binary that ends asks
# for a refresh at once as well (see _serve).
TICK_INTERVAL_S = 0.25
KILL_GRACE_S = 2.0
READY_FILE = state.READY_FILE


def android_env(serial: str, device: str, layout: PhoneLayout, mode: SandboxMode,
                phone_userland: bool = False) -> dict[str, str]:
    """The environment adbd gives a shell: a phone's PATH when the phone has its own
    userland (:mod:`harness.sim.userland`), else the host's bin dirs after the phone's."""
    prefix = str(layout.root) if mode is SandboxMode.REWRITE else ""
    path = userland.shell_path(prefix) if phone_userland else ":".join(
        [f"{prefix}/system/bin", f"{prefix}/system/xbin", f"{prefix}/vendor/bin",
         *host_path(layout, mode)])
    env = {
        "PATH": path,
        "HOME": "/",
        "TMPDIR": f"{prefix}/data/local/tmp",
        "ANDROID_DATA": "/data",
        "ANDROID_ROOT": "/system",
        "ANDROID_STORAGE": "/storage",
        "EXTERNAL_STORAGE": "/sdcard",
        "ANDROID_SERIAL_NO": serial,
        "HOSTNAME": device,
        "USER": "shell",
        "LOGNAME": "shell",
        "SHELL": "/system/bin/sh" if phone_userland else "/bin/sh",
        "LANG": "C.UTF-8",
    }
    if mode is SandboxMode.REWRITE:
        env["HARNESS_SIM_ROOT"] = str(layout.root)
        env["HARNESS_SIM_DIR"] = str(layout.ctl)
    return env


def _same_namespace_pids() -> list[int]:
    """Every process in our mount namespace but ourselves (all started by this phone)."""
    own = os.readlink("/proc/self/ns/mnt")
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{entry}/ns/mnt") == own:
                pids.append(int(entry))
    return pids


def _kill_phone_processes(mode: SandboxMode) -> None:
    if mode is SandboxMode.REWRITE:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _same_namespace_pids()
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + KILL_GRACE_S
        while time.monotonic() < deadline and _same_namespace_pids():
            time.sleep(0.05)


def _show_proc_status(phone_state: state.PhoneState, mounted: set[int]) -> None:
    """Bind each new simulated binary's status file over its /proc/<pid>/status."""
    alive = set()
    for info in phone_state.processes():
        alive.add(info.pid)
        if info.pid not in mounted:
            mount_proc_status(info.pid, phone_state.status_path(info.pid))
            mounted.add(info.pid)
    mounted &= alive


async def _serve(sock: socket.socket, daemon: AdbDaemon, ctl: Path, fs_root: Path,
                 phone_state: state.PhoneState, mount_status: bool) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, daemon.drop_connections)
    server = await asyncio.start_server(daemon.handle, sock=sock)
    mounted: set[int] = set()

    def refresh() -> None:
        try:
            phone_state.tick(fs_root, time.time())
            if mount_status:
                _show_proc_status(phone_state, mounted)
        except Exception:
            log.exception("tick failed")

    async def refresh_on_request(reader: asyncio.StreamReader,
                                 writer: asyncio.StreamWriter) -> None:
        # A binary that ends asks for the phone's files to be rewritten before it exits
        # (state.request_refresh), so that a read of thermal_zone*/temp after it sees what
        # it did at once, as a real zone's live read does.
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await reader.readexactly(1)
            refresh()
            writer.write(b"k")
            await writer.drain()
        writer.close()

    name = state.refresh_socket_name(os.getpid(), sock.getsockname()[1])
    refresher = await asyncio.start_unix_server(refresh_on_request, path="\0" + name)
    ready = {"port": sock.getsockname()[1], "pid": os.getpid(), "refresh": name}
    tmp = ctl / f".{READY_FILE}.tmp"
    tmp.write_text(json.dumps(ready))
    tmp.replace(ctl / READY_FILE)  # atomically: the farm polls for it

    async def ticker() -> None:
        while True:
            refresh()
            await asyncio.sleep(TICK_INTERVAL_S)

    tick_task = loop.create_task(ticker())
    try:
        await stop.wait()
    finally:
        tick_task.cancel()
        refresher.close()
        server.close()
        daemon.drop_connections()


def _provision(layout: PhoneLayout) -> None:
    """First start only: leave what the seed's phones had lying around — an older MNN
    without the Attention op in /data/local/tmp (what a wrong LD_LIBRARY_PATH loads)."""
    marker = layout.ctl / "provisioned"
    if marker.exists():
        return
    from harness.sim.assets import MNN_OPS_OLD, mnn_library

    old = layout.root / "data" / "local" / "tmp" / "libMNN.so"
    old.parent.mkdir(parents=True, exist_ok=True)
    if not old.exists():
        old.write_bytes(mnn_library("libMNN.so", "2.4.0", MNN_OPS_OLD))
    marker.write_text("1\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness.sim.phone")
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--serial", required=True)
    parser.add_argument("--profile", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mode", choices=[m.value for m in SandboxMode], required=True)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--hide", type=Path, required=True)
    args = parser.parse_args(argv)

    layout = PhoneLayout(args.base)
    layout.base.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(filename=layout.log, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Default dispositions: ignored signals would be inherited by every phone command.
    for sig in (signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR2, signal.SIGALRM,
                signal.SIGTTOU, signal.SIGTTIN, signal.SIGTSTP):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    mode = SandboxMode(args.mode)
    profile = profiles.load_profile(args.profile)
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.ctl.mkdir(parents=True, exist_ok=True)
    (layout.ctl / READY_FILE).unlink(missing_ok=True)
    state.init_phone(layout.ctl, profile, args.serial, args.time_scale)
    tools = userland.detect()
    devtools.install_system(layout.root, profile, args.serial, tools)
    _provision(layout)
    who = identity(mode, profile.rooted)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(64)

    enter(layout, mode, args.hide, profile.data_size_mb, profile.rooted, who)
    in_sandbox = mode is not SandboxMode.REWRITE
    ctl = Path("/.sim") if in_sandbox else layout.ctl
    fs_root = Path("/") if in_sandbox else layout.root
    if not in_sandbox:
        os.environ["HARNESS_SIM_ROOT"] = str(layout.root)
        os.environ["HARNESS_SIM_DIR"] = str(layout.ctl)
    phone_state = state.PhoneState(ctl)
    prefix = "" if in_sandbox else str(layout.root)
    config = ShellConfig(
        env=android_env(args.serial, profile.device, layout, mode, tools.complete),
        shell=f"{prefix}/system/bin/sh" if tools.complete else "/bin/sh",
        cwd="/",
        map_path=path_mapper(layout, mode),
        map_command=command_mapper(layout, mode),
        run_as=who.run_as,
        groups=who.groups,
        owner=who.owner,
    )
    props = profile.props(args.serial)
    daemon = AdbDaemon(DeviceIdentity(props), Services(config).table())
    log.info("phone %s (%s) serving on port %d in %s mode; userland: %s; commands as %s",
             args.serial, profile.name, sock.getsockname()[1], mode.value, tools.describe(),
             who.summary)
    try:
        # The binaries of a rooted phone run as root and mount their /proc/<pid>/status
        # themselves; the shell user may not mount, so the phone does it for them.
        asyncio.run(_serve(sock, daemon, ctl, fs_root, phone_state,
                           in_sandbox and not profile.rooted))
    finally:
        _kill_phone_processes(mode)
        with contextlib.suppress(OSError):
            (ctl / READY_FILE).unlink()
    log.info("phone %s stopped", args.serial)
    return 0


if __name__ == "__main__":
    sys.exit(main())
