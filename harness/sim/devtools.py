"""The virtual phone's filesystem: its skeleton, its device-side tools and its kernel files.

:func:`install_system` lays out a phone root (``/data/local/tmp``, ``/sdcard``, ``/system``,
``/vendor``, ``/sys``) and installs the Android tools that read the phone's state: ``getprop``,
``dumpsys``, ``logcat``, ``dmesg`` (root only), ``id``, ``whoami`` and, on rooted profiles,
``su``. The tools are small POSIX ``sh`` scripts (no Python start-up per call) that read:

- ``${HARNESS_SIM_ROOT}/system/build.prop``: the properties, one ``key=value`` per line, sorted
  (values may hold spaces; ``HARNESS_SIM_ROOT`` is empty inside the phone's namespace);
- ``${HARNESS_SIM_DIR:-/.sim}``: the control directory kept by :mod:`harness.sim.state`.

``logcat`` follows the log like the real one unless ``-d`` (dump and exit) or ``-t N`` is given;
``-c`` clears it, ``-s``/``TAG:P`` filter specs work, ``-b`` and ``-v`` are accepted and the
format is always ``threadtime``. ``id`` reports the shell user (uid 2000) even though the host
process is root, unless run under the simulated ``su``; non-rooted profiles have no ``su``
(the sandbox masks the host's own, so ``command -v su`` finds nothing, as on a stock phone).

:func:`render_kernel_files` writes the fake ``/sys`` files (thermal zones, battery, cpufreq
policies with ``time_in_state``) that the phone daemon refreshes on every tick.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from harness.sim import sensors, userland
from harness.sim.profiles import CpuCluster, PhoneProfile

BUILD_PROP = "system/build.prop"
ELF_MAGIC = b"\x7fELF"
ELF_MIN_BYTES = 64  # the Android linker refuses anything shorter than an ELF header
STANDIN_LIB_BYTES = 4096
SYSTEM_LIBS = ("libc.so", "libm.so", "libdl.so", "libc++.so", "liblog.so", "libcutils.so",
               "libutils.so", "libEGL.so", "libGLESv2.so", "libvulkan.so", "libz.so")
VENDOR_LIBS = ("libOpenCL.so", "libCB.so", "libOpenCL_adreno.so", "libadreno_utils.so",
               "libgsl.so")
SKELETON_DIRS = ("data/local/tmp", "sdcard", "storage/emulated/0", "system/bin",
                 "system/xbin", "system/lib64", "vendor/bin", "vendor/lib64", "product",
                 "sys/class/thermal", "sys/class/power_supply/battery",
                 "sys/devices/system/cpu/cpufreq")

# (type, offset from the SoC temperature at full rise, source)
THERMAL_ZONES = (("aoss-0", -4.0, "soc"), ("cpu-0-0-0", -2.0, "soc"),
                 ("cpu-1-0-0", 0.0, "soc"), ("cpu-1-2-0", 0.8, "soc"),
                 ("gpuss-0", -1.5, "soc"), ("nspss-0", -3.0, "soc"),
                 ("xo-therm", 0.0, "skin"), ("battery", 0.0, "battery"))
ZONE_FULL_RISE_C = 20.0  # zone offsets reach full size after this SoC rise above ambient


@dataclass(frozen=True)
class KernelView:
    """What the fake kernel files show at one instant."""

    soc_c: float
    skin_c: float
    battery_c: float
    battery_level: int
    charging: bool
    loaded: bool
    throttle: float  # time multiplier from :func:`harness.sim.state.throttle_for`
    time_in_state: tuple[tuple[float, ...], ...]  # clock ticks per cluster per frequency
    load_w: float = 0.0  # what the running binaries draw
    charge_w: float = 0.0  # what the USB port feeds

    @classmethod
    def idle(cls, profile: PhoneProfile) -> KernelView:
        ambient = profile.thermal.ambient_c
        tis = tuple(tuple(0.0 for _ in c.frequencies_khz()) for c in profile.cpu_clusters)
        return cls(ambient, ambient, ambient, profile.battery_level, True, False, 1.0, tis)


def freq_index(cluster: CpuCluster, throttle: float) -> int:
    """Index of the highest frequency allowed when work runs ``throttle`` times slower."""
    table = cluster.frequencies_khz()
    cap = cluster.max_khz / max(throttle, 1.0)
    allowed = [i for i, f in enumerate(table) if f <= cap + 1]
    return allowed[-1] if allowed else 0


def _milli(celsius: float) -> str:
    return str(round(celsius * 10) * 100)  # Qualcomm sensors step by 0.1 degC


def zone_temperatures(profile: PhoneProfile, view: KernelView) -> list[tuple[str, float]]:
    rise = min(max(view.soc_c - profile.thermal.ambient_c, 0.0) / ZONE_FULL_RISE_C, 1.0)
    source = {"soc": view.soc_c, "skin": view.skin_c, "battery": view.battery_c}
    return [(name, source[src] + offset * rise) for name, offset, src in THERMAL_ZONES]


def battery_status(view: KernelView) -> tuple[int, str]:
    """Android's BatteryManager status code and the sysfs word for it."""
    if view.battery_level >= 100:
        return 5, "Full"
    return (2, "Charging") if view.charging else (3, "Discharging")


