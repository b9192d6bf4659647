"""Time units as integers, in one place: every timer in hafast's model is an
``int`` of microseconds (keepalived keeps µs too), and the clocks it reads give
nanoseconds.  Pure: no imports, so the pure cores may use it.

    >>> 60 * US_PER_S, US_PER_S * NS_PER_US == NS_PER_S
    (60000000, True)
"""

from __future__ import annotations

from typing import Final

US_PER_S: Final = 1_000_000
NS_PER_US: Final = 1_000
NS_PER_S: Final = 1_000_000_000
