"""Bench config: the YAML file, its line-numbered errors, and the command line on top."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.bench.config import (
    BenchConfig,
    BenchRecipe,
    Overrides,
    load_config,
    parse_config,
    with_overrides,
)
from harness.errors import ConfigError, UsageError
from harness.yamlpos import load_yaml_text

FULL = """\
device: tag:nightly
repeat: 7
warmup: 2
budget_min: 45
baseline: last
groups:
  big: tag:ram16,ram24
thresholds: {min_effect: 0.03, cpu_c: 40, cool_wait_s: 120}
fail_on: {regression: false}
recipes:
  - sd15-512
  - recipe: sdxl-1024
    name: sdxl-fast
    prompt: a red bicycle
    seed: 7
    params: {steps: 4}
    repeat: 3
    device: big
"""


def parse(text: str) -> BenchConfig:
    return parse_config(load_yaml_text(text, "nightly.yaml"), "nightly.yaml")


def test_a_full_config_is_read() -> None:
    config = parse(FULL)
    assert config.device == "tag:nightly" and config.repeat == 7 and config.warmup == 2
    assert config.budget_min == 45.0 and config.baseline == "last"
    assert config.thresholds.min_effect == 0.03 and config.thresholds.cpu_c == 40.0
    assert config.thresholds.battery_c is None  # the farm file's limit then
    assert config.fail_on.regression is False and config.fail_on.lost_phone is True
    plain, fast = config.recipes
    assert plain == BenchRecipe("sd15-512")
    assert fast.series == "sdxl-fast" and fast.values() == {"steps": 4, "prompt": "a red bicycle",
                                                           "seed": 7}
    assert config.repeats_of(plain) == 7 and config.repeats_of(fast) == 3
    assert config.selector_of(fast) == "tag:ram16,ram24"  # the group, resolved
    assert config.selector_of(plain) == "tag:nightly"
    assert BenchConfig.from_json(config.to_json()) == config


def test_an_empty_file_is_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text("")
    config = load_config(path)
    assert config.device == "all" and config.repeat == 5 and config.warmup == 1


@pytest.mark.parametrize(("text", "message"), [
    ("repeats: 3\n", "nightly.yaml:1: unknown key 'repeats' in the bench config (did you "
                     "mean 'repeat'?)"),
    ("repeat: 0\n", "nightly.yaml:1: repeat must be in 1..200, not 0"),
    ("repeat: three\n", "nightly.yaml:1: repeat must be an integer"),
    ("recipes:\n  - recipe: sd15-512\n    seeed: 3\n", "nightly.yaml:3: unknown key 'seeed' in "
                                                    "recipes[0] (did you mean 'seed'?)"),
    ("recipes:\n  - name: x\n", "nightly.yaml:2: recipes[0] needs a recipe: NAME"),
    ("recipes: [sd15-512, sd15-512]\n", "two recipes entries are called 'sd15-512'"),
    ("thresholds:\n  min_effect: 5\n", "nightly.yaml:2: thresholds min_effect is a fraction"),
    ("thresholds:\n  cool_wait_s: -1\n", "nightly.yaml:2: thresholds cool_wait_s must be a "
                                         "finite number of at least 0"),
    ("fail_on: {regresion: false}\n", "unknown key 'regresion' in fail_on (did you mean "
                                      "'regression'?)"),
    ("- a\n", "nightly.yaml:1: a bench config is a mapping"),
])
def test_errors_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such bench config"):
        load_config(tmp_path / "nope.yaml")


def test_the_command_line_goes_on_top() -> None:
    config = parse(FULL)
    picked = with_overrides(config, Overrides(recipes=("sdxl-fast", "sd15-lcm"), repeat=2,
                                              baseline="01ABC"))
    assert [r.series for r in picked.recipes] == ["sdxl-fast", "sd15-lcm"]
    assert picked.repeat == 2 and picked.baseline == "01ABC" and picked.warmup == 2
    by_recipe = with_overrides(config, Overrides(recipes=("sdxl-1024",)))
    assert [r.series for r in by_recipe.recipes] == ["sdxl-fast"]
    with pytest.raises(UsageError, match="nothing to bench"):
        with_overrides(BenchConfig(), Overrides())
