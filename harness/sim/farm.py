"""The virtual phone farm: an own adb server on a private port plus N virtual phones.

``Farm(directory)`` owns one farm, recorded in ``farm.json`` in that directory (PIDs, ports,
profiles). Every process it starts is recorded there and later stopped by PID, after checking
that the PID still runs the command we started; nothing is ever killed by name. The farm's
adb server is hermetic (see :mod:`harness.device.adb`) and listens on loopback only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.device.adb import AdbServer, free_port
from harness.device.errors import AdbError
from harness.device.procs import pid_alive, pid_cmdline, stop_pid
from harness.sim import profiles, userland
from harness.sim.errors import SimError
from harness.sim.sandbox import PhoneLayout, SandboxMode, detect_mode, identity

STATE_FILE = "farm.json"
LOCK_FILE = "farm.lock"
PHONE_START_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 20.0
DEFAULT_PROFILES = ("sm8650-16g", "sm8550-12g", "sm8475-8g")
# Simulated seconds -> wall seconds. 0.1 makes an SDXL 1024 run take about 15 s, fast enough
# to try things, slow enough to watch; tests use ~0.005.
DEFAULT_TIME_SCALE = 0.1
PHONE_MODULE = "harness.sim.phone"


@dataclass
class PhoneRecord:
    """One running virtual phone."""

    serial: str  # ro.serialno
    profile: str
    port: int
    pid: int
    base: str

    @property
    def adb_serial(self) -> str:
        """The serial the adb server knows the phone by (``adb connect`` address)."""
        return f"127.0.0.1:{self.port}"

    @property
    def layout(self) -> PhoneLayout:
        return PhoneLayout(Path(self.base))


@dataclass
class FarmState:
    adb_port: int
    adb_pid: int
    mode: str
    time_scale: float
    started: float
    phones: list[PhoneRecord] = field(default_factory=list)
    next_index: int = 1
    # The phones' userland (harness.sim.userland): "android (toybox, mksh, one-true-awk)",
    # or the host-tools fallback naming the missing packages.
    userland: str = ""
    # Who adb shell commands run as in this sandbox mode (harness.sim.sandbox.identity).
    shell_user: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> FarmState:
        data = json.loads(text)
        data["phones"] = [PhoneRecord(**ph) for ph in data.get("phones", [])]
        return cls(**data)


@dataclass(frozen=True)
class PhoneStatus:
    record: PhoneRecord
    process_alive: bool
    adb_state: str  # "device", "offline", "unauthorized", or "absent"


@dataclass(frozen=True)
class FarmStatus:
    directory: Path
    state: FarmState
    adb_alive: bool
    phones: list[PhoneStatus]

    @property
    def healthy(self) -> bool:
        return self.adb_alive and all(
            p.process_alive and p.adb_state == "device" for p in self.phones
        )


class Farm:
    """A virtual farm living in ``directory`` (default: ``$HARNESS_HOME/sim``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)

    # ---- state -------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.directory / STATE_FILE

    def load(self) -> FarmState | None:
        try:
            return FarmState.from_json(self.state_path.read_text())
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError) as exc:
            raise SimError(f"corrupt farm state {self.state_path}: {exc}",
                           hint="stop its processes by hand and delete the file") from exc

    def _save(self, state: FarmState) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(state.to_json())
        tmp.replace(self.state_path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.directory / LOCK_FILE).open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def adb_server(self, state: FarmState) -> AdbServer:
        return AdbServer(port=state.adb_port, home=self.directory / "adb", pid=state.adb_pid)

    # ---- lifecycle ---------------------------------------------------------------------
    def up(self, profile_names: Sequence[str] = (), phones: int | None = None,
           time_scale: float = DEFAULT_TIME_SCALE, adb_port: int | None = None) -> FarmState:
        """Start the adb server and the phones. Fails if this farm is already running.

        A farm whose adb server died is not rebuilt: its own server is restarted on its
        port and the same phones (serials, ports, files; phones added since included) are
        re-adopted, restarting any phone process that died too. The options are then
        ignored: the farm is the one the user had.
        """
        names = list(profile_names)
        if phones is not None:
            if phones < 1:
                raise SimError("--phones must be at least 1")
            pool = names or list(DEFAULT_PROFILES)
            names = [pool[i % len(pool)] for i in range(phones)]
        if not names:
            names = list(DEFAULT_PROFILES)
        for name in names:
            profiles.load_profile(name)  # fail before starting anything
        if time_scale <= 0:
            raise SimError("--time-scale must be positive")
        if adb_port == 5037:
            raise SimError("refusing port 5037: it belongs to the user's own adb server")
        with self._locked():
            existing = self.load()
            if existing is not None:
                if self._alive(existing):
                    raise SimError(f"a virtual farm is already running in {self.directory}",
                                   hint="`harness sim status` shows it; `harness sim down`")
                return self._readopt(existing)
            mode = detect_mode()
            server = AdbServer(port=adb_port or free_port(), home=self.directory / "adb")
            server.start()
            assert server.pid is not None
            state = FarmState(adb_port=server.port, adb_pid=server.pid, mode=mode.value,
                              time_scale=time_scale, started=time.time(),
                              userland=userland.detect().describe(),
                              shell_user=identity(mode, rooted=False).summary)
            self._save(state)
            try:
                for name in names:
                    self._start_phone(state, name)
                    self._save(state)
            except BaseException:
                self._stop_all(state)
                raise
            return state

    def down(self, wipe: bool = False) -> int:
        """Stop every process this farm started; return how many phones were stopped."""
        with self._locked():
            state = self.load()
            if state is None:
                return 0
            self._stop_all(state)
            if wipe:
                shutil.rmtree(self.directory / "phones", ignore_errors=True)
            return len(state.phones)

    def add_phone(self, profile_name: str) -> PhoneRecord:
        profiles.load_profile(profile_name)
        with self._locked():
            state = self._require()
            record = self._start_phone(state, profile_name)
            self._save(state)
            return record

    def remove_phone(self, serial: str) -> PhoneRecord:
        with self._locked():
            state = self._require()
            record = self.find(state, serial)
            server = self.adb_server(state)
            server.run("disconnect", record.adb_serial, check=False)
            stop_pid(record.pid, expect=PHONE_MODULE)
            state.phones.remove(record)
            self._save(state)
            return record

    def restart_adb(self) -> None:
        """Bring a dead farm adb server back on its port and reconnect every phone."""
        with self._locked():
            state = self._require_state()
            if self._alive(state):
                return
            self._readopt(state)

    def _readopt(self, state: FarmState) -> FarmState:
        """Restart the farm's own adb server on its port; reconnect the same phones,
        restarting (same serial, port and files) any phone whose process died."""
        server = AdbServer(port=state.adb_port, home=self.directory / "adb")
        server.start()
        assert server.pid is not None
        state.adb_pid = server.pid
        self._save(state)
        for record in state.phones:
            if not (pid_alive(record.pid) and PHONE_MODULE in _cmdline(record.pid)):
                revived = self._spawn_phone(state, record.profile, record.serial, record.port)
                record.pid, record.port = revived.pid, revived.port
                self._save(state)
            self.connect(state, record)
        return state

    def drop_connections(self, serial: str) -> None:
        """Cut the phone's TCP connections (a simulated cable pull); the phone keeps running."""
        state = self._require()
        record = self.find(state, serial)
        if PHONE_MODULE not in _cmdline(record.pid):
            raise SimError(f"phone {serial} is not running")
        os.kill(record.pid, signal.SIGUSR1)

    def status(self) -> FarmStatus | None:
        state = self.load()
        if state is None:
            return None
        server = self.adb_server(state)
        adb_alive = pid_alive(state.adb_pid)
        devices: dict[str, str] = {}
        if adb_alive:
            with contextlib.suppress(AdbError):
                devices = parse_devices(server.run("devices", timeout=10).stdout)
        phones = [
            PhoneStatus(ph, pid_alive(ph.pid) and PHONE_MODULE in _cmdline(ph.pid),
                        devices.get(ph.adb_serial, "absent"))
            for ph in state.phones
        ]
        return FarmStatus(self.directory, state, adb_alive, phones)

    # ---- helpers -----------------------------------------------------------------------
    def find(self, state: FarmState, serial: str) -> PhoneRecord:
        for record in state.phones:
            if serial in (record.serial, record.adb_serial):
                return record
        known = ", ".join(r.serial for r in state.phones) or "none"
        raise SimError(f"no virtual phone {serial!r} (phones: {known})")

    def _require(self) -> FarmState:
        state = self._require_state()
        if not pid_alive(state.adb_pid):
            raise SimError("the virtual farm's adb server is dead",
                           hint="`harness sim up` restarts it with the same phones")
        return state

    def _require_state(self) -> FarmState:
        state = self.load()
        if state is None:
            raise SimError("no virtual farm is running", hint="start one with `harness sim up`")
        return state

    def _alive(self, state: FarmState) -> bool:
        return pid_alive(state.adb_pid) and "adb" in _cmdline(state.adb_pid)

    def _stop_all(self, state: FarmState) -> None:
        for record in state.phones:
            stop_pid(record.pid, expect=PHONE_MODULE)
        stop_pid(state.adb_pid, expect="adb")
        self.state_path.unlink(missing_ok=True)

    def _start_phone(self, state: FarmState, profile_name: str) -> PhoneRecord:
        profile = profiles.load_profile(profile_name)
        serial = f"sim{state.next_index:02d}-{profile.soc_model.lower()}"
        state.next_index += 1
        record = self._spawn_phone(state, profile_name, serial)
        state.phones.append(record)
        self.connect(state, record)
        return record

    def _spawn_phone(self, state: FarmState, profile_name: str, serial: str,
                     port: int = 0) -> PhoneRecord:
        """Start one phone process (``port`` 0: any free port) and wait until it serves."""
        layout = PhoneLayout(self.directory / "phones" / serial)
        layout.base.mkdir(parents=True, exist_ok=True)
        ready = layout.ctl / "ready.json"
        ready.unlink(missing_ok=True)
        env = dict(os.environ)
        package_parent = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(
            [package_parent, *filter(None, [env.get("PYTHONPATH")])])
        env.pop("HARNESS_SIM_ROOT", None)
        env.pop("HARNESS_SIM_DIR", None)
        # One BLAS thread: numpy would otherwise start a thread pool at import, and a
        # multi-threaded process cannot unshare() into a user namespace (EINVAL). It also
        # keeps many phones' binaries from fighting over the host's cores.
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = "1"
        cmd = [sys.executable, "-m", PHONE_MODULE, "--base", str(layout.base),
               "--serial", serial, "--profile", profile_name, "--mode", state.mode,
               "--time-scale", repr(state.time_scale), "--hide", str(self.directory / "phones"),
               "--port", str(port)]
        with (layout.base / "phone.stderr").open("ab") as err:
            proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err,
                                    start_new_session=True, cwd=self.directory)
        deadline = time.monotonic() + PHONE_START_TIMEOUT_S
        # The phone writes ready.json in place: it may be seen empty or half-written.
        while (served := _ready_port(ready)) is None:
            if proc.poll() is not None:
                tail = _tail(layout.base / "phone.stderr") or _tail(layout.log)
                raise SimError(f"virtual phone {serial} exited with {proc.returncode}: {tail}")
            if time.monotonic() > deadline:
                stop_pid(proc.pid, expect=PHONE_MODULE)
                raise SimError(f"virtual phone {serial} did not start within "
                               f"{PHONE_START_TIMEOUT_S:g}s (see {layout.log})")
            time.sleep(0.02)
        return PhoneRecord(serial=serial, profile=profile_name, port=served, pid=proc.pid,
                           base=str(layout.base))

    def connect(self, state: FarmState, record: PhoneRecord) -> None:
        """``adb connect`` the phone and wait until the server reports it as a device."""
        server = self.adb_server(state)
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while True:
            out = server.run("connect", record.adb_serial, check=False).stdout
            if parse_devices(server.run("devices").stdout).get(record.adb_serial) == "device":
                return
            if time.monotonic() > deadline:
                raise SimError(f"adb could not connect to {record.serial}: {out.strip()}")
            time.sleep(0.1)


