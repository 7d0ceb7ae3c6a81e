"""Telemetry through every step: the device-side sampler, its lines, samples and metrics.

With each step harness starts ``harness/device_assets/sampler.sh`` on the phone over ONE adb stream
(:class:`harness.device.stream.ShellStream`; the script travels inline in the command), which
prints a line every ``interval_s`` with the phone's own clock (``/proc/uptime``). Its lines
are parsed here (:class:`SamplerParser`: a partial last line, unknown keys and garbage are
skipped, not fatal), normalised to canonical sample names (:func:`normalise`), stored in the
``samples`` table and the run folder's ``samples.csv``, and reduced to per-step metrics
(:func:`reduce_step`).

Canonical sample names (the ``samples`` table's contract): ``mem_available_kb``; ``rss_kb``,
``hwm_kb``, ``swap_kb`` (summed over the step's process tree — VmHWM summed is an upper bound
of the tree's peak); ``psi_some_avg10``, ``psi_full_avg10`` (%); ``current_ua`` (µA, positive
= out of the battery), ``voltage_uv`` (µV), ``power_w`` (W drawn from the battery);
``temp_<zone type>_c``; ``cpu<policy>_cur_khz``, ``cpu<policy>_max_khz``; ``gpu_busy_pct``,
``gpu_clk_mhz``.

Battery current, normalised (vendors differ: :func:`current_convention`):

- unit: µA on most phones, mA on some (Samsung's driver): a median magnitude under
  :data:`MA_BELOW` (30 A in mA, 30 mA in µA) is taken for mA; ``voltage_now`` likewise by
  magnitude (µV, mV or V);
- sign: the kernel's ABI (``Documentation/ABI/testing/sysfs-class-power``) and
  BatteryManager say negative = discharging, many Qualcomm drivers print discharge positive.
  ``auto`` reads it from the samples whose battery status is ``Discharging`` (no charger: the
  current can only flow out); with none (a phone on USB says ``Charging`` even when the load
  outruns the charger) the kernel ABI's sign is assumed and the result says so. A phone on a
  charger measures the battery's net flow (load minus charger), not the load: the step's
  ``on_charger`` metric says when that was the case.

Per-step metrics (the ``metrics`` table, beside the step's ``[Perf]`` figures):
``peak_rss_kb``, ``peak_hwm_kb``, ``min_mem_available_kb``, ``max_psi_some_avg10``,
``mean_power_w``, ``energy_j`` (trapezoid integral of ``power_w``), ``energy_per_image_j``,
``cpu_capped_s`` (time with any policy's ``scaling_max_freq`` below its ``cpuinfo_max_freq``),
``max_temp_c``, ``on_charger`` (share of samples not ``Discharging``), ``samples``.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import math
import re
import statistics
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.device import devshell
from harness.device.device import Device
from harness.device.errors import DeviceError
from harness.device.stream import ShellStream
from harness.errors import UsageError
from harness.farm.inventory import CURRENT_SIGNS
from harness.logs import get_logger
from harness.results.samples import record_samples, run_samples
from harness.results.store import Store

log = get_logger(__name__)

# package data (setup.cfg), so an installed wheel has it as a source checkout does
SAMPLER_FILE = Path(__file__).resolve().parents[1] / "device_assets" / "sampler.sh"
DEFAULT_INTERVAL_S = 0.1
MIN_INTERVAL_S = 0.01  # /proc/uptime counts hundredths of a second
DEFAULT_SLOW_EVERY = 5  # thermal zones every 5th sample (reading one can take ms)
SAMPLER_MAX_S = 86400  # the sampler's own life limit, whatever happens to harness
STOP_WAIT_S = 2.0  # how long a stop waits for the sampler's last line before closing
RESTART_POLL_S = 0.5  # how often a lost sampler's phone is tried again
MA_BELOW = 30_000  # median |current_now| under this is mA, not µA
CSV_NAME = "samples.csv"


@dataclass(frozen=True)
class TelemetryOptions:
    """The run option / recipe switch: telemetry on or off, and how often it samples."""

    enabled: bool = True
    interval_s: float = DEFAULT_INTERVAL_S
    slow_every: int = DEFAULT_SLOW_EVERY
    current_sign: str = "auto"  # auto | discharge-negative | discharge-positive

    def __post_init__(self) -> None:
        if not MIN_INTERVAL_S <= self.interval_s <= 3600:
            raise UsageError(f"telemetry interval must be {MIN_INTERVAL_S}-3600 s, got "
                             f"{self.interval_s:g}")
        if self.slow_every < 1:
            raise UsageError("telemetry slow_every must be at least 1")
        if self.current_sign not in CURRENT_SIGNS:
            raise UsageError(f"current sign must be one of {', '.join(CURRENT_SIGNS)}")


# ---- the sampler's lines -------------------------------------------------------------------

@dataclass(frozen=True)
class RawSample:
    uptime_s: float
    values: dict[str, str]


@dataclass
class SamplerParser:
    """The sampler's output, line by line; tolerant of what it does not know."""

    sampler_pid: int | None = None
    zones: dict[str, str] = field(default_factory=dict)  # zone number -> type
    cpuinfo_max: dict[str, int] = field(default_factory=dict)  # policy -> kHz
    skipped: list[str] = field(default_factory=list)
    samples: list[RawSample] = field(default_factory=list)
    end: str | None = None
    ignored_lines: int = 0
    cut_lines: int = 0  # sample lines without their final ";" (the stream was cut)
    stderr: list[str] = field(default_factory=list)

    def feed(self, stream: str, line: str) -> None:
        if stream != "stdout":
            self.stderr.append(line)
            return
        words = line.split()
        if not words:
            return
        if words[0] == "S" and len(words) >= 2:
            self._sample(words)
        elif words[0] == "#" and len(words) >= 2:
            self._header(words[1:])
        else:
            self.ignored_lines += 1

    def _sample(self, words: list[str]) -> None:
        try:
            uptime = float(words[1])
        except ValueError:
            self.ignored_lines += 1
            return
        fields = words[2:]
        if fields and fields[-1] == ";":
            fields.pop()
        else:  # cut short: its last field may be a truncated number
            self.cut_lines += 1
            fields = fields[:-1]
        values = {}
        for word in fields:
            key, sep, value = word.partition("=")
            if sep and key and value:
                values[key] = value
        self.samples.append(RawSample(uptime, values))

    def _header(self, words: list[str]) -> None:
        kind, rest = words[0], words[1:]
        if kind == "harness-sampler":
            for word in rest:
                if word.startswith("pid=") and word[4:].isdigit():
                    self.sampler_pid = int(word[4:])
        elif kind == "zone" and rest:
            self.zones[rest[0]] = rest[1] if len(rest) > 1 else f"zone{rest[0]}"
        elif kind == "policy" and rest:
            self.cpuinfo_max[rest[0]] = int(rest[1]) if len(rest) > 1 and rest[1].isdigit() \
                else 0
        elif kind == "skip" and rest and " ".join(rest) not in self.skipped:
            self.skipped.append(" ".join(rest))
        elif kind == "end":
            self.end = rest[0] if rest else "end"


