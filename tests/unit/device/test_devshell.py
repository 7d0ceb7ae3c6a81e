"""Device command lines: hostile values arrive verbatim and execute nothing.

The device shell is stood in for by the host's POSIX sh (dash), which is stricter than mksh;
the same lines run on real phones.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.device import devshell
from harness.errors import UsageError
from tests.helpers import count_lines_starting, wait_for

HOSTILE = [
    "$(touch {marker})",
    "`touch {marker}`",
    "; touch {marker}",
    "a'b\"c",
    "line1\nline2; touch {marker}",
    "$HOME ${PATH} \\ * ? [a] ~ & | > < #",
    " leading and trailing ",
    "",
]


@pytest.mark.parametrize("template", HOSTILE)
def test_hostile_argv_env_and_cwd_arrive_verbatim(template: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    value = template.replace("{marker}", str(marker))
    weird_dir = tmp_path / ("dir " + value.replace("/", "_").replace("\n", "_"))[:60]
    weird_dir.mkdir()
    line = devshell.compose(
        ["printf", "[%s]\\n", value, "$VALUE_ENV"],  # the literal $VALUE_ENV must not expand
        env={"VALUE_ENV": value},
        cwd=str(weird_dir),
    )
    line += '; printf "<%s>\\n" "$VALUE_ENV"; pwd'
    result = subprocess.run(["sh", "-c", line], capture_output=True, text=True, check=True)
    assert result.stdout == f"[{value}]\n[$VALUE_ENV]\n<{value}>\n{weird_dir}\n"
    assert not marker.exists()


def test_invalid_env_names_are_refused() -> None:
    for name in ("A B", "1X", "X;touch", "X=Y", ""):
        with pytest.raises(UsageError, match="invalid environment variable name"):
            devshell.compose(["true"], env={name: "v"})


def test_nul_and_empty_commands_are_refused() -> None:
    with pytest.raises(UsageError):
        devshell.compose(["echo", "a\0b"])
    with pytest.raises(UsageError):
        devshell.compose([])
    with pytest.raises(UsageError):
        devshell.compose("   ")


def test_string_commands_pass_through_and_get_the_prefix() -> None:
    assert devshell.compose("ls | wc -l") == "ls | wc -l"
    assert devshell.compose("ls", env={"A": "1"}, cwd="/x y") == "cd '/x y' && export A=1 && ls"


def test_kill_tree_kills_a_whole_tree(tmp_path: Path) -> None:
    tag = "4242"
    proc = subprocess.Popen(["sh", "-c", f"sleep {tag}1 & sleep {tag}2 & sh -c 'sleep {tag}3'"])
    try:
        wait_for(lambda: _count(tag) == 3)
        subprocess.run(["sh", "-c", devshell.kill_tree_command(proc.pid)], check=True)
        wait_for(lambda: _count(tag) == 0)
    finally:
        proc.kill()
        proc.wait()


def test_kill_tree_refuses_init() -> None:
    with pytest.raises(UsageError):
        devshell.kill_tree_command(1)


def _count(tag: str) -> int:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return count_lines_starting(out, f"sleep {tag}")
