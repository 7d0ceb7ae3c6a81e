"""Device services behind OPEN: ``shell:`` (v1 and v2, raw and pty), ``exec:``, ``sync:``.

Commands run through ``/bin/sh -c`` in their own process group with default signal handling,
as adbd starts them. When the host closes the stream before the command ends, the whole
process group is killed, as adbd does; a command that detached itself (``setsid``) survives.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import signal
import stat
import struct
import termios
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.logs import get_logger
from harness.sim import protocol as p
from harness.sim.adbd import ServiceHandler, Stream, StreamClosed
from harness.sim.protocol import ShellId

log = get_logger(__name__)

READ_CHUNK_BYTES = 256 * 1024
SIGNALS_RESET = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGPIPE,
                 signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM, signal.SIGCHLD)


@dataclass
class ShellConfig:
    """How this phone runs commands: environment, and (in rewrite mode) path translation."""

    env: dict[str, str]
    shell: str = "/bin/sh"
    cwd: str = "/"
    # Translate a device path to the host path that holds it (identity inside a namespace).
    map_path: Callable[[str], str] = field(default=lambda path: path)
    # Translate a command line (identity inside a namespace).
    map_command: Callable[[str], str] = field(default=lambda cmd: cmd)
    # (uid, gid) and supplementary groups commands switch to (None: the phone's own).
    run_as: tuple[int, int] | None = None
    groups: tuple[int, ...] = ()
    # Who owns what sync creates (None: whoever the phone process is, as adbd's own uid).
    owner: tuple[int, int] | None = None


def _child_setup(controlling_tty: bool) -> Callable[[], None]:
    def setup() -> None:
        # Default dispositions and an empty mask: a daemon started under nohup or from a
        # Python parent would otherwise pass ignored SIGHUP/SIGPIPE on to phone commands.
        for sig in SIGNALS_RESET:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        if controlling_tty:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    return setup


def _exit_status(returncode: int) -> int:
    """A POSIX shell's view of a wait status: 128+N for death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


