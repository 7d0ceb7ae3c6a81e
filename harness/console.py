"""The CLI's two consoles (stdout for results, stderr for progress and errors).

Piped output (logs, CI) gets wide tables instead of 80 columns of truncated cells. Markup is
off by default — recipe text, prompts and phone output print verbatim, brackets and all — and
is turned on per call (``markup=True``) where a message is styled. Only CLI modules import
this: core code never prints.
"""

from __future__ import annotations

import sys

from rich.console import Console

PIPE_WIDTH_COLUMNS = 200

out = Console(highlight=False, soft_wrap=True, markup=False,
              width=None if sys.stdout.isatty() else PIPE_WIDTH_COLUMNS)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False,
              width=None if sys.stderr.isatty() else PIPE_WIDTH_COLUMNS)
