"""The bench config: one reviewed YAML file instead of a long command line.

::

    # nightly.yaml
    device: tag:nightly          # which phones: all (default), a --device selector, a group
    repeat: 5                    # measured runs per phone x recipe
    warmup: 1                    # runs before them that are stored but never measured
    budget_min: 90               # wall minutes the adaptive extra repeats may use
    baseline: last               # a bench id, or "last"
    groups:                      # named phone selectors
      big: tag:ram16,ram24
    thresholds:
      min_effect: 0.05           # the gate's smallest effect that must not be missed
      max_cv: 0.05               # a series above this robust CV is "noisy"
      battery_c: 35              # start limits (default: the farm file's)
      cpu_c: 38
      run_cpu_c: 85              # a CPU zone above this after a run: throttled
      cool_wait_s: 300           # the longest wait for a phone to cool before a run
      offline_wait_s: 30         # how long a step waits for a phone that went offline
    fail_on: {regression: true, failed_run: true, lost_phone: true}
    recipes:
      - recipe: sd15-512
        name: sd15-20            # the series' name (default: the recipe's)
        prompt: a photo of a cat
        seed: 7
        params: {steps: 20}
        repeat: 7                # this entry's own repeats (default: the top level's)
        device: big

Every error names the file and line (``nightly.yaml:12: ...``), with a "did you mean" for a
misspelt key, as recipes and profiles do. Command-line options override the file's values
(see :func:`with_overrides`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, UsageError
from harness.yamlpos import PosDict, check_keys, ensure_dict, ensure_list, expect, load_yaml

DEFAULT_REPEAT = 5  # runs per phone x recipe: the least for a usable IQR and gate
DEFAULT_WARMUP = 1  # the first run after a sync pays page-cache and GPU-compiler costs
DEFAULT_BUDGET_MIN = 30.0  # wall minutes for the adaptive extra repeats
DEFAULT_COOL_WAIT_S = 300.0  # a phone cools from 45 to 35 °C in a few minutes on a desk
DEFAULT_OFFLINE_WAIT_S = 30.0
DEFAULT_RUN_CPU_C = 85.0  # below the 95 °C+ where vendors' CPU mitigation usually starts
MAX_REPEAT = 200

TOP_KEYS = ("device", "repeat", "warmup", "budget_min", "baseline", "groups", "thresholds",
            "fail_on", "recipes")
RECIPE_KEYS = ("recipe", "name", "prompt", "negative", "seed", "params", "repeat", "warmup",
               "device")
THRESHOLD_KEYS = ("min_effect", "max_cv", "battery_c", "cpu_c", "run_cpu_c", "cool_wait_s",
                  "offline_wait_s")
FAIL_ON_KEYS = ("regression", "failed_run", "lost_phone")


@dataclass(frozen=True)
class Thresholds:
    min_effect: float = 0.05
    max_cv: float = 0.05
    battery_c: float | None = None  # None: the farm file's limit for the phone
    cpu_c: float | None = None
    run_cpu_c: float = DEFAULT_RUN_CPU_C
    cool_wait_s: float = DEFAULT_COOL_WAIT_S
    offline_wait_s: float = DEFAULT_OFFLINE_WAIT_S


@dataclass(frozen=True)
class FailOn:
    """Which outcomes make ``harness bench`` exit non-zero."""

    regression: bool = True
    failed_run: bool = True
    lost_phone: bool = True


@dataclass(frozen=True)
class BenchRecipe:
    """One entry of the matrix's recipe axis."""

    recipe: str
    name: str = ""  # the series name; "" -> the recipe's name
    prompt: str | None = None
    negative: str | None = None
    seed: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    repeat: int | None = None  # None: the bench's
    warmup: int | None = None
    device: str | None = None  # selector or group; None: the bench's

    @property
    def series(self) -> str:
        return self.name or self.recipe

    def values(self) -> dict[str, Any]:
        """Recipe parameters: the named ones (prompt, negative, seed) and ``params``."""
        values = dict(self.params)
        for key, value in (("prompt", self.prompt), ("negative_prompt", self.negative),
                           ("seed", self.seed)):
            if value is not None:
                values[key] = value
        return values


