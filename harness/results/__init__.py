"""The results database: SQLite (WAL) with versioned migrations, one row per run committed
as it ends (``store``, ``schema``). Read-only queries: :mod:`harness.results.history_queries`
for the bench history (benches of a window, their runs with metrics, outputs and
provenance), :mod:`harness.results.query` for reports (benches, bench events, a bench's
runs with steps' columns, telemetry samples). Reports are rendered by ``harness.report``.

May import: ``harness.recipes`` (the ``Plan`` it stores) and shared ground.
"""
