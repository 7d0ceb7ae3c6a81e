"""The farm: adb servers, the phones behind them, their nicknames and tags, and selection.

The farm file (YAML, default ``$HARNESS_HOME/farm.yaml``, ``--farm`` to override)::

    servers:                    # default: the local server on port 5037
      - name: desk
        port: 5037
      - name: lab2              # phones on another host, through an SSH tunnel:
        host: 127.0.0.1         #   ssh -N -L 15037:127.0.0.1:5037 lab2
        port: 15037
    sim: true                   # include the virtual farm's server while it runs
    thermal: {battery_c: 35, cpu_c: 38}          # `harness run`'s hot-start limits (°C)
    devices:
      R5CW30ABCDE: {nickname: s24, tags: [nightly], thermal: {cpu_c: 42}}
      R5CW30FGHIJ: {current_sign: discharge-positive}  # a phone that never leaves its charger
    exclude:
      R5CX1234: cracked screen, thermal sensor reads 0

Without a farm file, or without ``servers``, the one server is the local one, found as adb
finds it (``packages/modules/adb/client/commandline.cpp``, ``adb_commandline``):
``ADB_SERVER_SOCKET=tcp:HOST:PORT`` when set, else ``ANDROID_ADB_SERVER_ADDRESS`` and
``ANDROID_ADB_SERVER_PORT`` (defaults 127.0.0.1 and 5037).

``thermal`` limits: ``harness run`` warns and records a ``hot-start`` verdict when the
battery or any CPU thermal zone (a zone whose type names ``cpu``) is above its limit before
a run starts; a phone's own ``thermal`` overrides the farm's key by key.

``current_sign`` (``auto``, ``discharge-negative``, ``discharge-positive``): how the phone's
``current_now`` reads while the battery discharges, for its telemetry's power and energy.
``auto`` (the default) learns it from the samples taken while the battery says
``Discharging``; a phone that stays on its charger has none, and then the kernel ABI's
negative is assumed unless its entry says otherwise.

Every phone also gets automatic tags from its facts: its SoC (``sm8650``), platform
(``pineapple``), marketed RAM (``ram16``), Android (``android14``) and ``sim`` for virtual
phones. ``--device`` takes a serial, a nickname, ``sim`` (start or reuse the virtual farm),
or a tag expression ``tag:EXPR`` where ``,`` is or, ``+`` is and, ``!`` is not
(``tag:sm8650+nightly,sm8550``).
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness import cancel
from harness.device.device import AdbEndpoint, Device
from harness.device.errors import DeviceError
from harness.device.facts import DeviceFacts, Requirements
from harness.errors import ConfigError, HarnessError, UsageError
from harness.farm.lease import holder_of
from harness.home import harness_home, sim_dir
from harness.logs import get_logger
from harness.yamlpos import PosDict, check_keys, load_yaml, pos_of, quote, suggest

log = get_logger(__name__)

FARM_FILE_NAME = "farm.yaml"
SIM_SERVER_NAME = "sim"
FACTS_WORKERS = 8
HOST_RE = re.compile(r"[A-Za-z0-9_.:-]{1,253}|\[[0-9A-Fa-f:.]+\]")  # a name, IPv4 or IPv6
TAG_WORD_RE = re.compile(r"[a-z0-9_][a-z0-9_.-]*")
ADB_DEFAULT_PORT = 5037
BATTERY_HOT_C = 35.0  # above this a battery is warm enough to throttle a phone soon
CPU_HOT_C = 38.0  # a CPU zone above this at the start: the run begins already warm
THERMAL_KEYS = ("battery_c", "cpu_c")


@dataclass(frozen=True)
class ServerSpec:
    name: str
    host: str = "127.0.0.1"
    port: int = ADB_DEFAULT_PORT


@dataclass(frozen=True)
class ThermalLimits:
    """Temperatures above which a run starts hot (°C)."""

    battery_c: float = BATTERY_HOT_C
    cpu_c: float = CPU_HOT_C


# How a phone's battery current_now reads while it discharges (harness.run.telemetry): auto
# learns it from the samples taken while the battery says Discharging; a phone that never
# leaves its charger has none, so its farm entry can say.
CURRENT_SIGNS = ("auto", "discharge-negative", "discharge-positive")


@dataclass(frozen=True)
class DeviceSpec:
    nickname: str | None = None
    tags: tuple[str, ...] = ()
    thermal: dict[str, float] = field(default_factory=dict)  # overrides of the farm's limits
    current_sign: str = "auto"  # one of CURRENT_SIGNS


def local_server_spec(env: Mapping[str, str] | None = None) -> ServerSpec:
    """The local adb server as an adb client finds it from its environment.

    AOSP adb (``client/commandline.cpp``): ``ADB_SERVER_SOCKET`` (``-L``) (``tcp:HOST:PORT`` or
    ``tcp:PORT``) wins; otherwise ``ANDROID_ADB_SERVER_ADDRESS`` and
    ``ANDROID_ADB_SERVER_PORT``; the defaults are localhost and 5037.
    """
    env = os.environ if env is None else env
    socket_spec = env.get("ADB_SERVER_SOCKET", "").strip()
    if socket_spec:
        kind, _, rest = socket_spec.partition(":")
        host, _, port_text = rest.rpartition(":")
        if kind != "tcp" or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ConfigError(f"ADB_SERVER_SOCKET={socket_spec!r}: expected tcp:HOST:PORT "
                              "or tcp:PORT")
        return ServerSpec("local", (host or "127.0.0.1").strip("[]"), int(port_text))
    port_text = env.get("ANDROID_ADB_SERVER_PORT", "").strip()
    if port_text and (not port_text.isdigit() or not 0 < int(port_text) < 65536):
        raise ConfigError(f"ANDROID_ADB_SERVER_PORT={port_text!r}: expected a port 1-65535")
    host = env.get("ANDROID_ADB_SERVER_ADDRESS", "").strip() or "127.0.0.1"
    return ServerSpec("local", host, int(port_text) if port_text else ADB_DEFAULT_PORT)


def _default_servers() -> tuple[ServerSpec, ...]:
    return (local_server_spec(),)


@dataclass(frozen=True)
class FarmConfig:
    servers: tuple[ServerSpec, ...] = field(default_factory=_default_servers)
    devices: dict[str, DeviceSpec] = field(default_factory=dict)
    exclude: dict[str, str] = field(default_factory=dict)
    include_sim: bool = True
    source: str = "(default)"
    thermal: ThermalLimits = field(default_factory=ThermalLimits)

    def thermal_limits(self, serial: str) -> ThermalLimits:
        """The farm's limits with the phone's own overrides applied."""
        spec = self.devices.get(serial)
        return replace(self.thermal, **spec.thermal) if spec and spec.thermal else self.thermal

    def current_sign(self, serial: str) -> str:
        """How the phone's battery current reads while discharging (``auto``: learnt)."""
        spec = self.devices.get(serial)
        return spec.current_sign if spec else "auto"


