"""Medians, spreads and per-round ratios."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.suite.stats import (
    Summary,
    fmt,
    fmt_summary,
    paired_ratio,
    percentile,
    quartiles,
    summarize,
)


def test_summary_of_three_is_min_max() -> None:
    s = summarize([3.0, 1.0, 2.0])
    assert (s.median, s.low, s.high, s.n, s.kind) == (2.0, 1.0, 3.0, 3, "min-max")


def test_summary_from_four_is_iqr() -> None:
    s = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s.kind == "iqr" and s.median == 3.0
    assert (s.low, s.high) == (2.0, 4.0)  # the outlier does not widen the spread


def test_summary_skips_missing_and_nan() -> None:
    s = summarize([1.0, float("nan"), 3.0, float("inf")])
    assert (s.median, s.n) == (2.0, 2)
    empty = summarize([])
    assert empty.n == 0 and math.isnan(empty.median)


def test_paired_ratio_pairs_rounds() -> None:
    # round 2 is slow for both: pairing keeps the ratio steady at 2
    r = paired_ratio([10.0, 4.0, 10.0], [5.0, 2.0, 5.0])
    assert (r.median, r.low, r.high, r.n) == (2.0, 2.0, 2.0, 3)


def test_paired_ratio_drops_unpaired_rounds() -> None:
    r = paired_ratio([1.0, 2.0, float("nan"), 8.0], [1.0, 0.0, 3.0])
    assert r.n == 1 and r.median == 1.0


def test_percentile_interpolates() -> None:
    vals = [float(v) for v in range(1, 101)]
    assert percentile(vals, 50) == pytest.approx(50.5)
    assert percentile(vals, 99) == pytest.approx(99.01)
    assert percentile(vals, 0) == 1.0 and percentile(vals, 100) == 100.0
    assert math.isnan(percentile([], 50))


def test_quartiles_inclusive() -> None:
    assert quartiles([1.0, 2.0, 3.0, 4.0, 5.0]) == (2.0, 4.0)


def test_spread_pct() -> None:
    assert Summary(10.0, 9.0, 11.0, 3).spread_pct == pytest.approx(10.0)
    assert Summary(0.0, 0.0, 1.0, 3).spread_pct == 0.0


def test_formatting() -> None:
    assert fmt(0.0) == "0" and fmt(12.345) == "12.3" and fmt(-0.5) == "-0.500"
    assert fmt_summary(Summary(5.0, 5.0, 5.0, 3)) == "5.00"
    assert fmt_summary(Summary(float("nan"), float("nan"), float("nan"), 0)) == "—"


def test_round_trip_dict() -> None:
    s = summarize([1.0, 2.0, 3.0, 4.0])
    assert Summary.from_dict(s.as_dict()) == s


@given(st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=30))
def test_summary_bounds(values: list[float]) -> None:
    s = summarize(values)
    assert min(values) <= s.low <= s.median <= s.high <= max(values)
    assert s.n == len(values)


@given(st.lists(st.floats(min_value=0.1, max_value=1e6), min_size=1, max_size=20))
def test_ratio_with_itself_is_one(values: list[float]) -> None:
    r = paired_ratio(values, values)
    assert r.median == pytest.approx(1.0) and r.n == len(values)


def test_advert_interval_errors() -> None:
    from benchmarks.suite.jitter import interval_errors_ms

    assert interval_errors_ms([]) == [] and interval_errors_ms([5.0]) == []
    got = interval_errors_ms([0.0, 0.1, 0.21, 0.3], 0.1)
    assert got == pytest.approx([0.0, 10.0, 10.0])