class Services:
    """The services table of one phone."""

    def __init__(self, config: ShellConfig) -> None:
        self.config = config

    def table(self) -> dict[str, ServiceHandler]:
        return {
            "shell": self.shell,
            "exec": self.exec,
            "sync": self.sync,
            "root": self._refuse_root,
            "unroot": self._refuse_root,
        }

    # ---- shell / exec ------------------------------------------------------------------
    def _argv(self, command: str) -> list[str]:
        if command:
            return [self.config.shell, "-c", self.config.map_command(command)]
        return [self.config.shell, "-i"]

    def _env(self, args: tuple[str, ...]) -> dict[str, str]:
        env = dict(self.config.env)
        for arg in args:
            key, sep, value = arg.partition("=")
            if sep and key == "TERM":
                env["TERM"] = value
        return env

    async def shell(self, stream: Stream) -> None:
        args = stream.service.args
        command = stream.service.command
        v2 = "v2" in args
        use_pty = "pty" in args or ("raw" not in args and not command)
        if use_pty:
            await self._run_pty(stream, command, v2)
        else:
            await self._run_raw(stream, command, v2, merge_stderr=not v2)

    async def exec(self, stream: Stream) -> None:
        # ``exec:`` is raw: stdout only, no shell protocol, stderr goes nowhere the host sees.
        await self._run_raw(stream, stream.service.command, v2=False, merge_stderr=False,
                            keep_stderr=False)

    async def _spawn(self, argv: list[str], env: dict[str, str], stdin: int, stdout: int,
                     stderr: int, controlling_tty: bool) -> asyncio.subprocess.Process:
        # Without a preexec_fn CPython spawns with vfork, several times faster than fork of
        # this Python process; the phone process already runs with default dispositions
        # (phone.main) and restore_signals resets SIGPIPE/SIGXFSZ. A pty needs TIOCSCTTY.
        # Switching to the shell user (root mode) costs the vfork: CPython then forks.
        uid: int | None = None
        gid: int | None = None
        groups: list[int] | None = None
        if self.config.run_as is not None:
            uid, gid = self.config.run_as
            groups = [gid, *self.config.groups]
        return await asyncio.create_subprocess_exec(
            *argv, stdin=stdin, stdout=stdout, stderr=stderr, env=env,
            cwd=self.config.map_path(self.config.cwd), start_new_session=True,
            preexec_fn=_child_setup(True) if controlling_tty else None,
            user=uid, group=gid, extra_groups=groups,
        )

    async def _run_raw(self, stream: Stream, command: str, v2: bool, merge_stderr: bool,
                       keep_stderr: bool = True) -> None:
        stderr_target = (asyncio.subprocess.STDOUT if merge_stderr
                         else asyncio.subprocess.PIPE if keep_stderr
                         else asyncio.subprocess.DEVNULL)
        proc = await self._spawn(self._argv(command), self._env(stream.service.args),
                                 asyncio.subprocess.PIPE, asyncio.subprocess.PIPE,
                                 stderr_target, controlling_tty=False)
        stream.on_close.append(lambda: _kill_group(proc))
        assert proc.stdout is not None and proc.stdin is not None
        pumps = [self._pump(proc.stdout, stream, ShellId.STDOUT if v2 else None)]
        if proc.stderr is not None:
            pumps.append(self._pump(proc.stderr, stream, ShellId.STDERR if v2 else None))
        stdin_task = asyncio.create_task(self._stdin_raw(stream, proc, v2))
        try:
            await asyncio.gather(*pumps)
            code = _exit_status(await proc.wait())
            if v2:
                await stream.write(p.shell_packet(ShellId.EXIT, bytes([code & 0xFF])))
        finally:
            stdin_task.cancel()
            _kill_group(proc)

    async def _pump(self, reader: asyncio.StreamReader, stream: Stream,
                    kind: ShellId | None) -> None:
        while True:
            data = await reader.read(READ_CHUNK_BYTES)
            if not data:
                return
            await stream.write(p.shell_packet(kind, data) if kind is not None else data)

    async def _stdin_raw(self, stream: Stream, proc: asyncio.subprocess.Process,
                         v2: bool) -> None:
        assert proc.stdin is not None
        packets = p.ShellPacketReader()
        try:
            while True:
                data = await stream.read_some()
                if not data:
                    break
                if not v2:
                    proc.stdin.write(data)
                    await proc.stdin.drain()
                    continue
                for kind, body in packets.feed(data):
                    if kind == ShellId.STDIN:
                        proc.stdin.write(body)
                        await proc.stdin.drain()
                    elif kind == ShellId.CLOSE_STDIN:
                        proc.stdin.close()
                        return
                    # WINDOW_SIZE_CHANGE has no meaning without a pty: accepted, ignored.
        except (ConnectionError, BrokenPipeError):
            pass

    async def _run_pty(self, stream: Stream, command: str, v2: bool) -> None:
        master, slave = pty.openpty()
        try:
            proc = await self._spawn(self._argv(command), self._env(stream.service.args),
                                     slave, slave, slave, controlling_tty=True)
        finally:
            os.close(slave)
        stream.on_close.append(lambda: _kill_group(proc))
        loop = asyncio.get_running_loop()
        os.set_blocking(master, False)
        out_queue: asyncio.Queue[bytes] = asyncio.Queue()

        def readable() -> None:
            try:
                data = os.read(master, READ_CHUNK_BYTES)
            except OSError:  # EIO once the last slave fd is closed
                data = b""
            out_queue.put_nowait(data)
            if not data:
                loop.remove_reader(master)

        loop.add_reader(master, readable)
        stdin_task = asyncio.create_task(self._stdin_pty(stream, master, v2))
        try:
            while True:
                data = await out_queue.get()
                if not data:
                    break
                await stream.write(p.shell_packet(ShellId.STDOUT, data) if v2 else data)
            code = _exit_status(await proc.wait())
            if v2:
                await stream.write(p.shell_packet(ShellId.EXIT, bytes([code & 0xFF])))
        finally:
            stdin_task.cancel()
            loop.remove_reader(master)
            _kill_group(proc)
            os.close(master)

    async def _stdin_pty(self, stream: Stream, master: int, v2: bool) -> None:
        packets = p.ShellPacketReader()
        while True:
            data = await stream.read_some()
            if not data:
                return
            items = packets.feed(data) if v2 else [(int(ShellId.STDIN), data)]
            for kind, body in items:
                if kind == ShellId.STDIN:
                    with contextlib.suppress(OSError):
                        os.write(master, body)
                elif kind == ShellId.CLOSE_STDIN:
                    with contextlib.suppress(OSError):
                        os.write(master, b"\x04")
                elif kind == ShellId.WINDOW_SIZE_CHANGE:
                    _set_window_size(master, body)

    async def _refuse_root(self, stream: Stream) -> None:
        await stream.write(b"adbd cannot run as root in production builds\n")

    # ---- sync --------------------------------------------------------------------------
    async def sync(self, stream: Stream) -> None:
        session = SyncSession(stream, self.config.map_path, self.config.owner)
        await session.run()


def _set_window_size(fd: int, body: bytes) -> None:
    # "ROWSxCOLS,XPIXELSxYPIXELS"
    try:
        text = body.rstrip(b"\0").decode()
        chars, _, pixels = text.partition(",")
        rows, cols = (int(v) for v in chars.split("x"))
        xpix, ypix = (int(v) for v in pixels.split("x")) if pixels else (0, 0)
    except ValueError:
        return
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, xpix, ypix))