@dataclass
class FarmDevice:
    """A phone as discovered: where it is, its state, its facts (when online)."""

    serial: str
    server: ServerSpec
    state: str
    spec: DeviceSpec
    facts: DeviceFacts | None = None
    excluded: str | None = None
    error: str | None = None
    facts_at: float | None = None  # time.monotonic() when the facts read began

    @property
    def nickname(self) -> str | None:
        return self.spec.nickname

    @property
    def tags(self) -> set[str]:
        tags = set(self.spec.tags)
        if self.server.name == SIM_SERVER_NAME:
            tags.add("sim")
        f = self.facts
        if f is not None:
            if f.soc_model:
                tags.add(f.soc_model.lower())
            if f.board_platform:
                tags.add(f.board_platform.lower())
            if f.marketed_ram_gb:
                tags.add(f"ram{f.marketed_ram_gb}")
            if f.android_release:
                tags.add(f"android{f.android_release.split('.')[0]}")
        return tags

    def device(self, farm: Farm) -> Device:
        device = Device(self.serial, farm.endpoint(self.server))
        if self.facts is not None and self.facts_at is not None:
            device.remember_facts(self.facts, self.facts_at)  # a run may take them (fresh)
        return device

    def to_dict(self) -> dict[str, Any]:
        holder = holder_of(self.serial)
        return {
            "serial": self.serial, "server": self.server.name, "nickname": self.nickname,
            "state": self.state, "tags": sorted(self.tags), "excluded": self.excluded,
            "error": self.error, "lease": holder.describe() if holder else None,
            "facts": self.facts.to_dict() if self.facts else None,
        }


