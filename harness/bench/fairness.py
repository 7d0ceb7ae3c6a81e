"""Before each run: wait (bounded, and the wait recorded) until the phone is cool.

Cool means: thermal status 0 where ``dumpsys thermalservice`` has one, battery at or below
``battery_c`` and every CPU zone at or below ``cpu_c`` (35 / 38 °C by default; the farm
file's limits per farm and per phone, the bench config's ``thresholds`` over both). The
phone is idle while harness waits: it holds the lease, so nothing else runs there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from harness.bench.conditions import Conditions
from harness.bench.validity import start_findings
from harness.farm.inventory import ThermalLimits

COOL_POLL_S = 2.0  # between reads while waiting; one read is one adb round trip


@dataclass(frozen=True)
class CoolWait:
    conditions: Conditions  # the last read: the run's "before"
    waited_s: float
    still_hot: tuple[str, ...]  # empty: cool (possibly after waiting)
    was_hot: tuple[str, ...] = ()  # what was too hot at the first read (empty: no wait)

    def to_dict(self) -> dict[str, object]:
        return {"waited_s": round(self.waited_s, 3), "still_hot": list(self.still_hot),
                "was_hot": list(self.was_hot)}


def wait_cool(read: Callable[[], Conditions], limits: ThermalLimits, wait_s: float,
              poll_s: float = COOL_POLL_S, stop: Callable[[], bool] = lambda: False,
              sleep: Callable[[float], None] = time.sleep) -> CoolWait:
    """Read conditions until the phone is cool, ``wait_s`` passed or ``stop()``."""
    start = time.monotonic()
    deadline = start + wait_s
    conditions = read()
    hot = first = start_findings(conditions, limits)
    while hot and not stop() and time.monotonic() < deadline:
        sleep(min(poll_s, max(deadline - time.monotonic(), 0.0)))
        conditions = read()
        hot = start_findings(conditions, limits)
    return CoolWait(conditions, time.monotonic() - start, tuple(hot), tuple(first))