@dataclass(frozen=True)
class BenchConfig:
    recipes: tuple[BenchRecipe, ...] = ()
    device: str = "all"  # every phone of the farm
    repeat: int = DEFAULT_REPEAT
    warmup: int = DEFAULT_WARMUP
    budget_min: float = DEFAULT_BUDGET_MIN
    baseline: str | None = None
    groups: dict[str, str] = field(default_factory=dict)
    thresholds: Thresholds = field(default_factory=Thresholds)
    fail_on: FailOn = field(default_factory=FailOn)
    source: str = ""

    def repeats_of(self, entry: BenchRecipe) -> int:
        return self.repeat if entry.repeat is None else entry.repeat

    def warmups_of(self, entry: BenchRecipe) -> int:
        return self.warmup if entry.warmup is None else entry.warmup

    def selector_of(self, entry: BenchRecipe) -> str:
        chosen = entry.device or self.device
        return self.groups.get(chosen, chosen)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BenchConfig:
        data = json.loads(text)
        return cls(recipes=tuple(BenchRecipe(**r) for r in data["recipes"]),
                   device=data["device"], repeat=data["repeat"], warmup=data["warmup"],
                   budget_min=data["budget_min"], baseline=data["baseline"],
                   groups=dict(data["groups"]), thresholds=Thresholds(**data["thresholds"]),
                   fail_on=FailOn(**data["fail_on"]), source=data.get("source", ""))


def _count(container: Any, key: str, what: str, low: int) -> int:
    value = expect(container, key, (int,), what)
    if not low <= value <= MAX_REPEAT:
        raise ConfigError(f"{container.pos_of(key)}: {what} must be in {low}..{MAX_REPEAT}, "
                          f"not {value}")
    return int(value)


def _number(container: Any, key: str, what: str, low: float = 0.0) -> float:
    value = float(expect(container, key, (float,), what))
    if not math.isfinite(value) or value < low:
        raise ConfigError(f"{container.pos_of(key)}: {what} must be a finite number of at "
                          f"least {low:g}, not {value}")
    return value


def _text(container: Any, key: str, what: str) -> str:
    value = expect(container, key, (str,), what)
    if not value.strip():
        raise ConfigError(f"{container.pos_of(key)}: {what} must not be empty")
    return str(value)


def _recipe(raw: Any, where: Any, index: int) -> BenchRecipe:
    if isinstance(raw, str):
        return BenchRecipe(raw)
    data = ensure_dict(raw, where.pos_of(index), f"recipes[{index}]")
    check_keys(data, RECIPE_KEYS, f"recipes[{index}]")
    if "recipe" not in data:
        raise ConfigError(f"{data.pos}: recipes[{index}] needs a recipe: NAME")
    params = ensure_dict(data.get("params"), data.pos_of("params"), "params")
    for key in params:
        expect(params, key, (str, int, float, bool), f"params {key}")
    return BenchRecipe(
        recipe=_text(data, "recipe", "recipe"),
        name=_text(data, "name", "name") if "name" in data else "",
        prompt=expect(data, "prompt", (str,), "prompt") if "prompt" in data else None,
        negative=expect(data, "negative", (str,), "negative") if "negative" in data else None,
        seed=_count_any(data, "seed") if "seed" in data else None,
        params={str(k): v for k, v in params.items()},
        repeat=_count(data, "repeat", "repeat", 1) if "repeat" in data else None,
        warmup=_count(data, "warmup", "warmup", 0) if "warmup" in data else None,
        device=_text(data, "device", "device") if "device" in data else None)


def _count_any(container: Any, key: str) -> int:
    value = expect(container, key, (int,), key)
    if value < 0:
        raise ConfigError(f"{container.pos_of(key)}: {key} must be at least 0, not {value}")
    return int(value)


