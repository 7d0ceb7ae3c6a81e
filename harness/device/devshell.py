"""Device shell command lines built without string-pasting user input.

Phones run Android's mksh/toybox, so everything here is portable POSIX shell. Every value
that reaches ``adb shell`` — argv words, environment values, working directories, paths — is
single-quoted with :func:`shlex.quote`; environment names are checked against the POSIX
name grammar, because a name cannot be quoted.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence

from harness.errors import UsageError

ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

Command = str | Sequence[str]


def quote(value: str) -> str:
    """Quote one word for the device shell (NUL cannot be passed at all)."""
    if "\0" in value:
        raise UsageError(f"a NUL byte cannot be passed to a device shell: {value!r}")
    return shlex.quote(value)


def argv_line(argv: Sequence[str]) -> str:
    if isinstance(argv, str):
        raise TypeError("argv must be a sequence of words, not a string")
    if not argv:
        raise UsageError("empty command")
    return " ".join(quote(str(a)) for a in argv)


def env_assignments(env: Mapping[str, str]) -> str:
    """``export A='x' B='y'`` (empty string for no env)."""
    if not env:
        return ""
    parts = []
    for name, value in env.items():
        if not ENV_NAME_RE.match(name):
            raise UsageError(f"invalid environment variable name {name!r}")
        parts.append(f"{name}={quote(str(value))}")
    return "export " + " ".join(parts)


def compose(command: Command, env: Mapping[str, str] | None = None,
            cwd: str | None = None) -> str:
    """One device command line: ``cd CWD && export ENV && COMMAND``.

    ``command`` as a list of words is quoted word by word (the safe default); as a string it
    is a shell command line the caller wrote and is passed as is — never build such a
    string from user input, pass user input as argv words or env values instead.
    """
    line = command if isinstance(command, str) else argv_line(command)
    if not line.strip():
        raise UsageError("empty command")
    prefix = []
    if cwd is not None:
        prefix.append(f"cd {quote(cwd)}")
    exports = env_assignments(env or {})
    if exports:
        prefix.append(exports)
    if not prefix:
        return line
    return " && ".join(prefix) + " && " + line


# Kill a process and all its descendants (by walking /proc: works with toybox and procps,
# which disagree on `ps` options), then its process group if it leads one. "$1" is the PID.
KILL_TREE_FUNC = r"""
harness_kill_tree() {
  _all=$_target; _frontier=$_target
  kill -STOP "$_target" 2>/dev/null
  while [ -n "$_frontier" ]; do
    _next=""
    for _s in /proc/[0-9]*/stat; do
      read -r _line < "$_s" 2>/dev/null || continue
      set -- ${_line##*) }
      for _p in $_frontier; do
        if [ "$2" = "$_p" ]; then
          _c=${_s#/proc/}; _c=${_c%/stat}
          kill -STOP "$_c" 2>/dev/null; _next="$_next $_c"
        fi
      done
    done
    _all="$_all $_next"; _frontier=$_next
  done
  for _p in $_all; do kill -9 "$_p" 2>/dev/null; done
}
"""


def kill_tree_command(pid: int) -> str:
    """A device command that SIGKILLs ``pid``'s process group (if it leads one) and tree."""
    if pid <= 1:
        raise UsageError(f"refusing to kill PID {pid}")
    return (
        KILL_TREE_FUNC
        + f"_target={pid}; "
        + f"_pg=$(read -r l < /proc/{pid}/stat 2>/dev/null && r=${{l##*) }} && set -- $r && "
        + "echo $3); "
        + f'harness_kill_tree; [ "$_pg" = "{pid}" ] && kill -9 -{pid} 2>/dev/null; true'
    )
