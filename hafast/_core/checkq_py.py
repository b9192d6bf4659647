"""The check engine's timer queue, pure Python: the readable reference twin of
``checkq_c``.

Every check's one pending timer, behind ONE loop timer.

Why not ``loop.call_at`` per check: with ten thousand timers armed, uvloop's
call_at costs about 4.4 µs and cancel 1.4 µs, twice per attempt.  Why lanes as
well as a heap: almost every timer is "now + a constant" (the deadline is
connect_timeout after the start, the next start delay_loop or
delay_before_retry after the result), and a FIFO per constant is sorted by
construction because the loop's clock only moves forward: an append and a
popleft instead of a heap push and pop.  Only arbitrary times (warmup) go to the
heap.  The loop timer is re-armed only when the earliest entry moves.  A
cancelled entry is not searched for: it stays where it is and is skipped when it
comes up (its token no longer matches the check's).

A queued item is anything with an integer ``token`` attribute (0: no timer), an
``on_timer()`` method and a ``name`` (for the log line when ``on_timer`` raises).

Example::

    >>> class Loop:
    ...     now = 0.0
    ...     def time(self): return self.now
    ...     def call_at(self, when, cb): self.armed = (when, cb); return self
    ...     def cancel(self): pass
    >>> class Item:
    ...     token, name, fired = 0, "item", 0
    ...     def on_timer(self): self.fired += 1
    >>> loop, item = Loop(), Item()
    >>> q = TimerQueue(loop, grain=0)
    >>> q.after(0.5, item)
    >>> q.armed_at, len(q)
    (0.5, 1)
    >>> loop.now = 0.5; loop.armed[1](); item.fired, len(q)
    (1, 0)
"""

from __future__ import annotations

import heapq
import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("hafast.check")

__all__ = ["Loop", "Timed", "TimerQueue"]


class Loop(Protocol):
    """The part of an event loop the queue uses (uvloop, asyncio, or a test fake)."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> Any: ...


class Timed(Protocol):
    """What the queue holds: a check (``runner.Check``) or a test's stand-in."""

    token: int
    name: str

    def on_timer(self) -> None: ...


class _Running:
    def cancel(self) -> None:
        return None


_RUNNING = _Running()


class TimerQueue:
    """Every check's one pending timer, behind one ``loop.call_at`` handle."""

    __slots__ = ("armed_at", "grain", "handle", "heap", "lanes", "loop", "seq")

    # Entries due within this much of the wake-up run in the same batch: libuv timers
    # have millisecond resolution and may wake a hair early.
    SLACK = 0.001
    BATCH = 65536  # at most this many entries per wake-up, then yield to I/O
    # The loop timer is armed on a grid of this step, at or after the earliest entry:
    # a timer fires up to GRAIN late, never early.  Why: each wake-up costs the loop
    # an epoll_wait, a timer and a batch (and PING_CHECK a sendmmsg) whatever it
    # carries; at 4,096 checks a second a 1 ms grid carries about 4 checks per
    # wake-up, and the engine's own CPU per PING_CHECK (sockets faked) was 12.2 µs
    # at 1 ms, 7.9 at 5 ms, 6.1 at 10 ms.  10 ms on a delay_loop of seconds moves
    # nothing a user can see; a rate of N / (delay_loop + attempt + ~5 ms).
    GRAIN = 0.01

    def __init__(self, loop: Loop, grain: float | None = None) -> None:
        self.loop = loop
        self.grain = self.GRAIN if grain is None else grain
        self.heap: list[tuple[float, int, Timed]] = []
        self.lanes: dict[float, deque[tuple[float, int, Timed]]] = {}
        self.seq = 0
        self.handle: Any = None
        self.armed_at = 0.0

    def at(self, when: float, check: Timed) -> None:
        """Make ``when`` (loop time) the check's one timer, replacing any it had."""
        self.seq += 1
        check.token = self.seq
        heapq.heappush(self.heap, (when, self.seq, check))
        if self.handle is None or when < self.armed_at:
            self._arm(when)

    def after(self, delay: float, check: Timed) -> None:
        """Make "``delay`` seconds from now" the check's one timer (a lane per delay)."""
        self.seq += 1
        check.token = seq = self.seq
        when = self.loop.time() + delay
        lane = self.lanes.get(delay)
        if lane is None:
            lane = self.lanes[delay] = deque()
        lane.append((when, seq, check))
        if self.handle is None or when < self.armed_at:
            self._arm(when)

    def _arm(self, when: float) -> None:
        if self.handle is not None:
            self.handle.cancel()
        grain = self.grain
        if grain > 0:
            # (less a hair: a time already on the grid must stay there despite float error)
            when = math.ceil(when / grain - 1e-6) * grain
        self.armed_at = when
        self.handle = self.loop.call_at(when, self._run)

    def _run(self) -> None:
        # While the batch runs, entries the callbacks push do not touch the loop timer
        # (armed_at -inf: nothing is "earlier"); the earliest entry is armed once, after.
        self.handle, self.armed_at = _RUNNING, float("-inf")
        due = self.loop.time() + self.SLACK
        left = self.BATCH
        for lane in list(self.lanes.values()):  # a callback may open a new lane
            while lane and left and lane[0][0] <= due:
                _, token, check = lane.popleft()
                left -= 1
                if check.token == token:
                    check.token = 0
                    try:
                        check.on_timer()
                    except Exception:  # an event consumer that raised: log it, go on
                        log.exception("%s: timer callback raised", check.name)
        heap = self.heap
        while heap and left and heap[0][0] <= due:
            _, token, check = heapq.heappop(heap)
            left -= 1
            if check.token == token:
                check.token = 0
                try:
                    check.on_timer()
                except Exception:
                    log.exception("%s: timer callback raised", check.name)
        # Cancelled entries at the front: drop them, do not wake for them.
        earliest = float("inf")
        for lane in self.lanes.values():
            while lane and lane[0][2].token != lane[0][1]:
                lane.popleft()
            if lane and lane[0][0] < earliest:
                earliest = lane[0][0]
        while heap and heap[0][2].token != heap[0][1]:
            heapq.heappop(heap)
        if heap and heap[0][0] < earliest:
            earliest = heap[0][0]
        self.handle = None
        if earliest != float("inf"):
            self._arm(earliest)

    def __len__(self) -> int:
        """Entries held, cancelled ones included (they go when they come up)."""
        return len(self.heap) + sum(len(lane) for lane in self.lanes.values())

    def clear(self) -> None:
        """Drop every entry (their checks' tokens go to 0) and the loop timer."""
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        for _, _, check in self.heap:
            check.token = 0
        self.heap.clear()
        for lane in self.lanes.values():
            for _, _, check in lane:
                check.token = 0
        self.lanes.clear()
