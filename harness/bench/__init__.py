"""Bench statistics: the pure numeric core that ``harness bench`` reports with.

Modules (all pure functions over typed dataclasses; nothing here touches a phone or prints):

- :mod:`harness.bench.series` — per-series summary (median, IQR, min, max, n, robust CV) and
  a ``stable``/``noisy`` verdict.
- :mod:`harness.bench.stattests` — two-sample Kolmogorov–Smirnov, Mann–Whitney U and
  Student's t-test, written from the method (exact distributions for small samples).
- :mod:`harness.bench.gate` — the pairwise gate as Chromium's Pinpoint does it:
  ``different`` / ``same`` / ``unknown`` (→ more repeats).
- :mod:`harness.bench.changepoint` — change points over nights (E-divisive means + t-test,
  catapult's filters) and the nightly alert (two nights in a row, PyTorch HUD's rule).
- :mod:`harness.bench.attribution` — what changed between the last good and the first bad run.
- :mod:`harness.bench.quality` — output drift: PSNR and Gaussian-window SSIM.
- :mod:`harness.bench.drift` — one run's image against its series' reference image.
- :mod:`harness.bench.history` — the bench history read from the results store: series,
  nights, change points, tonight's alerts, findings with attribution, output drift.

May import: ``harness.run``, ``harness.results`` and below, and shared ground; today only
:mod:`harness.bench.history` imports ``harness.results`` (its queries:
:mod:`harness.results.history_queries`), the rest only shared ground, numpy and pillow.
"""