def dumpsys_battery_text(profile: PhoneProfile, view: KernelView) -> str:
    code, _ = battery_status(view)
    counter_uah = view.battery_level * profile.battery_capacity_mah * 10
    rows = [("AC powered", "false"), ("USB powered", "true"), ("Wireless powered", "false"),
            ("Dock powered", "false"), ("Max charging current", "500000"),
            ("Max charging voltage", "5000000"), ("Charge counter", str(counter_uah)),
            ("status", str(code)), ("health", "2"), ("present", "true"),
            ("level", str(view.battery_level)), ("scale", "100"),
            ("voltage", str(3600 + 6 * view.battery_level)),
            ("temperature", str(round(view.battery_c * 10))),
            ("technology", "Li-ion"), ("Charging state", "1" if view.charging else "0"),
            ("Charging policy", "1"), ("Capacity level", "-1")]
    return "Current Battery Service state:\n" + "".join(f"  {k}: {v}\n" for k, v in rows)


def thermal_status(profile: PhoneProfile, view: KernelView) -> int:
    """PowerManager's thermal status (0 none .. 4 critical) for a throttle factor."""
    span = profile.thermal.max_slowdown - 1.0
    share = (view.throttle - 1.0) / span if span > 0 else 0.0
    if share <= 0.0:
        return 0
    return 1 if share < 0.25 else 2 if share < 0.5 else 3 if share < 0.8 else 4


def dumpsys_thermal_text(profile: PhoneProfile, view: KernelView) -> str:
    status = thermal_status(profile, view)
    zones = dict(zone_temperatures(profile, view))
    hal = [(zones["cpu-1-0-0"], 0, "cpu-1-0-0"), (zones["gpuss-0"], 1, "gpuss-0"),
           (view.battery_c, 2, "battery"), (view.skin_c, 3, "skin")]
    temps = "".join(f"\tTemperature{{mValue={t:.1f}, mType={kind}, mName={name}, "
                    f"mStatus={status}}}\n" for t, kind, name in hal)
    cooling = "".join(f"\tCoolingDevice{{mValue={status}, mType=2, mName=cpu-cluster{i}}}\n"
                      for i in range(len(profile.cpu_clusters)))
    return ("IsStatusOverride: false\nThermalEventListeners:\n\tcallbacks: 1\n\tkilled: false\n"
            "\tbroadcasts count: -1\nThermalStatusListeners:\n\tcallbacks: 1\n"
            f"\tkilled: false\n\tbroadcasts count: -1\nThermal Status: {status}\n"
            f"Cached temperatures:\n{temps}HAL Ready: true\nHAL connection:\n"
            "\tThermalHAL AIDL 1  connected: yes\n"
            f"Current temperatures from HAL:\n{temps}"
            f"Current cooling devices from HAL:\n{cooling}")


# ---- kernel files -------------------------------------------------------------------------

def _put(path: Path, text: str, cache: dict[str, str]) -> None:
    key = str(path)
    if cache.get(key) == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    cache[key] = text


def _cpu_range(profile: PhoneProfile) -> str:
    return f"0-{profile.cpu_count - 1}\n"