def _strtoul(text: str) -> int | None:
    """C's strtoul(text, NULL, 0): leading digits in base 16 (0x), 8 (0) or 10; 0 if none;
    None where C sets errno (out of range)."""
    body = text.strip()
    base, digits = 10, "0123456789"
    if body[:2].lower() == "0x":
        base, digits, body = 16, "0123456789abcdefABCDEF", body[2:]
    elif body.startswith("0"):
        base, digits = 8, "01234567"
    n = 0
    while n < len(body) and body[n] in digits:
        n += 1
    value = int(body[:n], base) if n else 0
    return value if value <= 0xFFFFFFFFFFFFFFFF else None


def adbd_file_mode(mode: int) -> int:
    """The mode adbd gives a pushed file: AOSP packages/modules/adb,
    daemon/file_sync_service.cpp, send_impl: "Copy user permission bits to "group" and
    "other" permissions": ``mode &= 0777; mode |= (mode >> 3) & 0070; mode |= (mode >> 3)
    & 0007`` — 0644 arrives as 0666, 0755 as 0777, 0600 as 0666."""
    mode &= 0o777
    mode |= (mode >> 3) & 0o070
    mode |= (mode >> 3) & 0o007
    return mode


class SyncFailure(Exception):
    """An error reported to the host as a sync FAIL, after which the session ends."""


