"""A validity verdict per bench run, with its reason in words, and the noisy-run check.

Verdicts (the first that applies wins; the reason names every finding):

- ``failed`` — the run did not end ``ok`` (OOM, crash, timeout, lost phone, interrupted):
  its diagnosis is the reason;
- ``throttled`` — during the run the phone throttled: thermal status above 0 (NONE) after
  the run (Jetpack Microbenchmark: any status above NONE already shows in the numbers), a
  cluster's ``scaling_max_freq`` below its ``cpuinfo_max_freq`` before or after, or a CPU
  zone above ``run_cpu_c`` after it;
- ``hot-start`` — the phone was still above its start limits when the run began (the
  bounded cool wait ran out), or thermal status was above 0 at the start;
- ``noisy`` — set afterwards by :func:`noisy_runs`: the run's figure is an outlier of its
  series in this bench;
- ``valid``.

Invalid runs are kept and shown, never averaged in: summaries and gates use ``valid`` runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.bench.conditions import ClusterDelta, Conditions
from harness.farm.inventory import ThermalLimits
from harness.run.heat import cpu_zone

NOISY_MIN_RUNS = 5  # a series needs this many runs before one of them can be an outlier
NOISY_SIGMAS = 5.0  # robust sigmas (1.4826 MAD) from the median: far outside run noise
NOISY_MIN_RELATIVE = 0.10  # and at least 10 % from the median (a tight series' 5 sigma is
# tiny; a 10 % slower run is a background job or a stall, not the build's speed)
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class Verdict:
    validity: str  # valid | throttled | hot-start | noisy | failed
    reason: str


def _mhz(khz: int | None) -> str:
    return "?" if khz is None else f"{khz / 1000:g} MHz"


def start_findings(before: Conditions, limits: ThermalLimits) -> list[str]:
    """Why a phone is not cool enough to start a measured run (empty: cool)."""
    found = []
    if before.thermal_status:
        found.append(f"thermal status {before.thermal_status} (above NONE)")
    if before.battery_c is not None and before.battery_c > limits.battery_c:
        found.append(f"battery {before.battery_c:.1f} °C > {limits.battery_c:g} °C")
    hot = {n: c for n, c in before.zones.items() if cpu_zone(n) and c > limits.cpu_c}
    if hot:
        name = max(hot, key=lambda n: hot[n])
        more = f" and {len(hot) - 1} more CPU zone(s)" if len(hot) > 1 else ""
        found.append(f"{name} {hot[name]:.1f} °C > {limits.cpu_c:g} °C{more}")
    return found


def throttle_findings(after: Conditions, clusters: Sequence[ClusterDelta],
                      run_cpu_c: float) -> list[str]:
    found = []
    if after.thermal_status:
        found.append(f"thermal status {after.thermal_status} after the run")
    for c in clusters:
        if c.capped:
            found.append(f"{c.policy} capped at {_mhz(c.cap_khz)} of {_mhz(c.max_khz)}")
    hot = {n: t for n, t in after.zones.items() if cpu_zone(n) and t > run_cpu_c}
    if hot:
        name = max(hot, key=lambda n: hot[n])
        found.append(f"{name} {hot[name]:.1f} °C > {run_cpu_c:g} °C after the run")
    return found


def judge(status: str, diagnosis: str | None, before: Conditions | None,
          after: Conditions | None, clusters: Sequence[ClusterDelta], limits: ThermalLimits,
          run_cpu_c: float) -> Verdict:
    """The verdict of one finished run (see the module docstring)."""
    hot = start_findings(before, limits) if before is not None else []
    throttled = throttle_findings(after, clusters, run_cpu_c) if after is not None else []
    if status != "ok":
        return Verdict("failed", f"{status}: {diagnosis or 'no diagnosis'}")
    if throttled:
        extra = f"; it also started hot: {'; '.join(hot)}" if hot else ""
        return Verdict("throttled", f"throttled during the run: {'; '.join(throttled)}{extra}")
    if hot:
        return Verdict("hot-start", f"started hot: {'; '.join(hot)}")
    return Verdict("valid", "cool start, no throttling seen")


def noisy_runs(values: Sequence[float]) -> list[int]:
    """Indexes of outlier runs in one series' values (see NOISY_* above)."""
    arr = np.asarray(values, dtype=float)
    if arr.size < NOISY_MIN_RUNS:
        return []
    med = float(np.median(arr))
    sigma = MAD_TO_SIGMA * float(np.median(np.abs(arr - med)))
    limit = max(NOISY_SIGMAS * sigma, NOISY_MIN_RELATIVE * abs(med))
    return [i for i, v in enumerate(arr) if abs(v - med) > limit]
