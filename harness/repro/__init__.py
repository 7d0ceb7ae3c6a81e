"""Reproduction: sweeps over switches, bisection of two plans, bundles and replay.

Modules (core only: nothing here prints; ``harness/cli/repro.py`` and ``bundle.py`` show it):

- :mod:`harness.repro.matrix` — ``--sweep VAR=a,b,c`` axes resolved against a plan, expanded
  into the cartesian matrix of cells (``--set`` pairs each).
- :mod:`harness.repro.sweep` — every cell through the ordinary run path, ``repeat`` times;
  the contact sheet (:mod:`harness.repro.sheet`) and ``sweep.json``.
- :mod:`harness.repro.verdict` — a run as one word (clean, blocks, nan, oom, failed, lost)
  from the runner's own detectors.
- :mod:`harness.repro.deltas` — the changes between two plans (env, arguments, cwd, library
  path elements) and any subset of them applied.
- :mod:`harness.repro.ddmin` — Zeller's ddmin with unresolved outcomes and a cache.
- :mod:`harness.repro.bisect` — probes judged by the detectors or the bench's pairwise gate.
- :mod:`harness.repro.bundle` / :mod:`harness.repro.replay` — one archive per run, and the
  same plan on another phone shown next to the original (:mod:`harness.repro.digests`:
  asset digests, local and on a phone).
- :mod:`harness.repro.sources` — a plan from a stored run or a plan file.

May import: bench, run, results, recipes, assets, farm, device and shared ground.
"""
