"""A run's recorded conditions in a few lines of words.

``harness bench`` stores, per run (``runs.conditions_json``): ``before`` / ``after`` reads
(``thermal_status``, ``battery_level``, ``battery_c``, ``charging``, ``zones`` {type: °C},
``clusters`` with ``time_in_state``), ``clusters`` (per cpufreq policy during the run:
``top_khz``, ``max_khz``, ``cap_khz``, ``seconds_by_khz``), ``cool_wait`` and ``limits``.
The report says what a reader asks of them (was it hot, was it capped, did it wait) and
keeps the whole record one click away. Unknown shapes are shown as ``key value`` pairs:
the report never fails on a record it does not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.report import fmt


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def _side(read: Any, key: str) -> Any:
    return read.get(key) if isinstance(read, Mapping) else None


def _hottest(read: Any) -> tuple[str, float] | None:
    zones = _side(read, "zones")
    if not isinstance(zones, Mapping):
        return None
    temps = {str(k): v for k, v in zones.items() if _num(v) is not None}
    if not temps:
        return None
    name = max(temps, key=lambda k: temps[k])
    return name, float(temps[name])


def _before_after(before: Any, after: Any) -> list[str]:
    lines = []
    status = [_side(before, "thermal_status"), _side(after, "thermal_status")]
    if any(s is not None for s in status):
        lines.append("thermal status " + " → ".join("?" if s is None else str(s)
                                                     for s in status))
    battery = [_num(_side(before, "battery_c")), _num(_side(after, "battery_c"))]
    if any(b is not None for b in battery):
        charging = " (charging)" if _side(before, "charging") or _side(after, "charging") else ""
        lines.append("battery " + " → ".join("?" if b is None else f"{b:.1f} °C"
                                             for b in battery) + charging)
    hot = [_hottest(before), _hottest(after)]
    if any(hot):
        lines.append("hottest zone " + " → ".join(
            "?" if h is None else f"{h[1]:.1f} °C ({h[0]})" for h in hot))
    return lines


def _clusters(clusters: Any) -> list[str]:
    lines = []
    for c in clusters if isinstance(clusters, list) else []:
        if not isinstance(c, Mapping):
            continue
        top, most, cap = _num(c.get("top_khz")), _num(c.get("max_khz")), _num(c.get("cap_khz"))
        text = f"{c.get('policy', '?')}: top {fmt.ghz(top)} of {fmt.ghz(most)}"
        if cap is not None and most is not None and cap < most:
            text += f", capped at {fmt.ghz(cap)}"
        lines.append(text)
    return lines


def describe(conditions: Mapping[str, Any] | None) -> list[str]:
    """The conditions in words, one line per fact (empty without a record)."""
    if not conditions:
        return []
    known = {"before", "after", "clusters", "cool_wait", "limits", "series"}
    lines = _before_after(conditions.get("before"), conditions.get("after"))
    lines += _clusters(conditions.get("clusters"))
    wait = conditions.get("cool_wait")
    waited = _num(_side(wait, "waited_s"))
    if waited:
        lines.append(f"waited {waited:.0f} s to cool first")
    limits = conditions.get("limits")
    if isinstance(limits, Mapping) and limits:
        lines.append("limits " + ", ".join(f"{k} {v}" for k, v in sorted(limits.items())
                                           if v is not None))
    for key, value in sorted(conditions.items()):
        if key not in known and not isinstance(value, Mapping | list):
            lines.append(f"{key} {value}")
    return lines
