"""The package layout is the architecture: imports run downwards only.

Every ``import`` in ``harness/`` (module level, inside functions and under TYPE_CHECKING
alike) is read with :mod:`ast` and mapped to its layer; an import whose edge is not in
``ALLOWED`` fails this test, naming the file and line. Add a layer here when one is added to
the tree, with the edges the design allows it (``shared/design.md``, "Layout").
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "harness"

# harness/*.py: errors, home, config, yamlpos (+ yamlparse, yamlcache), statkey, console, clip,
# cancel, holder, logs
GROUND = "ground"
GROUND_MODULES = {"__init__", "errors", "home", "config", "yamlpos", "yamlparse", "yamlcache",
                  "statkey", "console", "clip", "cancel", "holder", "logs"}

# layer -> the layers it may import (itself and shared ground always allowed)
ALLOWED: dict[str, set[str]] = {
    "cli": {"report", "bench", "repro", "run", "results", "recipes", "assets", "farm", "device",
            "sim"},
    "report": {"bench", "repro", "run", "results", "recipes", "assets", "farm", "device"},
    "repro": {"bench", "run", "results", "recipes", "assets", "farm", "device"},
    "bench": {"run", "results", "recipes", "assets", "farm", "device"},
    "run": {"results", "recipes", "assets", "farm", "device"},
    "results": {"recipes"},
    "recipes": {"assets", "device"},
    "assets": {"device"},
    "farm": {"device", "sim"},
    "device": set(),
    "sim": {"device"},
    GROUND: set(),
}


def layer_of_module(dotted: str) -> str | None:
    """The layer of ``harness.x.y``; None for modules outside harness."""
    parts = dotted.split(".")
    if parts[0] != "harness":
        return None
    if len(parts) == 1 or parts[1] in GROUND_MODULES:
        return GROUND
    return parts[1]


def layer_of_file(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return GROUND if len(rel.parts) == 1 else rel.parts[0]


def imported_modules(source: str) -> list[tuple[int, str]]:
    """(line, dotted module) for every absolute import of harness in ``source``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative imports would hide the layer; the project uses none
                found.append((node.lineno, "<relative import>"))
            elif node.module:
                # ``from harness import x``: x may itself be a layer package
                if node.module == "harness":
                    found.extend((node.lineno, f"harness.{a.name}")
                                 if (PACKAGE / a.name).is_dir() else (node.lineno, "harness")
                                 for a in node.names)
                else:
                    found.append((node.lineno, node.module))
    return found


def violations(path_layer: str, source: str, where: str) -> list[str]:
    bad = []
    for line, module in imported_modules(source):
        if module == "<relative import>":
            bad.append(f"{where}:{line}: relative import (write harness.<layer>.<module>)")
            continue
        target = layer_of_module(module)
        if target is None or target in (path_layer, GROUND):
            continue
        if target not in ALLOWED:
            bad.append(f"{where}:{line}: {module} is in no known layer ({target!r})")
        elif target not in ALLOWED[path_layer]:
            bad.append(f"{where}:{line}: {path_layer} may not import {target} ({module})")
    return bad


def test_every_import_runs_downwards() -> None:
    bad: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = layer_of_file(path)
        assert layer in ALLOWED, f"{path}: package {layer!r} is not in the layer table"
        bad += violations(layer, path.read_text(encoding="utf-8"),
                          str(path.relative_to(PACKAGE.parent)))
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_top_level_holds_only_shared_ground() -> None:
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top == GROUND_MODULES, f"modules outside a layer package: {top - GROUND_MODULES}"


def test_the_table_is_acyclic() -> None:
    seen: dict[str, int] = {}

    def visit(layer: str, stack: tuple[str, ...]) -> None:
        assert layer not in stack, f"cycle: {' -> '.join((*stack, layer))}"
        if seen.get(layer):
            return
        for nxt in ALLOWED.get(layer, set()):
            visit(nxt, (*stack, layer))
        seen[layer] = 1

    for layer in ALLOWED:
        visit(layer, ())


@pytest.mark.parametrize(("layer", "source", "expect_bad"), [
    ("device", "from harness.sim.farm import Farm\n", True),
    ("device", "def f():\n    from harness.run.runner import Runner\n", True),
    ("recipes", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                "    from harness.results.store import Store\n", True),
    ("assets", "from harness import farm\n", True),
    ("assets", "from harness import __version__\n", False),
    ("results", "from .store import Store\n", True),
    ("run", "from harness.recipes.plan import Plan\nfrom harness.errors import UsageError\n",
     False),
    ("cli", "import harness.sim.farm\n", False),
    (GROUND, "from harness.device.device import Device\n", True),
])
def test_the_checker_catches_a_forbidden_import(layer: str, source: str,
                                                expect_bad: bool) -> None:
    assert bool(violations(layer, source, "x.py")) is expect_bad
