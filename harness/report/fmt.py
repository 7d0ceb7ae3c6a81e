"""Numbers and times in words, the same in every renderer."""

from __future__ import annotations

import datetime as dt
import math


def when(stamp: float | None) -> str:
    """``2026-06-26 20:26 UTC`` (a farm's report is read in several time zones)."""
    if stamp is None:
        return ""
    return dt.datetime.fromtimestamp(stamp, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def num(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}g}"


def pct(value: float | None) -> str:
    """A relative change: ``+8.0%``."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:+.1%}"


def pvalue(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return "< 1e-6" if value < 1e-6 else f"{value:.2g}"


def gb(kb: float | None) -> str:
    return "–" if kb is None else f"{kb / 1e6:.2f} GB"


def ghz(khz: float | None) -> str:
    return "–" if khz is None else f"{khz / 1e6:.2f} GHz"
