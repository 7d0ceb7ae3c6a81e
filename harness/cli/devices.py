"""``harness devices`` and ``harness doctor``: what the farm holds and what is wrong with it."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from harness.cli.options import Output, farm_option, output_options
from harness.console import err, escape, out
from harness.errors import EXIT_DEVICE


def _load_farm(farm_path: Path | None) -> Any:
    from harness.farm.inventory import Farm, load_farm

    return Farm(load_farm(farm_path))


@click.command("devices")
@farm_option
@output_options("Print {\"devices\": [...], \"unreachable\": [{server, host, port, error}]} "
                "as JSON.")
def devices_cmd(farm_path: Path | None, output: Output) -> None:
    """List the phones on every adb server of the farm, with their facts and leases.

    Every farm server that could not be reached is named in a warning line on stderr.
    """
    farm = _load_farm(farm_path)
    found = farm.discover()
    quiet = not logging.getLogger("harness").isEnabledFor(logging.WARNING)  # -q: errors only
    for server, why in [] if quiet else farm.unreachable:
        err.print(f"[yellow]warning:[/] adb server {escape(server.name)} "
                  f"({escape(server.host)}:{server.port}) could not be reached: {escape(why)}",
                  markup=True)
    output.emit({"devices": [d.to_dict() for d in found],
                 "unreachable": [{"server": server.name, "host": server.host,
                                  "port": server.port, "error": why}
                                 for server, why in farm.unreachable]},
                lambda: _print_devices(found))


def _print_devices(found: list[Any]) -> None:
    from rich.table import Table

    table = Table("serial", "server", "nickname", "model", "SoC", "RAM", "Android", "battery",
                  "temp", "state", "lease")
    from harness.farm.lease import holder_of

    for item in found:
        f = item.facts
        holder = holder_of(item.serial)
        state = item.state if not item.excluded else f"excluded ({item.excluded})"
        table.add_row(
            item.serial, item.server.name, item.nickname or "",
            f.model if f else "", f.soc_model if f else "",
            f"{f.marketed_ram_gb} GB ({f.mem_total_kb / 1048576:.1f} GiB)"
            if f and f.mem_total_kb else "",
            f.android_release if f else "",
            f"{f.battery_level}%" if f and f.battery_level is not None else "",
            f"{f.max_temp_c:.1f} °C" if f and f.max_temp_c is not None else "",
            state, holder.describe() if holder else "")
    out.print(table if found else "no phones found (try `harness doctor`)")


@click.command("doctor")
@farm_option
@click.option("--device", "-d", "selector", default=None,
              help="Only check the phones this selects (serial, nickname, sim, tag:EXPR).")
@output_options("Print the findings as JSON.")
def doctor_cmd(farm_path: Path | None, selector: str | None, output: Output) -> None:
    """Check adb servers and phones: reachability, authorization, battery, heat, space."""
    from harness.farm.doctor import Level, check_farm

    findings = check_farm(_load_farm(farm_path), selector)
    output.emit([{"level": f.level.value, "subject": f.subject, "message": f.message,
                  "hint": f.hint} for f in findings], lambda: _print_findings(findings))
    if any(f.level is Level.ERROR for f in findings):
        sys.exit(EXIT_DEVICE)



def _print_findings(findings: list[Any]) -> None:
    colours = {"ok": "green", "info": "cyan", "warn": "yellow", "error": "red"}
    for f in findings:
        hint = f" [dim]({escape(f.hint)})[/]" if f.hint else ""
        out.print(f"[{colours[f.level.value]}]{f.level.value:5}[/] {escape(f.subject)}: "
                  f"{escape(f.message)}{hint}", markup=True)


COMMANDS = [devices_cmd, doctor_cmd]