def render_kernel_files(root: Path, profile: PhoneProfile, view: KernelView,
                        cache: dict[str, str] | None = None) -> None:
    """Write the phone's /sys files under ``root``, skipping files that did not change."""
    done: dict[str, str] = {} if cache is None else cache
    thermal = root / "sys/class/thermal"
    for n, (name, celsius) in enumerate(zone_temperatures(profile, view)):
        zone = thermal / f"thermal_zone{n}"
        _put(zone / "type", name + "\n", done)
        _put(zone / "mode", "enabled\n", done)
        _put(zone / "temp", _milli(celsius) + "\n", done)
    battery = root / "sys/class/power_supply/battery"
    _, word = battery_status(view)
    cell = sensors.battery_reading(profile, view.battery_level, view.load_w, view.charge_w)
    for name, value in (("capacity", view.battery_level),
                        ("temp", round(view.battery_c * 10)), ("status", word),
                        ("health", "Good"), ("present", 1), ("technology", "Li-ion"),
                        ("voltage_now", cell.voltage_now_uv),
                        ("current_now", cell.current_now),
                        ("charge_counter",
                         view.battery_level * profile.battery_capacity_mah * 10)):
        _put(battery / name, f"{value}\n", done)
    cpu = root / "sys/devices/system/cpu"
    for name in ("online", "possible", "present"):
        _put(cpu / name, _cpu_range(profile), done)
    for ci, cluster in enumerate(profile.cpu_clusters):
        _render_policy(cpu, cluster, view, ci, done)
    _render_kgsl(root / "sys/class/kgsl/kgsl-3d0", profile, view, done)


def _render_kgsl(kgsl: Path, profile: PhoneProfile, view: KernelView,
                 done: dict[str, str]) -> None:
    mode = 0o444 if profile.kgsl_readable else 0o000
    busy = sensors.gpu_busy_pct(view.load_w)
    for name, text in sensors.kgsl_files(busy, view.throttle).items():
        path = kgsl / name
        if done.get(str(path)) != text:
            _put(path, text, done)
            path.chmod(mode)


def _render_policy(cpu: Path, cluster: CpuCluster, view: KernelView, ci: int,
                   done: dict[str, str]) -> None:
    table = cluster.frequencies_khz()
    cap_index = freq_index(cluster, view.throttle)
    policy = cpu / "cpufreq" / f"policy{cluster.cpus[0]}"
    cpus = " ".join(str(c) for c in cluster.cpus) + "\n"
    current = table[cap_index] if view.loaded else table[0]
    ticks = view.time_in_state[ci] if ci < len(view.time_in_state) else ()
    residency = "".join(f"{f} {int(ticks[i]) if i < len(ticks) else 0}\n"
                        for i, f in enumerate(table))
    for name, text in (("cpuinfo_max_freq", f"{cluster.max_khz}\n"),
                       ("cpuinfo_min_freq", f"{cluster.min_khz}\n"),
                       ("scaling_max_freq", f"{table[cap_index]}\n"),
                       ("scaling_min_freq", f"{cluster.min_khz}\n"),
                       ("scaling_cur_freq", f"{current}\n"),
                       ("scaling_governor", "walt\n"),
                       ("scaling_available_frequencies", " ".join(map(str, table)) + " \n"),
                       ("affected_cpus", cpus), ("related_cpus", cpus),
                       ("stats/time_in_state", residency)):
        _put(policy / name, text, done)
    for c in cluster.cpus:
        link = cpu / f"cpu{c}" / "cpufreq"
        if not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                link.symlink_to(f"../cpufreq/policy{cluster.cpus[0]}")
        _put(cpu / f"cpu{c}" / "online", "1\n", done)


# ---- stand-in files -----------------------------------------------------------------------

def elf_standin(soname: str, body: str = "", size: int = STANDIN_LIB_BYTES) -> bytes:
    """A small deterministic file that passes for a shared library (ELF magic, soname, text)."""
    header = ELF_MAGIC + b"\x02\x01\x01\x00" + b"\x00" * 8  # 64-bit, little endian, SysV
    text = f"\nSONAME={soname}\nharness.sim stand-in library\n{body}\n".encode()
    head = header + text
    filler = hashlib.shake_256(soname.encode() + body.encode()).digest(max(size - len(head), 0))
    return head + filler


