"""CLI commands for asset sync: ``harness push`` and ``harness assets list|status``."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from harness.cli.options import Output, farm_option, output_options
from harness.errors import UsageError

if TYPE_CHECKING:
    from harness.device.device import Device

device_option = click.option(
    "--device", "-d", "selector", required=True, envvar="ANDROID_SERIAL", show_envvar=True,
    help="Phone(s): serial, nickname, sim, or tag:EXPR (every matching phone is synced); "
         "$ANDROID_SERIAL, as for adb, when the option is not given.")


def _console() -> Any:
    from harness.console import out

    return out


def _sets(names: tuple[str, ...]) -> list[Any]:
    from harness.assets.sets import load_asset_sets
    from harness.farm.inventory import ensure_demo_assets
    from harness.yamlpos import suggest

    available = load_asset_sets()
    chosen = []
    for name in names:
        if name not in available:
            raise UsageError(f"no asset set {name!r}{suggest(name, available)}",
                             hint="`harness assets list` shows them")
        chosen.append(available[name])
    ensure_demo_assets(e.src for s in chosen for e in s.entries)
    return chosen


@click.command("push")
@click.argument("set_names", metavar="SET...", nargs=-1, required=True)
@device_option
@farm_option
@click.option("--delete", is_flag=True, help="Delete files on the phone the sets no longer have.")
@click.option("--verify", is_flag=True, help="Hash every file on the phone and repair mismatches.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@output_options("Print the results as JSON.")
def push_cmd(set_names: tuple[str, ...], selector: str, farm_path: Path | None, delete: bool,
             verify: bool, quiet: bool, output: Output) -> None:
    """Sync asset sets to phones: only new or changed files, atomically, in parallel."""
    from harness.assets.sync import sync_many
    from harness.farm.inventory import resolve
    from harness.farm.lease import Lease

    sets = _sets(set_names)
    devices = resolve(selector, farm_path, many=True, facts=False)  # none needed
    from harness.console import err

    @contextlib.contextmanager
    def hold(busy: Sequence[Device]) -> Iterator[None]:
        """The leases of the phones that need writes, all taken before any write."""
        with contextlib.ExitStack() as stack:
            for d in busy:
                stack.enter_context(Lease(
                    d.serial, f"harness push {' '.join(set_names)}", device=d,
                    on_warning=lambda text: err.print(f"warning: {text}", markup=False)))
            yield

    if quiet or output.json or not sys.stderr.isatty():
        results = sync_many(devices, sets, delete=delete, verify=verify, hold=hold)
    else:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                      TransferSpeedColumn(), TimeRemainingColumn(),
                      console=Console(stderr=True)) as bar:
            tasks = {d.serial: bar.add_task(d.serial, total=None) for d in devices}

            def progress(serial: str, done: int, total: int, _path: str) -> None:
                bar.update(tasks[serial], completed=done, total=total)

            results = sync_many(devices, sets, delete=delete, verify=verify,
                                progress=progress, hold=hold)
    output.emit([r.__dict__ for r in results], lambda: _print_results(results))


def _print_results(results: list[Any]) -> None:
    out = _console()
    for r in results:
        what = (f"pushed {len(r.pushed)} file(s), {r.pushed_bytes / 1e6:.1f} MB"
                if r.pushed else "up to date")
        extra = []
        if r.deleted:
            extra.append(f"deleted {len(r.deleted)}")
        if r.repaired:
            extra.append(f"repaired {len(r.repaired)} changed behind our back")
        if r.verified:
            extra.append(f"verified {r.verified}, {len(r.mismatched)} mismatched")
        tail = f" ({'; '.join(extra)})" if extra else ""
        out.print(f"{r.serial}: {what} of {r.files_total}{tail} in {r.seconds:.2f}s, "
                  f"{r.round_trips} adb round trip(s)")


@click.group("assets")
def assets_group() -> None:
    """Asset sets: what harness pushes to phones, and whether phones have it."""


@assets_group.command("list")
@output_options("Print the sets as JSON.")
def assets_list(output: Output) -> None:
    """List asset sets with their local sources and device destinations."""
    from rich.table import Table

    from harness.assets.sets import load_asset_sets

    sets = load_asset_sets()
    table = Table("set", "source", "destination", "description")
    for name, s in sets.items():
        for i, e in enumerate(s.entries):
            table.add_row(name if i == 0 else "", str(e.src), e.dest,
                          s.description if i == 0 else "")
    output.emit({name: {"description": s.description, "entries": [
        {"src": str(e.src), "dest": e.dest, "mode": e.mode} for e in s.entries]}
        for name, s in sets.items()}, lambda: _console().print(table))


@assets_group.command("status")
@click.argument("set_names", metavar="[SET...]", nargs=-1)
@device_option
@farm_option
@output_options("Print the status as JSON.")
def assets_status(set_names: tuple[str, ...], selector: str, farm_path: Path | None,
                  output: Output) -> None:
    """Show which sets are present, stale or missing on each phone (one round trip).

    Without SET names every set is listed; a set whose local source is absent is shown as
    "no source" (it cannot be compared or pushed) instead of stopping the listing.
    """
    from rich.table import Table
    from rich.text import Text

    from harness.assets.sets import load_asset_sets
    from harness.assets.sync import Syncer, set_status
    from harness.farm.inventory import resolve

    sets = _sets(set_names or tuple(load_asset_sets()))
    absent = {s.name: [str(e.src) for e in s.entries if not e.src.exists()] for s in sets}
    if set_names:  # named explicitly: a missing source is an error, as for push
        for name, paths in absent.items():
            if paths:
                raise UsageError(f"asset set {name}: {paths[0]} does not exist")
    usable = [s for s in sets if not absent[s.name]]
    rows = []
    for device in resolve(selector, farm_path, many=True, facts=False):
        found = {plan.asset_set: plan for plan in Syncer(device).plan(usable)} if usable else {}
        for s in sets:
            if absent[s.name]:
                rows.append({"serial": device.serial, "set": s.name, "status": "no source",
                             "detail": f"local source absent: {', '.join(absent[s.name])}"})
                continue
            state, detail = set_status(found[s.name])
            rows.append({"serial": device.serial, "set": s.name, "status": state,
                         "detail": detail})
    table = Table("phone", "set", "status", "detail")
    colours = {"present": "green", "stale": "yellow", "missing": "red", "no source": "dim"}
    for row in rows:
        table.add_row(row["serial"], row["set"],
                      Text(row["status"], style=colours[row["status"]]), row["detail"])
    output.emit(rows, lambda: _console().print(table))


COMMANDS = [push_cmd, assets_group]