class SyncSession:
    """The sync protocol over one stream. Requests are parsed from the byte stream, so that
    the host may pipeline many requests and split them across WRTE messages."""

    def __init__(self, stream: Stream, map_path: Callable[[str], str],
                 owner: tuple[int, int] | None = None) -> None:
        self.stream = stream
        self.map_path = map_path
        self.owner = owner
        self.out = bytearray()

    async def flush(self) -> None:
        if self.out:
            data, self.out = bytes(self.out), bytearray()
            await self.stream.write(data)

    async def run(self) -> None:
        while True:
            # Answer everything queued before waiting for more requests: the host may be
            # waiting for our replies before it sends anything else.
            if not self.stream._buf:
                await self.flush()
            tag, length = p.SYNC_REQUEST.unpack(await self.stream.read_exactly(8))
            if tag == b"QUIT":
                await self.flush()
                return
            if length > p.SYNC_PATH_MAX_BYTES:
                self.out += p.sync_fail(f"path too long: {length}")
                await self.flush()
                return
            path = (await self.stream.read_exactly(length)).decode("utf-8", "surrogateescape")
            try:
                if tag == b"STAT":
                    self._stat(path)
                elif tag == b"LIST":
                    await self._list(path)
                elif tag == b"SEND":
                    await self._send(path)
                elif tag == b"RECV":
                    await self._recv(path)
                else:
                    raise SyncFailure(f"unknown sync command {tag!r}")
            except SyncFailure as exc:
                self.out += p.sync_fail(str(exc))
                await self.flush()
                return

    def _stat(self, path: str) -> None:
        try:
            st = os.lstat(self.map_path(path))
            self.out += p.STAT_V1.pack(b"STAT", st.st_mode, st.st_size & 0xFFFFFFFF,
                                       int(st.st_mtime))
        except OSError:
            self.out += p.STAT_V1.pack(b"STAT", 0, 0, 0)

    async def _list(self, path: str) -> None:
        host = self.map_path(path)
        try:
            names = [".", "..", *os.listdir(host)]
        except OSError:
            names = []
        for name in names:
            try:
                st = os.lstat(os.path.join(host, name))
            except OSError:
                continue
            self.out += p.dent(st.st_mode, st.st_size, int(st.st_mtime),
                               name.encode("utf-8", "surrogateescape"))
            if len(self.out) >= self.stream.conn.max_payload:
                await self.flush()
        self.out += p.LIST_DONE

    async def _send(self, spec: str) -> None:
        # AOSP packages/modules/adb, daemon/file_sync_service.cpp: do_send_v1 requires
        # "path,mode" ("missing , in ID_SEND_V1"), strtoul(mode, 0) ("bad mode").
        path, sep, mode_text = spec.rpartition(",")
        if not sep:
            raise SyncFailure("missing , in ID_SEND_V1")
        mode = _strtoul(mode_text)
        if mode is None:
            raise SyncFailure("bad mode")
        host = self.map_path(path)
        # send_impl: "Don't delete files before copying if they are not regular or symlinks".
        with contextlib.suppress(OSError):
            st = os.lstat(host)
            if stat.S_ISREG(st.st_mode) or (stat.S_ISLNK(st.st_mode)
                                            and not stat.S_ISLNK(mode)):
                Path(host).unlink()
        if stat.S_ISLNK(mode):
            await self._send_symlink(host)
            return
        await self._send_file(host, adbd_file_mode(mode))

    async def _send_file(self, host: str, mode: int) -> None:
        """handle_send_file: create (mkdirs on ENOENT), chown to adbd's user, fchmod the
        mode exactly (no umask), write the DATA, then lutimes to the DONE's mtime."""
        try:
            fd = self._create(host, mode)
        except OSError as exc:
            await self._drain_send()
            raise SyncFailure(f"couldn't create file: {exc.strerror}") from exc
        try:
            failure: str | None = None
            while True:
                tag, length = p.SYNC_REQUEST.unpack(await self.stream.read_exactly(8))
                if tag == b"DATA":
                    if length > p.SYNC_DATA_MAX_BYTES:
                        raise SyncFailure(f"data chunk of {length} bytes too large")
                    error = await self.stream.read_into_fd(fd, length)
                    if error is not None and failure is None:
                        failure = f"write failed: {error.strerror}"
                elif tag == b"DONE":
                    mtime = length
                    break
                else:
                    raise SyncFailure("invalid data message")
        except BaseException:
            # handle_send_file's "fail:" path ends with adb_unlink(path): a file whose SEND
            # did not reach its DONE (the connection broke, a bad message) is not left behind
            # half-written (AOSP packages/modules/adb, daemon/file_sync_service.cpp).
            with contextlib.suppress(OSError):
                Path(host).unlink()
            raise
        finally:
            os.close(fd)
        if failure is not None:
            with contextlib.suppress(OSError):
                Path(host).unlink()
            raise SyncFailure(failure)
        os.utime(host, (mtime, mtime), follow_symlinks=False)
        self.out += p.sync_status(b"OKAY")

    def _create(self, host: str, mode: int) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            fd = os.open(host, flags, mode)
        except FileNotFoundError:
            self._secure_mkdirs(Path(host).parent)
            fd = os.open(host, flags, mode)
        except FileExistsError:
            fd = os.open(host, os.O_WRONLY | os.O_CLOEXEC)
        try:
            if self.owner is not None:
                os.fchown(fd, *self.owner)
            os.fchmod(fd, mode)  # "fchown clears the setuid bit - restore it if present"
        except OSError:
            os.close(fd)
            raise
        return fd

    def _secure_mkdirs(self, directory: Path) -> None:
        """secure_mkdirs: every missing component made with mode 0775, owned by adbd."""
        missing = []
        here = directory
        while not here.exists() and here != here.parent:
            missing.append(here)
            here = here.parent
        for folder in reversed(missing):
            with contextlib.suppress(FileExistsError):
                folder.mkdir(0o775)
                if self.owner is not None:
                    os.chown(folder, *self.owner)

    async def _drain_send(self) -> None:
        """Skip the DATA of a SEND we cannot honour, up to its DONE."""
        while True:
            tag, length = p.SYNC_REQUEST.unpack(await self.stream.read_exactly(8))
            if tag == b"DATA":
                await self.stream.read_exactly(length)
            else:
                return

    async def _send_symlink(self, host: str) -> None:
        target = bytearray()
        while True:
            tag, length = p.SYNC_REQUEST.unpack(await self.stream.read_exactly(8))
            if tag == b"DATA":
                target += await self.stream.read_exactly(length)
            elif tag == b"DONE":
                break
            else:
                raise SyncFailure(f"unexpected {tag!r} in SEND")
        try:
            self._secure_mkdirs(Path(host).parent)
            with contextlib.suppress(FileNotFoundError):
                Path(host).unlink()
            os.symlink(target.rstrip(b"\0").decode("utf-8", "surrogateescape"), host)
            if self.owner is not None:
                os.lchown(host, *self.owner)
        except OSError as exc:
            raise SyncFailure(f"symlink failed: {exc.strerror}") from exc
        self.out += p.sync_status(b"OKAY")

    async def _recv(self, path: str) -> None:
        host = self.map_path(path)
        try:
            fd = os.open(host, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise SyncFailure(f"open failed: {exc.strerror}") from exc
        limit = self.stream.conn.max_payload
        chunk_max = p.SYNC_DATA_MAX_BYTES
        try:
            while True:
                data = os.read(fd, chunk_max)
                if not data:
                    break
                self.out += p.sync_data(data)
                if len(self.out) + chunk_max + 8 > limit:
                    await self.flush()
        except OSError as exc:
            raise SyncFailure(f"read failed: {exc.strerror}") from exc
        finally:
            os.close(fd)
        self.out += p.sync_status(b"DONE")


__all__ = ["ServiceHandler", "Services", "ShellConfig", "StreamClosed"]
