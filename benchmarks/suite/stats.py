"""Medians, spreads and ratios of benchmark rounds.

The machines this runs on are noisy (2 shared cores), so a figure is never one
measurement: it is the median of several rounds, shown with its spread (the
interquartile range when there are four rounds or more, else min..max).  A ratio
is computed per round from the two figures measured side by side in that round,
and then summarised the same way: pairing keeps a slow round from being divided
by a fast one.

Example::

    >>> s = summarize([10.0, 12.0, 11.0])
    >>> (s.median, s.low, s.high, s.n)
    (11.0, 10.0, 12.0, 3)
    >>> r = paired_ratio([10.0, 20.0, 30.0], [5.0, 10.0, 10.0])
    >>> (r.median, r.low, r.high)
    (2.0, 2.0, 3.0)
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

# Below this many rounds quartiles mean nothing; min..max is the honest spread.
IQR_FROM = 4


@dataclass(frozen=True)
class Summary:
    """A figure over rounds: median and spread (``low``..``high``, ``kind`` says which)."""

    median: float
    low: float
    high: float
    n: int
    kind: str = "min-max"  # or "iqr"

    @property
    def spread_pct(self) -> float:
        """Half the spread as a percentage of the median (0 when the median is 0)."""
        if not self.median or not math.isfinite(self.median):
            return 0.0
        return 50.0 * (self.high - self.low) / abs(self.median)

    def as_dict(self) -> dict[str, Any]:
        return {"median": self.median, "low": self.low, "high": self.high, "n": self.n,
                "kind": self.kind}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Summary:
        return cls(float(d["median"]), float(d["low"]), float(d["high"]), int(d["n"]),
                   str(d.get("kind", "min-max")))


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    """First and third quartile, linear interpolation between closest ranks
    (numpy's default, the "inclusive" method of :func:`statistics.quantiles`)."""
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def summarize(values: Iterable[float]) -> Summary:
    """Median and spread of the finite values; NaN figures when none is finite.

    >>> summarize([1.0, 2.0, 3.0, 4.0, 100.0]).kind
    'iqr'
    >>> summarize([]).n
    0
    """
    vals = sorted(v for v in values if v is not None and math.isfinite(v))
    if not vals:
        nan = float("nan")
        return Summary(nan, nan, nan, 0)
    med = statistics.median(vals)
    if len(vals) >= IQR_FROM:
        lo, hi = quartiles(vals)
        return Summary(med, lo, hi, len(vals), "iqr")
    return Summary(med, vals[0], vals[-1], len(vals))


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> Summary:
    """Summary of ``numerators[i] / denominators[i]`` over rounds measured together.

    Rounds where either side is missing, not finite, or the denominator is zero
    are left out (and so do not count in ``n``).

    >>> paired_ratio([1.0, 2.0], [0.0, 1.0]).n
    1
    """
    ratios = []
    for a, b in zip(numerators, denominators, strict=False):
        if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)) or b == 0:
            continue
        ratios.append(a / b)
    return summarize(ratios)


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100) by linear interpolation; NaN when empty.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
    2.5
    >>> percentile([5.0], 99)
    5.0
    """
    vals = sorted(values)
    if not vals:
        return float("nan")
    if len(vals) == 1:
        return vals[0]
    pos = (len(vals) - 1) * p / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(vals) - 1)
    return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)


def fmt(value: float, digits: int = 3) -> str:
    """A figure for a table: ``digits`` significant digits, no exponent below 1e9.

    >>> fmt(1234.5678), fmt(0.000123456), fmt(float("nan"))
    ('1235', '0.000123', '—')
    """
    if value is None or not math.isfinite(value):
        return "—"
    if value == 0:
        return "0"
    mag = math.floor(math.log10(abs(value)))
    decimals = max(digits - 1 - mag, 0)
    return f"{value:.{decimals}f}"


def fmt_summary(s: Summary, digits: int = 3) -> str:
    """``median (low–high)``; just the median for one round; ``—`` when unmeasured.

    >>> fmt_summary(Summary(2.0, 1.5, 2.5, 3))
    '2.00 (1.50–2.50)'
    """
    if s.n == 0:
        return "—"
    if s.n == 1 or s.low == s.high:
        return fmt(s.median, digits)
    return f"{fmt(s.median, digits)} ({fmt(s.low, digits)}–{fmt(s.high, digits)})"
