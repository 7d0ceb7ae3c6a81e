"""The YAML parser behind :mod:`harness.yamlpos`: PyYAML's loaders building ``PosDict`` /
``PosList`` trees, duplicate keys refused, alias bombs refused, libyaml when PyYAML has it.
Imported only when a file must be parsed (PyYAML's import is ~15 ms of a command's
start-up; :mod:`harness.yamlcache` often makes it unnecessary)."""

from __future__ import annotations

from typing import Any

import yaml

from harness.errors import ConfigError
from harness.yamlpos import MAX_EXPANDED_NODES, MAX_QUOTE_CHARS, Pos, PosDict, PosList, quote


class _Loader(yaml.SafeLoader):
    source = "<string>"


def _mark(loader: _Loader, node: yaml.Node) -> Pos:
    return Pos(loader.source, node.start_mark.line + 1)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> PosDict:
    loader.flatten_mapping(node)
    result = PosDict()
    result.pos = _mark(loader, node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise ConfigError(f"{_mark(loader, key_node)}: keys must be strings, not "
                              f"{quote(key)}")
        if key in result:
            raise ConfigError(f"{_mark(loader, key_node)}: duplicate key {key!r} "
                              f"(first at line {result.key_pos[key].line})")
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_pos[key] = _mark(loader, key_node)
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> PosList:
    result = PosList(loader.construct_object(child, deep=True) for child in node.value)
    result.pos = _mark(loader, node)
    result.item_pos = [_mark(loader, child) for child in node.value]
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)

# libyaml's parser (when PyYAML was built with it) with the same constructors: ~10x faster on
# a recipe. Its marks carry lines too; anything it refuses, and any error at all, is parsed
# again by the pure-Python loader above, so every error message and position is that
# loader's own (see load_yaml_text).
_FastLoader: type[Any] | None = None
if getattr(yaml, "__with_libyaml__", False):
    class _CLoader(yaml.CSafeLoader):
        source = "<string>"

    _CLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    _CLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG,
                             _construct_sequence)
    _FastLoader = _CLoader
_NON_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE  # what the pure reader refuses up front


def _check_expansion(root: yaml.Node | None, source: str) -> None:
    """Refuse a document whose aliases expand to more than MAX_EXPANDED_NODES nodes.

    Aliases share one node, so the graph is small; its expansion (what a consumer walking
    the data sees) is computed bottom-up with one memo entry per distinct node.
    """
    if root is None:
        return
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if not done:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        total = 1 + sum(sizes.get(id(c), 1) for c in children)
        if total > MAX_EXPANDED_NODES:
            raise ConfigError(f"{source}:{node.start_mark.line + 1}: aliases expand to more "
                              f"than {MAX_EXPANDED_NODES} values (an alias bomb?)")
        sizes[id(node)] = total


def _load_fast(text: str, source: str) -> tuple[bool, Any]:
    """(True, data) when libyaml parsed ``text`` without any error; else (False, None)."""
    if _FastLoader is None or _NON_PRINTABLE.search(text):
        return False, None
    try:
        loader = _FastLoader(text)
        loader.source = source
        try:
            node = loader.get_single_node()
            _check_expansion(node, source)
            return True, None if node is None else loader.construct_document(node)
        finally:
            loader.dispose()
    except Exception:  # the pure loader says what is wrong, and where
        return False, None


def parse(text: str, source: str) -> Any:
    """Parse YAML text; ``source`` names it in positions and errors."""
    parsed, data = _load_fast(text, source)
    if parsed:
        return data
    try:
        loader = _Loader(text)
    except yaml.YAMLError as exc:  # the reader refuses control characters up front
        raise ConfigError(f"{source}: YAML error: {str(exc)[:MAX_QUOTE_CHARS]}") from None
    loader.source = source
    try:
        node = loader.get_single_node()
        _check_expansion(node, source)
        return None if node is None else loader.construct_document(node)
    except RecursionError:
        raise ConfigError(f"{source}: YAML nested too deeply") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{source}:{line}: YAML syntax error: {problem}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: YAML error: {str(exc)[:MAX_QUOTE_CHARS]}") from exc
    finally:
        loader.dispose()
