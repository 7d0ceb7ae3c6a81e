"""30 simulated nights of a virtual farm: false alarms of noise alone, detection of a slower build.

The figures come from the virtual binaries' own cost and noise model, in-process (no adb, no
sleeping): a run's printed figure is what :class:`harness.sim.pipeline.Phone` would print,
``sum over steps of step_s x profile speed_factor x level x chunk jitter`` with ``level =
build speed x boot and session offsets x run jitter (x outlier)`` from
:mod:`harness.sim.speed` (``REALISTIC`` noise unless overridden). Phones share a night's
session offset across recipes, as a virtual phone does; a phone reboots (a new boot offset)
with probability ``--reboot-rate`` a night.

Each night every series (phone x recipe, metric = the recipe's loop time) gets ``--repeats``
measured runs and is checked exactly as :func:`harness.bench.history.analyse` checks it
(:func:`harness.bench.changepoint.confirmed_alert`: the nightly rule, confirmed against the
same phone's other recipe when that one had no new build in the window; ``--no-controls``:
the nightly rule alone); when the check asks for more repeats (adaptive repeats) tonight is
topped up and checked again.

(a) noise only, ``--trials`` farms x 30 nights: every alert is a false alarm.
(b) the same farms, and on a random night in [12, nights - 2) a new build of the recipe's
    binary that is ``--step`` (5 %) slower reaches every phone: the delay in nights until
    its first regression alert (2 = on the second slow night, the least the two-nights rule
    allows) and the share flagged within two nights; alerts before the new build are false.

    python benchmarks/nights.py [--trials 60] [--seed 11] [--noise-scale 1.0] [--no-controls]
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass, field, replace

from harness.bench.changepoint import ChangePoint, ChangePointParams, confirmed_alert
from harness.sim import speed
from harness.sim.profiles import load_profile

PHONES = (("sm8650-16g", "NIGHT-A"), ("sm8650-16g", "NIGHT-B"), ("sm8650-24g", "NIGHT-C"))
# recipe -> (binary, reference seconds per step, steps): SD1.5's total_s, the SDXL UNet's
# loop_s (metrics pipeline/total_s and unet/loop_s)
RECIPES = {"sd15-512": ("sd15_pipeline_run", speed.SD15_STEP_S, 20),
           "sdxl-1024-unet": ("sdxl_pipeline_run", speed.SDXL_UNET_STEP_S, 20)}

@dataclass
class Phone:
    serial: str
    speed_factor: float
    boot: int = 0

@dataclass
class Series:
    phone: Phone
    recipe: str
    nights: list[list[float]] = field(default_factory=list)
    builds: list[float] = field(default_factory=list)  # the build's speed, per night

    def steady(self, span: int) -> bool:
        """No new build in the last ``span`` nights (a control for the phone's others)."""
        return len(set(self.builds[-span:])) == 1

def figure(phone: Phone, recipe: str, build_speed: float, session: str,
           noise: speed.NoiseModel, rng: random.Random) -> float:
    """One run's printed loop time, as the virtual binary computes it."""
    binary, step_s, steps = RECIPES[recipe]
    level = (build_speed * speed.offsets(noise, phone.serial, phone.boot, session, binary)
             * speed.run_level(noise, rng))
    return sum(step_s * phone.speed_factor * level * speed.chunk_noise(rng)
               for _ in range(steps))

def runs(series: Series, session: str, count: int, noise: speed.NoiseModel,
         rng: random.Random) -> list[float]:
    return [figure(series.phone, series.recipe, series.builds[-1], session, noise, rng)
            for _ in range(count)]


def check(series: Series, others: list[Series], session: str, args: argparse.Namespace,
          noise: speed.NoiseModel, params: ChangePointParams,
          rng: random.Random) -> ChangePoint | None:
    """Tonight's check of one series (its runs are in), with adaptive repeats; confirmed
    against the phone's other series without a new build, unless ``--no-controls``."""
    span = params.baseline_nights + params.tail_nights
    controls = [] if args.no_controls else [o.nights for o in others if o.steady(span)]
    cp = confirmed_alert(series.nights, controls, params)
    if not args.fixed_repeats and cp is not None and cp.more_repeats:
        series.nights[-1] += runs(series, session, cp.more_repeats, noise, rng)
        cp = confirmed_alert(series.nights, controls, params)
    return cp

@dataclass
class Tally:
    series_nights: int = 0
    checked: int = 0
    runs: int = 0
    false_alarms: int = 0
    phone_wide: int = 0
    clean_farms: int = 0
    delays: list[int | None] = field(default_factory=list)

def farm(trial: int, args: argparse.Namespace, noise: speed.NoiseModel,
         params: ChangePointParams, rng: random.Random, with_step: bool, tally: Tally) -> None:
    phones = [Phone(f"{serial}-{trial}", load_profile(profile).speed_factor)
              for profile, serial in PHONES]
    series = [Series(p, r) for p in phones for r in RECIPES]
    steps = {r: rng.randrange(12, args.nights - 2) if with_step else None for r in RECIPES}
    delays: dict[int, int | None] = {i: None for i in range(len(series))}
    alarms = 0
    for night in range(args.nights):
        session = f"trial-{trial}-night-{night}"
        for phone in phones:
            if rng.random() < args.reboot_rate:
                phone.boot += 1
        for s in series:
            step = steps[s.recipe]
            s.builds.append(1.0 + args.step if step is not None and night >= step else 1.0)
            s.nights.append(runs(s, session, args.repeats, noise, rng))
        for i, s in enumerate(series):
            step = steps[s.recipe]
            new_build = step is not None and night >= step
            others = [o for o in series if o.phone is s.phone and o is not s]
            cp = check(s, others, session, args, noise, params, rng)
            tally.series_nights += 1
            tally.checked += cp is not None
            tally.runs += len(s.nights[-1])
            tally.phone_wide += bool(cp and cp.phone_wide)
            if cp is None or not cp.alerted:
                continue
            if new_build and step is not None and cp.direction == "regression":
                if delays[i] is None:
                    delays[i] = night - step + 1
            elif not new_build:
                alarms += 1
    tally.false_alarms += alarms
    tally.clean_farms += alarms == 0
    if with_step:
        tally.delays.extend(delays.values())

def report(label: str, tally: Tally, args: argparse.Namespace) -> None:
    rate = tally.false_alarms / tally.series_nights
    print(f"{label}: {tally.false_alarms} false alarms in {tally.series_nights} series-nights "
          f"= {rate:.2e} per series-night; {tally.clean_farms}/{args.trials} farms without "
          f"a false alarm in {args.nights} nights; {tally.runs / tally.series_nights:.2f} "
          f"measured runs per series-night ({tally.checked} checks; {tally.phone_wide} "
          f"phone-wide shifts not alerted)")
    if not tally.delays:
        return
    found = [d for d in tally.delays if d is not None]
    within = sum(d <= 2 for d in found)
    spread = ", ".join(f"{d}: {found.count(d)}" for d in sorted(set(found)))
    print(f"    {args.step:.0%} slower build: flagged {len(found)}/{len(tally.delays)}; within "
          f"two nights {within}/{len(tally.delays)} = {within / len(tally.delays):.1%}; "
          f"delay in nights (count) {spread}; not flagged by the last night: "
          f"{len(tally.delays) - len(found)}")

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--nights", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--step", type=float, default=0.05)
    ap.add_argument("--reboot-rate", type=float, default=0.05)
    ap.add_argument("--noise-scale", type=float, default=1.0,
                    help="multiply every sigma of the REALISTIC noise (robustness)")
    ap.add_argument("--fixed-repeats", action="store_true", help="no adaptive repeats")
    ap.add_argument("--no-controls", action="store_true",
                    help="the plain nightly rule: no confirmation against the phone's others")
    return ap.parse_args(argv)


