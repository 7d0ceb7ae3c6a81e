"""Phone profiles: what a virtual phone claims to be and how its hardware behaves.

Built-in profiles live in ``harness/sim/profiles/*.yaml``; users add their own in
``$HARNESS_HOME/sim/profiles/*.yaml``. A user file may say ``extends: <profile>`` and override
only some keys (``thermal`` is merged key by key, every other key replaces the base value).
Validation is strict: an unknown key, a wrong type or a YAML syntax error is a
:class:`~harness.errors.ConfigError` naming the file and line.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError
from harness.home import harness_home

BUILTIN_DIR = Path(__file__).with_name("profiles")
USER_SUBDIR = ("sim", "profiles")
FREQ_STEP_KHZ = 9600  # Qualcomm cpufreq tables are multiples of the 19.2 MHz XO / 2
FREQ_TABLE_LEN = 12  # entries per cluster in the simulated cpufreq table


@dataclass(frozen=True)
class CpuCluster:
    """One cpufreq policy: the CPUs it drives and its frequency range."""

    cpus: tuple[int, ...]
    min_khz: int
    max_khz: int

    def frequencies_khz(self) -> tuple[int, ...]:
        """The cluster's frequency table, lowest first, ending exactly at ``max_khz``."""
        span = self.max_khz - self.min_khz
        table = {self.min_khz, self.max_khz}
        for i in range(1, FREQ_TABLE_LEN - 1):
            raw = self.min_khz + span * i / (FREQ_TABLE_LEN - 1)
            table.add(round(raw / FREQ_STEP_KHZ) * FREQ_STEP_KHZ)
        return tuple(sorted(f for f in table if self.min_khz <= f <= self.max_khz))


@dataclass(frozen=True)
class ThermalParams:
    """Lumped thermal model of the SoC; all time constants are in simulated seconds."""

    ambient_c: float = 25.0
    throttle_c: float = 55.0  # SoC temperature where the governor starts capping clocks
    max_c: float = 90.0  # SoC temperature a sustained full load heads towards
    heat_tau_s: float = 100.0  # time constant of heating under load
    cool_tau_s: float = 300.0  # time constant of Newton cooling towards ambient
    battery_fraction: float = 0.5  # battery rise as a fraction of the SoC rise
    battery_tau_s: float = 200.0  # lag of the battery behind the SoC
    skin_fraction: float = 0.6  # skin (xo-therm) rise as a fraction of the SoC rise
    full_load_w: float = 10.0  # power at which the SoC heads to max_c
    max_slowdown: float = 1.6  # time multiplier at max_c


