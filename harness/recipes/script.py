"""Device command lines for plan steps, and a plan as a copy-pasteable POSIX script.

Quoting: a device command line quotes every value once (:func:`harness.device.devshell.quote`: shlex
quoting, NUL refused) for the
device shell (toybox/mksh understand POSIX single quotes). On the host, that whole line is
quoted once more to become one argument of ``adb shell``; adb hands it to the device shell,
which undoes the inner quoting. Values therefore arrive verbatim, whatever they contain.
"""

from __future__ import annotations

import posixpath

from harness import __version__
from harness.device.devshell import quote
from harness.recipes.plan import Plan, PlanStep, TokenFile

ADB = "adb"


def step_command(step: PlanStep) -> str:
    """What to run on the device: ``[cd CWD &&] VAR=value ... argv`` with every value quoted."""
    assignments = [f"{key}={quote(value)}" for key, value in step.env.items()]
    words = [*assignments, *(quote(arg) for arg in step.argv)]
    line = " ".join(words)
    return f"cd {quote(step.cwd)} && {line}" if step.cwd else line


MISSING_PREFIX = "@@harness-missing "  # a line prepare_command prints per absent input


def input_check(step: PlanStep) -> str | None:
    """Print ``@@harness-missing PATH`` for each declared input absent on the phone."""
    if not step.inputs:
        return None
    tests = " ".join(f"[ -e {quote(path)} ] || echo {quote(MISSING_PREFIX + path)};"
                     for path in step.inputs)
    return f"{{ {tests} true; }}"


def prepare_command(step: PlanStep) -> str | None:
    """Before a step, in one round trip: report missing inputs (:func:`missing_inputs` reads
    the report), create its output folders and delete old outputs, so that a stale file is
    never taken for a fresh one (``None`` when the step declares neither)."""
    parts = []
    check = input_check(step)
    if check:
        parts.append(check)
    if step.outputs:
        dirs = dict.fromkeys(posixpath.dirname(out.path) for out in step.outputs)
        parts.append("mkdir -p " + " ".join(quote(d) for d in dirs) + " && rm -f "
                     + " ".join(quote(out.path) for out in step.outputs))
    return " && ".join(parts) if parts else None


def missing_inputs(output: str) -> list[str]:
    """The inputs :func:`prepare_command` reported missing, in the order declared."""
    return [line[len(MISSING_PREFIX):] for line in output.splitlines()
            if line.startswith(MISSING_PREFIX)]


def adb_shell(device_command: str) -> str:
    """The host command that runs ``device_command`` on the phone."""
    return f"{ADB} shell {quote(device_command)}"


def octal_printf(data: bytes) -> str:
    """A POSIX ``printf`` format string that writes ``data`` exactly (octal escapes)."""
    return "".join(f"\\{byte:03o}" for byte in data)


def _token_lines(files: tuple[TokenFile, ...]) -> list[str]:
    if not files:
        return []
    lines = ["", "# CLIP token ids (2 x 77 int32, rows [uncond, cond]), written here and pushed",
             'ids_dir=$(mktemp -d)']
    for index, token in enumerate(files):
        local = f'"$ids_dir/ids{index}.i32"'
        lines.append(f"printf '{octal_printf(token.data())}' > {local}")
        lines.append(f"{ADB} push {local} {quote(token.dest)}")
    lines.append('rm -r "$ids_dir"')
    return lines


def _asset_lines(plan: Plan) -> list[str]:
    if not plan.assets:
        return []
    lines = ["", f"# assets ({', '.join(plan.asset_sets)}) must be on the phone; "
             "`harness run` syncs them. By hand:"]
    for asset in plan.assets:
        mode = f"  (mode {asset.mode:o})" if asset.mode is not None else ""
        lines.append(_comment(f"  {ADB} push {quote(asset.src)} "
                              f"{quote(asset.dest)}{mode}"))
    return lines


def _comment(text: str) -> str:
    """One comment line, whatever ``text`` holds."""
    return "# " + " ".join(text.splitlines())


def _header(plan: Plan) -> list[str]:
    lines = ["#!/bin/sh", _comment(f"harness {__version__}: recipe {plan.recipe} "
                                   f"({plan.source})")]
    lines += [_comment(f"  {key} = {value!r}") for key, value in plan.params.items()]
    lines += [_comment(f"warning: {w}") for w in plan.warnings]
    lines += ["# Pick the phone with ANDROID_SERIAL=<serial> (or add -s SERIAL to adb).", "set -e"]
    return lines


def _step_lines(plan: Plan) -> list[str]:
    lines: list[str] = []
    total = len(plan.steps)
    for number, step in enumerate(plan.steps, 1):
        lines += ["", _comment(f"step {number}/{total}: {step.name} "
                               f"({'+'.join(step.stages) or '-'}), timeout {step.timeout_s:g} s")]
        prepare = prepare_command(step)
        if prepare:
            lines.append(adb_shell(prepare))
        lines.append(adb_shell(step_command(step)))
    return lines


def _pull_lines(plan: Plan) -> list[str]:
    if not plan.outputs:
        return []
    lines = ["", "# outputs"]
    for _step, out in plan.outputs:
        local = out.path.rsplit("/", 1)[-1]
        shape = ",".join(str(d) for d in out.shape)
        lines.append(f"{ADB} pull {quote(out.path)} {quote(local)}")
        lines.append(_comment(f"harness convert {quote(local)} --shape {shape}  "
                              f"({out.kind})"))
    return lines


def render_shell(plan: Plan) -> str:
    """The plan as a POSIX ``sh`` script of ``adb`` commands (token pushes, steps, pulls)."""
    lines = (_header(plan) + _asset_lines(plan) + _token_lines(plan.token_files)
             + _step_lines(plan) + _pull_lines(plan))
    return "\n".join(lines) + "\n"