def default_farm_path() -> Path:
    return harness_home() / FARM_FILE_NAME


def load_farm(path: Path | None = None) -> FarmConfig:
    """Read the farm file; a missing default file means "the local server only"."""
    explicit = path is not None
    path = path or default_farm_path()
    if not path.exists():
        if explicit:
            raise ConfigError(f"{path}: no such farm file")
        return FarmConfig()
    data = load_yaml(path)
    name = str(path)
    if data is None:
        return FarmConfig(servers=(), source=name)
    if not isinstance(data, PosDict):
        raise ConfigError(f"{name}:1: a farm file is a mapping (servers, devices, exclude)")
    check_keys(data, ("servers", "devices", "exclude", "sim", "thermal"), "the farm file")
    servers = _servers(name, data)
    devices: dict[str, DeviceSpec] = {}
    raw_devices = data.get("devices") or {}
    if not isinstance(raw_devices, dict):
        raise ConfigError(f"{pos_of(data, 'devices')}: devices must be a mapping")
    for serial, spec in raw_devices.items():
        devices[str(serial)] = _device_spec(name, raw_devices, serial, spec)
    nicknames = [d.nickname for d in devices.values() if d.nickname]
    dupes = {n for n in nicknames if nicknames.count(n) > 1}
    if dupes:
        raise ConfigError(f"{name}: nickname used twice: {', '.join(sorted(dupes))}")
    exclude = data.get("exclude") or {}
    if not isinstance(exclude, dict):
        raise ConfigError(f"{pos_of(data, 'exclude')}: exclude must map "
                          "serial -> reason")
    sim = data.get("sim", True)
    if not isinstance(sim, bool):
        raise ConfigError(f"{pos_of(data, 'sim')}: sim must be true or false")
    thermal = ThermalLimits(**_thermal(data, "thermal"))
    return FarmConfig(tuple(servers), devices, {str(k): str(v) for k, v in exclude.items()},
                      sim, name, thermal)


def _thermal(parent: Any, key: str) -> dict[str, float]:
    raw = parent.get(key) if isinstance(parent, dict) else None
    if raw is None:
        return {}
    if not isinstance(raw, PosDict):
        raise ConfigError(f"{pos_of(parent, key)}: thermal must be a mapping "
                          "(battery_c, cpu_c)")
    check_keys(raw, THERMAL_KEYS, "thermal")
    limits = {}
    for name, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{pos_of(raw, name)}: thermal {name} must be a number (°C)")
        limits[str(name)] = float(value)
    return limits


def _servers(name: str, data: PosDict) -> list[ServerSpec]:
    raw = data.get("servers")
    if raw is None:
        return [local_server_spec()]
    if not isinstance(raw, list):
        raise ConfigError(f"{pos_of(data, 'servers')}: servers must be a list")
    servers = []
    for i, item in enumerate(raw):
        if not isinstance(item, PosDict):
            raise ConfigError(f"{pos_of(data, 'servers')}: server {i + 1} must "
                              "be a mapping with host/port/name")
        check_keys(item, ("name", "host", "port"), "a server")
        port = item.get("port", ADB_DEFAULT_PORT)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ConfigError(f"{pos_of(item, 'port')}: port must be 1-65535")
        host = item.get("host", "127.0.0.1")
        if not isinstance(host, str):
            raise ConfigError(f"{pos_of(item, 'host')}: host must be a string")
        if not HOST_RE.fullmatch(host):
            raise ConfigError(f"{pos_of(item, 'host')}: host {host[:100]!r} is not a host name "
                              "or IP address")
        servers.append(ServerSpec(str(item.get("name", f"{host}:{port}")), host, port))
    names = [s.name for s in servers]
    if len(set(names)) != len(names) or SIM_SERVER_NAME in names:
        raise ConfigError(f"{name}: server names must be unique and not {SIM_SERVER_NAME!r}")
    return servers


