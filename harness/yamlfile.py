"""YAML files with line numbers, so that every error in a user's file names file:line."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError


class LineDict(dict[Any, Any]):
    """A mapping that remembers the line of each key (1-based) and of itself."""

    line: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int:
        return self.lines.get(key, self.line)


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "unhashable key", key_node.start_mark) from None
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = key_node.start_mark.line + 1
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load(path: Path) -> Any:
    """Parse a YAML file; syntax errors become ConfigError("file:line: problem")."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    return loads(text, str(path))


def loads(text: str, name: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: {problem}") from exc


def where(name: str, node: Any, key: Any = None) -> str:
    """``file:line`` of a key in a loaded mapping (or of the mapping itself)."""
    if isinstance(node, LineDict):
        return f"{name}:{node.line_of(key) if key is not None else node.line}"
    return name


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_keys(name: str, node: LineDict, allowed: Iterable[str], what: str) -> None:
    allowed = list(allowed)
    for key in node:
        if key not in allowed:
            raise ConfigError(f"{where(name, node, key)}: unknown key {key!r} in {what}"
                              f"{did_you_mean(str(key), allowed)}")