# ---- normalised samples --------------------------------------------------------------------

@dataclass(frozen=True)
class Convention:
    """How this phone reports battery current and voltage."""

    current_scale: float  # raw -> µA
    discharge_sign: int  # +1: discharge reads positive; -1: negative
    voltage_scale: float  # raw -> µV
    how: str  # what was inferred and from what


def _num(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def current_convention(samples: Sequence[RawSample], sign: str = "auto") -> Convention:
    """Units and sign of ``current_now`` / ``voltage_now`` from the samples themselves."""
    currents = [v for s in samples if (v := _num(s.values.get("cur"))) is not None]
    nonzero = [abs(v) for v in currents if v]
    scale = 1000.0 if nonzero and statistics.median(nonzero) < MA_BELOW else 1.0
    unit = "mA" if scale == 1000.0 else "µA"
    volts = [v for s in samples if (v := _num(s.values.get("volt"))) is not None and v > 0]
    vmed = statistics.median(volts) if volts else 0.0
    vscale = 1.0 if vmed >= 100_000 else 1000.0 if vmed >= 100 else 1e6
    if sign != "auto":
        chosen = 1 if sign == "discharge-positive" else -1
        return Convention(scale, chosen, vscale, f"current in {unit}, sign {sign} (set)")
    discharging = [v for s in samples if s.values.get("bst") == "Discharging"
                   and (v := _num(s.values.get("cur"))) is not None and v]
    if discharging:
        chosen = 1 if statistics.median(discharging) > 0 else -1
        word = "positive" if chosen > 0 else "negative"
        return Convention(scale, chosen, vscale,
                          f"current in {unit}, discharge reads {word} (seen while Discharging)")
    return Convention(scale, -1, vscale, f"current in {unit}, discharge assumed negative "
                      "(kernel ABI; no Discharging sample to tell)")


_ZONE_CHARS = re.compile(r"[^a-z0-9]+")


def zone_names(zones: Mapping[str, str]) -> dict[str, str]:
    """Zone number -> ``temp_<type>_c`` (types made name-safe; duplicates get _<n>)."""
    out: dict[str, str] = {}
    seen: set[str] = set()
    for number in sorted(zones, key=lambda n: int(n) if n.isdigit() else 0):
        base = _ZONE_CHARS.sub("_", zones[number].lower()).strip("_") or f"zone{number}"
        name = f"temp_{base}_c"
        if name in seen:
            name = f"temp_{base}_{number}_c"
        seen.add(name)
        out[number] = name
    return out


def celsius(raw: float) -> float:
    """A thermal zone's reading in °C: millidegrees on most phones, tenths or degrees on some."""
    if abs(raw) >= 1000:
        return raw / 1000.0
    if abs(raw) >= 150:
        return raw / 10.0
    return raw


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the step's first sample (phone clock)
    values: dict[str, float]
    status: str | None = None  # the battery's status word


def _gpu(raw: Mapping[str, str], out: dict[str, float]) -> None:
    if (busy := _num(raw.get("gpu_busy"))) is not None:
        out["gpu_busy_pct"] = busy
    elif "gpubusy" in raw:
        parts = [_num(p) for p in raw["gpubusy"].split(",")]
        if len(parts) == 2 and parts[0] is not None and parts[1]:
            out["gpu_busy_pct"] = 100.0 * parts[0] / parts[1]
    if (mhz := _num(raw.get("gpu_mhz"))) is not None:
        out["gpu_clk_mhz"] = mhz
    elif (hz := _num(raw.get("gpuclk"))) is not None:
        out["gpu_clk_mhz"] = hz / 1e6


_DIRECT = {"mem": "mem_available_kb", "rss": "rss_kb", "hwm": "hwm_kb", "swap": "swap_kb",
           "psi_some": "psi_some_avg10", "psi_full": "psi_full_avg10"}


def normalise(parser: SamplerParser, conv: Convention | None = None) -> list[Sample]:
    """Canonical samples from the parsed lines (unknown keys are left out)."""
    if not parser.samples:
        return []
    conv = conv or current_convention(parser.samples)
    zones = zone_names(parser.zones)
    t0 = parser.samples[0].uptime_s
    out = []
    for raw in parser.samples:
        values: dict[str, float] = {}
        for key, name in _DIRECT.items():
            if (v := _num(raw.values.get(key))) is not None:
                values[name] = v
        if values.get("rss_kb") == 0 and raw.values.get("n") == "0":
            for name in ("rss_kb", "hwm_kb", "swap_kb"):  # the tree is gone: no reading
                values.pop(name, None)
        cur, volt = _num(raw.values.get("cur")), _num(raw.values.get("volt"))
        if cur is not None:
            values["current_ua"] = cur * conv.current_scale * conv.discharge_sign
        if volt is not None:
            values["voltage_uv"] = volt * conv.voltage_scale
        if cur is not None and volt is not None:
            values["power_w"] = values["current_ua"] * values["voltage_uv"] * 1e-12
        for number, name in zones.items():
            if (v := _num(raw.values.get(f"z{number}"))) is not None:
                values[name] = celsius(v)
        for policy in parser.cpuinfo_max:
            for key, kind in ((f"cur{policy}", "cur"), (f"max{policy}", "max")):
                if (v := _num(raw.values.get(key))) is not None:
                    values[f"cpu{policy}_{kind}_khz"] = v
        _gpu(raw.values, values)
        out.append(Sample(round(raw.uptime_s - t0, 3), values, raw.values.get("bst")))
    return out


# ---- per-step metrics ----------------------------------------------------------------------

def _series(samples: Sequence[Sample], name: str) -> list[tuple[float, float]]:
    return [(s.t, s.values[name]) for s in samples if name in s.values]


def integrate(points: Sequence[tuple[float, float]]) -> float:
    """Trapezoid integral of (t, value) points."""
    return sum((t1 - t0) * (v0 + v1) / 2 for (t0, v0), (t1, v1) in itertools.pairwise(points))


def capped_seconds(samples: Sequence[Sample], cpuinfo_max: Mapping[str, int]) -> float:
    """Time with any policy's scaling_max_freq below its hardware maximum."""
    total = 0.0
    for here, after in itertools.pairwise(samples):
        if any(hw and (cap := here.values.get(f"cpu{p}_max_khz")) is not None and cap < hw
               for p, hw in cpuinfo_max.items()):
            total += after.t - here.t
    return total


def reduce_step(samples: Sequence[Sample], cpuinfo_max: Mapping[str, int],
                images: int = 1) -> dict[str, float]:
    """The step's telemetry metrics (only those its samples can give)."""
    out: dict[str, float] = {"samples": float(len(samples))}
    if not samples:
        return out
    for metric, name, pick in (("peak_rss_kb", "rss_kb", max), ("peak_hwm_kb", "hwm_kb", max),
                               ("min_mem_available_kb", "mem_available_kb", min),
                               ("max_psi_some_avg10", "psi_some_avg10", max)):
        values = [v for _t, v in _series(samples, name)]
        if values:
            out[metric] = float(pick(values))
    power = _series(samples, "power_w")
    if power:
        span = power[-1][0] - power[0][0]
        energy = integrate(power)
        out["mean_power_w"] = energy / span if span > 0 else power[0][1]
        out["energy_j"] = energy
        out["energy_per_image_j"] = energy / max(images, 1)
    statuses = [s.status for s in samples if s.status]
    if statuses:
        out["on_charger"] = sum(1 for w in statuses if w != "Discharging") / len(statuses)
    if cpuinfo_max:
        out["cpu_capped_s"] = capped_seconds(samples, cpuinfo_max)
    temps = [v for s in samples for k, v in s.values.items() if k.startswith("temp_")]
    if temps:
        out["max_temp_c"] = max(temps)
    return out


# ---- the sampler on the phone --------------------------------------------------------------

def sampler_script() -> str:
    try:
        return SAMPLER_FILE.read_text()
    except OSError as exc:
        raise UsageError(f"the telemetry sampler is missing: {SAMPLER_FILE}: "
                         f"{exc.strerror}") from exc


def sampler_command(target_pid: int, options: TelemetryOptions,
                    max_s: float = SAMPLER_MAX_S) -> str:
    """The whole sampler as one device command: its arguments, then its text."""
    args = [f"{options.interval_s:g}", str(int(target_pid)), str(int(max_s)),
            str(options.slow_every)]
    return f"set -- {' '.join(devshell.quote(a) for a in args)}\n{sampler_script()}"


@dataclass
class StepTelemetry:
    """What the sampler saw during one step."""

    parser: SamplerParser
    samples: list[Sample]
    convention: Convention | None
    error: str | None = None

    def metrics(self, images: int = 1) -> dict[str, float]:
        return reduce_step(self.samples, self.parser.cpuinfo_max, images)


class Sampler:
    """The sampler of one step; :meth:`stop` returns what it saw.

    One stream at a time. When the connection is lost mid-step (a USB drop, an adb server
    restart: adbd then kills the sampler, never the detached step) a watcher starts a new
    sampler once the phone answers again; the phone's clock keeps the samples in order.
    """

    def __init__(self, device: Device, target_pid: int, options: TelemetryOptions) -> None:
        self.device = device
        self.options = options
        self.parser = SamplerParser()
        self.command = sampler_command(target_pid, options)
        self.stream = self._new_stream()
        self.restarts = 0
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True,
                                         name=f"sampler-{device.serial}")

    def _new_stream(self) -> ShellStream:
        return ShellStream(self.device, self.command, self.parser.feed)

    @classmethod
    def start(cls, device: Device, target_pid: int | None, options: TelemetryOptions,
              warn: Callable[[str], None] = lambda text: None) -> Sampler | None:
        """Start sampling ``target_pid``'s tree; None (with a warning) when it cannot."""
        if not options.enabled or target_pid is None:
            return None
        sampler = cls(device, target_pid, options)
        try:
            sampler.stream.start()
        except DeviceError as exc:
            warn(f"telemetry: the sampler did not start: {exc}")
            return None
        sampler._watcher.start()
        return sampler

    def _watch(self) -> None:
        while not self._stopping.is_set():
            stream = self.stream
            if stream.is_alive():
                self._stopping.wait(RESTART_POLL_S)
                continue
            if stream.error is None or self.parser.end is not None:
                return  # it ended as it should (the step is over, or it was asked to)
            try:
                fresh = self._new_stream()
                fresh.start()
            except DeviceError:
                self._stopping.wait(RESTART_POLL_S)
                continue
            self.stream = fresh
            self.restarts += 1
            log.info("%s: telemetry sampler restarted after: %s", self.device.serial,
                     stream.error)

    def stop(self) -> StepTelemetry:
        self._stopping.set()
        if self._watcher.is_alive():
            self._watcher.join(STOP_WAIT_S)
        self.stream.send(b"q\n")
        self.stream.stop(max(STOP_WAIT_S, 3 * self.options.interval_s))
        conv = current_convention(self.parser.samples, self.options.current_sign) \
            if self.parser.samples else None
        error = self.stream.error
        if self.restarts:
            error = f"{error}; " if error else ""
            error += f"the sampler was restarted {self.restarts} time(s) after a lost connection"
        return StepTelemetry(self.parser, normalise(self.parser, conv), conv, error)