def _thresholds(data: PosDict) -> Thresholds:
    raw = ensure_dict(data.get("thresholds"), data.pos_of("thresholds"), "thresholds")
    check_keys(raw, THRESHOLD_KEYS, "thresholds")
    values: dict[str, float] = {}
    for key in raw:
        values[key] = _number(raw, key, f"thresholds {key}",
                              low=-40.0 if key.endswith("_c") else 0.0)
    for key in ("min_effect", "max_cv"):
        if key in values and not 0 < values[key] < 1:
            raise ConfigError(f"{raw.pos_of(key)}: thresholds {key} is a fraction in (0, 1), "
                              f"e.g. 0.05 for 5 %, not {values[key]:g}")
    return Thresholds(**values)  # keys checked above


def _fail_on(data: PosDict) -> FailOn:
    raw = ensure_dict(data.get("fail_on"), data.pos_of("fail_on"), "fail_on")
    check_keys(raw, FAIL_ON_KEYS, "fail_on")
    return FailOn(**{str(k): bool(expect(raw, k, (bool,), f"fail_on {k}")) for k in raw})


def parse_config(data: Any, source: str) -> BenchConfig:
    """A bench config from YAML loaded with positions (see the module docstring)."""
    if data is None:
        return BenchConfig(source=source)
    if not isinstance(data, PosDict):
        raise ConfigError(f"{source}:1: a bench config is a mapping ({', '.join(TOP_KEYS)})")
    check_keys(data, TOP_KEYS, "the bench config")
    raw_recipes = ensure_list(data.get("recipes"), data.pos_of("recipes"), "recipes")
    recipes = tuple(_recipe(item, raw_recipes, i) for i, item in enumerate(raw_recipes))
    names = [r.series for r in recipes]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"{raw_recipes.pos_of(i)}: two recipes entries are called "
                              f"{name!r}: give one a name: (the series' name)")
    groups_raw = ensure_dict(data.get("groups"), data.pos_of("groups"), "groups")
    groups = {str(k): _text(groups_raw, k, f"group {k}") for k in groups_raw}
    return BenchConfig(
        recipes=recipes,
        device=_text(data, "device", "device") if "device" in data else "all",
        repeat=_count(data, "repeat", "repeat", 1) if "repeat" in data else DEFAULT_REPEAT,
        warmup=_count(data, "warmup", "warmup", 0) if "warmup" in data else DEFAULT_WARMUP,
        budget_min=_number(data, "budget_min", "budget_min") if "budget_min" in data
        else DEFAULT_BUDGET_MIN,
        baseline=_text(data, "baseline", "baseline") if "baseline" in data else None,
        groups=groups, thresholds=_thresholds(data), fail_on=_fail_on(data), source=source)


def load_config(path: Path) -> BenchConfig:
    if not path.is_file():
        raise ConfigError(f"{path}: no such bench config")
    return parse_config(load_yaml(path), str(path))


@dataclass(frozen=True)
class Overrides:
    """What the command line says, None where it says nothing."""

    recipes: tuple[str, ...] | None = None
    device: str | None = None
    repeat: int | None = None
    warmup: int | None = None
    budget_min: float | None = None
    baseline: str | None = None


def with_overrides(config: BenchConfig, cli: Overrides) -> BenchConfig:
    """The config with the command line's values on top. ``--recipes`` picks entries of the
    file by series name (or recipe name) and adds plain entries for names it lacks."""
    recipes = config.recipes
    if cli.recipes is not None:
        picked: list[BenchRecipe] = []
        for name in cli.recipes:
            found = [r for r in config.recipes if name in (r.series, r.recipe)]
            picked.extend(r for r in found if r not in picked)
            if not found:
                picked.append(BenchRecipe(name))
        recipes = tuple(picked)
    if not recipes:
        raise UsageError("nothing to bench: no recipes", hint="give --recipes R,... or a "
                         "--config file with recipes:")
    changes: dict[str, Any] = {"recipes": recipes}
    for key in ("device", "repeat", "warmup", "budget_min", "baseline"):
        value = getattr(cli, key)
        if value is not None:
            changes[key] = value
    return replace(config, **changes)
