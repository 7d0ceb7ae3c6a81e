"""The ``harness`` command line: parse options, call one library function, render the result.

Errors become a one-line message and an exit code here, and only here (see ``main``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.markup import escape
from rich.table import Table

from harness import __version__
from harness.console import err, out
from harness.errors import (
    EXIT_DEVICE,
    EXIT_INTERRUPTED,
    EXIT_RUN_FAILED,
    EXIT_USAGE,
    HarnessError,
)
from harness.home import sim_dir


def _fail(message: str, hint: str | None, code: int) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}"
              + (f" [dim]({escape(hint)})[/]" if hint else ""),
              markup=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and map every failure to one line and an exit code."""
    try:
        cli.main(args=argv, prog_name="harness", standalone_mode=False)
    except click.exceptions.Abort:
        _fail("interrupted", None, EXIT_INTERRUPTED)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        usage_hint = None
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            usage_hint = f"see `{ctx.command_path} --help`"
        _fail(exc.format_message(), usage_hint, exc.exit_code or EXIT_USAGE)
    except HarnessError as exc:
        _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, exc.hint,
              exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", None, EXIT_INTERRUPTED)
    sys.exit(0)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="harness")
def cli() -> None:
    """A reproducible lab for on-device Stable Diffusion on Snapdragon phones over ADB.

    State lives under $HARNESS_HOME (default ~/.local/share/harness).
    """


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


# ---- farm ---------------------------------------------------------------------------------

farm_option = click.option(
    "--farm", "farm_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Farm file (default $HARNESS_HOME/farm.yaml; without one: the local adb server "
         "and the virtual farm when it runs).")


def _load_farm(farm_path: Path | None) -> Any:
    from harness.farm import Farm, load_farm

    return Farm(load_farm(farm_path))


@cli.command("devices")
@farm_option
@click.option("--json", "as_json", is_flag=True, help="Print the phones as JSON.")
def devices_cmd(farm_path: Path | None, as_json: bool) -> None:
    """List the phones on every adb server of the farm, with their facts and leases."""
    farm = _load_farm(farm_path)
    found = farm.discover()
    if as_json:
        _emit_json([d.to_dict() for d in found])
        return
    table = Table("serial", "server", "nickname", "model", "SoC", "RAM", "Android", "battery",
                  "temp", "state", "lease")
    from harness.lease import holder_of

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


@cli.command("doctor")
@farm_option
@click.option("--device", "-d", "selector", default=None,
              help="Only check the phones this selects (serial, nickname, sim, tag:EXPR).")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def doctor_cmd(farm_path: Path | None, selector: str | None, as_json: bool) -> None:
    """Check adb servers and phones: reachability, authorization, battery, heat, space."""
    from harness.doctor import Level, check_farm

    findings = check_farm(_load_farm(farm_path), selector)
    if as_json:
        _emit_json([{"level": f.level.value, "subject": f.subject, "message": f.message,
                     "hint": f.hint} for f in findings])
    else:
        colours = {"ok": "green", "info": "cyan", "warn": "yellow", "error": "red"}
        for f in findings:
            hint = f" [dim]({escape(f.hint)})[/]" if f.hint else ""
            out.print(f"[{colours[f.level.value]}]{f.level.value:5}[/] {escape(f.subject)}: "
                      f"{escape(f.message)}{hint}", markup=True)
    if any(f.level is Level.ERROR for f in findings):
        sys.exit(EXIT_DEVICE)


# ---- run ----------------------------------------------------------------------------------


@cli.command("run")
@click.argument("recipe")
@click.option("--device", "-d", "selector", default="auto", show_default=True,
              help="Serial, nickname, sim, or tag:EXPR; auto = an attached phone that meets "
                   "the recipe's requirements, else a virtual phone.")
@click.option("--prompt", "-p", default=None, help="The prompt (recipe parameter prompt).")
@click.option("--negative", default=None, help="The negative prompt.")
@click.option("--seed", type=int, default=None, help="The seed.")
@click.option("--set", "set_pairs", multiple=True, metavar="K=V",
              help="A recipe parameter (steps=30), or a step override to reproduce a "
                   "failure: STEP.env.KEY=VALUE, STEP.unset=KEY, STEP.cwd=DIR. Repeatable.")
