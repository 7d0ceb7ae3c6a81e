"""Health checks for the farm and its phones, each with an actionable message."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from harness.device import devshell
from harness.device.background import find_orphans
from harness.device.device import Device
from harness.device.errors import DeviceError
from harness.device.layout import DEVICE_TMP, SYNC_SCRIPT_DIR, SYNC_TMP_MARK
from harness.errors import HarnessError
from harness.farm.inventory import SIM_SERVER_NAME, Farm, FarmDevice
from harness.farm.lease import holder_of, read_phone_lease
from harness.holder import Holder

LOW_BATTERY_PERCENT = 20  # below this a phone may throttle or die mid-run
HOT_CELSIUS = 40.0  # above this timings are skewed by throttling (bench gates at 35-38)
LOW_SPACE_KB = 4 * 1024 * 1024  # SDXL weights alone take several GB


class Level(StrEnum):
    OK = "ok"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"


@dataclass(frozen=True)
class Finding:
    level: Level
    subject: str  # server name or serial
    message: str
    hint: str = ""


def check_farm(farm: Farm, selector: str | None = None) -> list[Finding]:
    """Run every check; ``selector`` narrows the phone checks to what ``--device`` names."""
    findings: list[Finding] = []
    servers = farm.servers()
    if not servers:
        findings.append(Finding(Level.ERROR, "farm", "the farm file lists no adb server",
                                f"edit {farm.config.source}"))
    for server in servers:
        endpoint = farm.endpoint(server)
        if endpoint.alive():
            findings.append(Finding(Level.OK, server.name,
                                    f"adb server reachable at {server.host}:{server.port}"))
            continue
        implicit = farm.config.source == "(default)"
        if implicit:
            # No farm file: the local server is only looked for, not required.
            findings.append(Finding(Level.INFO, server.name,
                                    f"no local adb server on port {server.port}",
                                    "start one (adb start-server) to use phones attached "
                                    "by USB"))
            continue
        if server.name == SIM_SERVER_NAME:
            hint = "`harness sim up` restarts it with the same phones"
        elif endpoint.restart is not None:
            hint = f"start it: adb -P {server.port} start-server"
        else:
            hint = "is the SSH tunnel to that host up? (see the farm file docs)"
        findings.append(Finding(Level.ERROR, server.name,
                                f"no adb server at {server.host}:{server.port}", hint))
    devices = farm.discover()
    if selector:
        selection = farm.select(selector, None, devices)
        devices = selection.chosen + [d for d, _ in selection.rejected]
    if not devices:
        findings.append(Finding(Level.WARN, "farm", "no phones found",
                                "plug one in and allow USB debugging, or `harness sim up`"))
    for item in devices:
        findings.extend(check_device(item))
        if item.state == "device" and not item.excluded and item.facts is not None:
            device = item.device(farm)
            findings.extend(check_temporaries(item.serial, device))
            findings.extend(check_orphans(device))
    return findings


def check_orphans(device: Device) -> list[Finding]:
    """Runs still going on the phone whose harness died (``kill -9``, a crash)."""
    try:
        lease = read_phone_lease(device)

        def remote_dead(holder: Holder) -> bool:
            # Another host's run lives only as long as that host's lease on the phone.
            return lease is None or lease.stale() or \
                (lease.holder.host, lease.holder.pid) != (holder.host, holder.pid)

        orphans = find_orphans(device, remote_dead)
    except DeviceError as exc:
        return [Finding(Level.WARN, device.serial, f"cannot look for orphaned runs: {exc}")]
    return [Finding(Level.WARN, device.serial, f"orphaned run: {o.describe()}",
                    "the next `harness run` on this phone kills it (or refuses with "
                    "--keep-orphans)") for o in orphans]




def temporaries_command() -> str:
    """Sizes (``du -sk``) of every harness temporary under /data/local/tmp, one per line."""
    return (f"find {DEVICE_TMP} \\( -name {devshell.quote('*' + SYNC_TMP_MARK + '*')} -o "
            f"-path {devshell.quote(SYNC_SCRIPT_DIR + '/*')} \\) -prune "
            "-exec du -sk {} + 2>/dev/null; true")


def parse_temporaries(out: str) -> tuple[int, int]:
    """``du -sk`` lines -> (count, bytes)."""
    count = total_kb = 0
    for line in out.splitlines():
        size = line.split("\t", 1)[0].split(" ", 1)[0]
        if size.isdigit():
            count += 1
            total_kb += int(size)
    return count, total_kb * 1024


def check_temporaries(serial: str, device: Device) -> list[Finding]:
    """Harness temporaries left on the phone by pushes that died (they hold disk space)."""
    try:
        out = device.run(temporaries_command(), timeout=120).out
    except HarnessError as exc:
        return [Finding(Level.WARN, serial, f"cannot look for harness temporaries: {exc}")]
    count, size = parse_temporaries(out)
    if not count:
        return [Finding(Level.OK, serial, "0 bytes of harness temporaries on the phone")]
    return [Finding(Level.WARN, serial,
                    f"{size} bytes ({size / 1e6:.1f} MB) of harness temporaries in {count} "
                    "path(s), left by interrupted pushes",
                    "the next `harness push` or `harness run` to this phone removes them")]


def check_device(item: FarmDevice) -> list[Finding]:
    serial = item.serial
    if item.excluded:
        return [Finding(Level.INFO, serial, f"excluded: {item.excluded}")]
    if item.state == "unauthorized":
        return [Finding(Level.ERROR, serial, "unauthorized",
                        "unlock the phone and accept the USB debugging prompt")]
    if item.state != "device":
        return [Finding(Level.ERROR, serial, f"state is {item.state}",
                        "replug the cable, or `adb reconnect offline`")]
    facts = item.facts
    if facts is None:
        return [Finding(Level.ERROR, serial, f"cannot read facts: {item.error}",
                        "try `adb -s SERIAL shell getprop`")]
    out = [Finding(Level.OK, serial, f"{facts.model} {facts.soc_model}, "
                   f"{facts.marketed_ram_gb} GB, Android {facts.android_release}")]
    if facts.battery_level is not None and facts.battery_level < LOW_BATTERY_PERCENT:
        out.append(Finding(Level.WARN, serial, f"battery at {facts.battery_level}%",
                           "charge it: a low battery throttles and can die mid-run"))
    hottest = facts.max_temp_c
    if hottest is not None and hottest > HOT_CELSIUS:
        out.append(Finding(Level.WARN, serial, f"hot: {hottest:.1f} °C",
                           "let it cool; timings taken now will be throttled"))
    if facts.data_free_kb is not None and facts.data_free_kb < LOW_SPACE_KB:
        out.append(Finding(Level.WARN, serial,
                           f"only {facts.data_free_kb / 1024 / 1024:.1f} GB free on /data",
                           "delete old outputs: SDXL weights need several GB"))
    holder = holder_of(serial)
    if holder is not None:
        out.append(Finding(Level.INFO, serial, f"leased by {holder.describe()}"))
    return out
