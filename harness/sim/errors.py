"""Errors of the virtual farm (the host-side tooling that starts and stops virtual phones).

The simulated phone's own failures (a malformed ADB packet, a bad asset file as a pipeline
binary reports it) are behaviour of the phone, not harness errors; they stay with the code
that simulates them (:mod:`harness.sim.protocol`, :mod:`harness.sim.assets`).
"""

from __future__ import annotations

from harness.errors import EXIT_SIM, HarnessError


class SimError(HarnessError):
    """The virtual phone farm could not do what was asked."""

    exit_code = EXIT_SIM


__all__ = ["SimError"]
