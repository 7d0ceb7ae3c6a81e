"""The core's loggers. Every module logs through ``log = get_logger(__name__)`` and never
prints. Importing this module gives the ``harness`` logger a NullHandler: without a handler
of the application's (the CLI adds one), nothing reaches stderr, not even Python's last
resort. It lives here, not in ``harness/__init__``, so that a command that logs nothing
(``harness --help``) does not import :mod:`logging` (~6 ms of its start-up, issue 12).
"""

from __future__ import annotations

import logging

logging.getLogger(__package__ or "harness").addHandler(logging.NullHandler())


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)``, with the package's NullHandler in place."""
    return logging.getLogger(name)
