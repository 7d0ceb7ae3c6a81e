"""``harness sim ...``: the virtual farm (start, stop, add, remove, drop, heat, builds, OS
updates, noise, nights, profiles)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from harness.cli.options import FiniteFloat, Output, output_options
from harness.console import out
from harness.errors import UsageError
from harness.home import sim_dir


@click.group()
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
@click.option("--time-scale", type=FiniteFloat(min=0, min_open=True), default=None,
              help="Wall seconds per simulated second (default 0.1: SDXL 1024 in ~15 s).")
@click.option("--adb-port", type=click.IntRange(1, 65535), default=None,
              help="Port of the farm's own adb server (default: a free one; never 5037).")
@output_options("Print the farm as JSON.")
def sim_up(phones: int | None, profile_names: tuple[str, ...], time_scale: float | None,
           adb_port: int | None, output: Output) -> None:
    """Start a virtual farm in the background."""
    from harness.sim.farm import DEFAULT_TIME_SCALE

    farm = _farm()
    state = farm.up(profile_names, phones=phones,
                    time_scale=DEFAULT_TIME_SCALE if time_scale is None else time_scale,
                    adb_port=adb_port)
    status = farm.status()

    def render() -> None:
        _print_status(status)
        out.print(f"\nadb server: [bold]adb -P {state.adb_port} devices -l[/]", markup=True)

    output.emit(_status_dict(status), render)


@sim.command("status")
@output_options("Print the farm as JSON.")
def sim_status(output: Output) -> None:
    """Show the virtual farm: adb server port, phones, their processes and adb state."""
    status = _farm().status()
    if status is None:
        output.emit({"running": False}, lambda: out.print(
            "no virtual farm is running (start one with `harness sim up`)"))
        return
    output.emit(_status_dict(status), lambda: _print_status(status))


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
@output_options("Print the new phone as JSON.")
def sim_add(profile_name: str, output: Output) -> None:
    """Add a phone to the running farm."""
    record = _farm().add_phone(profile_name)
    output.emit(_phone_dict(record), lambda: out.print(
        f"added {record.serial} ({record.profile}) as {record.adb_serial}"))


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
@click.argument("celsius", type=FiniteFloat(min=-40, max=150))
def sim_heat(serial: str, celsius: float) -> None:
    """Set a phone's temperatures at once (it then cools toward ambient)."""
    from harness.sim.state import PhoneState

    farm = _farm()
    state = farm._require()
    record = farm.find(state, serial)
    PhoneState(record.layout.ctl).set_temperature(celsius)
    out.print(f"{record.serial} is now at {celsius:g} °C")


@sim.command("build")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Asset root to write the binaries into (created).")
@click.option("--speed", type=FiniteFloat(min=0, min_open=True), default=1.0, show_default=True,
              help="Time multiplier of this build (1.05: 5 % slower).")
@click.option("--tnn-reuse", is_flag=True,
              help="A build that reuses TNN buffers despite CLML_NO_REUSE_TNN=1 (numeric drift).")
@click.option("--label", default="", help="Free text (a build number); changes the digest.")
@click.option("--binary", "binaries", multiple=True, metavar="NAME",
              help="Only this binary (repeatable; default: all three).")
@output_options("Print the written files as JSON.")
def sim_build(out_dir: Path, speed: float, tnn_reuse: bool, label: str,
              binaries: tuple[str, ...], output: Output) -> None:
    """Write a new build of the simulated binaries (point an asset set's root at it)."""
    from harness.sim import assets, builds

    try:
        build = builds.Build(speed=speed, tnn_reuse=tnn_reuse, label=label)
        written = builds.write_build(out_dir, build, binaries or assets.BINARIES)
    except builds.BuildError as exc:
        raise UsageError(str(exc)) from None
    output.emit({"build": build.to_dict(), "files": [str(p) for p in written]},
                lambda: out.print("\n".join(f"wrote {p}" for p in written)))