def parse_devices(text: str) -> dict[str, str]:
    """``adb devices`` output -> {serial: state}."""
    devices = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and not line.startswith(("List of", "*")):
            devices[parts[0]] = parts[1]
    return devices


def _ready_port(path: Path) -> int | None:
    try:
        return int(json.loads(path.read_text())["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _cmdline(pid: int) -> str:
    return pid_cmdline(pid)


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


__all__ = ["DEFAULT_PROFILES", "Farm", "FarmState", "FarmStatus", "PhoneRecord",
           "SandboxMode", "parse_devices"]


@contextlib.contextmanager
def private_farm(profile_names: Sequence[str] = ("sm8650-16g",), time_scale: float = 0.01,
                 prefix: str = "harness-farm-") -> Iterator[tuple[Farm, FarmState, Path]]:
    """A throwaway farm in a temporary ``HARNESS_HOME`` for the length of a block.

    Yields (farm, its state, the temporary directory); stops every process it started and
    deletes everything afterwards. For benchmarks and scripts that must not touch the
    user's own farm or adb server.
    """
    import tempfile

    old_home = os.environ.get("HARNESS_HOME")
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp_name:
        tmp = Path(tmp_name)
        os.environ["HARNESS_HOME"] = str(tmp / "home")
        farm = Farm(tmp / "home" / "sim")
        try:
            state = farm.up(profile_names, time_scale=time_scale)
            yield farm, state, tmp
        finally:
            farm.down(wipe=True)
            if old_home is None:
                os.environ.pop("HARNESS_HOME", None)
            else:
                os.environ["HARNESS_HOME"] = old_home
