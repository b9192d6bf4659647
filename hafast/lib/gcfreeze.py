"""Keep the cyclic garbage collector off the long-lived state (issue 16).

The parent's pools and a check worker's engine are tens of thousands of objects
that live until the next reload.  CPython's collector walks every tracked object at
each full collection: 20-24 ms at 10,000 real servers on an idle box, 50 ms and more
on a busy director, at a moment the allocations decide.  In the parent that was the
tail of "checker verdict -> kernel" (p99 55 ms against a p50 of 3 ms); in a worker,
a pause in its timers.

:func:`settle` runs where the state has just been built (the start, each reload):
one full collection, which frees what the previous state left in reference cycles
(an engine's checks and their runner refer to each other), then ``gc.freeze()``,
which moves every object alive into the permanent generation the collector never
walks.  Frozen objects are still freed by reference counting when they are dropped;
only a frozen cycle waits for the next :func:`settle`, which unfreezes first.

The daemon's processes turn it on (:func:`enable`, in their entry points).  In any
other process (a test's, a benchmark's) that builds these pieces in place, freezing
the whole interpreter's heap would hide other code's cycles from the collector, so
:func:`settle` does nothing there.
"""

from __future__ import annotations

import gc
import time

__all__ = ["enable", "settle"]

_enabled = False


def enable() -> None:
    """This process is one of the daemon's: :func:`settle` freezes from now on."""
    global _enabled
    _enabled = True


def settle() -> float:
    """Collect once, then freeze what is alive; the seconds it took (0.0 in a
    process that did not :func:`enable` it)."""
    if not _enabled:
        return 0.0
    t0 = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return time.perf_counter() - t0
