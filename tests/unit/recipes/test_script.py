"""Rendered commands and scripts: parseable, and hostile values stay inert and verbatim."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.recipes.load import RecipeBook, render_recipe
from harness.recipes.plan import PlanStep
from harness.recipes.script import (
    adb_shell,
    missing_inputs,
    octal_printf,
    prepare_command,
    render_shell,
    step_command,
)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def hostile(marker: Path) -> list[str]:
    return [
        f"$(touch {marker})",
        f"`touch {marker}`",
        f"; touch {marker}",
        f"a\ntouch {marker}\n",
        f"' ; touch {marker} ; '",
        "it's \"quoted\" \\ back\\slash",
        "$HOME ${PATH} $((1+1)) * ? [a] ~",
        "{{ 7*7 }} {% raw %}",
        "--flag=1",
        "tab\there  spaces ",
        "unicode ✓ 猫 é",
        "",
    ]


STAND_IN = "import json, os, sys; print(json.dumps([os.environ.get('HOSTILE'), sys.argv[1:]]))"


@pytest.fixture
def echo_book(tmp_path: Path) -> RecipeBook:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "echo.yaml").write_text(textwrap.dedent(f"""\
        description: hands the prompt to a stand-in binary, in env and argv
        params:
          prompt: {{type: str, default: x}}
          negative_prompt: {{type: str, default: ""}}
          where: {{type: str, default: /}}
        tokens:
          - {{kind: clip_l, dest: "{{{{ device_tmp }}}}/clip_l_ids.i32"}}
        steps:
          - name: show
            binary: {sys.executable}
            args: ["-c", {json.dumps(STAND_IN)}, "{{{{ prompt }}}}", "{{{{ omit }}}}"]
            env: {{HOSTILE: "{{{{ prompt }}}}"}}
            cwd: "{{{{ where }}}}"
        """))
    return RecipeBook([recipes])


def _device_step(book: RecipeBook, prompt: str, where: Path) -> PlanStep:
    plan = book.render("echo", {"prompt": prompt, "where": str(where)})
    return plan.steps[0]


def test_hostile_values_arrive_verbatim_on_the_device_shell(echo_book: RecipeBook,
                                                             tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for value in hostile(marker):
        step = _device_step(echo_book, value, tmp_path)
        result = subprocess.run(["sh", "-c", step_command(step)], capture_output=True,
                                text=True, check=True)
        assert json.loads(result.stdout) == [value, [value]], value
        assert not marker.exists(), value


@pytest.fixture
def fake_adb(tmp_path: Path) -> dict[str, str]:
    """An ``adb`` that runs ``adb shell ARGS`` as a device would: words joined, then sh -c."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    adb = bindir / "adb"
    adb.write_text('#!/bin/sh\n[ "$1" = shell ] || exit 9\nshift\nexec sh -c "$*"\n')
    adb.chmod(adb.stat().st_mode | stat.S_IXUSR)
    return {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}


def test_hostile_values_survive_host_and_device_shells(echo_book: RecipeBook, tmp_path: Path,
                                                       fake_adb: dict[str, str]) -> None:
    marker = tmp_path / "pwned"
    for value in hostile(marker):
        step = _device_step(echo_book, value, tmp_path)
        host_line = adb_shell(step_command(step))
        assert shlex.split(host_line) == ["adb", "shell", step_command(step)]
        result = subprocess.run(["sh", "-c", host_line], capture_output=True, text=True,
                                check=True, env=fake_adb)
        assert json.loads(result.stdout) == [value, [value]], value
        assert not marker.exists(), value


def test_device_command_parses_back(echo_book: RecipeBook, tmp_path: Path) -> None:
    value = "a 'b' \"c\" $(d)"
    step = _device_step(echo_book, value, tmp_path)
    words = shlex.split(step_command(step))
    assert words[:3] == ["cd", str(tmp_path), "&&"]
    assert words[3] == f"HOSTILE={value}"
    assert words[4:] == list(step.argv)


def test_omit_drops_an_argument(echo_book: RecipeBook, tmp_path: Path) -> None:
    step = _device_step(echo_book, "x", tmp_path)
    assert step.argv == (sys.executable, "-c", STAND_IN, "x")


def test_script_is_valid_sh_and_lists_the_commands(tmp_path: Path) -> None:
    plan = render_recipe("sdxl-1024", {"prompt": "a cat; rm -rf / $(reboot)\n`id`"})
    script = render_shell(plan)
    path = tmp_path / "run.sh"
    path.write_text(script)
    subprocess.run(["sh", "-n", str(path)], check=True)
    lines = script.splitlines()
    shell_lines = [ln for ln in lines if ln.startswith("adb shell ")]
    device = [shlex.split(ln)[2] for ln in shell_lines]
    assert device == [prepare_command(plan.steps[0]), step_command(plan.steps[0]),
                      prepare_command(plan.steps[1]), step_command(plan.steps[1])]
    assert "adb push \"$ids_dir/ids0.i32\" /data/local/tmp/clip_l_ids.i32" in lines
    assert "adb pull /data/local/tmp/output/sdxl_vae_out.qfp32 sdxl_vae_out.qfp32" in lines
    assert (prepare_command(plan.steps[1]) or "").endswith(
        " && mkdir -p /data/local/tmp/output && rm -f /data/local/tmp/output/sdxl_vae_out.qfp32")
    # the prompt appears only in comments
    assert all(ln.startswith("#") for ln in lines if "reboot" in ln)


def test_token_printf_lines_write_the_exact_bytes(tmp_path: Path) -> None:
    plan = render_recipe("sdxl-1024")
    printf_lines = [ln for ln in render_shell(plan).splitlines() if ln.startswith("printf ")]
    assert len(printf_lines) == 2
    for line, token in zip(printf_lines, plan.token_files, strict=True):
        command = line.replace('"$ids_dir/', f'"{tmp_path}/')
        subprocess.run(["sh", "-c", command], check=True)
        written = tmp_path / command.rsplit("/", 1)[1].rstrip('"')
        assert written.read_bytes() == token.data()


def test_octal_printf_covers_every_byte(tmp_path: Path) -> None:
    data = bytes(range(256))
    out = tmp_path / "bytes"
    subprocess.run(["sh", "-c", f"printf '{octal_printf(data)}' > {shlex.quote(str(out))}"],
                   check=True)
    assert out.read_bytes() == data


def test_script_comments_cannot_break_out(tmp_path: Path) -> None:
    plan = render_recipe("sdxl-1024", {"prompt": "x\ntouch /tmp/never-created-by-harness\n"})
    for line in render_shell(plan).splitlines():
        assert "touch" not in line or line.startswith("#")


def test_prepare_reports_missing_inputs_in_declared_order(tmp_path: Path) -> None:
    present = tmp_path / "weights"
    present.mkdir()
    gone = [str(tmp_path / "it's gone"), str(tmp_path / "also $(gone)")]
    step = PlanStep("s", "/bin/true", ("/bin/true",), {}, None, 10.0, (),
                    inputs=(gone[0], str(present), gone[1]))
    command = prepare_command(step)
    assert command is not None
    result = subprocess.run(["sh", "-c", command + " && echo done"], capture_output=True,
                            text=True, check=True)
    assert missing_inputs(result.stdout) == gone
    assert result.stdout.rstrip().endswith("done")
    assert missing_inputs("no\nmarkers\n") == []
