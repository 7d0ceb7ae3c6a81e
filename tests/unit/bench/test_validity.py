"""Conditions around a run, the validity verdict, noisy runs and the bounded cool wait."""

from __future__ import annotations

from collections.abc import Iterator

from harness.bench.conditions import Cluster, Conditions, delta, parse_conditions
from harness.bench.fairness import wait_cool
from harness.bench.validity import judge, noisy_runs
from harness.farm.inventory import ThermalLimits

P = "/sys/devices/system/cpu/cpufreq"


def _text(status: int, battery_tenths: int, cpu_milli: int, cap: int, ticks: int,
          charging: int = 2) -> str:
    return "\n".join([
        "@@harness:thermal", f"Thermal Status: {status}",
        "@@harness:battery", "Current Battery Service state:", "  AC powered: false",
        f"  status: {charging}", "  level: 87", f"  temperature: {battery_tenths}",
        "@@harness:sysfs",
        "/sys/class/thermal/thermal_zone0/type:cpu-1-0-0",
        f"/sys/class/thermal/thermal_zone0/temp:{cpu_milli}",
        "/sys/class/thermal/thermal_zone1/type:battery",
        "/sys/class/thermal/thermal_zone1/temp:31000",
        f"{P}/policy0/cpuinfo_max_freq:2000000", f"{P}/policy0/scaling_max_freq:2000000",
        f"{P}/policy0/stats/time_in_state:300000 {1000 + ticks}",
        f"{P}/policy0/stats/time_in_state:2000000 {50 + ticks}",
        f"{P}/policy4/cpuinfo_max_freq:3000000", f"{P}/policy4/scaling_max_freq:{cap}",
        f"{P}/policy4/stats/time_in_state:500000 10",
        f"{P}/policy4/stats/time_in_state:3000000 {ticks}",
        "@@harness:end", ""])


COOL = parse_conditions(_text(0, 312, 33000, 3000000, 0))
LIMITS = ThermalLimits(35.0, 38.0)


def test_conditions_are_parsed_from_what_a_phone_prints() -> None:
    c = parse_conditions(_text(2, 412, 45500, 2400000, 700, charging=3))
    assert c.thermal_status == 2 and c.battery_c == 41.2 and c.battery_level == 87
    assert c.charging is False
    assert c.zones == {"cpu-1-0-0": 45.5, "battery": 31.0}
    assert [(k.policy, k.max_khz, k.cap_khz) for k in c.clusters] == [
        ("policy0", 2000000, 2000000), ("policy4", 3000000, 2400000)]
    assert COOL.charging is True and COOL.thermal_status == 0
    assert parse_conditions("@@harness:thermal\n@@harness:end\n").thermal_status is None


def test_time_in_state_deltas_and_caps() -> None:
    after = parse_conditions(_text(0, 330, 50000, 2400000, 250))
    big = {d.policy: d for d in delta(COOL, after)}["policy4"]
    assert big.seconds_by_khz == {3000000: 2.5} and big.top_khz == 3000000
    assert big.cap_khz == 2400000 and big.capped
    assert not {d.policy: d for d in delta(COOL, after)}["policy0"].capped


def test_verdicts_and_their_reasons() -> None:
    after = parse_conditions(_text(0, 330, 50000, 3000000, 250))
    ok = judge("ok", None, COOL, after, delta(COOL, after), LIMITS, 85.0)
    assert (ok.validity, ok.reason) == ("valid", "cool start, no throttling seen")
    capped = parse_conditions(_text(1, 330, 90000, 2400000, 250))
    bad = judge("ok", None, COOL, capped, delta(COOL, capped), LIMITS, 85.0)
    assert bad.validity == "throttled"
    assert "thermal status 1 after the run" in bad.reason
    assert "policy4 capped at 2400 MHz of 3000 MHz" in bad.reason
    assert "cpu-1-0-0 90.0 °C > 85 °C after the run" in bad.reason
    hot = parse_conditions(_text(0, 372, 41000, 3000000, 0))
    warm = judge("ok", None, hot, after, delta(hot, after), LIMITS, 85.0)
    assert warm.validity == "hot-start"
    assert warm.reason == "started hot: battery 37.2 °C > 35 °C; cpu-1-0-0 41.0 °C > 38 °C"
    oom = judge("failed", "pipeline: killed by the kernel OOM killer", COOL, None, [], LIMITS,
                85.0)
    assert (oom.validity, oom.reason) == ("failed", "failed: pipeline: killed by the kernel "
                                                    "OOM killer")


def test_noisy_runs_are_outliers_of_their_series() -> None:
    assert noisy_runs([9.2, 9.21, 9.19, 9.2, 11.5, 9.22]) == [4]
    assert noisy_runs([9.2, 9.21, 9.19, 9.2, 9.6, 9.22]) == []  # 4 %: run noise, kept
    assert noisy_runs([9.2, 15.0, 9.2]) == []  # too few runs to call one an outlier


def test_the_cool_wait_is_bounded_and_recorded() -> None:
    hot = Conditions(thermal_status=0, battery_c=36.0, zones={"cpu-0": 30.0},
                     clusters=(Cluster("policy0", 1, 1),))
    reads: Iterator[Conditions] = iter([hot, hot, COOL])
    waited = wait_cool(lambda: next(reads), LIMITS, 60.0, poll_s=0.0, sleep=lambda s: None)
    assert waited.conditions is COOL and waited.still_hot == ()
    always_hot = wait_cool(lambda: hot, LIMITS, 0.05, poll_s=0.01)
    assert always_hot.still_hot == ("battery 36.0 °C > 35 °C",)
    assert 0.05 <= always_hot.waited_s < 5.0
    status = Conditions(thermal_status=1)
    assert wait_cool(lambda: status, LIMITS, 0.0).still_hot == ("thermal status 1 (above "
                                                                "NONE)",)
