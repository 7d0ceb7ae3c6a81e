"""An in-memory phone for unit tests of logic that talks to a :class:`Device`.

:class:`FakeDevice` answers the few device commands that background runs
(:mod:`harness.device.background`) and the sync's verify pass (:mod:`harness.assets.sync`)
send, the way a phone's shell would answer them: files live in a dict, processes are
scripted (:class:`Program`), and every command is recorded. It is for unit tests only;
end-to-end tests use the real adb server and the virtual phones.

A command it does not know fails the test (:class:`NotEmulated`) instead of guessing, so a
change to a command's shape shows up here rather than passing silently.

Time on the fake phone is counted in polls: each background-run poll advances every live
process by one tick (one output chunk, or its exit), so no test depends on the wall clock.
"""

from __future__ import annotations

import fnmatch
import hashlib
import posixpath
import re
import shlex
import socket
import stat
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.device import devshell
from harness.device.background import POLL_CHUNK_BYTES, STATUS_PREFIX
from harness.device.device import (
    AdbEndpoint,
    CommandResult,
    Device,
    OutputCallback,
)
from harness.device.errors import DeviceDisconnected, DeviceError

FIRST_PID = 4000
DIR_MODE = stat.S_IFDIR | 0o771  # /data/local/tmp's folders, as `ls -ld` shows them on a phone
FILE_MODE = 0o644
# AOSP adb file_sync_protocol.h: requests and replies are (id, u32) headers; STAT/DENT v1
# carry (mode, size, mtime) as u32 each; DATA chunks are at most 64 KiB.
SYNC_HEADER = struct.Struct("<4sI")
SYNC_STAT_V1 = struct.Struct("<4sIII")
SYNC_DENT_V1 = struct.Struct("<4sIIII")
SYNC_DATA_MAX_BYTES = 64 * 1024
# Port 9 (discard): a fake device must never reach an adb server; every method that would
# is overridden below, and the endpoint is only there because Device requires one.
NOWHERE = AdbEndpoint("127.0.0.1", 9, None, "fake")


class NotEmulated(AssertionError):
    """The fake phone was sent a command it does not emulate."""


@dataclass
class Program:
    """A scripted process: one output chunk per tick, then an exit status.

    ``exit_code`` None: it runs until it is killed.
    """

    chunks: list[tuple[str, bytes]] = field(default_factory=list)  # ("stdout"|"stderr", data)
    exit_code: int | None = 0


@dataclass
class FakeProcess:
    pid: int
    run_dir: str
    program: Program
    pgid: int
    alive: bool = True
    killed: bool = False
    ticks: int = 0


def _fail(message: str) -> bytes:
    data = message.encode()
    return SYNC_HEADER.pack(b"FAIL", len(data)) + data


def _word(token: str) -> str:
    """The word a shell makes of one quoted token."""
    words = shlex.split(token)
    assert len(words) == 1, token
    return words[0]


_TOKEN = r"('[^']*'|[^\s'|;&<>]+)"
LAUNCH_RE = re.compile(rf"setsid sh {_TOKEN}/run\.sh < /dev/null")
POLL_RE = re.compile(rf"^(?:p=\$\(cat .*?done; )?"  # the wait of a long poll, if any
                     rf"if \[ -f {_TOKEN}/exit \].*tail -c \+(\d+) \S+/stdout .*"
                     rf"tail -c \+(\d+) \S+/stderr", re.S)
KILL_RE = re.compile(r"_target=(\d+);")
CAT_PID_RE = re.compile(rf"^cat {_TOKEN}/pid 2>/dev/null$")
RM_RF_RE = re.compile(rf"^rm -rf {_TOKEN}$")
MKDIR_RE = re.compile(rf"^mkdir -p {_TOKEN}$")
MKDIR_HOLDER_RE = re.compile(rf"^mkdir -p {_TOKEN} && printf '%s' {_TOKEN} > {_TOKEN}/holder$")
FINISH_RE = re.compile(rf"^sh {_TOKEN}; rc=\$\?; rm -f {_TOKEN}; exit \$rc$")
SHA256_RE = re.compile(rf"^xargs -0 -n \d+ -P \d+ sha256sum < {_TOKEN} "
                       rf"2>/dev/null; rm -f {_TOKEN}; true$")  # the list is NUL-separated


