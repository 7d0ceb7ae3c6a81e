"""Reports: one self-contained HTML page, JUnit XML, a Markdown summary and canonical JSON,
all rendered from one model (:mod:`harness.report.model`) filled from the results store.

- :mod:`harness.report.collect` — the model from the store (a bench with its history, or
  one run); :mod:`harness.report.history` — series, change points and findings;
- :mod:`harness.report.html` (+ ``templates/``), :mod:`harness.report.plots` (inline SVG,
  matplotlib imported lazily), :mod:`harness.report.thumbs` (``data:`` thumbnails);
- :mod:`harness.report.junit`, :mod:`harness.report.markdown`,
  :mod:`harness.report.canonical` (JSON; ``SCHEMA.md`` documents it);
- :mod:`harness.report.write` — :func:`write_reports` / :func:`write_run_report`, what the
  CLI (``harness report``, ``harness runs show --html``) and ``harness bench`` call.

May import: ``harness.bench``, ``harness.repro``, ``harness.run``, ``harness.results`` and
below. Never prints.
"""