def noise_of(args: argparse.Namespace) -> speed.NoiseModel:
    base = speed.REALISTIC
    return replace(base, boot_sigma=base.boot_sigma * args.noise_scale,
                   session_sigma=base.session_sigma * args.noise_scale,
                   binary_sigma=base.binary_sigma * args.noise_scale,
                   run_sigma=base.run_sigma * args.noise_scale)


def study(args: argparse.Namespace, with_step: bool) -> Tally:
    """``args.trials`` farms x ``args.nights`` nights: (a) noise only, (b) with a new build."""
    rng = random.Random(args.seed)
    tally = Tally()
    noise, params = noise_of(args), ChangePointParams()
    for trial in range(args.trials):
        farm(trial, args, noise, params, rng, with_step, tally)
    return tally


def main() -> None:
    args = parse_args()
    noise = noise_of(args)
    print(f"{args.trials} farms x {len(PHONES)} phones x {len(RECIPES)} recipes "
          f"({', '.join(RECIPES)}) x {args.nights} nights x {args.repeats} runs (+ adaptive "
          f"repeats: {'off' if args.fixed_repeats else 'on'}; controls: "
          f"{'off' if args.no_controls else 'on'}); noise: boot "
          f"{noise.boot_sigma:.2%}, session {noise.session_sigma:.2%} + "
          f"{noise.binary_sigma:.2%} per binary, run "
          f"{noise.run_sigma:.2%}, outliers {noise.outlier_rate:.0%} at "
          f"+{noise.outlier_low:.0%}..{noise.outlier_high:.0%}, reboots "
          f"{args.reboot_rate:.0%}/night")
    t0 = time.perf_counter()
    for label, with_step in (("(a) noise only", False), ("(b) a new build", True)):
        report(label, study(args, with_step), args)
    print(f"time {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
