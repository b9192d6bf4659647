"""Timer arithmetic against keepalived's macros and the anchors §4.1 table."""

from __future__ import annotations

import pytest

from hafast.vrrp import timers as t

PRIORITIES = (254, 200, 150, 100, 1)

# research/keepalived-anchors.md §4.1, Master_Down_Interval per priority row.
# v2 at 1 s in milliseconds (the table prints 3 decimals of a second).
V2_1S_MS = {254: 3008, 200: 3219, 150: 3414, 100: 3609, 1: 3996}
# v3 columns in whole centiseconds, integer skew as FRR computes it.
V3_CS = {
    100: {254: 300, 200: 321, 150: 341, 100: 360, 1: 399},
    10: {254: 30, 200: 32, 150: 34, 100: 36, 1: 39},
    1: {254: 3, 200: 3, 150: 3, 100: 3, 1: 3},
}


@pytest.mark.parametrize("priority", PRIORITIES)
def test_v2_one_second_row(priority: int) -> None:
    down = t.master_down_interval_us(2, priority, t.seconds_to_us(1))
    # keepalived keeps µs; the table rounds to the millisecond.
    assert (down + 500) // 1000 == V2_1S_MS[priority]
    assert down == 3_000_000 + (256 - priority) * 1_000_000 // 256


@pytest.mark.parametrize("interval_cs", sorted(V3_CS))
@pytest.mark.parametrize("priority", PRIORITIES)
def test_v3_integer_centisecond_rows(priority: int, interval_cs: int) -> None:
    assert t.master_down_interval_cs(priority, interval_cs) == V3_CS[interval_cs][priority]


@pytest.mark.parametrize("interval_cs", sorted(V3_CS))
@pytest.mark.parametrize("priority", PRIORITIES)
def test_v3_keepalived_is_the_v2_column_scaled(priority: int, interval_cs: int) -> None:
    # anchors §4.1: keepalived keeps µs precision, so its v3 values are the v2
    # column scaled by interval / 1 s, truncated to the microsecond.
    mai = t.centiseconds_to_us(interval_cs)
    down = t.master_down_interval_us(3, priority, mai)
    exact_skew_num = (256 - priority) * mai  # / 256
    assert down == 3 * mai + exact_skew_num // 256
    v2_down = t.master_down_interval_us(2, priority, t.seconds_to_us(1))
    assert abs(down - v2_down * interval_cs / 100) < 1


def test_anchor_examples_prio_100() -> None:
    # "prio 100 at 10 cs => 360.9 ms, at 1 cs => 36.1 ms vs FRR's 30 ms"
    assert t.master_down_interval_us(3, 100, 100_000) == 360_937
    assert t.master_down_interval_us(3, 100, 10_000) == 36_093
    assert t.master_down_interval_cs(100, 1) * 10_000 == 30_000


def test_man_page_example_prio_128() -> None:
    # keepalived.conf(5): advert_int 1, priority 128 => about 3.5 s.
    assert t.master_down_interval_us(2, 128, 1_000_000) == 3_500_000


def test_one_priority_apart_at_one_centisecond_is_about_39us() -> None:
    # keepalived #2389: at 1 cs adverts two backups one priority apart differ
    # by only ~39 µs, so µs precision matters.
    for priority in range(1, 254):
        a = t.master_down_interval_us(3, priority, 10_000)
        b = t.master_down_interval_us(3, priority + 1, 10_000)
        assert a - b in (39, 40)


def test_skew_matches_keepalived_reduced_form() -> None:
    for priority in range(0, 256):
        for cs in (1, 7, 10, 100, 255, 4095):
            mai = cs * 10_000
            assert t.skew_time_us(3, priority, mai) == ((256 - priority) * cs * 625) // 16
        assert t.skew_time_us(2, priority, 1_000_000) == (256 - priority) * 1_000_000 // 256


def test_v2_skew_ignores_the_interval() -> None:
    # RFC 3768 §6.1: Skew_Time = (256 - Priority) / 256 seconds.
    assert t.skew_time_us(2, 100, 1_000_000) == t.skew_time_us(2, 100, 5_000_000)


def test_priority_zero_and_owner_skews() -> None:
    assert t.skew_time_us(2, 0, 1_000_000) == 1_000_000
    assert t.skew_time_us(2, 255, 1_000_000) == 3906
    assert t.skew_time_min_us(2, 1_000_000) == 3906
    assert t.skew_time_min_us(3, 1_000_000) == 3906


@pytest.mark.parametrize("adverts", [1, 2, 3, 10, 100])
def test_down_timer_adverts_replaces_the_three(adverts: int) -> None:
    mai = 1_000_000
    assert t.master_down_interval_us(2, 100, mai, adverts) == adverts * mai + 609_375


@pytest.mark.parametrize("adverts", [0, 101, -1])
def test_down_timer_adverts_range(adverts: int) -> None:
    with pytest.raises(ValueError, match="down_timer_adverts"):
        t.master_down_interval_us(2, 100, 1_000_000, adverts)


@pytest.mark.parametrize("bad", [-1, 256])
def test_priority_range(bad: int) -> None:
    with pytest.raises(ValueError, match="priority"):
        t.skew_time_us(2, bad, 1_000_000)
    with pytest.raises(ValueError, match="priority"):
        t.skew_time_cs(bad, 100)


def test_version_must_be_2_or_3() -> None:
    with pytest.raises(ValueError, match="version"):
        t.skew_time_us(4, 100, 1_000_000)


def test_unit_conversions() -> None:
    assert t.seconds_to_us(3) == 3_000_000
    assert t.centiseconds_to_us(4095) == 40_950_000
