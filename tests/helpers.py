"""Helpers shared by the tests (one copy each): the CLI as a user runs it, and waiting.

``harness(...)`` runs ``python -m harness.cli`` as a subprocess, so a test sees exactly what
a user sees: stdout, stderr (one line per error, never a traceback) and the exit code.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

CLI_TIMEOUT_S = 300.0  # a whole `harness run` on a loaded 2-core CI machine fits in this
WAIT_TIMEOUT_S = 15.0
WAIT_POLL_S = 0.05


def harness(*args: str, home: Path | None = None, env: Mapping[str, str] | None = None,
            cwd: Path | None = None,
            timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run ``harness ARGS``; ``home`` becomes ``$HARNESS_HOME``, ``env`` is added on top of
    this process's environment."""
    full_env = {**os.environ, **({"HARNESS_HOME": str(home)} if home else {}), **(env or {})}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True,
                          text=True, env=full_env, cwd=cwd, timeout=timeout, check=False)


def wait_for(predicate: Callable[[], bool], timeout_s: float = WAIT_TIMEOUT_S) -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(WAIT_POLL_S)


def count_lines_starting(text: str, prefix: str) -> int:
    """How many lines of ``text`` (e.g. ``ps -eo args`` output) start with ``prefix``."""
    return sum(1 for line in text.splitlines() if line.startswith(prefix))
