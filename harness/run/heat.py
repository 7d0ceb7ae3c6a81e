"""Is a phone too hot to start a run? Optionally wait (bounded) for it to cool.

A run that starts on a warm phone measures a throttled phone: its figures are not comparable
with a cool start. Limits come from the farm file (:class:`harness.farm.inventory.ThermalLimits`:
battery 35 °C, any CPU zone 38 °C by default, per farm and per phone).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from harness.device.facts import DeviceFacts
from harness.farm.inventory import ThermalLimits

COOL_POLL_S = 2.0  # between facts reads while waiting; one read is one adb round trip


def cpu_zone(name: str) -> bool:
    """Thermal zones of CPU cores or clusters (``cpu-1-0-0``, ``cpuss-0``, ``cpu0-silver``)."""
    return "cpu" in name.lower()


def hot_reasons(facts: DeviceFacts, limits: ThermalLimits) -> list[str]:
    """What is above its limit, e.g. ``battery 41.0 °C > 35 °C``; empty when cool enough."""
    reasons = []
    if facts.battery_temp_c is not None and facts.battery_temp_c > limits.battery_c:
        reasons.append(f"battery {facts.battery_temp_c:.1f} °C > {limits.battery_c:g} °C")
    hot = {n: c for n, c in facts.thermal_c.items() if cpu_zone(n) and c > limits.cpu_c}
    if hot:
        name = max(hot, key=lambda n: hot[n])
        more = f" and {len(hot) - 1} more CPU zone(s)" if len(hot) > 1 else ""
        reasons.append(f"{name} {hot[name]:.1f} °C > {limits.cpu_c:g} °C{more}")
    return reasons


def wait_cool(read: Callable[[], DeviceFacts], limits: ThermalLimits, wait_s: float,
              poll_s: float = COOL_POLL_S,
              sleep: Callable[[float], None] = time.sleep) -> tuple[DeviceFacts, list[str]]:
    """Read facts until the phone is cool or ``wait_s`` passed; return the last facts and
    what is still hot (empty: cool)."""
    deadline = time.monotonic() + wait_s
    facts = read()
    reasons = hot_reasons(facts, limits)
    while reasons and time.monotonic() < deadline:
        sleep(min(poll_s, max(deadline - time.monotonic(), 0.0)))
        facts = read()
        reasons = hot_reasons(facts, limits)
    return facts, reasons
