"""A phone's userland: toybox's applets, ``sh`` -> mksh, ``awk`` -> the one-true-awk.

On Android, ``adb shell`` runs ``/system/bin/sh`` (mksh) with a PATH of Android's own
directories only, and the everyday tools are symlinks to ``/system/bin/toybox`` (the awk is
the one-true-awk, ``external/one-true-awk``). A virtual phone gets the same from Debian's
``toybox``, ``mksh`` and ``original-awk`` packages: :func:`install` fills the phone's
``/system/bin`` with links named after the applets Android's toybox has, so a GNU-only
option harness might use fails on the virtual phone as it would on a real one.

Debian's toybox build leaves out applets Android's build has (they live in toybox's
``toys/pending``, which Android enables one by one). The ones shell scripts commonly need
are provided here as small stand-ins that accept what toybox's versions accept (and refuse
GNU extensions): ``tr`` (``-cds``, ranges, ``[:class:]``, escapes), ``expr`` (POSIX
operators), ``dd`` (``if of bs ibs obs count skip seek conv status``). They are Python
scripts, started through the absolute path of this interpreter (no PATH lookup). The other
missing ones (:func:`not_provided`) are simply absent from the virtual phone.

Where the packages cannot be had the phone falls back to the host's tools and ``/bin/sh``
(what :func:`detect` reports, and ``harness sim status`` shows).
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

# What `toybox` lists on an Android 14 phone (AOSP external/toybox, .config-device), less
# `sh` (mksh is the shell) and the tools the virtual phone implements itself (getprop, id,
# whoami: harness.sim.devtools).
_APPLETS = (
    "[ acpi base64 basename blkdiscard blkid blockdev bunzip2 bzcat cal cat chattr chcon "
    "chgrp chmod chown chroot chrt cksum clear cmp comm cp cpio cut date dd devmem df diff "
    "dirname dmesg dos2unix du echo egrep env expand expr fallocate false fgrep file find "
    "flock fmt free freeramdisk fsfreeze fsync getconf getenforce getfattr getopt gpiodetect "
    "gpiofind gpioget gpioinfo gpioset grep groups gunzip gzip head hostname hwclock i2cdetect "
    "i2cdump i2cget i2cset iconv ifconfig inotifyd insmod install ionice iorenice iotop kill "
    "killall ln load_policy log logname losetup ls lsattr lsmod lsof lspci lsusb makedevs "
    "md5sum microcom mkdir mkfifo mknod mkswap mktemp modinfo modprobe more mount mountpoint "
    "mv nbd-client nc netcat netstat nice nl nohup nproc nsenter od partprobe paste patch "
    "pgrep pidof ping ping6 pivot_root pkill pmap printenv printf prlimit ps pwd pwdx readelf "
    "readlink realpath renice restorecon rev rfkill rm rmdir rmmod rtcwake runcon sed "
    "sendevent seq setenforce setfattr setsid sha1sum sha224sum sha256sum sha384sum sha512sum "
    "sleep sort split stat strings stty swapoff swapon sync sysctl tac tail tar taskset tee "
    "test time timeout top touch tr traceroute traceroute6 true truncate tty tunctl uclampset "
    "ulimit umount uname uniq unix2dos unlink unshare uptime usleep uudecode uuencode uuidgen "
    "vconfig vi vmstat watch wc which xargs xxd yes zcat"
)
ANDROID_TOYBOX_APPLETS = tuple(_APPLETS.split())

TOYBOX_PATHS = ("/usr/bin/toybox", "/bin/toybox")
MKSH_PATHS = ("/bin/mksh", "/usr/bin/mksh")
AWK_PATHS = ("/usr/bin/original-awk", "/bin/original-awk")
PACKAGES = ("toybox", "mksh", "original-awk")
FORCE_ENV = "HARNESS_SIM_USERLAND"  # "host": use the host's tools even where the packages are

# Android's PATH for adb shell (system/core/rootdir/init.environ.rc.in, Android 14).
ANDROID_PATH = ("/product/bin", "/apex/com.android.runtime/bin", "/apex/com.android.art/bin",
                "/system_ext/bin", "/system/bin", "/system/xbin", "/odm/bin", "/vendor/bin",
                "/vendor/xbin")


@dataclass(frozen=True)
class Userland:
    """Which of the phone userland's programs this host has (absolute paths)."""

    toybox: str | None
    mksh: str | None
    awk: str | None
    forced: bool = False  # host tools chosen through HARNESS_SIM_USERLAND=host

    @property
    def complete(self) -> bool:
        return bool(self.toybox and self.mksh and self.awk)

    @property
    def missing(self) -> list[str]:
        return [pkg for pkg, have in zip(PACKAGES, (self.toybox, self.mksh, self.awk),
                                         strict=True) if not have]

    def describe(self) -> str:
        if self.complete:
            return "android (toybox, mksh, one-true-awk)"
        if self.forced:
            return f"host tools ({FORCE_ENV}=host)"
        return f"host tools (missing: {', '.join(self.missing)}; apt-get install -y " \
               f"{' '.join(PACKAGES)})"