# ---- keeping it ----------------------------------------------------------------------------

def write_csv(path: Path, rows: Iterable[tuple[str, float, str, float]]) -> None:
    """``samples.csv``: one row per (step, t), one column per sample name."""
    table: dict[tuple[str, float], dict[str, float]] = {}
    names: set[str] = set()
    for step, t, name, value in rows:
        table.setdefault((step, t), {})[name] = value
        names.add(name)
    columns = sorted(names)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "t", *columns])
        for (step, t), values in table.items():
            writer.writerow([step, f"{t:.3f}", *(f"{values[c]:.10g}" if c in values else ""
                                                 for c in columns)])


def keep(store: Store, run_id: str, step: str, run_dir: Path, seen: StepTelemetry,
         images: int = 1) -> dict[str, float]:
    """Store a step's samples and metrics, rewrite the run folder's CSV; return the metrics."""
    record_samples(store, run_id, step, ((s.t, s.values) for s in seen.samples))
    metrics = seen.metrics(images)
    store.record_metrics(run_id, step, metrics)
    with contextlib.suppress(OSError):
        write_csv(run_dir / CSV_NAME,
                  ((r.step, r.t, r.name, r.value) for r in run_samples(store, run_id)))
    return metrics


def describe(seen: StepTelemetry) -> list[str]:
    """Notes for the step's log: skipped sources (once each), the current convention, why
    the sampler ended early."""
    notes = [f"telemetry: skipped {s}" for s in seen.parser.skipped]
    if seen.convention is not None:
        notes.append(f"telemetry: {seen.convention.how}")
    if seen.error:
        notes.append(f"telemetry: {seen.error}")
    return notes


__all__ = ["Sampler", "SamplerParser", "StepTelemetry", "TelemetryOptions", "current_convention",
           "keep", "normalise", "reduce_step", "sampler_command", "write_csv"]
