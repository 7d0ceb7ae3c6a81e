"""Hot-start checks and the bounded wait for a phone to cool."""

from __future__ import annotations

from harness.device.facts import DeviceFacts
from harness.farm.inventory import ThermalLimits
from harness.run.heat import cpu_zone, hot_reasons, wait_cool


def _facts(battery: float, zones: dict[str, float]) -> DeviceFacts:
    return DeviceFacts("s", battery_temp_c=battery, thermal_c=zones)


def test_only_battery_and_cpu_zones_count() -> None:
    limits = ThermalLimits()
    assert hot_reasons(_facts(30.0, {"cpu-1-0-0": 37.0, "gpuss-0": 60.0}), limits) == []
    reasons = hot_reasons(_facts(36.5, {"cpu-1-0-0": 41.0, "cpuss-0": 39.0}), limits)
    assert reasons == ["battery 36.5 °C > 35 °C",
                       "cpu-1-0-0 41.0 °C > 38 °C and 1 more CPU zone(s)"]
    assert hot_reasons(_facts(36.5, {}), ThermalLimits(battery_c=40.0)) == []
    assert cpu_zone("CPU0-silver") and not cpu_zone("skin-therm")


def test_wait_cool_is_bounded_and_stops_when_cool() -> None:
    temps = iter([45.0, 41.0, 37.0, 30.0])
    sleeps: list[float] = []
    facts, reasons = wait_cool(lambda: _facts(30.0, {"cpu-0": next(temps)}), ThermalLimits(),
                               60.0, poll_s=1.0, sleep=sleeps.append)
    assert reasons == [] and facts.thermal_c == {"cpu-0": 37.0}
    assert sleeps == [1.0, 1.0]
    facts, reasons = wait_cool(lambda: _facts(50.0, {}), ThermalLimits(), 0.0,
                               sleep=sleeps.append)
    assert reasons == ["battery 50.0 °C > 35 °C"]
