"""VRRP timer arithmetic in integer microseconds, as keepalived computes it.

Everything here is pure integer arithmetic: no clock, no floats.  Intervals are
carried in microseconds everywhere so that VRRPv2 (whole seconds on the wire)
and VRRPv3 (centiseconds on the wire) share one code path, and so that two
backups one priority apart at a 1 cs advert interval still time out in a
deterministic order (they differ by ~39 µs; keepalived issue #2389).

keepalived (``keepalived/include/vrrp.h``)::

    VRRP_TIMER_SKEW_CALC(svr, w) = v3 ? (w * (master_adver_int / TIMER_CENTI_HZ) * 625) / 16
                                      : (w * TIMER_HZ) / 256
    VRRP_TIMER_SKEW(svr)         = VRRP_TIMER_SKEW_CALC(svr, 256 - effective_priority)
    VRRP_TIMER_SKEW_MIN(svr)     = VRRP_TIMER_SKEW_CALC(svr, 1)
    VRRP_MS_DOWN_TIMER(svr)      = down_timer_adverts * master_adver_int + VRRP_TIMER_SKEW(svr)

``625 / 16`` is ``10_000 / 256`` reduced so the C product fits 32 bits; in
Python the reduced form is kept only so that the truncation matches keepalived's
to the microsecond.  FRR and the RFC text compute in whole centiseconds instead;
:func:`skew_time_cs` / :func:`master_down_interval_cs` give that flavour for
interop reasoning (see the table in research/keepalived-anchors.md §4.1).
"""

from __future__ import annotations

from typing import Final

from hafast.lib.units import US_PER_S

US_PER_CENTISECOND: Final = 10_000

VRRP_V2: Final = 2
VRRP_V3: Final = 3

# RFC 3768 §5.3.4 / RFC 5798 §5.2.4: 255 = address owner, 0 = master is leaving.
PRIORITY_OWNER: Final = 255
PRIORITY_STOP: Final = 0
PRIORITY_DEFAULT: Final = 100

# RFC 3768 §6.1 and RFC 5798 §6.1: Master_Down_Interval counts three adverts;
# keepalived's down_timer_adverts (1..100) replaces the 3 (non-RFC when != 3).
DOWN_TIMER_ADVERTS_DEFAULT: Final = 3
DOWN_TIMER_ADVERTS_MIN: Final = 1
DOWN_TIMER_ADVERTS_MAX: Final = 100

# RFC 3768 §5.3.7: Adver Int is 8 bits of whole seconds.
V2_ADVER_INT_MAX_S: Final = 255
# RFC 5798 §5.2.7: Max Adver Int is 12 bits of centiseconds.
V3_ADVER_INT_MAX_CS: Final = 4095


def seconds_to_us(seconds: int) -> int:
    """Whole seconds (VRRPv2 Adver Int) to microseconds.

    >>> seconds_to_us(1)
    1000000
    """
    return seconds * US_PER_S


def centiseconds_to_us(centiseconds: int) -> int:
    """Centiseconds (VRRPv3 Max Adver Int) to microseconds.

    >>> centiseconds_to_us(100)
    1000000
    """
    return centiseconds * US_PER_CENTISECOND


def _check_version(version: int) -> None:
    if version not in (VRRP_V2, VRRP_V3):
        raise ValueError(f"VRRP version must be 2 or 3, not {version!r}")


def _skew_calc_us(version: int, weight: int, master_adver_int_us: int) -> int:
    _check_version(version)
    if version == VRRP_V3:
        # RFC 5798 §6.1: Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256,
        # in keepalived's reduced integer form (truncate to whole cs first, then
        # scale by 625/16 == 10_000/256).
        return (weight * (master_adver_int_us // US_PER_CENTISECOND) * 625) // 16
    # RFC 3768 §6.1: Skew_Time = (256 - Priority) / 256 seconds, independent of
    # the advertisement interval.
    return (weight * US_PER_S) // 256


def skew_time_us(version: int, priority: int, master_adver_int_us: int) -> int:
    """Skew_Time in µs for ``priority`` (keepalived's VRRP_TIMER_SKEW).

    >>> skew_time_us(2, 100, 1_000_000)
    609375
    >>> skew_time_us(3, 100, 100_000)   # 10 cs
    60937
    """
    if not 0 <= priority <= PRIORITY_OWNER:
        raise ValueError(f"priority must be 0..255, not {priority!r}")
    return _skew_calc_us(version, 256 - priority, master_adver_int_us)


def skew_time_min_us(version: int, master_adver_int_us: int) -> int:
    """The smallest possible skew (keepalived's VRRP_TIMER_SKEW_MIN, weight 1).

    keepalived uses it for a non-owner configured ``state MASTER``: it starts as
    backup but waits only one interval plus this before taking over.

    >>> skew_time_min_us(2, 1_000_000)
    3906
    """
    return _skew_calc_us(version, 1, master_adver_int_us)


def master_down_interval_us(
    version: int,
    priority: int,
    master_adver_int_us: int,
    down_timer_adverts: int = DOWN_TIMER_ADVERTS_DEFAULT,
) -> int:
    """Master_Down_Interval in µs (keepalived's VRRP_MS_DOWN_TIMER).

    RFC 3768 §6.1 / RFC 5798 §6.1: ``3 * interval + Skew_Time``; keepalived's
    ``down_timer_adverts`` replaces the 3.

    >>> master_down_interval_us(2, 100, 1_000_000)
    3609375
    >>> master_down_interval_us(3, 100, 100_000)
    360937
    """
    if not DOWN_TIMER_ADVERTS_MIN <= down_timer_adverts <= DOWN_TIMER_ADVERTS_MAX:
        raise ValueError(f"down_timer_adverts must be 1..100, not {down_timer_adverts!r}")
    return down_timer_adverts * master_adver_int_us + skew_time_us(
        version, priority, master_adver_int_us
    )


def skew_time_cs(priority: int, master_adver_int_cs: int) -> int:
    """Skew_Time in whole centiseconds, as FRR vrrpd and the RFC 5798 text compute it.

    >>> skew_time_cs(100, 100)
    60
    """
    if not 0 <= priority <= PRIORITY_OWNER:
        raise ValueError(f"priority must be 0..255, not {priority!r}")
    return ((256 - priority) * master_adver_int_cs) // 256


def master_down_interval_cs(priority: int, master_adver_int_cs: int) -> int:
    """Master_Down_Interval in whole centiseconds (FRR's integer form).

    >>> master_down_interval_cs(100, 100)
    360
    """
    return 3 * master_adver_int_cs + skew_time_cs(priority, master_adver_int_cs)