@sim.command("os-update")
@click.argument("serial")
@click.option("--build-id", default=None, help="New ro.build.id (default: unchanged).")
@click.option("--incremental", default=None,
              help="New ro.build.version.incremental (default: the next build number).")
@click.option("--security-patch", default=None, help="New security patch level.")
@click.option("--speed", type=FiniteFloat(min=0, min_open=True), default=1.0, show_default=True,
              help="Multiply the phone's speed factor (a new GPU driver: 1.05 is 5 % slower).")
@output_options("Print the update as JSON.")
def sim_os_update(serial: str, build_id: str | None, incremental: str | None,
                  security_patch: str | None, speed: float, output: Output) -> None:
    """Give a phone a new OS build: a new build fingerprint (and maybe speed); it reboots."""
    from dataclasses import asdict

    from harness.sim.osupdate import os_update

    farm = _farm()
    record = farm.find(farm._require(), serial)
    done = os_update(record.layout.ctl, record.layout.root, build_id=build_id,
                     incremental=incremental, security_patch=security_patch, speed=speed)
    output.emit(asdict(done), lambda: out.print(
        f"{record.serial}: {done.before} -> {done.after}"))


@sim.command("noise")
@click.argument("model", type=click.Choice(["quiet", "realistic"]))
@click.option("--serial", "serials", multiple=True, metavar="SERIAL",
              help="Only this phone (repeatable; default: every phone of the farm).")
def sim_noise(model: str, serials: tuple[str, ...]) -> None:
    """Set the phones' run-to-run noise: quiet (default) or realistic (non-rooted phones)."""
    from harness.sim import speed

    for record in _records(serials):
        speed.set_noise(record.layout.ctl, speed.NOISE_MODELS[model])
        out.print(f"{record.serial}: {model} noise")


@sim.command("night")
@click.argument("session", required=False)
@click.option("--serial", "serials", multiple=True, metavar="SERIAL",
              help="Only this phone (repeatable; default: every phone of the farm).")
def sim_night(session: str | None, serials: tuple[str, ...]) -> None:
    """Start a new session (a night) on the phones: new room, charger, background load."""
    import time

    from harness.sim import speed

    key = session or f"night-{time.time():.0f}"
    for record in _records(serials):
        speed.set_session(record.layout.ctl, key)
        out.print(f"{record.serial}: session {key}")


def _records(serials: tuple[str, ...]) -> list[Any]:
    farm = _farm()
    state = farm._require()
    return [farm.find(state, s) for s in serials] if serials else list(state.phones)


@sim.command("profiles")
@output_options("Print the profiles as JSON.")
def sim_profiles(output: Output) -> None:
    """List phone profiles (built-in and $HARNESS_HOME/sim/profiles/*.yaml)."""
    from dataclasses import asdict

    from harness.sim.profiles import list_profiles, load_profile

    items = [load_profile(name) for name in list_profiles()]
    table = Table("profile", "model", "SoC", "platform", "RAM", "Android")
    for prof in items:
        table.add_row(prof.name, prof.model, prof.soc_model, prof.board_platform,
                      f"{prof.ram_gb} GB", f"{prof.android_release} (SDK {prof.sdk})")
    output.emit([asdict(p) for p in items], lambda: out.print(table))


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
        "userland": state.userland,
        "shell_user": state.shell_user,
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
    out.print(f"userland: {state.userland or 'unknown'}   adb shell runs as: "
              f"{state.shell_user or 'unknown'} (rooted profiles: root)", markup=False,
              highlight=False)
    table = Table("serial", "adb serial", "profile", "pid", "process", "adb state")
    for ph in status.phones:
        table.add_row(ph.record.serial, ph.record.adb_serial, ph.record.profile,
                      str(ph.record.pid), "alive" if ph.process_alive else "dead",
                      ph.adb_state)
    out.print(table)


COMMANDS = [sim]