class FakeDevice(Device):
    """A phone in memory: files, scripted processes, a log of every command."""

    def __init__(self, serial: str = "FAKE01") -> None:
        super().__init__(serial, NOWHERE, recover_timeout_s=0.0)
        self.files: dict[str, bytes] = {}
        self.procs: dict[int, FakeProcess] = {}
        self.programs: dict[str, Program] = {}  # a marker in the command line -> program
        self.commands: list[str] = []
        self.kills: list[int] = []
        self.recoveries = 0
        self.missing_tools: set[str] = set()  # commands this phone's toybox lacks
        self.modes: dict[str, int] = {}  # permission bits of files (default FILE_MODE)
        self.mtimes: dict[str, int] = {}  # seconds (default 0)
        self.free_kb = 8 * 1024 * 1024  # what `df -k /data/local/tmp` reports free
        self.sync_sessions = 0
        self.sends = 0  # files the phone confirmed (OKAY) over all sync sessions
        self.drop_sync_after: int | None = None  # cut the connection after this many OKAYs
        self._threads: list[threading.Thread] = []
        self._failures: list[DeviceError] = []
        self._next_pid = FIRST_PID

    # ---- what a test arranges ------------------------------------------------------------
    def fail_next(self, error: DeviceError, times: int = 1) -> None:
        """The next ``times`` commands fail with ``error`` (a cable pull, a server restart)."""
        self._failures += [error] * times

    def disconnect_next(self, times: int = 1) -> None:
        self.fail_next(DeviceDisconnected("connection lost", serial=self.serial), times)

    def die(self, pid: int) -> None:
        """The process dies without recording a status (killed from outside, OOM)."""
        self.procs[pid].alive = False

    # ---- the Device methods harness uses -------------------------------------------------
    def run(self, command: devshell.Command, env: Any = None, cwd: str | None = None,
            timeout: float | None = None, check: bool = False,
            on_output: OutputCallback | None = None) -> CommandResult:
        line = devshell.compose(command, env, cwd)
        self.commands.append(line)
        if self._failures:
            raise self._failures.pop(0)
        code, out, err = self._shell(line)
        result = CommandResult(self.serial, line, code, out, err, 0.0)
        return result.check() if check else result

    def recover(self, timeout_s: float | None = None) -> None:
        self.recoveries += 1

    def push_bytes(self, data: bytes, path: str, mode: int = 0o644) -> None:
        if self._failures:
            raise self._failures.pop(0)
        self.files[path] = bytes(data)

    def pull(self, path: str, dest: Path) -> int:
        if path not in self.files:
            raise DeviceError(f"remote object '{path}' does not exist", serial=self.serial)
        dest.write_bytes(self.files[path])
        return len(self.files[path])

    def state(self) -> str:
        return "device"

    def _adb(self) -> Any:
        raise NotEmulated("FakeDevice has no adbutils device")

    def open_service(self, service: str, timeout_s: float | None) -> socket.socket:
        if service != "sync:":
            raise NotEmulated(f"FakeDevice does not open adb services ({service})")
        host, phone = socket.socketpair()
        host.settimeout(timeout_s)
        self.sync_sessions += 1
        thread = threading.Thread(target=self._serve_sync, args=(phone,), daemon=True)
        thread.start()
        self._threads.append(thread)
        return host

    # ---- files ---------------------------------------------------------------------------
    def put(self, path: str, data: bytes, mode: int = FILE_MODE, mtime: int = 0) -> None:
        """A file on the phone (as if pushed earlier)."""
        self.files[path], self.modes[path], self.mtimes[path] = data, mode, mtime

    def _is_dir(self, path: str) -> bool:
        return path == "/" or any(p.startswith(path.rstrip("/") + "/") for p in self.files)

    def _remove(self, path: str) -> None:
        for p in [p for p in self.files if p == path or p.startswith(path + "/")]:
            del self.files[p]
            self.modes.pop(p, None)
            self.mtimes.pop(p, None)

    def _move(self, src: str, dest: str) -> bool:
        """mv: a file, or a folder (everything under it), to a new name."""
        moved = [p for p in self.files if p == src or p.startswith(src + "/")]
        if not moved or (self._is_dir(dest) and dest not in self.files):
            return False  # mv into an existing folder is not what sync ever asks for
        self._remove(dest)
        for p in moved:
            new = dest + p[len(src):]
            self.files[new] = self.files.pop(p)
            self.modes[new] = self.modes.pop(p, FILE_MODE)
            self.mtimes[new] = self.mtimes.pop(p, 0)
        return True

    # ---- the sync protocol (a phone's adbd: file_sync_service.cpp) -----------------------
    def _stat(self, path: str) -> tuple[int, int, int]:
        if path in self.files:
            return (stat.S_IFREG | self.modes.get(path, FILE_MODE),
                    len(self.files[path]) & 0xFFFFFFFF, self.mtimes.get(path, 0))
        return (DIR_MODE, 4096, 0) if self._is_dir(path) else (0, 0, 0)

    def _list(self, path: str) -> bytes:
        out = bytearray()
        prefix = path.rstrip("/") + "/"
        names = sorted({p[len(prefix):].split("/")[0] for p in self.files
                        if p.startswith(prefix)})
        for name in [".", "..", *names] if names else []:
            full = posixpath.normpath(prefix + name)
            mode, size, mtime = self._stat(full) if name not in (".", "..") else \
                (DIR_MODE, 4096, 0)
            data = name.encode()
            out += SYNC_DENT_V1.pack(b"DENT", mode, size, mtime, len(data)) + data
        return bytes(out + SYNC_DENT_V1.pack(b"DONE", 0, 0, 0, 0))

    def _serve_sync(self, sock: socket.socket) -> None:
        rfile = sock.makefile("rb")

        def read(n: int) -> bytes:
            data = rfile.read(n)
            if len(data) != n:
                raise EOFError
            return bytes(data)

        try:
            while True:
                tag, length = SYNC_HEADER.unpack(read(8))
                if tag == b"QUIT":
                    return
                path = read(length).decode("utf-8", "surrogateescape")
                if tag == b"STAT":
                    sock.sendall(SYNC_STAT_V1.pack(b"STAT", *self._stat(path)))
                elif tag == b"LIST":
                    sock.sendall(self._list(path))
                elif tag == b"RECV":
                    if path not in self.files:
                        sock.sendall(_fail("No such file or directory"))
                        return  # adbd ends the session after a FAIL
                    data = self.files[path]
                    for at in range(0, len(data), SYNC_DATA_MAX_BYTES):
                        chunk = data[at : at + SYNC_DATA_MAX_BYTES]
                        sock.sendall(SYNC_HEADER.pack(b"DATA", len(chunk)) + chunk)
                    sock.sendall(SYNC_HEADER.pack(b"DONE", 0))
                elif tag == b"SEND":
                    if not self._receive(path, read):
                        sock.sendall(_fail("couldn't create file: Read-only file system"))
                        return
                    self.sends += 1  # before the OKAY: the client may act on it at once
                    sock.sendall(SYNC_HEADER.pack(b"OKAY", 0))
                    if self.drop_sync_after is not None and self.sends >= self.drop_sync_after:
                        self.drop_sync_after = None  # once: a cable pull mid-push
                        sock.shutdown(socket.SHUT_RDWR)
                        return
                else:
                    sock.sendall(_fail(f"unknown sync command {tag!r}"))
                    return
        except (EOFError, OSError):
            return
        finally:
            rfile.close()
            sock.close()

    def _receive(self, spec: str, read: Any) -> bool:
        path, _, mode_text = spec.rpartition(",")
        data = bytearray()
        while True:
            tag, length = SYNC_HEADER.unpack(read(8))
            if tag == b"DATA":
                assert length <= SYNC_DATA_MAX_BYTES, "DATA chunk above the protocol's limit"
                data += read(length)
            elif tag == b"DONE":
                break
            else:
                raise EOFError
        if path.startswith(("/system/", "/vendor/")):
            return False
        self.put(path, bytes(data), int(mode_text) & 0o777, length)
        return True

    def join_sessions(self) -> None:
        for thread in self._threads:
            thread.join(timeout=10)

    # ---- the shell -------------------------------------------------------------------------
    def _shell(self, line: str) -> tuple[int, bytes, bytes]:
        if "setsid sh " in line:
            return self._launch(line)
        if m := POLL_RE.match(line):
            return self._poll(_word(m[1]), int(m[2]), int(m[3]))
        if "harness_kill_tree" in line and (m := KILL_RE.search(line)):
            return self._kill(int(m[1]))
        if m := CAT_PID_RE.match(line):
            return 0, self.files.get(f"{_word(m[1])}/pid", b""), b""
        if m := RM_RF_RE.match(line):
            self._remove(_word(m[1]))
            return 0, b"", b""
        if m := MKDIR_HOLDER_RE.match(line):  # a large wrapper's folder and holder file
            self.files[f"{_word(m[3])}/holder"] = _word(m[2]).encode()
            return 0, b"", b""
        if MKDIR_RE.match(line):
            return 0, b"", b""  # folders are implicit in a dict of files
        if m := SHA256_RE.match(line):
            return self._sha256sum(_word(m[1]), _word(m[2]))
        if ((line.startswith("find ") and " -exec rm -rf {} + 2>/dev/null;" in line)
                or "echo @@harness-sync:" in line):
            return self._sweep(line)
        if line == "df -k /data/local/tmp 2>/dev/null | tail -n 1":
            used = sum(len(v) for v in self.files.values()) // 1024
            return 0, (f"/dev/block/dm-48 {used + self.free_kb} {used} {self.free_kb} 1% "
                       "/data\n").encode(), b""
        if m := FINISH_RE.match(line):
            return self._finish(_word(m[1]))
        raise NotEmulated(f"FakeDevice does not emulate: {line[:200]}")

    def _launch(self, line: str) -> tuple[int, bytes, bytes]:
        m = LAUNCH_RE.search(line)
        if m is None:
            raise NotEmulated(f"unexpected launch: {line[:200]}")
        run_dir = _word(m[1])
        if "setsid" in self.missing_tools:  # the wrapper never starts: no pid file appears
            return 1, b"", f"cat: {run_dir}/pid: No such file or directory\n".encode()
        for name in ("holder", "run.sh"):  # files that travel inside the launch command
            end = line.find(f" > {m[1]}/{name} && ")
            start = line.rfind("printf '%s' ", 0, end)
            if start >= 0 and end > start:
                self.files[f"{run_dir}/{name}"] = _word(
                    line[start + len("printf '%s' "):end]).encode()
        script = self.files.get(f"{run_dir}/run.sh")
        if script is None:
            return 0, b"", b"sh: run.sh: No such file or directory\n"
        program = next((p for marker, p in self.programs.items()
                        if marker in script.decode()), None)
        if program is None:
            raise NotEmulated(f"no Program registered for the script:\n{script.decode()}")
        pid = self._next_pid
        self._next_pid += 7
        # setsid: the wrapper leads its own session and process group.
        self.procs[pid] = FakeProcess(pid, run_dir, program, pgid=pid)
        self.files[f"{run_dir}/pid"] = f"{pid}\n".encode()
        self.files[f"{run_dir}/stdout"] = b""
        self.files[f"{run_dir}/stderr"] = b""
        return 0, f"{pid}\n".encode(), b""

    def _tick(self) -> None:
        for proc in self.procs.values():
            if not proc.alive:
                continue
            chunks = proc.program.chunks
            if proc.ticks < len(chunks):
                stream, data = chunks[proc.ticks]
                self.files[f"{proc.run_dir}/{stream}"] += data
            elif proc.program.exit_code is not None:
                # The wrapper: echo $rc > exit.tmp && mv exit.tmp exit, once output is written.
                self.files[f"{proc.run_dir}/exit"] = f"{proc.program.exit_code}\n".encode()
                proc.alive = False
            proc.ticks += 1

    def _poll(self, run_dir: str, out_from: int, err_from: int) -> tuple[int, bytes, bytes]:
        self._tick()
        pid_text = self.files.get(f"{run_dir}/pid", b"").strip()
        proc = self.procs.get(int(pid_text)) if pid_text.isdigit() else None
        if f"{run_dir}/exit" in self.files:
            # "$(cat exit)": command substitution drops the trailing newline
            status = "exit " + self.files[f"{run_dir}/exit"].decode().rstrip("\n")
        elif pid_text and proc is not None and proc.alive:
            status = "running"
        elif pid_text:
            status = "gone"
        else:
            status = "starting"
        # tail -c +N: from byte N (1-based); head -c: at most one chunk
        out = self.files.get(f"{run_dir}/stdout", b"")[out_from - 1:][:POLL_CHUNK_BYTES]
        err = self.files.get(f"{run_dir}/stderr", b"")[err_from - 1:][:POLL_CHUNK_BYTES]
        return 0, f"{STATUS_PREFIX}{status}\n".encode() + out, err

    def _kill(self, pid: int) -> tuple[int, bytes, bytes]:
        self.kills.append(pid)
        for proc in self.procs.values():
            if proc.alive and (proc.pid == pid or proc.pgid == pid):
                proc.alive = False
                proc.killed = True
        return 0, b"", b""

    def _finish(self, script_path: str) -> tuple[int, bytes, bytes]:
        """Run sync's finishing script: lines of ``A && B && C || rc=1`` over rm/mkdir/mv."""
        script = self.files.pop(script_path).decode()
        rc = 0
        for line in script.splitlines():
            if line.startswith("#!") or line in ("rc=0", "exit $rc"):
                continue
            chain, _, fallback = line.partition(" || ")
            ok = all(self._simple(shlex.split(part)) for part in chain.split(" && "))
            if not ok and fallback == "rc=1":
                rc = 1
            elif fallback not in ("", "rc=1"):
                raise NotEmulated(f"finish script line: {line}")
        return rc, b"", b""

    def _simple(self, argv: list[str]) -> bool:
        match argv:
            case ["rm", "-rf" | "-f", path]:
                self._remove(path)
                return True
            case ["mkdir", "-p", _]:
                return True
            case ["mv", "-f", src, dest] | ["mv", src, dest]:
                return self._move(src, dest)
        raise NotEmulated(f"finish script command: {argv}")

    def _sweep(self, line: str) -> tuple[int, bytes, bytes]:
        """Sync's clean-up of temporaries (``find ROOTS -name PATTERN -prune -exec rm -rf``,
        or ``rm -rf PATH`` of each), optionally followed by its space probe (``df -k``, a
        mark, ``stat -f -c '%S %d'``)."""
        if line.startswith("find "):
            m = re.search(r"-name ('[^']*'|\S+) (?:! -name ('[^']*'|\S+) )?-prune", line)
            assert m is not None, line
            pattern, keep = _word(m[1]), _word(m[2]) if m[2] else None
            for path in [p for p in self.files
                         if fnmatch.fnmatch(posixpath.basename(p), pattern)
                         and not (keep and fnmatch.fnmatch(posixpath.basename(p), keep))]:
                self._remove(path)
        for folder in re.findall(r"rm -rf ('[^']*'|\S+) 2>/dev/null;", line):
            self._remove(_word(folder))
        out = ""
        if "df -k " in line:
            used = sum(len(v) for v in self.files.values()) // 1024
            out += f"/dev/block/dm-48 {used + self.free_kb} {used} {self.free_kb} 1% /data\n"
        if "echo @@harness-sync:" in line:
            out += "@@harness-sync:\n4096 1000000\n"
        return 0, out.encode(), b""

    def _sha256sum(self, listing: str, removed: str) -> tuple[int, bytes, bytes]:
        paths = self.files.get(listing, b"").decode().split("\0")
        lines = [f"{hashlib.sha256(self.files[p]).hexdigest()}  {p}\n"
                 for p in paths if p in self.files]  # missing files: sha256sum complains
        self.files.pop(removed, None)
        return 0, "".join(lines).encode(), b""
