"""Print line coverage per layer of harness from coverage.py JSON reports.

    python scripts/coverage_by_layer.py WHOLE.json [UNIT.json]

WHOLE is the whole test suite, UNIT the unit tests alone (``tests/unit``); a layer whose unit
figure is far below its whole-suite figure is reached mostly through the virtual farm. A
layer is a package under ``harness/`` (``ground`` are the shared modules directly in it).
Only the pytest process is measured: code run by the subprocesses that end-to-end tests start
(``python -m harness.cli``, the virtual phones) does not count, hence "in-process".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path, PurePosixPath

# Top-down, as tests/unit/test_layers.py orders them; packages not listed follow by name.
LAYERS = ("cli", "run", "results", "recipes", "assets", "farm", "device", "sim", "ground")


def layer_of(path: str) -> str | None:
    parts = PurePosixPath(path.replace("\\", "/")).parts
    if "harness" not in parts:
        return None
    rest = parts[parts.index("harness") + 1 :]
    if not rest:
        return None
    return "ground" if len(rest) == 1 else rest[0]


def by_layer(report_path: str) -> dict[str, tuple[int, int]]:
    """layer -> (covered lines, statements)."""
    report = json.loads(Path(report_path).read_text(encoding="utf-8"))
    totals: dict[str, tuple[int, int]] = {}
    for path, data in report["files"].items():
        layer = layer_of(path)
        if layer is None:
            continue
        summary = data["summary"]
        covered, statements = totals.get(layer, (0, 0))
        totals[layer] = (covered + summary["covered_lines"],
                         statements + summary["num_statements"])
    return totals


def percent(pair: tuple[int, int] | None) -> str:
    if pair is None or not pair[1]:
        return "-"
    return f"{100.0 * pair[0] / pair[1]:.0f}%"


def table(whole: dict[str, tuple[int, int]], unit: dict[str, tuple[int, int]] | None) -> str:
    names = [n for n in LAYERS if n in whole] + sorted(set(whole) - set(LAYERS))
    header = f"{'layer':<8} {'lines':>6} {'whole suite (in-process)':>25}"
    if unit is not None:
        header += f" {'unit tests only':>16}"
    rows = [header, "-" * len(header)]
    for name in [*names, "total"]:
        if name == "total":
            w = (sum(c for c, _ in whole.values()), sum(s for _, s in whole.values()))
            u = None if unit is None else (sum(c for c, _ in unit.values()), w[1])
            rows.append("-" * len(header))
        else:
            # Unit figures over the whole suite's statements: the same files in both columns.
            w = whole[name]
            u = None if unit is None else (unit.get(name, (0, 0))[0], w[1])
        row = f"{name:<8} {w[1]:>6} {percent(w):>25}"
        if unit is not None:
            row += f" {percent(u):>16}"
        rows.append(row)
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    whole = by_layer(argv[0])
    unit = by_layer(argv[1]) if len(argv) == 2 else None
    print(table(whole, unit))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
