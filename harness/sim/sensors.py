"""The virtual phone's telemetry sources that follow its simulated binaries: memory pressure
(``/proc/pressure/memory``), the battery's current and voltage, and the Adreno GPU's kgsl
files.

- PSI (``Documentation/accounting/psi.rst``): ``some``/``full`` lines with ``avg10``,
  ``avg60``, ``avg300`` (% of time stalled, exponentially averaged over 10/60/300 s) and
  ``total`` (µs stalled). The stall share rises as MemAvailable falls below
  :data:`PSI_ONSET_FRACTION` of MemTotal (reclaim and zram begin to cost); ``full`` is a part
  of ``some``. Averages advance in simulated seconds, like every other physical constant.
- Battery: the cell sees the load (the binaries' power, :data:`IDLE_W` beside them) minus
  what the USB port feeds (:data:`harness.sim.state.USB_CHARGE_W`, as the battery-level model
  has it): ``current_now`` is that net flow over the voltage, in the profile's unit and sign
  convention (``battery_current_unit`` µA or mA, ``battery_discharge_sign``), and
  ``voltage_now`` (µV) sags under load by the cell's internal resistance.
- kgsl (``/sys/class/kgsl/kgsl-3d0/``): ``gpu_busy_percentage``, ``gpubusy`` (busy and total
  time of the last window), ``gpuclk`` (Hz), ``clock_mhz``, ``max_gpuclk``; the GPU's share
  follows the binaries' power above their CPU-only level (weights loading, MNN CLIP), and its
  clock the throttle. Mode 0000 where the profile says the build's SELinux policy denies them
  (``kgsl_readable: false``): they exist but cannot be read, as on such phones.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.sim.profiles import PhoneProfile

PSI_FILE = "pressure_memory"  # in ctl; bind-mounted over /proc/pressure/memory
PSI_STATE_FILE = "pressure.json"
PSI_ONSET_FRACTION = 0.12  # chosen: stalls begin below 12 % of MemTotal available
PSI_MAX_SOME = 0.6  # chosen: share of time stalled (some) when nothing is left
PSI_FULL_SHARE = 0.35  # chosen: part of the "some" stall in which every task waits
PSI_WINDOWS_S = (10.0, 60.0, 300.0)
IDLE_W = 0.0  # the idle phone's own draw is not modelled (the thermal model has none either)
CELL_RESISTANCE_OHM = 0.12  # chosen: a phone cell plus its path, for the voltage sag
GPU_CPU_ONLY_W = 5.5  # chosen: below this a binary's power is CPU work (init, MNN CLIP)
GPU_FULL_W = 9.0  # at this the GPU is (nearly) always busy (the UNet loop)
GPU_MAX_BUSY_PCT = 98.0
GPU_MAX_HZ = 903_000_000  # Adreno 750's top clock; the others scale the same
GPU_MIN_HZ = 220_000_000
GPUBUSY_WINDOW_US = 100_000  # kgsl's devfreq sampling window


@dataclass
class PsiState:
    some: tuple[float, float, float] = (0.0, 0.0, 0.0)  # avg10, avg60, avg300 (0..1)
    full: tuple[float, float, float] = (0.0, 0.0, 0.0)
    some_total_us: float = 0.0
    full_total_us: float = 0.0


def stall_share(profile: PhoneProfile, available_kb: int) -> float:
    """Share of time some task waits for memory at this MemAvailable."""
    onset = profile.memtotal_kb * PSI_ONSET_FRACTION
    if available_kb >= onset:
        return 0.0
    return PSI_MAX_SOME * min(1.0, (onset - max(available_kb, 0)) / onset)


def advance_psi(st: PsiState, share: float, sim_seconds: float) -> PsiState:
    """The averages after ``sim_seconds`` at stall share ``share``."""
    def avg(old: tuple[float, float, float], value: float) -> tuple[float, float, float]:
        decays = [math.exp(-sim_seconds / w) for w in PSI_WINDOWS_S]
        a, b, c = (o * d + value * (1 - d) for o, d in zip(old, decays, strict=True))
        return a, b, c

    full = share * PSI_FULL_SHARE
    return PsiState(avg(st.some, share), avg(st.full, full),
                    st.some_total_us + share * sim_seconds * 1e6,
                    st.full_total_us + full * sim_seconds * 1e6)


def psi_text(st: PsiState) -> str:
    def line(kind: str, avgs: tuple[float, float, float], total: float) -> str:
        a10, a60, a300 = (100.0 * a for a in avgs)
        return f"{kind} avg10={a10:.2f} avg60={a60:.2f} avg300={a300:.2f} total={int(total)}\n"

    return line("some", st.some, st.some_total_us) + line("full", st.full, st.full_total_us)


def load_psi(ctl: Path) -> PsiState:
    try:
        raw = json.loads((ctl / PSI_STATE_FILE).read_text())
        return PsiState(tuple(raw["some"]), tuple(raw["full"]),
                        float(raw["some_total_us"]), float(raw["full_total_us"]))
    except (OSError, ValueError, KeyError, TypeError):
        return PsiState()


def save_psi(ctl: Path, st: PsiState) -> None:
    tmp = ctl / f".{PSI_STATE_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(asdict(st)))
    tmp.replace(ctl / PSI_STATE_FILE)


# ---- battery -------------------------------------------------------------------------------

@dataclass(frozen=True)
class BatteryReading:
    current_now: int  # in the profile's unit and sign
    voltage_now_uv: int
    net_w: float  # out of the cell (positive: discharging)


def battery_reading(profile: PhoneProfile, level: float, load_w: float,
                    charge_w: float) -> BatteryReading:
    """``current_now`` / ``voltage_now`` of a cell at ``level`` % under ``load_w`` with the
    port feeding ``charge_w`` (none once the cell is full and idle)."""
    fed = charge_w if level < 100 else min(charge_w, load_w + IDLE_W)
    net_w = load_w + IDLE_W - fed
    ocv = 3.6 + 0.006 * level
    amps = net_w / ocv
    volts = ocv - amps * CELL_RESISTANCE_OHM
    amps = net_w / volts
    scale = 1e3 if profile.battery_current_unit == "mA" else 1e6
    sign = 1 if profile.battery_discharge_sign == "positive" else -1
    return BatteryReading(round(amps * scale) * sign, round(volts * 1e6), net_w)


# ---- GPU -----------------------------------------------------------------------------------

def gpu_busy_pct(power_w: float) -> float:
    """The GPU's busy share for binaries drawing ``power_w`` (sum over processes)."""
    share = (power_w - GPU_CPU_ONLY_W) / (GPU_FULL_W - GPU_CPU_ONLY_W)
    return GPU_MAX_BUSY_PCT * min(max(share, 0.0), 1.0)


def kgsl_files(busy_pct: float, throttle: float) -> dict[str, str]:
    top = int(GPU_MAX_HZ / max(throttle, 1.0))
    hz = GPU_MIN_HZ if busy_pct <= 0 else max(GPU_MIN_HZ, top)
    busy_us = round(GPUBUSY_WINDOW_US * busy_pct / 100)
    return {"gpu_busy_percentage": f"{round(busy_pct)} %\n",
            "gpubusy": f"{busy_us:>7} {GPUBUSY_WINDOW_US:>7} \n",
            "gpuclk": f"{hz}\n", "clock_mhz": f"{hz // 1_000_000}\n",
            "max_gpuclk": f"{top}\n", "devfreq/cur_freq": f"{hz}\n"}


__all__ = ["BatteryReading", "PsiState", "advance_psi", "battery_reading", "gpu_busy_pct",
           "kgsl_files", "psi_text", "stall_share"]
