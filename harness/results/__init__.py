"""The results database: SQLite (WAL) with versioned migrations, one row per run committed
as it ends. :mod:`harness.results.history_queries`: the read-only queries of the bench
history (benches of a window, their runs with metrics, outputs and provenance). Later: report
rendering (HTML, JUnit, Markdown, JSON) and its templates.

May import: ``harness.recipes`` (the ``Plan`` it stores) and shared ground.
"""
