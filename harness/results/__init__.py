"""The results database: SQLite (WAL) with versioned migrations, one row per run committed
as it ends. Later: report rendering (HTML, JUnit, Markdown, JSON) and its templates.

May import: ``harness.recipes`` (the ``Plan`` it stores) and shared ground.
"""