def _write_if_changed(path: Path, data: bytes, mode: int = 0o644) -> None:
    if not path.is_file() or path.read_bytes() != data:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    if stat.S_IMODE(path.stat().st_mode) != mode:
        path.chmod(mode)


# ---- device-side tools --------------------------------------------------------------------

GETPROP_SH = r"""#!/bin/sh
# getprop (harness.sim): this virtual phone's system properties.
# usage: getprop            all properties as [key]: [value]
#        getprop KEY [DEF]  the value of KEY, DEF (or an empty line) when unset
props="${HARNESS_SIM_ROOT:-}/system/build.prop"
case ${1-} in -T|-Z) shift ;; esac
if [ "$#" -eq 0 ]; then
    while IFS= read -r line || [ -n "$line" ]; do
        case $line in ''|'#'*) continue ;; esac
        printf '[%s]: [%s]\n' "${line%%=*}" "${line#*=}"
    done < "$props"
    exit 0
fi
key=$1
while IFS= read -r line || [ -n "$line" ]; do
    case $line in
        "$key"=*) printf '%s\n' "${line#*=}"; exit 0 ;;
    esac
done < "$props"
printf '%s\n' "${2-}"
"""

DUMPSYS_SH = r"""#!/bin/sh
# dumpsys (harness.sim): the services a virtual phone can describe.
ctl="${HARNESS_SIM_DIR:-/.sim}"
case ${1-} in
    battery)
        # `dumpsys battery unplug|reset|set ...` are accepted silently, as on a phone.
        [ "$#" -gt 1 ] && exit 0
        exec cat "$ctl/dumpsys_battery.txt" ;;
    thermalservice) exec cat "$ctl/dumpsys_thermalservice.txt" ;;
    ''|-l) printf 'Currently running services:\n  battery\n  thermalservice\n' ;;
    *) printf "Can't find service: %s\n" "$1" ;;
esac
exit 0
"""

LOGCAT_SH = r"""#!/bin/sh
# logcat (harness.sim): the virtual phone's log, always in threadtime format.
# -d dump and exit; -t N last N lines and exit; -T N follow from the last N lines;
# -c clear; -s silence all tags but the TAG[:P] specs given; -b BUF and -v FMT accepted.
# Without -d/-t it follows the log until killed, like the real logcat.
ctl="${HARNESS_SIM_DIR:-/.sim}"
log="$ctl/logcat.txt"
dump=0 clear=0 silent=0 lines= specs=
while [ "$#" -gt 0 ]; do
    case $1 in
        -d) dump=1 ;;
        -c) clear=1 ;;
        -s) silent=1 ;;
        -b|-v|-f|-r|-n|-e|--pid) shift ;;
        -b*|-v*|-D|-B) ;;
        -t) shift; lines=${1-}; dump=1 ;;
        -T) shift; lines=${1-} ;;
        -g) printf 'main: ring buffer is 256 KiB (%s KiB consumed), ' \
                "$(( $(wc -c < "$log") / 1024 ))"
            printf 'max entry is 5120 B, max payload is 4068 B\n'; exit 0 ;;
        -*) printf 'logcat: unknown option %s\n' "$1" >&2; exit 1 ;;
        *) specs="$specs $1" ;;
    esac
    shift
done
case $lines in *[!0-9]*) printf 'logcat: -t/-T needs a count\n' >&2; exit 1 ;; esac
if [ "$clear" = 1 ]; then
    : > "$log"
    [ "$dump" = 1 ] || exit 0
fi
filter() {
    if [ -z "$specs" ] && [ "$silent" = 0 ]; then exec cat; fi
    # mawk reads pipes in blocks unless told otherwise; following needs every line at once.
    interactive=
    if [ "$dump" = 0 ] && awk -W version </dev/null 2>/dev/null | grep -q mawk; then
        interactive="-W interactive"
    fi
    # shellcheck disable=SC2086 # $interactive is empty or two words on purpose
    awk $interactive -v specs="$specs" -v silent="$silent" '
BEGIN {
    rank["V"] = 0; rank["D"] = 1; rank["I"] = 2; rank["W"] = 3; rank["E"] = 4
    rank["F"] = 5; rank["S"] = 6
    def = silent ? 6 : 0
    n = split(specs, s, " ")
    for (i = 1; i <= n; i++) {
        c = index(s[i], ":")
        if (c) { t = substr(s[i], 1, c - 1); p = substr(s[i], c + 1, 1) }
        else { t = s[i]; p = "V" }
        if (!(p in rank)) p = "V"
        if (t == "*") def = rank[p]; else want[t] = rank[p]
    }
}
{
    if (!match($0, /^[0-9][0-9]-[0-9][0-9] [0-9:.]+ +[0-9]+ +[0-9]+ [VDIWEFS] /)) {
        print; fflush(); next
    }
    prio = substr($0, RLENGTH - 1, 1)
    rest = substr($0, RLENGTH + 1)
    c = index(rest, ": ")
    tag = c ? substr(rest, 1, c - 1) : rest
    sub(/ +$/, "", tag)
    lvl = (tag in want) ? want[tag] : def
    if (lvl < 6 && rank[prio] >= lvl) { print; fflush() }
}'
}
if [ "$dump" = 1 ]; then
    if [ -n "$lines" ]; then tail -n "$lines" "$log"; else cat "$log"; fi | filter
else
    tail -n "${lines:-+1}" -f "$log" 2>/dev/null | filter
fi
"""

