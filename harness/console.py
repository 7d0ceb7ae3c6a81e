"""The CLI's two consoles (stdout for results, stderr for progress and errors).

Piped output (logs, CI) gets wide tables instead of 80 columns of truncated cells. Markup is
off by default — recipe text, prompts and phone output print verbatim, brackets and all — and
is turned on per call (``markup=True``) where a message is styled. Only CLI modules import
this: core code never prints.

rich is imported when a console is first used, not when this module is: ``harness --help``
and a command that prints one line do not pay for it (rich.console, rich.markup and the
emoji table: ~35 ms of a command's start).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

PIPE_WIDTH_COLUMNS = 200
# What rich's Text removes from printed text (rich.control.strip_control_codes).
_RICH_STRIPPED = dict.fromkeys((7, 8, 11, 12, 13))


class _LazyConsole:
    """Stands in for a rich ``Console`` made on first use (every attribute forwarded)."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def _get(self) -> Console:
        if self._console is None:
            from rich.console import Console

            stream = sys.stderr if self._stderr else sys.stdout
            self._console = Console(stderr=self._stderr, highlight=False, soft_wrap=True,
                                    markup=False,
                                    width=None if stream.isatty() else PIPE_WIDTH_COLUMNS)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)

    def print(self, *objects: Any, **kwargs: Any) -> None:
        """``Console.print``; plain text (no markup, no other option) before rich was needed
        is written directly, with the control characters rich strips stripped: a command
        that prints a line or two (``harness push``) does not import rich for them."""
        if (self._console is None and all(type(o) is str for o in objects)
                and set(kwargs) <= {"markup"} and not kwargs.get("markup")):
            stream = sys.stderr if self._stderr else sys.stdout
            stream.write(" ".join(objects).translate(_RICH_STRIPPED) + "\n")
            stream.flush()
            return
        self._get().print(*objects, **kwargs)


def escape(text: str) -> str:
    """``rich.markup.escape``: ``text`` shown verbatim inside markup."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


if TYPE_CHECKING:
    out: Console
    err: Console
else:
    out = _LazyConsole(stderr=False)
    err = _LazyConsole(stderr=True)
