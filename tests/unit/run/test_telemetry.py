"""The sampler's lines: parsing, normalisation (units, signs, zones) and per-step metrics."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.run.telemetry import (
    RawSample,
    SamplerParser,
    TelemetryOptions,
    celsius,
    current_convention,
    normalise,
    reduce_step,
    sampler_command,
    write_csv,
    zone_names,
)

HEADER = """# harness-sampler 1 pid=4242 interval=0.1 target=777
# skip /sys/class/kgsl/kgsl-3d0/gpu_busy_percentage unreadable (and gpubusy)
# zone 0 cpu-1-0-0
# zone 3 battery
# policy 0 2265600
# policy 7 3393600
"""


def parse(text: str) -> SamplerParser:
    parser = SamplerParser()
    for line in text.splitlines():
        parser.feed("stdout", line)
    return parser


def line(t: float, **values: object) -> str:
    return f"S {t:.2f} " + " ".join(f"{k}={v}" for k, v in values.items()) + " ;"


def test_header_and_samples_are_parsed() -> None:
    parser = parse(HEADER + line(100.0, mem=5000, rss=10, z0=45200, cur0=1, max0=2265600)
                   + "\n# end target-gone\n")
    assert parser.sampler_pid == 4242
    assert parser.zones == {"0": "cpu-1-0-0", "3": "battery"}
    assert parser.cpuinfo_max == {"0": 2265600, "7": 3393600}
    assert parser.skipped == ["/sys/class/kgsl/kgsl-3d0/gpu_busy_percentage unreadable "
                              "(and gpubusy)"]
    assert parser.end == "target-gone"
    assert parser.samples[0].values["mem"] == "5000"


def test_partial_garbage_and_unknown_fields_are_tolerated() -> None:
    text = HEADER + "\n".join([
        line(10.0, mem=100, rss=5, future_key=12),
        "S notanumber mem=1",
        "random noise from a vendor shell",
        "S 10.10 mem=90 rss= =3 bogus rss=7 ;",
        "S 10.20 mem=80 rss=10300",  # cut short: the stream closed mid-line (rss=10300123)
        "S 10.3",
    ])
    parser = parse(text)
    assert parser.ignored_lines == 2
    assert parser.cut_lines == 2
    samples = normalise(parser)
    assert [s.t for s in samples] == [0.0, 0.1, 0.2, 0.3]
    assert samples[0].values == {"mem_available_kb": 100.0, "rss_kb": 5.0}
    assert samples[1].values == {"mem_available_kb": 90.0, "rss_kb": 7.0}
    assert samples[2].values == {"mem_available_kb": 80.0}  # the cut field is dropped
    assert samples[3].values == {}
    parser.feed("stderr", "sh: warning")
    assert parser.stderr == ["sh: warning"]


def test_missing_sources_give_no_values_and_no_metrics() -> None:
    parser = parse(HEADER + line(1.0, mem=100) + "\n" + line(1.1, mem=80) + "\n" + HEADER)
    assert len(parser.skipped) == 1  # a restarted sampler's header again: listed once
    samples = normalise(parser)
    metrics = reduce_step(samples, {})
    assert metrics == {"samples": 2.0, "min_mem_available_kb": 80.0}
    assert reduce_step([], {}) == {"samples": 0.0}
    assert normalise(SamplerParser()) == []


def raw(cur: int, status: str = "Discharging", volt: int = 4_000_000) -> RawSample:
    return RawSample(0.0, {"cur": str(cur), "volt": str(volt), "bst": status})


@pytest.mark.parametrize(("currents", "scale", "sign"), [
    ([-1_500_000, -1_400_000], 1.0, -1),  # µA, discharge negative (kernel ABI, Pixel)
    ([1_500_000, 1_600_000], 1.0, 1),  # µA, discharge positive (many Qualcomm gauges)
    ([-1500, -1450], 1000.0, -1),  # mA (Samsung)
    ([1500, 1400], 1000.0, 1),
])
def test_current_convention_from_discharging_samples(currents: list[int], scale: float,
                                                     sign: int) -> None:
    conv = current_convention([raw(c) for c in currents])
    assert (conv.current_scale, conv.discharge_sign) == (scale, sign)
    assert conv.voltage_scale == 1.0


def test_current_convention_without_discharging_assumes_the_kernel_abi() -> None:
    conv = current_convention([raw(500_000, "Charging"), raw(400_000, "Full")])
    assert conv.discharge_sign == -1 and "assumed" in conv.how
    forced = current_convention([raw(500_000, "Charging")], "discharge-positive")
    assert forced.discharge_sign == 1 and "(set)" in forced.how


@pytest.mark.parametrize(("volt", "scale"), [(4_000_000, 1.0), (4000, 1000.0), (4, 1e6)])
def test_voltage_unit_by_magnitude(volt: int, scale: float) -> None:
    assert current_convention([raw(-1_000_000, volt=volt)]).voltage_scale == scale


@pytest.mark.parametrize("sign", [1, -1])
def test_power_is_positive_while_discharging_either_convention(sign: int) -> None:
    text = HEADER + "\n".join(line(100 + i / 10, cur=sign * 2000, volt=4000, bst="Discharging")
                              for i in range(11))
    samples = normalise(parse(text))
    assert samples[0].values["current_ua"] == 2_000_000
    assert samples[0].values["voltage_uv"] == 4_000_000
    assert samples[0].values["power_w"] == pytest.approx(8.0)
    metrics = reduce_step(samples, {}, images=2)
    assert metrics["energy_j"] == pytest.approx(8.0)  # 8 W for 1 s
    assert metrics["mean_power_w"] == pytest.approx(8.0)
    assert metrics["energy_per_image_j"] == pytest.approx(4.0)
    assert metrics["on_charger"] == 0.0


def test_energy_integrates_a_changing_power_trapezoid() -> None:
    lines = [line(0.0, cur=-1_000_000, volt=4_000_000, bst="Discharging"),
             line(1.0, cur=-2_000_000, volt=4_000_000, bst="Discharging"),
             line(3.0, cur=-2_000_000, volt=4_000_000, bst="Charging")]
    metrics = reduce_step(normalise(parse("\n".join(lines))), {})
    assert metrics["energy_j"] == pytest.approx(6.0 + 16.0)
    assert metrics["mean_power_w"] == pytest.approx(22.0 / 3)
    assert metrics["on_charger"] == pytest.approx(1 / 3)


def test_peaks_minimum_and_capped_time() -> None:
    lines = [line(0.0, mem=9000, rss=100, hwm=100, max0=2265600, max7=3393600, z0=40000),
             line(0.5, mem=5000, rss=900, hwm=950, max0=2265600, max7=2000000, z0=61500),
             line(1.0, mem=7000, rss=400, hwm=950, max0=1800000, max7=3393600, z0=58000),
             line(2.0, mem=8000, rss=0, hwm=0, n=0, max0=2265600, max7=3393600, z3=33.5)]
    samples = normalise(parse(HEADER + "\n".join(lines)))
    assert "rss_kb" not in samples[3].values  # the tree had gone
    assert samples[1].values["temp_cpu_1_0_0_c"] == 61.5
    assert samples[3].values["temp_battery_c"] == 33.5
    metrics = reduce_step(samples, {"0": 2265600, "7": 3393600})
    assert metrics["peak_rss_kb"] == 900
    assert metrics["peak_hwm_kb"] == 950
    assert metrics["min_mem_available_kb"] == 5000
    assert metrics["cpu_capped_s"] == pytest.approx(1.5)  # from 0.5 s to 2.0 s
    assert metrics["max_temp_c"] == 61.5
    assert samples[0].values["cpu7_max_khz"] == 3393600


def test_gpu_sources() -> None:
    samples = normalise(parse("\n".join([line(0, gpu_busy=42, gpu_mhz=680),
                                         line(1, gpubusy="25000,100000", gpuclk=903000000),
                                         line(2, gpubusy="5,0")])))
    assert samples[0].values == {"gpu_busy_pct": 42.0, "gpu_clk_mhz": 680.0}
    assert samples[1].values == {"gpu_busy_pct": 25.0, "gpu_clk_mhz": 903.0}
    assert samples[2].values == {}


def test_zone_names_and_units() -> None:
    assert zone_names({"0": "cpu-1-0-0", "1": "CPU 1 0 0", "2": "", "10": "xo-therm"}) == {
        "0": "temp_cpu_1_0_0_c", "1": "temp_cpu_1_0_0_1_c", "2": "temp_zone2_c",
        "10": "temp_xo_therm_c"}
    assert (celsius(45200), celsius(452), celsius(45)) == (45.2, 45.2, 45)


def test_psi_fields() -> None:
    samples = normalise(parse(line(0, psi_some="5.28", psi_full="1.20",
                                   psi_some_total=100, psi_full_total=20)))
    assert samples[0].values == {"psi_some_avg10": 5.28, "psi_full_avg10": 1.2}


def test_options_and_command() -> None:
    with pytest.raises(UsageError):
        TelemetryOptions(interval_s=0)
    with pytest.raises(UsageError):
        TelemetryOptions(current_sign="sideways")
    command = sampler_command(777, TelemetryOptions(interval_s=0.25))
    assert command.startswith("set -- 0.25 777 86400 5\n# harness telemetry sampler")
    code = [ln for ln in command.splitlines() if not ln.lstrip().startswith("#")]
    assert not [ln for ln in code if "awk" in ln or "|" in ln.replace("||", "")]  # no forks


def test_csv_is_wide(tmp_path: Path) -> None:
    path = tmp_path / "samples.csv"
    write_csv(path, [("unet", 0.0, "rss_kb", 1.0), ("unet", 0.0, "power_w", 2.5),
                     ("unet", 0.1, "rss_kb", 10_300_123.0), ("vae", 0.0, "power_w", 3.0)])
    rows = list(csv.reader(path.open()))
    assert rows == [["step", "t", "power_w", "rss_kb"], ["unet", "0.000", "2.5", "1"],
                    ["unet", "0.100", "", "10300123"], ["vae", "0.000", "3", ""]]


def test_run_option_beats_the_recipe_parameter() -> None:
    import dataclasses

    from harness.recipes.load import render_recipe
    from harness.run.runner import RunRequest, telemetry_options

    plan = render_recipe("sd15-512")
    assert telemetry_options(RunRequest("sd15-512"), plan) == TelemetryOptions()
    quiet = dataclasses.replace(plan, params={**plan.params, "telemetry": False,
                                              "telemetry_interval_s": 0.5})
    assert telemetry_options(RunRequest("sd15-512"), quiet) == TelemetryOptions(False, 0.5)
    request = RunRequest("sd15-512", telemetry=True, telemetry_interval_s=0.02)
    assert telemetry_options(request, quiet) == TelemetryOptions(True, 0.02)
    # a bench (no command line) follows the recipe's parameters, as harness run does
    assert telemetry_options(None, quiet, "discharge-positive") == \
        TelemetryOptions(False, 0.5, current_sign="discharge-positive")
    assert telemetry_options(None, plan) == TelemetryOptions()
    # the farm file's current_sign for the phone reaches the options
    assert telemetry_options(request, quiet, "discharge-positive") == \
        TelemetryOptions(True, 0.02, current_sign="discharge-positive")


def test_a_set_sign_wins_over_what_the_samples_say() -> None:
    # A phone on its charger has no Discharging sample: the farm file's current_sign decides.
    charging = [raw(2000, "Charging"), raw(2100, "Charging")]
    assert current_convention(charging).discharge_sign == -1  # the kernel ABI, assumed
    conv = current_convention(charging, "discharge-positive")
    assert conv.discharge_sign == 1 and "(set)" in conv.how
    discharging = [raw(-2000), raw(-2100)]
    assert current_convention(discharging, "discharge-positive").discharge_sign == 1


def test_sampler_restarts_after_a_lost_connection() -> None:
    import socket
    import time

    from harness.device.device import Device
    from harness.run.telemetry import Sampler

    peers: list[socket.socket] = []

    class PairDevice(Device):
        def open_service(self, service: str, timeout_s: float | None) -> socket.socket:
            assert service.startswith("shell,v2,raw:set -- 0.1 777 ")
            ours, theirs = socket.socketpair()
            peers.append(theirs)
            return ours

    def send(peer: socket.socket, text: str) -> None:
        peer.sendall(bytes([1]) + len(text).to_bytes(4, "little") + text.encode())

    sampler = Sampler.start(PairDevice("x"), 777, TelemetryOptions())
    assert sampler is not None
    send(peers[0], HEADER + line(5.0, mem=100) + "\n" + line(5.1, mem=90) + "\nS 5.2 mem=8")
    peers[0].close()  # the cable is pulled: adbd kills that sampler
    deadline = time.monotonic() + 10
    while len(peers) < 2:
        assert time.monotonic() < deadline, "no new sampler"
        time.sleep(0.02)
    send(peers[1], HEADER + line(7.0, mem=70) + "\n# end asked\n")
    peers[1].sendall(bytes([3]) + (1).to_bytes(4, "little") + b"\x00")
    seen = sampler.stop()
    assert [(s.t, s.values.get("mem_available_kb")) for s in seen.samples] == [
        (0.0, 100.0), (0.1, 90.0), (0.2, None), (2.0, 70.0)]
    assert seen.error is not None and "restarted 1 time" in seen.error
    assert len(seen.parser.skipped) == 1


def test_disabled_or_without_a_pid_nothing_starts() -> None:
    from harness.device.device import Device
    from harness.run.telemetry import Sampler

    assert Sampler.start(Device("x"), 5, TelemetryOptions(enabled=False)) is None
    assert Sampler.start(Device("x"), None, TelemetryOptions()) is None