@dataclass(frozen=True)
class PhoneProfile:
    name: str
    model: str
    manufacturer: str
    brand: str
    product: str  # ro.product.name
    device: str  # ro.product.device
    soc_model: str
    soc_manufacturer: str
    board_platform: str
    gpu: str
    android_release: str
    sdk: int
    build_id: str
    build_incremental: str
    security_patch: str
    ram_gb: int  # marketed size
    memtotal_kb: int  # what /proc/meminfo shows (marketed size minus carve-outs)
    reserved_kb: int  # what Android itself holds at idle (MemTotal - MemAvailable)
    swap_kb: int  # zram
    cpu_clusters: tuple[CpuCluster, ...]
    thermal: ThermalParams
    speed_factor: float  # time multiplier relative to the seed's SM8650 timings
    rooted: bool
    battery_level: int  # initial %
    battery_capacity_mah: int
    data_size_mb: int | None = None  # cap /data with a tmpfs of this size (full-disk tests)
    description: str = ""
    # Who ends a binary that runs out of memory: ``kernel`` (AOSP's lmkd kills only processes
    # ActivityManager registered, so the kernel's OOM killer SIGKILLs an ``adb shell`` binary
    # and says so in the kernel log only) or ``lmkd`` (a vendor lmkd that also kills native
    # processes and names them in logcat).
    oom_killer: str = "kernel"
    # How the fuel gauge reports (vendors differ): current_now in uA or mA, and whether a
    # discharge reads negative (the kernel ABI's convention) or positive.
    battery_current_unit: str = "uA"
    battery_discharge_sign: str = "negative"
    kgsl_readable: bool = True  # False: /sys/class/kgsl files exist but the shell cannot read

    @property
    def cpu_count(self) -> int:
        return sum(len(c.cpus) for c in self.cpu_clusters)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "profile") -> PhoneProfile:
        return _build(dict(data), source, {})

    def fingerprint(self) -> str:
        return (f"{self.brand}/{self.product}/{self.device}:{self.android_release}/"
                f"{self.build_id}/{self.build_incremental}:user/release-keys")

    def props(self, serial: str) -> dict[str, str]:
        """The system properties ``getprop`` shows on this phone."""
        abilist = "arm64-v8a" if self.sdk >= 34 else "arm64-v8a,armeabi-v7a,armeabi"
        props = {
            "ro.product.model": self.model,
            "ro.product.manufacturer": self.manufacturer,
            "ro.product.brand": self.brand,
            "ro.product.name": self.product,
            "ro.product.device": self.device,
            "ro.product.board": self.board_platform,
            "ro.product.vendor.model": self.model,
            "ro.product.vendor.device": self.device,
            "ro.product.cpu.abi": "arm64-v8a",
            "ro.product.cpu.abilist": abilist,
            "ro.product.cpu.abilist64": "arm64-v8a",
            "ro.product.locale": "en-US",
            "ro.product.first_api_level": str(self.sdk),
            "ro.soc.model": self.soc_model,
            "ro.soc.manufacturer": self.soc_manufacturer,
            "ro.board.platform": self.board_platform,
            "ro.hardware": "qcom",
            "ro.boot.hardware": "qcom",
            "ro.hardware.egl": "adreno",
            "ro.hardware.vulkan": "adreno",
            "ro.opengles.version": "196610",
            "ro.baseband": "msm",
            "ro.build.version.release": self.android_release,
            "ro.build.version.release_or_codename": self.android_release,
            "ro.build.version.sdk": str(self.sdk),
            "ro.build.version.security_patch": self.security_patch,
            "ro.build.version.incremental": self.build_incremental,
            "ro.build.version.codename": "REL",
            "ro.build.id": self.build_id,
            "ro.build.display.id": f"{self.build_id}.{self.build_incremental}",
            "ro.build.type": "user",
            "ro.build.tags": "release-keys",
            "ro.build.fingerprint": self.fingerprint(),
            "ro.build.characteristics": "phone",
            "ro.vndk.version": str(self.sdk),
            "ro.serialno": serial,
            "ro.boot.serialno": serial,
            "ro.debuggable": "0",
            "ro.secure": "1",
            "ro.adb.secure": "1",
            "ro.crypto.state": "encrypted",
            "ro.sf.lcd_density": "480",
            "ro.zygote": "zygote64" if self.sdk >= 34 else "zygote64_32",
            "persist.sys.timezone": "Asia/Shanghai",
            "persist.sys.usb.config": "mtp,adb",
            "sys.usb.state": "mtp,adb",
            "sys.boot_completed": "1",
            "dev.bootcomplete": "1",
            "init.svc.adbd": "running",
            "gsm.version.baseband": f"{self.build_incremental[:10]},{self.soc_model}",
        }
        return dict(sorted(props.items()))


# ---- schema -------------------------------------------------------------------------------

_SCALAR_TYPES: dict[str, type] = {
    "name": str, "model": str, "manufacturer": str, "brand": str, "product": str,
    "device": str, "soc_model": str, "soc_manufacturer": str, "board_platform": str, "gpu": str,
    "android_release": str, "sdk": int, "build_id": str, "build_incremental": str,
    "security_patch": str, "ram_gb": int, "memtotal_kb": int, "reserved_kb": int,
    "swap_kb": int, "speed_factor": float, "rooted": bool, "battery_level": int,
    "battery_capacity_mah": int, "description": str, "oom_killer": str,
    "battery_current_unit": str, "battery_discharge_sign": str, "kgsl_readable": bool,
}
_OPTIONAL_INT = ("data_size_mb",)
_NESTED = ("cpu_clusters", "thermal")
_PROFILE_KEYS = (*_SCALAR_TYPES, *_OPTIONAL_INT, *_NESTED)
_FILE_ONLY_KEYS = ("extends",)
_CLUSTER_KEYS = ("cpus", "min_khz", "max_khz")
_THERMAL_KEYS = tuple(f.name for f in fields(ThermalParams))
_DEFAULTS: dict[str, Any] = {"data_size_mb": None, "description": "", "oom_killer": "kernel",
                             "battery_current_unit": "uA", "battery_discharge_sign": "negative",
                             "kgsl_readable": True}
OOM_KILLERS = ("kernel", "lmkd")


def _where(source: str, lines: Mapping[str, int], key: str) -> str:
    line = lines.get(key)
    return f"{source}:{line}" if line else source


def _unknown(source: str, lines: Mapping[str, int], key: str, prefix: str,
             known: tuple[str, ...]) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
    return ConfigError(f"{_where(source, lines, prefix + key)}: unknown key {key!r}{hint}")