@farm_option
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Results database (default $HARNESS_HOME/results.sqlite).")
@click.option("--logs-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("logs"), show_default=True, help="Where run folders go.")
@click.option("--lease-wait", type=float, default=0.0, show_default=True,
              help="Seconds to wait for a phone another harness job holds.")
@click.option("--recipes-dir", "recipes_dirs", multiple=True,
              type=click.Path(file_okay=False, path_type=Path), help="Extra recipe folder.")
@click.option("--tokenizer-dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="A model's own vocab.json + merges.txt.")
@click.option("--no-sync", is_flag=True, help="Do not sync the recipe's asset sets first.")
@click.option("--quiet", "-q", is_flag=True, help="No live output lines.")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
def run_cmd(recipe: str, selector: str, prompt: str | None, negative: str | None,
            seed: int | None, set_pairs: tuple[str, ...], farm_path: Path | None,
            db_path: Path | None, logs_dir: Path, lease_wait: float,
            recipes_dirs: tuple[Path, ...], tokenizer_dir: Path | None, no_sync: bool,
            quiet: bool, as_json: bool) -> None:
    """Run a recipe on a phone: sync, tokenize, run each step, parse [Perf], pull PNGs, store."""
    from harness.runner import RunEvents, RunRequest, run_recipe

    values: dict[str, Any] = {}
    for key, value in (("prompt", prompt), ("negative_prompt", negative), ("seed", seed)):
        if value is not None:
            values[key] = value
    live = not (quiet or as_json)
    events = RunEvents(
        phase=(lambda text: err.print(f"[bold cyan]>[/] {text}", markup=True)) if live
        else (lambda text: None),
        line=(lambda step, stream, text: err.print(
            f"[dim]{step}{'!' if stream == 'stderr' else ':'}[/] {escape(text)}", markup=True,
            highlight=False)) if live else (lambda step, stream, text: None),
    )
    request = RunRequest(recipe, selector, values, set_pairs, farm_path, db_path, logs_dir,
                         lease_wait, recipes_dirs, tokenizer_dir, not no_sync)
    if live and err.is_terminal:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TransferSpeedColumn,
        )

        with Progress(BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err,
                      transient=True) as bar:
            task = bar.add_task("sync", total=None, visible=False)
            events.sync_progress = lambda done, total: bar.update(
                task, completed=done, total=total, visible=done < total)
            summary = run_recipe(request, events)
    else:
        summary = run_recipe(request, events)
    if as_json:
        _emit_json(summary.to_dict())
    else:
        _print_run(summary)
    if summary.status != "ok":
        sys.exit(EXIT_RUN_FAILED)


def _print_run(summary: Any) -> None:
    table = Table("step", "exit", "wall s", "figures")
    for step in summary.steps:
        figures = "  ".join(f"{k}={v:g}" for k, v in step.metrics.items())
        table.add_row(step.name, "-" if step.exit_code is None else str(step.exit_code),
                      f"{step.seconds:.2f}", figures)
    out.print(table)
    for step in summary.steps:
        for name, png in step.outputs.items():
            out.print(f"output {step.name}/{name}: {png}")
    for verdict in summary.verdicts:
        out.print(f"[yellow]verdict:[/] {escape(verdict)}", markup=True)
    colour = {"ok": "green", "failed": "red", "interrupted": "yellow"}[summary.status]
    out.print(f"[{colour}]{summary.status}[/] run {summary.run_id} on {summary.serial} in "
              f"{summary.seconds:.1f}s; folder {escape(str(summary.run_dir))}", markup=True)
    if summary.diagnosis:
        out.print(f"[red]diagnosis:[/] {escape(summary.diagnosis)}", markup=True)


# ---- sim ----------------------------------------------------------------------------------


@cli.group()
def sim() -> None:
    """Virtual Snapdragon phones behind a private adb server (for trying and testing)."""


def _farm() -> Any:
    from harness.sim.farm import Farm

    return Farm(sim_dir())


@sim.command("up")
@click.option("--phones", "-n", type=int, default=None,
              help="Number of phones (profiles are cycled). Default: one per --profile, "
                   "or three (sm8650-16g, sm8550-12g, sm8475-8g).")
@click.option("--profile", "-p", "profile_names", multiple=True, metavar="NAME",
              help="Phone profile; repeat for several phones. See `harness sim profiles`.")
@click.option("--time-scale", type=float, default=None, show_default=False,
              help="Wall seconds per simulated second (default 0.1: SDXL 1024 in ~15 s).")
@click.option("--adb-port", type=int, default=None, help="Port of the farm's own adb server "
              "(default: a free one; never 5037).")
@click.option("--json", "as_json", is_flag=True, help="Print the farm as JSON.")
def sim_up(phones: int | None, profile_names: tuple[str, ...], time_scale: float | None,
           adb_port: int | None, as_json: bool) -> None:
    """Start a virtual farm in the background."""
    from harness.sim.farm import DEFAULT_TIME_SCALE

    farm = _farm()
    state = farm.up(profile_names, phones=phones,
                    time_scale=DEFAULT_TIME_SCALE if time_scale is None else time_scale,
                    adb_port=adb_port)
    status = farm.status()
    if as_json:
        _emit_json(_status_dict(status))
        return
    _print_status(status)
    out.print(f"\nadb server: [bold]adb -P {state.adb_port} devices -l[/]", markup=True)


@sim.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the farm as JSON.")
def sim_status(as_json: bool) -> None:
    """Show the virtual farm: adb server port, phones, their processes and adb state."""
    status = _farm().status()
    if as_json:
        _emit_json(_status_dict(status) if status else {"running": False})
        return
    if status is None:
        out.print("no virtual farm is running (start one with `harness sim up`)")
        return
    _print_status(status)


@sim.command("down")
@click.option("--wipe", is_flag=True, help="Also delete the phones' files (/data etc.).")
def sim_down(wipe: bool) -> None:
    """Stop the virtual farm: exactly the processes it started, by PID."""
    count = _farm().down(wipe=wipe)
    out.print(f"stopped {count} phone(s) and the farm's adb server" if count
              else "no virtual farm was running")


@sim.command("add")
@click.option("--profile", "-p", "profile_name", default="sm8650-16g", show_default=True,
              help="Phone profile.")
@click.option("--json", "as_json", is_flag=True, help="Print the new phone as JSON.")
def sim_add(profile_name: str, as_json: bool) -> None:
    """Add a phone to the running farm."""
    record = _farm().add_phone(profile_name)
    if as_json:
        _emit_json(_phone_dict(record))
    else:
        out.print(f"added {record.serial} ({record.profile}) as {record.adb_serial}")


@sim.command("remove")
@click.argument("serial")
def sim_remove(serial: str) -> None:
    """Disconnect and stop one phone of the running farm."""
    record = _farm().remove_phone(serial)
    out.print(f"removed {record.serial}")


@sim.command("drop")
@click.argument("serial")
def sim_drop(serial: str) -> None:
    """Cut a phone's adb connections (a simulated cable pull); the phone keeps running."""
    _farm().drop_connections(serial)
    out.print(f"dropped the connections of {serial}")


@sim.command("heat")
@click.argument("serial")
@click.argument("celsius", type=float)
def sim_heat(serial: str, celsius: float) -> None:
    """Set a phone's temperatures at once (it then cools toward ambient)."""
    from harness.sim.state import PhoneState

    farm = _farm()
    state = farm._require()
    record = farm.find(state, serial)
    PhoneState(record.layout.ctl).set_temperature(celsius)
    out.print(f"{record.serial} is now at {celsius:g} °C")


@sim.command("profiles")
@click.option("--json", "as_json", is_flag=True, help="Print the profiles as JSON.")
def sim_profiles(as_json: bool) -> None:
    """List phone profiles (built-in and $HARNESS_HOME/sim/profiles/*.yaml)."""
    from dataclasses import asdict

    from harness.sim.profiles import list_profiles, load_profile

    items = [load_profile(name) for name in list_profiles()]
    if as_json:
        _emit_json([asdict(p) for p in items])
        return
    table = Table("profile", "model", "SoC", "platform", "RAM", "Android")
    for prof in items:
        table.add_row(prof.name, prof.model, prof.soc_model, prof.board_platform,
                      f"{prof.ram_gb} GB", f"{prof.android_release} (SDK {prof.sdk})")
    out.print(table)


def _phone_dict(record: Any) -> dict[str, Any]:
    return {"serial": record.serial, "adb_serial": record.adb_serial,
            "profile": record.profile, "port": record.port, "pid": record.pid,
            "dir": record.base}


def _status_dict(status: Any) -> dict[str, Any]:
    state = status.state
    return {
        "running": True,
        "directory": str(status.directory),
        "adb_port": state.adb_port,
        "adb_pid": state.adb_pid,
        "adb_alive": status.adb_alive,
        "mode": state.mode,
        "time_scale": state.time_scale,
        "healthy": status.healthy,
        "phones": [dict(_phone_dict(ph.record), alive=ph.process_alive, adb_state=ph.adb_state)
                   for ph in status.phones],
    }


def _print_status(status: Any) -> None:
    state = status.state
    alive = "[green]running[/]" if status.adb_alive else "[red]dead[/]"
    out.print(f"adb server: port [bold]{state.adb_port}[/] pid {state.adb_pid} ({alive})   "
              f"sandbox: [bold]{state.mode}[/]   time scale: {state.time_scale:g}",
              markup=True)
    table = Table("serial", "adb serial", "profile", "pid", "process", "adb state")
    for ph in status.phones:
        table.add_row(ph.record.serial, ph.record.adb_serial, ph.record.profile,
                      str(ph.record.pid), "alive" if ph.process_alive else "dead",
                      ph.adb_state)
    out.print(table)


def _register() -> None:
    from harness import cli_recipes, cli_sync

    for command in [*cli_sync.COMMANDS, *cli_recipes.COMMANDS]:
        cli.add_command(command)


_register()


# Registry used by tests/test_docs.py to check that every command has help text.
def iter_commands() -> list[tuple[str, Callable[..., Any]]]:
    found: list[tuple[str, Any]] = []

    def walk(group: click.Group, prefix: str) -> None:
        for name, command in sorted(group.commands.items()):
            found.append((f"{prefix} {name}".strip(), command))
            if isinstance(command, click.Group):
                walk(command, f"{prefix} {name}")

    walk(cli, "")
    return found


if __name__ == "__main__":  # pragma: no cover
    main()


__all__ = ["cli", "main"]