def _first(candidates: tuple[str, ...]) -> str | None:
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    return None


def detect() -> Userland:
    if os.environ.get(FORCE_ENV) == "host":
        return Userland(None, None, None, forced=True)
    return Userland(_first(TOYBOX_PATHS), _first(MKSH_PATHS), _first(AWK_PATHS))


def toybox_applets(toybox: str) -> set[str]:
    """The applets this toybox binary was built with (``toybox`` with no argument)."""
    import subprocess

    try:
        out = subprocess.run([toybox], capture_output=True, text=True, timeout=10,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    return set(out.split())


def _link(path: Path, target: str) -> None:
    if path.is_symlink() and os.readlink(path) == target:
        return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    path.symlink_to(target)


def install(bin_dir: Path, userland: Userland, keep: frozenset[str]) -> list[str]:
    """Fill ``bin_dir`` (the phone's /system/bin) with the userland; return the stand-ins
    installed. ``keep`` names tools the virtual phone writes itself (left alone)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    if not userland.complete:
        return []
    assert userland.toybox and userland.mksh and userland.awk
    have = toybox_applets(userland.toybox)
    _link(bin_dir / "toybox", userland.toybox)
    for name in ANDROID_TOYBOX_APPLETS:
        if name in keep:
            continue
        if name in have:
            _link(bin_dir / name, "toybox")  # relative, as on a phone: ls -> toybox
        elif name not in STANDINS:
            with contextlib.suppress(FileNotFoundError):
                (bin_dir / name).unlink()
    _link(bin_dir / "sh", userland.mksh)
    _link(bin_dir / "awk", userland.awk)
    provided = []
    for name, body in STANDINS.items():
        if name in have or name in keep:
            continue
        script = f"#!{sys.executable}\n{body}".encode()
        path = bin_dir / name
        if path.is_symlink() or not path.is_file() or path.read_bytes() != script:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            path.write_bytes(script)
        path.chmod(0o755)
        provided.append(name)
    return provided


def uninstall(bin_dir: Path) -> None:
    """Take the userland's links and stand-ins out of ``bin_dir`` (the fallback)."""
    for name in (*ANDROID_TOYBOX_APPLETS, *STANDINS, "toybox", "awk"):
        path = bin_dir / name
        if path.is_symlink() or (name in STANDINS and path.is_file()):
            path.unlink()


def not_provided(userland: Userland) -> list[str]:
    """Android toybox applets the virtual phone lacks (Debian left them out, no stand-in)."""
    if not userland.toybox:
        return []
    have = toybox_applets(userland.toybox)
    return [a for a in ANDROID_TOYBOX_APPLETS if a not in have and a not in STANDINS]


def shell_path(prefix: str = "") -> str:
    """A phone's PATH (``prefix``: the phone's root on the host, in rewrite mode)."""
    return ":".join(prefix + d for d in ANDROID_PATH)


# ---- stand-ins for applets Debian's toybox lacks ----------------------------------------
# Each is the body of a Python script (the shebang is added at install time). They follow
# toybox's usage lines (toys/pending/tr.c, toys/pending/expr.c, toys/pending/dd.c) and fail
# on options toybox does not have, as the real applet would.

TR_PY = r'''"""tr (harness.sim stand-in for toybox tr): tr [-cds] SET1 [SET2]"""
import re, sys

CLASSES = {
    "alnum": b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "alpha": b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "blank": b" \t", "cntrl": bytes(range(32)) + b"\x7f", "digit": b"0123456789",
    "graph": bytes(range(33, 127)), "lower": b"abcdefghijklmnopqrstuvwxyz",
    "print": bytes(range(32, 127)),
    "punct": bytes(c for c in range(33, 127) if not chr(c).isalnum()),
    "space": b" \t\n\r\f\v", "upper": b"ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "xdigit": b"0123456789ABCDEFabcdef",
}
ESC = {"n": 10, "t": 9, "r": 13, "a": 7, "b": 8, "f": 12, "v": 11, "\\": 92}


def fail(msg):
    sys.stderr.write("tr: %s\n" % msg)
    sys.exit(1)


def expand(text):
    raw = text.encode("utf-8", "surrogateescape")
    out, i = [], 0
    while i < len(raw):
        m = re.match(rb"\[:([a-z]+):\]", raw[i:])
        if m:
            if m.group(1).decode() not in CLASSES:
                fail("bad class '%s'" % m.group(1).decode())
            out += list(CLASSES[m.group(1).decode()])
            i += m.end()
            continue
        c, i = raw[i], i + 1
        if c == 92 and i < len(raw):
            m = re.match(rb"[0-7]{1,3}", raw[i:])
            if m:
                c, i = int(m.group(), 8) & 255, i + m.end()
            else:
                c, i = ESC.get(chr(raw[i]), raw[i]), i + 1
        if i + 1 < len(raw) and raw[i] == 45:
            hi = raw[i + 1]
            if hi < c:
                fail("bad range %s-%s" % (chr(c), chr(hi)))
            out += list(range(c, hi + 1))
            i += 2
        else:
            out.append(c)
    return out


def main(argv):
    flags = ""
    while argv and argv[0].startswith("-") and len(argv[0]) > 1 and argv[0] != "--":
        for f in argv[0][1:]:
            if f not in "cdsC":
                fail("Unknown option '%s'" % f)
            flags += "c" if f == "C" else f
        argv = argv[1:]
    if argv and argv[0] == "--":
        argv = argv[1:]
    need = 1 if "d" in flags and "s" not in flags else 1 if "s" in flags else 2
    if len(argv) < need or len(argv) > 2:
        fail("Needs 1-2 arguments")
    set1 = expand(argv[0])
    set2 = expand(argv[1]) if len(argv) > 1 else []
    if "c" in flags:
        set1 = [b for b in range(256) if b not in set(set1)]
    table = list(range(256))
    if "d" not in flags and set2:
        for n, b in enumerate(set1):
            table[b] = set2[min(n, len(set2) - 1)]
    delete = set(set1) if "d" in flags else set()
    squeeze = (set(set2) if len(argv) > 1 else set(set1)) if "s" in flags else set()
    data = sys.stdin.buffer.read()
    out, last = bytearray(), -1
    for b in data:
        if b in delete:
            continue
        b = table[b]
        if b in squeeze and b == last:
            continue
        out.append(b)
        last = b
    sys.stdout.buffer.write(bytes(out))


main(sys.argv[1:])
'''

EXPR_PY = r'''"""expr (harness.sim stand-in for toybox expr): POSIX operators only."""
import re, sys

LEVELS = [["|"], ["&"], ["=", ">", ">=", "<", "<=", "!="], ["+", "-"], ["*", "/", "%"],
          [":"]]


class Bad(Exception):
    pass


def num(v):
    if isinstance(v, int):
        return v
    if re.fullmatch(r"[-+]?[0-9]+", v):
        return int(v)
    raise Bad("not integer: '%s'" % v)


def is_null(v):
    return v == "" or (not isinstance(v, str) and v == 0) or (isinstance(v, str)
                                                              and re.fullmatch(r"-?0+", v))


def apply(op, a, b):
    if op == "|":
        return b if is_null(a) else a
    if op == "&":
        return 0 if is_null(a) or is_null(b) else a
    if op in ("=", ">", ">=", "<", "<=", "!="):
        try:
            x, y = num(a), num(b)
        except Bad:
            x, y = str(a), str(b)
        return int({"=": x == y, ">": x > y, ">=": x >= y, "<": x < y, "<=": x <= y,
                    "!=": x != y}[op])
    if op == ":":
        pattern = bre(str(b))
        m = re.match(pattern, str(a))
        if re.compile(pattern).groups:
            return m.group(1) if m else ""
        return m.end() if m else 0
    x, y = num(a), num(b)
    if op in "/%" and y == 0:
        raise Bad("division by zero")
    if op == "/":
        return abs(x) // abs(y) * (1 if (x < 0) == (y < 0) else -1)
    if op == "%":
        return x - y * (abs(x) // abs(y) * (1 if (x < 0) == (y < 0) else -1))
    return {"+": x + y, "-": x - y, "*": x * y}[op]


def bre(text):
    """A POSIX basic regular expression as a Python one (anchored at the start by expr)."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            n = text[i + 1]
            out.append(n if n in "(){}" else "\\" + n)
            i += 2
            continue
        out.append("\\" + c if c in "(){}+?|" else c)
        i += 1
    return "".join(out)


def parse(toks, level=0):
    if level == len(LEVELS):
        if not toks:
            raise Bad("syntax error")
        t = toks.pop(0)
        if t == "(":
            v = parse(toks)
            if not toks or toks.pop(0) != ")":
                raise Bad("syntax error")
            return v
        return t
    v = parse(toks, level + 1)
    while toks and toks[0] in LEVELS[level]:
        op = toks.pop(0)
        v = apply(op, v, parse(toks, level + 1))
    return v


def main(argv):
    try:
        toks = list(argv)
        v = parse(toks)
        if toks:
            raise Bad("syntax error")
    except (Bad, re.error) as exc:
        sys.stderr.write("expr: %s\n" % exc)
        sys.exit(2)
    print(v)
    sys.exit(1 if is_null(v) else 0)


main(sys.argv[1:])
'''

DD_PY = r'''"""dd (harness.sim stand-in for toybox dd)."""
import os, sys, time

SUFFIX = {"c": 1, "w": 2, "b": 512, "k": 1024, "m": 1 << 20, "g": 1 << 30}


def fail(msg):
    sys.stderr.write("dd: %s\n" % msg)
    sys.exit(1)


def size(text):
    total = 1
    for part in text.lower().split("x"):
        mul = 1
        if part and part[-1] in SUFFIX:
            mul, part = SUFFIX[part[-1]], part[:-1]
        if not part.isdigit():
            fail("bad number '%s'" % text)
        total *= int(part) * mul
    return total


def main(argv):
    opt = {"bs": None, "ibs": "512", "obs": "512", "count": None, "skip": "0", "seek": "0",
           "if": None, "of": None, "conv": "", "status": "", "iflag": "", "oflag": ""}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in opt:
            fail("unknown argument '%s'" % arg)
        opt[key] = value
    ibs = size(opt["bs"] or opt["ibs"])
    obs = size(opt["bs"] or opt["obs"])
    conv = set(filter(None, opt["conv"].split(",")))
    for c in conv:
        if c not in ("notrunc", "noerror", "sync", "fsync"):
            fail("bad conv=%s" % c)
    for f in filter(None, (opt["iflag"] + "," + opt["oflag"]).split(",")):
        if f not in ("count_bytes", "skip_bytes", "seek_bytes"):
            fail("bad flag %s" % f)
    src = os.open(opt["if"], os.O_RDONLY) if opt["if"] else 0
    if opt["of"]:
        flags = os.O_WRONLY | os.O_CREAT | (0 if "notrunc" in conv or opt["seek"] != "0"
                                            else os.O_TRUNC)
        dst = os.open(opt["of"], flags, 0o666)
    else:
        dst = 1
    skip = size(opt["skip"]) * (1 if "skip_bytes" in opt["iflag"] else ibs)
    seek = size(opt["seek"]) * (1 if "seek_bytes" in opt["oflag"] else obs)
    if skip:
        try:
            os.lseek(src, skip, os.SEEK_SET)
        except OSError:
            left = skip
            while left:
                got = os.read(src, min(left, 1 << 20))
                if not got:
                    break
                left -= len(got)
    if seek:
        os.lseek(dst, seek, os.SEEK_SET)
    limit = None if opt["count"] is None else size(opt["count"]) * (
        1 if "count_bytes" in opt["iflag"] else ibs)
    full_in = part_in = full_out = part_out = total = 0
    start = time.time()
    while limit is None or total < limit:
        want = ibs if limit is None else min(ibs, limit - total)
        block = os.read(src, want)
        if not block:
            break
        if len(block) == ibs:
            full_in += 1
        else:
            part_in += 1
            if "sync" in conv:
                block += b"\0" * (ibs - len(block))
        os.write(dst, block)
        total += len(block)
        if len(block) >= obs:
            full_out += len(block) // obs
            part_out += 1 if len(block) % obs else 0
        else:
            part_out += 1
    if "fsync" in conv:
        os.fsync(dst)
    if opt["status"] != "none":
        secs = max(time.time() - start, 1e-6)
        sys.stderr.write("%d+%d records in\n%d+%d records out\n" % (full_in, part_in,
                                                                      full_out, part_out))
        if opt["status"] != "noxfer":
            sys.stderr.write("%d bytes (%s) copied, %f s, %s/s\n" % (
                total, human(total), secs, human(total / secs)))


def human(n):
    for unit in ("B", "K", "M", "G", "T"):
        if n < 1024 or unit == "T":
            return ("%.1f%s" % (n, unit)) if unit != "B" else "%d B" % n
        n /= 1024.0
    return str(n)


main(sys.argv[1:])
'''

STANDINS = {"tr": TR_PY, "expr": EXPR_PY, "dd": DD_PY}