def _device_spec(name: str, parent: Any, serial: Any, spec: Any) -> DeviceSpec:
    if spec is None:
        return DeviceSpec()
    if not isinstance(spec, PosDict):
        raise ConfigError(f"{pos_of(parent, serial)}: device {serial} must be a "
                          "mapping (nickname, tags)")
    check_keys(spec, ("nickname", "tags", "thermal", "current_sign"), f"device {serial}")
    sign = spec.get("current_sign", "auto")
    if sign not in CURRENT_SIGNS:
        raise ConfigError(f"{pos_of(spec, 'current_sign')}: current_sign must be one of "
                          f"{', '.join(CURRENT_SIGNS)}, not {quote(sign)}")
    tags = spec.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str | int) for t in tags):
        raise ConfigError(f"{pos_of(spec, 'tags')}: tags must be a list of words")
    for tag in tags:
        if not TAG_WORD_RE.fullmatch(str(tag).lower()):
            raise ConfigError(f"{pos_of(spec, 'tags')}: {str(tag)[:100]!r} is not a tag "
                              "(letters, digits, _ . -)")
    nickname = spec.get("nickname")
    if nickname is not None and not isinstance(nickname, str | int):
        raise ConfigError(f"{pos_of(spec, 'nickname')}: nickname must be a string")
    return DeviceSpec(str(nickname) if nickname is not None else None,
                      tuple(str(t).lower() for t in tags), _thermal(spec, "thermal"), sign)


def parse_tags(expr: str) -> list[list[tuple[bool, str]]]:
    """``a+b,c,!d`` -> or of ands of (negated, word); a malformed expression is refused."""
    alternatives: list[list[tuple[bool, str]]] = []
    for alternative in expr.split(","):
        terms: list[tuple[bool, str]] = []
        for raw in alternative.split("+"):
            word = raw.strip().lower()
            negated = word.startswith("!")
            word = word[1:].strip() if negated else word
            if not TAG_WORD_RE.fullmatch(word):
                shown = f"{raw.strip()!r}" if raw.strip() else "an empty term"
                raise UsageError(f"--device tag:{expr}: {shown} is not a tag (write tag:WORD, "
                                 "with , for or, + for and, ! for not: tag:sm8650+ram16,!sim)")
            terms.append((negated, word))
        alternatives.append(terms)
    return alternatives


def match_tags(expr: str, tags: set[str]) -> bool:
    """``a+b,c,!d``: or of ands; ``!`` negates one word."""
    return any(all((word not in tags) if negated else (word in tags) for negated, word in terms)
               for terms in parse_tags(expr))


def _check_selector(selector: str) -> None:
    if not selector.strip():
        raise UsageError("empty --device")
    if selector.startswith("tag:"):
        parse_tags(selector[4:])  # a malformed expression


