"""Execute a plan on one phone: the runner (lease, sync, steps, outputs, store), failure
diagnosis, ``[Perf]`` parsing, and qfp32/PNG images.

May import: ``harness.results``, ``harness.recipes``, ``harness.assets``, ``harness.farm``,
``harness.device`` and shared ground. Used by ``harness.cli`` (and later bench and repro).
"""