ID_SH = r"""#!/bin/sh
# id (harness.sim): the adb shell user, or root under the simulated su.
if [ "${HARNESS_SIM_UID-}" = 0 ]; then
    uid=0 user=root groups='0(root)' gids=0 names=root context=u:r:magisk:s0
else
    uid=2000 user=shell context=u:r:shell:s0
    groups='2000(shell),1004(input),1007(log),1011(adb),1015(sdcard_rw),1028(sdcard_r)'
    groups="$groups,1078(ext_data_rw),1079(ext_obb_rw),3001(net_bt_admin),3002(net_bt)"
    groups="$groups,3003(inet),3006(net_bw_stats),3009(readproc),3011(uhid),3012(readtracefs)"
    gids='2000 1004 1007 1011 1015 1028 1078 1079 3001 3002 3003 3006 3009 3011 3012'
    names='shell input log adb sdcard_rw sdcard_r ext_data_rw ext_obb_rw net_bt_admin'
    names="$names net_bt inet net_bw_stats readproc uhid readtracefs"
fi
mode= name=0
for arg in "$@"; do
    case $arg in
        -u|-g|-G) mode=$arg ;;
        -n) name=1 ;;
        -un|-nu) mode=-u; name=1 ;;
        -gn|-ng) mode=-g; name=1 ;;
        -Gn|-nG) mode=-G; name=1 ;;
        -Z) printf '%s\n' "$context"; exit 0 ;;
        -*) printf "id: Unknown option '%s'\n" "${arg#-}" >&2; exit 1 ;;
        shell|2000|root|0) ;;
        *) printf "id: unknown user '%s'\n" "$arg" >&2; exit 1 ;;
    esac
done
case $mode in
    -u|-g) if [ "$name" = 1 ]; then echo "$user"; else echo "$uid"; fi ;;
    -G) if [ "$name" = 1 ]; then echo "$names"; else echo "$gids"; fi ;;
    *) printf 'uid=%s(%s) gid=%s(%s) groups=%s context=%s\n' \
           "$uid" "$user" "$uid" "$user" "$groups" "$context" ;;
esac
"""

WHOAMI_SH = r"""#!/bin/sh
# whoami (harness.sim)
if [ "${HARNESS_SIM_UID-}" = 0 ]; then echo root; else echo shell; fi
"""

SU_SH = r"""#!/bin/sh
# su (harness.sim, rooted profiles): su [-c CMD] | su 0|root [CMD [ARG...]]
HARNESS_SIM_UID=0
export HARNESS_SIM_UID
[ "$#" -eq 0 ] && exec /bin/sh
case $1 in
    -c) shift; exec /bin/sh -c "$@" ;;
    0|root)
        shift
        [ "$#" -eq 0 ] && exec /bin/sh
        if [ "$1" = -c ]; then shift; exec /bin/sh -c "$@"; fi
        exec "$@" ;;
    -*) printf 'su: unknown option %s\n' "$1" >&2; exit 1 ;;
    *) printf "su: invalid uid/gid '%s'\n" "$1" >&2; exit 1 ;;
esac
"""