class Farm:
    """The phones of all servers in a farm file, discovered on demand."""

    def __init__(self, config: FarmConfig | None = None) -> None:
        self.config = config or FarmConfig()
        # servers the last discover() could not reach, with the reason
        self.unreachable: list[tuple[ServerSpec, str]] = []

    def servers(self) -> list[ServerSpec]:
        servers = list(self.config.servers)
        if self.config.include_sim:
            port = _sim_port()
            if port is not None:
                servers.append(ServerSpec(SIM_SERVER_NAME, "127.0.0.1", port))
        return servers

    def endpoint(self, server: ServerSpec) -> AdbEndpoint:
        if server.name == SIM_SERVER_NAME:
            return AdbEndpoint(server.host, server.port, _restart_sim_server, SIM_SERVER_NAME)
        if server.host in ("127.0.0.1", "localhost", "::1"):
            endpoint = AdbEndpoint.local(server.port)
            endpoint.name = server.name
            return endpoint
        return AdbEndpoint(server.host, server.port, None, server.name)

    def discover(self, with_facts: bool = True) -> list[FarmDevice]:
        """Every phone on every server (excluded ones flagged), with facts when online."""
        found: list[FarmDevice] = []
        self.unreachable = []
        for server in self.servers():
            try:
                infos = self.endpoint(server).devices()
            except DeviceError as exc:  # not reachable: the CLI names it, doctor explains
                log.info("adb server %s: %s", server.name, exc)
                self.unreachable.append((server, str(exc) or type(exc).__name__))
                continue
            for info in infos:
                spec = self.config.devices.get(info.serial, DeviceSpec())
                found.append(FarmDevice(info.serial, server, str(info.state), spec,
                                        excluded=self.config.exclude.get(info.serial)))
        if with_facts:
            self._fill_facts([d for d in found if d.state == "device" and not d.excluded])
        return found

    def _fill_facts(self, devices: Sequence[FarmDevice]) -> None:
        def read(item: FarmDevice) -> None:
            try:
                read_at = time.monotonic()
                item.facts = item.device(self).facts()
                item.facts_at = read_at
            except DeviceError as exc:
                item.error = str(exc)

        with concurrent.futures.ThreadPoolExecutor(max_workers=FACTS_WORKERS) as pool:
            list(pool.map(read, devices))

    def select(self, selector: str, requirements: Requirements | None = None,
               devices: Iterable[FarmDevice] | None = None,
               facts: bool = True) -> Selection:
        """The phones ``selector`` names that meet ``requirements``, and why others don't.

        ``facts=False`` (no ``requirements``): a command that needs no facts (``harness
        push``, ``assets status``) reads none unless ``tag:`` needs them to match; an online
        phone is then eligible on its adb state alone.
        """
        if requirements is not None:
            facts = True
        _check_selector(selector)
        pool = list(devices) if devices is not None else self.gather(selector, facts)
        named = self._named(selector, pool)
        need_facts = facts or selector.startswith("tag:")
        chosen: list[FarmDevice] = []
        rejected: list[tuple[FarmDevice, str]] = []
        for item in named:
            why = self._rejection(item, requirements, need_facts)
            if why:
                rejected.append((item, why))
            else:
                chosen.append(item)
        return Selection(selector, chosen, rejected)

    def gather(self, selector: str, facts: bool = True) -> list[FarmDevice]:
        """What :meth:`select` reads from the farm for ``selector``: every phone's adb state
        and the facts that ``facts`` and the selector need. A caller with other work to do
        meanwhile reads this ahead (see :class:`Ahead`) and passes it as ``devices``."""
        _check_selector(selector)  # before any discovery
        # A serial or nickname needs the facts of the phone it names only (issue 12: four
        # concurrent runs read sixteen phones' facts); sim and tag: need every phone's.
        pool = self.discover(with_facts=False)
        if (facts and selector == "sim") or selector.startswith("tag:"):
            self._fill_facts([d for d in pool if d.state == "device" and not d.excluded])
        elif facts:
            self._fill_facts([d for d in self._named(selector, pool)
                              if d.state == "device" and not d.excluded])
        return pool

    def _named(self, selector: str, pool: list[FarmDevice]) -> list[FarmDevice]:
        if selector == "sim":
            pool = [d for d in pool if d.server.name == SIM_SERVER_NAME]
            named = pool
        elif selector.startswith("tag:"):
            expr = selector[4:]
            named = [d for d in pool if match_tags(expr, d.tags)]
        else:
            sim_names = _sim_serials() if any(d.server.name == SIM_SERVER_NAME
                                              for d in pool) else {}
            named = [d for d in pool if selector in (d.serial, d.nickname)
                     or (d.server.name == SIM_SERVER_NAME
                         and sim_names.get(d.serial) == selector)]
            if not named:
                known = sorted({d.serial for d in pool} | {d.nickname for d in pool
                                                          if d.nickname})
                raise DeviceError(f"no phone {selector!r} on any server "
                                  f"({len(pool)} phone(s) seen)"
                                  f"{suggest(selector, known)}",
                                  hint="`harness devices` lists the phones")
        return named

    def _rejection(self, item: FarmDevice, requirements: Requirements | None,
                   need_facts: bool = True) -> str:
        if item.excluded:
            return f"excluded in the farm file: {item.excluded}"
        if item.state != "device":
            return f"state is {item.state}"
        if not need_facts:
            return ""
        if item.facts is None:
            return f"facts unreadable: {item.error or 'unknown error'}"
        if requirements is not None:
            f = item.facts
            unknown = [] if f.marketed_ram_gb is not None or requirements.min_ram_gb is None \
                else ["RAM size unknown"]
            return "; ".join(unknown + requirements.unmet(f.marketed_ram_gb, f.soc_model or None))
        return ""


@dataclass
class Selection:
    selector: str
    chosen: list[FarmDevice]
    rejected: list[tuple[FarmDevice, str]]

    def explain(self) -> list[str]:
        return [f"{d.serial}: {why}" for d, why in self.rejected]

    def require_one(self) -> list[FarmDevice]:
        if not self.chosen:
            lines = self.explain()
            detail = "; ".join(lines) if lines else "no phone matched"
            raise DeviceError(f"no eligible phone for --device {self.selector}: {detail}")
        return self.chosen