def _typed(value: Any, kind: type, source: str, lines: Mapping[str, int], key: str) -> Any:
    where = _where(source, lines, key)
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif isinstance(value, str):
        return value
    shown = type(value).__name__
    extra = f' (quote it: "{value}")' if kind is str and isinstance(value, int | float) else ""
    raise ConfigError(f"{where}: {key} must be {kind.__name__}, not {shown}{extra}")


def _clusters(raw: Any, source: str, lines: Mapping[str, int]) -> tuple[CpuCluster, ...]:
    if not isinstance(raw, list | tuple) or not raw:
        raise ConfigError(f"{_where(source, lines, 'cpu_clusters')}: cpu_clusters must be a "
                          "non-empty list of {cpus: [...], min_khz: N, max_khz: N}")
    out = []
    for i, item in enumerate(raw):
        key = f"cpu_clusters[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{_where(source, lines, key)}: {key} must be a mapping")
        for k in item:
            if k not in _CLUSTER_KEYS:
                raise _unknown(source, lines, str(k), key + ".", _CLUSTER_KEYS)
        missing = [k for k in _CLUSTER_KEYS if k not in item]
        if missing:
            raise ConfigError(f"{_where(source, lines, key)}: {key} lacks {', '.join(missing)}")
        cpus = item["cpus"]
        if not isinstance(cpus, list | tuple) or not all(
                isinstance(c, int) and not isinstance(c, bool) for c in cpus) or not cpus:
            raise ConfigError(f"{_where(source, lines, key + '.cpus')}: cpus must be a "
                              "non-empty list of integers")
        lo = _typed(item["min_khz"], int, source, lines, key + ".min_khz")
        hi = _typed(item["max_khz"], int, source, lines, key + ".max_khz")
        if not 0 < lo <= hi:
            raise ConfigError(f"{_where(source, lines, key)}: need 0 < min_khz <= max_khz")
        out.append(CpuCluster(tuple(cpus), lo, hi))
    numbered = sorted(c for cl in out for c in cl.cpus)
    if numbered != list(range(len(numbered))):
        raise ConfigError(f"{_where(source, lines, 'cpu_clusters')}: the clusters' cpus must "
                          f"number each CPU once from 0, got {numbered}")
    return tuple(out)


def _thermal(raw: Any, source: str, lines: Mapping[str, int]) -> ThermalParams:
    if not isinstance(raw, dict):
        raise ConfigError(f"{_where(source, lines, 'thermal')}: thermal must be a mapping")
    values: dict[str, float] = {}
    for k, v in raw.items():
        if k not in _THERMAL_KEYS:
            raise _unknown(source, lines, str(k), "thermal.", _THERMAL_KEYS)
        values[k] = _typed(v, float, source, lines, f"thermal.{k}")
    params = ThermalParams(**values)
    if not params.ambient_c < params.throttle_c < params.max_c:
        raise ConfigError(f"{_where(source, lines, 'thermal')}: need ambient_c < throttle_c "
                          "< max_c")
    if min(params.heat_tau_s, params.cool_tau_s, params.battery_tau_s,
           params.full_load_w) <= 0 or params.max_slowdown < 1:
        raise ConfigError(f"{_where(source, lines, 'thermal')}: time constants and "
                          "full_load_w must be positive and max_slowdown >= 1")
    return params


def _build(data: dict[str, Any], source: str, lines: Mapping[str, int]) -> PhoneProfile:
    for key in data:
        if key not in _PROFILE_KEYS:
            raise _unknown(source, lines, str(key), "", _PROFILE_KEYS)
    merged = {**_DEFAULTS, **data}
    missing = [k for k in _PROFILE_KEYS if k not in merged]
    if missing:
        raise ConfigError(f"{source}: profile lacks {', '.join(missing)} "
                          "(or add `extends: <profile>`)")
    values: dict[str, Any] = {}
    for key, kind in _SCALAR_TYPES.items():
        values[key] = _typed(merged[key], kind, source, lines, key)
    size = merged["data_size_mb"]
    values["data_size_mb"] = (None if size is None
                              else _typed(size, int, source, lines, "data_size_mb"))
    values["cpu_clusters"] = _clusters(merged["cpu_clusters"], source, lines)
    values["thermal"] = _thermal(merged["thermal"], source, lines)
    profile = PhoneProfile(**values)
    _check_ranges(profile, source, lines)
    return profile


