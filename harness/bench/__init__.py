"""``harness bench``: the nightly matrix on a farm, and the statistics it reports with.

The command's modules (library code; only :mod:`harness.cli.bench` prints):

- :mod:`harness.bench.config` — the bench config file (YAML, line-numbered errors) and the
  command line on top of it.
- :mod:`harness.bench.matrix` — eligible phone x recipe, each rejection with its reason;
  shards by a hash of the serial.
- :mod:`harness.bench.conditions` — thermal status, battery, zones, per-cluster
  ``time_in_state`` and caps around a run, in one round trip.
- :mod:`harness.bench.fairness` — the bounded wait until a phone is cool.
- :mod:`harness.bench.validity` — valid / throttled / hot-start / noisy / failed, in words.
- :mod:`harness.bench.engine` — one worker per phone over the run path, durability,
  interruption and resume, adaptive repeats, the report.
- :mod:`harness.bench.summary` — per-series samples, summary, gate and attribution against
  the baseline.

The statistics (pure functions over typed dataclasses; nothing here touches a phone):

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

May import: ``harness.run``, ``harness.results`` and below, and shared ground. The
statistics modules import only shared ground, numpy and pillow; the command's modules and
:mod:`harness.bench.history` read and write the store through :mod:`harness.results`
(:mod:`harness.results.benches`, :mod:`harness.results.history_queries`).
"""