def _sim_port() -> int | None:
    from harness.sim.farm import Farm as SimFarm

    try:
        state = SimFarm(sim_dir()).load()
    except HarnessError:
        return None
    return state.adb_port if state is not None else None


def _sim_serials() -> dict[str, str]:
    """Virtual phones: adb serial (``127.0.0.1:PORT``) -> the serial ``harness sim status``
    shows (``sim01-sm8650``), so that ``--device`` takes either."""
    from harness.sim.farm import Farm as SimFarm

    try:
        state = SimFarm(sim_dir()).load()
    except HarnessError:
        return {}
    return {} if state is None else {p.adb_serial: p.serial for p in state.phones}


def _restart_sim_server() -> None:
    from harness.sim.farm import Farm as SimFarm

    SimFarm(sim_dir()).restart_adb()


def ensure_sim() -> None:
    """Start the virtual farm with its defaults unless it already runs; a farm whose adb
    server died gets it back with the same phones (never a new default farm)."""
    from harness.sim.farm import Farm as SimFarm

    sim = SimFarm(sim_dir())
    status = sim.status()
    if status is None:
        sim.up()
    elif not status.adb_alive:
        sim.restart_adb()


class Ahead:
    """:func:`resolve`'s reads of the farm (the farm file, every server's phones, the named
    phone's facts) started now in a thread, for a caller with other work meanwhile: ``harness
    run`` renders its recipe (~60 ms of CPU) while the phone answers the facts read (one
    round trip, ~90 ms on a virtual phone, mostly waiting). Only for a selector that starts
    nothing (not ``sim``); a daemon thread: it only reads, so an error or Ctrl-C meanwhile
    leaves it behind harmlessly."""

    def __init__(self, selector: str, farm_path: Path | None = None) -> None:
        self.selector, self.farm_path = selector, farm_path
        self._done = threading.Event()
        self._found: tuple[Farm, list[FarmDevice]] | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._read, name="resolve-ahead", daemon=True).start()

    @staticmethod
    def fits(selector: str) -> bool:
        return selector not in ("sim", "auto")

    def _read(self) -> None:
        try:
            farm = Farm(load_farm(self.farm_path))
            self._found = farm, farm.gather(self.selector)
        except BaseException as exc:
            self._error = exc
        finally:
            self._done.set()

    def result(self) -> tuple[Farm, list[FarmDevice]]:
        while not self._done.wait(0.05):
            cancel.check()
        if self._error is not None:
            raise self._error
        assert self._found is not None
        return self._found


def resolve(selector: str, farm_path: Path | None = None,
            requirements: Requirements | None = None, many: bool = False,
            facts: bool = True, ahead: Ahead | None = None) -> list[Device]:
    """Turn ``--device`` into Devices: one (the first eligible) or, with ``many``, all.

    ``sim`` starts the virtual farm when it is not running. ``facts=False``: the command
    needs no device facts, so none are read unless ``tag:`` needs them (see ``select``).
    ``ahead``: the same reads, started earlier for this selector and farm file.
    """
    if ahead is not None and (ahead.selector, ahead.farm_path) == (selector, farm_path):
        farm, pool = ahead.result()
        chosen = farm.select(selector, requirements, devices=pool).require_one()
    else:
        config = load_farm(farm_path)
        if selector == "sim":
            ensure_sim()
            config = replace(config, include_sim=True)
        farm = Farm(config)
        chosen = farm.select(selector, requirements, facts=facts).require_one()
    if not many:  # prefer a phone no other harness job holds
        chosen = sorted(chosen, key=lambda d: holder_of(d.serial) is not None)[:1]
    items = chosen
    return [item.device(farm) for item in items]


def ensure_demo_assets(sources: Iterable[Path]) -> None:
    """Build (or refresh) the virtual farm's demo tree when one of ``sources`` lies in it.

    ``sources`` are the local sources of the asset sets about to be synced.
    """
    demo = sim_dir() / "demo_assets"  # the tree harness.sim.assets builds
    if any(Path(src).is_relative_to(demo) for src in sources):
        from harness.sim.demostamp import is_current

        if not is_current(demo):  # else skip harness.sim.assets: numpy, ~60 ms
            from harness.sim.assets import demo_assets_dir as build_demo_tree

            build_demo_tree()