def _check_ranges(p: PhoneProfile, source: str, lines: Mapping[str, int]) -> None:
    def fail(key: str, msg: str) -> ConfigError:
        return ConfigError(f"{_where(source, lines, key)}: {msg}")

    if not 0 < p.memtotal_kb <= p.ram_gb * 1024 * 1024:
        raise fail("memtotal_kb", f"memtotal_kb must be positive and at most ram_gb "
                                  f"({p.ram_gb * 1024 * 1024} kB)")
    if not 0 <= p.reserved_kb < p.memtotal_kb:
        raise fail("reserved_kb", "reserved_kb must be below memtotal_kb")
    if p.speed_factor <= 0:
        raise fail("speed_factor", "speed_factor must be positive")
    if not 0 <= p.battery_level <= 100:
        raise fail("battery_level", "battery_level is a percentage (0-100)")
    if p.data_size_mb is not None and p.data_size_mb <= 0:
        raise fail("data_size_mb", "data_size_mb must be positive (or null)")
    if p.oom_killer not in OOM_KILLERS:
        raise fail("oom_killer", f"oom_killer must be one of {', '.join(OOM_KILLERS)}, not "
                                 f"{p.oom_killer!r}")
    if p.battery_current_unit not in ("uA", "mA"):
        raise fail("battery_current_unit", "battery_current_unit must be uA or mA")
    if p.battery_discharge_sign not in ("negative", "positive"):
        raise fail("battery_discharge_sign", "battery_discharge_sign must be negative or "
                                             "positive")
    if p.sdk < 21 or p.swap_kb < 0 or p.battery_capacity_mah <= 0:
        raise fail("sdk", "sdk must be >= 21, swap_kb >= 0, battery_capacity_mah > 0")


# ---- files --------------------------------------------------------------------------------

def _read_yaml(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """The mapping in ``path`` and the line of each (dotted) key."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
                          f"offset {exc.start})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: YAML syntax error: {problem}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: a profile must be a YAML mapping")
    lines: dict[str, int] = {}

    def walk(n: yaml.Node | None, prefix: str) -> None:
        if isinstance(n, yaml.MappingNode):
            for key_node, value_node in n.value:
                key = f"{prefix}{key_node.value}"
                lines[key] = key_node.start_mark.line + 1
                walk(value_node, key + ".")
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                key = f"{prefix.rstrip('.')}[{i}]"
                lines[key] = item.start_mark.line + 1
                walk(item, key + ".")

    walk(node, "")
    return data, lines


def user_profile_dir() -> Path:
    return harness_home().joinpath(*USER_SUBDIR)


def _builtin_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(BUILTIN_DIR.glob("*.yaml"))}


def _user_files() -> dict[str, Path]:
    directory = user_profile_dir()
    return {p.stem: p for p in sorted(directory.glob("*.yaml"))} if directory.is_dir() else {}


def list_profiles() -> list[str]:
    """Names of every profile: built-in and user (a user file may shadow a built-in)."""
    return sorted({*_builtin_files(), *_user_files()})


def _raw(path: Path, chain: tuple[Path, ...]) -> tuple[dict[str, Any], dict[str, int]]:
    """The file's mapping with its ``extends`` chain merged in (child keys win)."""
    if path in chain:
        cycle = " -> ".join(p.stem for p in (*chain, path))
        raise ConfigError(f"{path}: profiles extend each other in a cycle: {cycle}")
    data, lines = _read_yaml(path)
    base_name = data.pop("extends", None)
    if base_name is None:
        return data, lines
    if not isinstance(base_name, str):
        raise ConfigError(f"{_where(str(path), lines, 'extends')}: extends must be a name")
    user, builtin = _user_files(), _builtin_files()
    base_path = user.get(base_name)
    if base_path is None or base_path == path:
        base_path = builtin.get(base_name)
    if base_path is None:
        raise _unknown_profile(base_name, f"{_where(str(path), lines, 'extends')}: ")
    base, _ = _raw(base_path, (*chain, path))
    base.pop("name", None)  # a child is named after its own file
    merged = {**base, **data}
    if isinstance(base.get("thermal"), dict) and isinstance(data.get("thermal"), dict):
        merged["thermal"] = {**base["thermal"], **data["thermal"]}
    return merged, lines


def _unknown_profile(name: str, prefix: str = "") -> ConfigError:
    known = list_profiles()
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return ConfigError(f"{prefix}unknown phone profile {name!r}; {hint}"
                       f"known: {', '.join(known)}")


def load_profile(name: str) -> PhoneProfile:
    """Load and validate profile ``name`` (user files first, then built-ins)."""
    path = _user_files().get(name) or _builtin_files().get(name)
    if path is None:
        raise _unknown_profile(name)
    data, lines = _raw(path, ())
    data.setdefault("name", name)
    if data["name"] != name:
        raise ConfigError(f"{_where(str(path), lines, 'name')}: name {data['name']!r} differs "
                          f"from the file name {name!r}")
    for key in _FILE_ONLY_KEYS:
        data.pop(key, None)
    return _build(data, str(path), lines)
