"""Execute a plan on one phone: the runner (lease, sync, steps, outputs, store), failure
diagnosis and out-of-memory verdicts, ``[Perf]`` parsing, qfp32/PNG images and the
colour-block detector.

May import: ``harness.results``, ``harness.recipes``, ``harness.assets``, ``harness.farm``,
``harness.device`` and shared ground. Used by ``harness.cli`` (and later bench and repro).
"""
