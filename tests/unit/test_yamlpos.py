"""YAML with positions: libyaml's parser (when there) gives the same data and positions as
the pure-Python loader, and every error is the pure loader's, with its line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import yamlparse, yamlpos
from harness.errors import ConfigError
from harness.yamlpos import PosDict, PosList, load_yaml_text

BUILTIN = Path(yamlpos.__file__).parent / "recipes" / "builtin"


def positions(value: Any) -> Any:
    """Every value with every position it records, as plain data."""
    if isinstance(value, PosDict):
        return ("map", value.pos, {k: (value.pos_of(k), positions(v)) for k, v in value.items()})
    if isinstance(value, PosList):
        return ("seq", value.pos, [(value.pos_of(i), positions(v)) for i, v in enumerate(value)])
    return value


@pytest.mark.parametrize("path", sorted(BUILTIN.glob("*.yaml")), ids=lambda p: p.name)
def test_the_fast_loader_gives_the_pure_loaders_data_and_positions(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = path.read_text()
    fast = load_yaml_text(text, str(path))
    monkeypatch.setattr(yamlparse, "_FastLoader", None)
    pure = load_yaml_text(text, str(path))
    assert positions(fast) == positions(pure)


@pytest.mark.parametrize(("text", "message"), [
    ("a: 1\nb: 2\na: 3\n", r"^f\.yaml:3: duplicate key 'a' \(first at line 1\)$"),
    ("a: [1\n", r"^f\.yaml:2: YAML syntax error: expected ',' or ']'"),
    ("a:\n  - 1\n - 2\n", r"^f\.yaml:3: YAML syntax error: "),
    ("a: \x07\n", r"^f\.yaml: YAML error: unacceptable character"),
    ("1: x\n", r"^f\.yaml:1: keys must be strings"),
])
def test_errors_carry_the_pure_loaders_message_and_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_yaml_text(text, "f.yaml")


def test_libyaml_is_used_when_pyyaml_has_it() -> None:
    import yaml

    assert (yamlparse._FastLoader is not None) == bool(getattr(yaml, "__with_libyaml__", False))
