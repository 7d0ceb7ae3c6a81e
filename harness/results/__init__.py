"""The results database: SQLite (WAL) with versioned migrations, one row per run committed
as it ends (``store``, ``schema``), and the read-only queries reports need (``query``:
benches, bench events, bench runs, telemetry samples). Reports themselves are rendered by
``harness.report``.

May import: ``harness.recipes`` (the ``Plan`` it stores) and shared ground.
"""
