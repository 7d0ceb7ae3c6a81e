"""Simulation study of the nightly statistics (harness.bench): false alarms and detection delay.

Simulates ``--nights`` nights of ``--phones`` x ``--recipes`` series, ``--repeats`` valid
runs per night, and runs the nightly rule (:func:`harness.bench.changepoint.nightly_alert`)
each night exactly as the nightly would, on the history so far; when the check asks for
more repeats (adaptive repeats, off with ``--fixed-repeats``), tonight is topped up and
checked again. Noise model per series (the level is drawn from 3-40 s):

- per-run log-normal noise, sigma ``--run-noise`` (default 2 %): ``x = level * exp(N(0, s))``;
- occasional outlier runs: probability ``--outlier-rate`` (3 %), 10-30 % slower;
- a night-to-night offset (log-normal, ``--night-noise``, 0.7 %): temperature of the room,
  background jobs, a different charger;
- a slow drift: a random walk of ``--drift`` (0.1 %) per night.

Two studies, ``--trials`` random farms each (fixed ``--seed``):
(a) noise only: alerts per series-night (every alert is false);
(b) a 5 % step slowdown (``--step``) on a random night in [12, nights-2): delay in nights
    until the first regression alert (2 = on the second slow night, the minimum the
    two-nights rule allows), and the share detected within two nights.

    python benchmarks/bench_stats.py [--trials 60] [--seed 7] [--fixed-repeats]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator

import numpy as np

from harness.bench.changepoint import (
    ChangePoint,
    ChangePointParams,
    find_change_points,
    nightly_alert,
)


class Series:
    """One simulated series: its true level per night, and runs drawn from it on demand."""

    def __init__(self, rng: np.random.Generator, args: argparse.Namespace,
                 step_night: int | None) -> None:
        self.rng, self.args = rng, args
        base = rng.uniform(3.0, 40.0)  # seconds: a recipe's time on a phone
        walk = np.cumsum(rng.normal(0.0, args.drift, args.nights))
        offsets = rng.normal(0.0, args.night_noise, args.nights)
        self.levels = base * np.exp(walk + offsets)
        if step_night is not None:
            self.levels[step_night:] *= 1.0 + args.step

    def runs(self, night: int, count: int) -> list[float]:
        runs = self.levels[night] * np.exp(self.rng.normal(0.0, self.args.run_noise, count))
        outliers = self.rng.random(count) < self.args.outlier_rate
        runs[outliers] *= self.rng.uniform(1.1, 1.3, int(outliers.sum()))
        return list(runs.tolist())


def nightly(series: Series, params: ChangePointParams,
            adaptive: bool) -> Iterator[tuple[int, ChangePoint | None, list[list[float]]]]:
    """Yield (night, ChangePoint | None, nights so far) as the nightly would, night by night:
    5 runs; when the check asks for more repeats, run them and check again."""
    nights: list[list[float]] = []
    for t in range(series.args.nights):
        nights.append(series.runs(t, series.args.repeats))
        cp = nightly_alert(nights, params)
        if adaptive and cp is not None and cp.more_repeats:
            nights[-1] += series.runs(t, cp.more_repeats)
            cp = nightly_alert(nights, params)
        yield t, cp, nights


def study_noise(rng: np.random.Generator, args: argparse.Namespace,
                params: ChangePointParams) -> dict[str, int]:
    out = {"alerts": 0, "series_nights": 0, "clean_farms": 0, "history_alerts": 0,
           "runs": 0, "checked": 0}
    for _ in range(args.trials):
        farm_alerts = 0
        for _ in range(args.phones * args.recipes):
            series = Series(rng, args, None)
            nights: list[list[float]] = []
            for _, cp, so_far in nightly(series, params, not args.fixed_repeats):
                out["series_nights"] += 1
                out["checked"] += cp is not None
                farm_alerts += bool(cp and cp.alerted)
                nights = so_far
            out["runs"] += sum(len(n) for n in nights)
            medians = [float(np.median(n)) for n in nights]
            out["history_alerts"] += sum(c.alerted for c in find_change_points(medians, params))
        out["alerts"] += farm_alerts
        out["clean_farms"] += farm_alerts == 0
    return out


def study_step(rng: np.random.Generator, args: argparse.Namespace,
               params: ChangePointParams) -> list[int | None]:
    delays: list[int | None] = []
    for _ in range(args.trials):
        for _ in range(args.phones * args.recipes):
            step = int(rng.integers(12, args.nights - 2))
            delay = None
            for t, cp, _ in nightly(Series(rng, args, step), params, not args.fixed_repeats):
                if t >= step and cp and cp.alerted and cp.direction == "regression":
                    delay = t - step + 1
                    break
            delays.append(delay)
    return delays


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--nights", type=int, default=30)
    ap.add_argument("--phones", type=int, default=3)
    ap.add_argument("--recipes", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--run-noise", type=float, default=0.02)
    ap.add_argument("--night-noise", type=float, default=0.007)
    ap.add_argument("--drift", type=float, default=0.001)
    ap.add_argument("--outlier-rate", type=float, default=0.03)
    ap.add_argument("--step", type=float, default=0.05)
    ap.add_argument("--fixed-repeats", action="store_true",
                    help="never top a suspicious night up (no adaptive repeats)")
    args = ap.parse_args()
    params = ChangePointParams()
    rng = np.random.default_rng(args.seed)
    series = args.phones * args.recipes
    print(f"{args.trials} farms x {series} series ({args.phones} phones x {args.recipes} "
          f"recipes) x {args.nights} nights x {args.repeats} runs; run noise "
          f"{args.run_noise:.1%}, night offset {args.night_noise:.1%}, drift "
          f"{args.drift:.2%}/night, outliers {args.outlier_rate:.0%}")
    t0 = time.perf_counter()
    noise = study_noise(rng, args, params)
    alerts, series_nights = noise["alerts"], noise["series_nights"]
    print(f"(a) noise only: {alerts} alerts in {series_nights} series-nights = "
          f"{alerts / series_nights:.5f} false alarms per series-night "
          f"({noise['checked']} checked; the first {params.min_baseline_nights + 1} nights "
          f"have too little history); {noise['clean_farms']}/{args.trials} farms with no "
          f"alert in {args.nights} nights; {noise['history_alerts']} alerted history change "
          f"points; {noise['runs'] / series_nights:.2f} runs per series-night")
    delays = study_step(rng, args, params)
    found = [d for d in delays if d is not None]
    within2 = sum(d <= 2 for d in found)
    spread = ", ".join(f"{d} nights: {found.count(d)}" for d in sorted(set(found)))
    print(f"(b) {args.step:.0%} step: detected {len(found)}/{len(delays)}, within two nights "
          f"{within2}/{len(delays)} = {within2 / len(delays):.1%}; delay median "
          f"{np.median(found) if found else float('nan'):.0f} nights ({spread}; "
          f"missed by the last night: {len(delays) - len(found)})")
    print(f"time {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
