"""The check engine's timer queue and checks (compiled, or the pure-Python twins).

``TimerQueue(loop, grain=None)`` holds every check's one pending timer behind one
``loop.call_at`` handle: ``after(delay, check)`` (a FIFO lane per fixed delay),
``at(when, check)`` (a heap, for warmup), ``clear()``.  A queued item has an int
``token`` (0: no timer), ``on_timer()`` and ``name``.

``Check(runner, kind, label=None)`` is one scheduled checker (its attempt's life:
start, deadline, the steady-state settle; its state logic, from alpha to retries,
is ``hafast.check.runner``'s ``configure`` and ``settle``, once for both twins),
``NO_ATTEMPT`` the attempt of a kind that finished at once; ``Latency(edges)`` a
histogram of attempt durations (``runner.latency``: every check's attempt lands in
it).  See ``checkq_py`` for
the why.  The checks' TCP sockets are in ``hafast._core.sockset``.

>>> from hafast._core.checkq import TimerQueue
>>> TimerQueue.GRAIN
0.01
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hafast._core._select import choose

# Callers are type-checked against the compiled module's stub (stubtest holds the
# stub to the .so); the twin has its own annotations and the tests run both.
if TYPE_CHECKING:
    from hafast._core.checkq_c import (
        NO_ATTEMPT,
        Check,
        Latency,
        TimerQueue,
    )
else:
    _impl = choose("checkq")
    TimerQueue = _impl.TimerQueue
    Check = _impl.Check
    Latency = _impl.Latency
    NO_ATTEMPT = _impl.NO_ATTEMPT

__all__ = ["NO_ATTEMPT", "Check", "Latency", "TimerQueue"]