DMESG_SH = r"""#!/bin/sh
# dmesg (harness.sim): the virtual phone's kernel log, for root only.
# toybox toys/lsb/dmesg.c opens /dev/kmsg and, when that fails, falls back to klogctl(2),
# whose failure is perror_exit("klogctl"). As the shell user (uid 2000) both are refused on
# Android (dmesg_restrict / SELinux: shell may not read the kernel log), so a stock phone
# prints "dmesg: klogctl: Permission denied"; root (su) reads it. -c/-C clear it.
ctl="${HARNESS_SIM_DIR:-/.sim}"
if [ "${HARNESS_SIM_UID-}" != 0 ]; then
    echo 'dmesg: klogctl: Permission denied' >&2
    exit 1
fi
clear=0 show=1
for arg in "$@"; do
    case $arg in
        -c) clear=1 ;;
        -C) clear=1 show=0 ;;
        -r|-t|-T|-S|-w) ;;
        -*) printf "dmesg: Unknown option '%s'\n" "${arg#-}" >&2; exit 1 ;;
    esac
done
[ "$show" = 1 ] && cat "$ctl/kmsg.txt"
if [ "$clear" = 1 ]; then : > "$ctl/kmsg.txt"; fi
exit 0
"""


TOOLS = {"system/bin/getprop": GETPROP_SH, "system/bin/dumpsys": DUMPSYS_SH,
         "system/bin/logcat": LOGCAT_SH, "system/bin/id": ID_SH,
         "system/bin/whoami": WHOAMI_SH, "system/bin/dmesg": DMESG_SH}


def build_prop_text(props: dict[str, str]) -> str:
    for key, value in props.items():
        if "\n" in value or "=" in key:
            raise ValueError(f"property {key!r} cannot be written to build.prop")
    return "".join(f"{k}={v}\n" for k, v in sorted(props.items()))


def install_system(root: Path, profile: PhoneProfile, serial: str,
                   tools: userland.Userland | None = None) -> None:
    """Create (or refresh) the phone's filesystem skeleton, tools and first kernel files.

    With ``tools`` complete, /system/bin is a phone's (toybox applets, sh -> mksh, awk ->
    one-true-awk: :mod:`harness.sim.userland`); otherwise sh is the host's /bin/sh.
    """
    for directory in SKELETON_DIRS:
        (root / directory).mkdir(parents=True, exist_ok=True)
    for rel, script in TOOLS.items():
        _write_if_changed(root / rel, script.encode(), 0o755)
    rooted_su, stub_su = root / "system/xbin/su", root / "system/bin/su"
    if profile.rooted:
        stub_su.unlink(missing_ok=True)
        _write_if_changed(rooted_su, SU_SH.encode(), 0o755)
    else:
        rooted_su.unlink(missing_ok=True)
        # No su at all, as on a stock phone: `command -v su` finds nothing. The sandbox
        # masks the host's own su (harness.sim.sandbox.enter), so it cannot be reached.
        stub_su.unlink(missing_ok=True)
    bin_dir = root / "system/bin"
    if tools is not None and tools.complete:
        userland.install(bin_dir, tools, frozenset(Path(rel).name for rel in TOOLS) | {"su"})
    else:
        userland.uninstall(bin_dir)
        sh = bin_dir / "sh"
        if sh.is_symlink() and os.readlink(sh) != "/bin/sh":
            sh.unlink()
        if not sh.is_symlink():
            sh.symlink_to("/bin/sh")
    for name in SYSTEM_LIBS:
        _write_if_changed(root / "system/lib64" / name, elf_standin(name))
    for name in VENDOR_LIBS:
        body = f"GPU={profile.gpu}\nCLML=3.0\n" if "OpenCL" in name else ""
        _write_if_changed(root / "vendor/lib64" / name, elf_standin(name, body))
    _write_if_changed(root / BUILD_PROP, build_prop_text(profile.props(serial)).encode())
    render_kernel_files(root, profile, KernelView.idle(profile))
