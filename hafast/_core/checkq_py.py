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
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("hafast.check")

__all__ = ["NO_ATTEMPT", "Check", "Latency", "Loop", "Timed", "TimerQueue"]


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

    __slots__ = ("armed_at", "due", "grain", "handle", "heap", "lanes", "late", "loop",
                 "seq", "steady")

    # Entries due within this much of the wake-up run in the same batch: libuv timers
    # have millisecond resolution and may wake a hair early.
    SLACK = 0.001
    # At most this long running callbacks per wake-up, then yield to I/O; what is
    # left (already due) runs at the next turn of the loop.  Why (issue 16): a batch
    # runs with one loop time, so every check it started finishes in the same I/O
    # turn and is due again at the same instant; a pause (a GC, a reload) merged
    # such clusters and nothing split them, until at 10,000 TCP_CHECKs a second a
    # worker ran 5,000 connects in one callback, its timers up to 0.6 s late, its
    # CPUs half idle.  Yielding every few milliseconds splits a cluster by the time
    # its own work takes, and the next round keeps the split.
    BUDGET = 0.005
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
        # While a check's on_timer runs: the time its entry was due.  The wake-up is
        # up to GRAIN later; a follow-up timer counted from ``due`` (a retry after a
        # deadline) does not add that lateness again.
        self.due = 0.0
        # Steady successes the checks settled themselves (Check._done), not yet
        # counted by the runner: take_steady() hands them over.
        self.steady = 0
        # The worst lateness of an entry run since take_late(): how late the checks
        # start.  The loop's own lag cannot show it: a wake-up yields after BUDGET,
        # so a queue falling behind keeps the loop's other timers on time.
        self.late = 0.0
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

    def take_steady(self) -> int:
        """The steady successes tallied since the last call (and zero the tally)."""
        n, self.steady = self.steady, 0
        return n

    def take_late(self) -> float:
        """The worst lateness (seconds) of an entry run since the last call."""
        late, self.late = self.late, 0.0
        return late

    def _arm(self, when: float) -> None:
        if self.handle is not None:
            self.handle.cancel()
        grain = self.grain
        if grain > 0 and when > self.loop.time() + self.SLACK:  # (due: the next turn)
            # (less a hair: a time already on the grid must stay there despite float error)
            when = math.ceil(when / grain - 1e-6) * grain
        self.armed_at = when
        self.handle = self.loop.call_at(when, self._run)

    def _run(self) -> None:
        # While the batch runs, entries the callbacks push do not touch the loop timer
        # (armed_at -inf: nothing is "earlier"); the earliest entry is armed once, after.
        self.handle, self.armed_at = _RUNNING, float("-inf")
        now = self.loop.time()
        due = now + self.SLACK
        stop = time.monotonic() + self.BUDGET
        left = True
        for lane in list(self.lanes.values()):  # a callback may open a new lane
            while lane and left and lane[0][0] <= due:
                self._fire(now, *lane.popleft())
                left = time.monotonic() < stop
        heap = self.heap
        while heap and left and heap[0][0] <= due:
            self._fire(now, *heapq.heappop(heap))
            left = time.monotonic() < stop
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

    def _fire(self, now: float, when: float, token: int, check: Timed) -> None:
        """One entry off the queue: its check's timer, unless it was replaced."""
        if check.token != token:
            return
        if now - when > self.late:
            self.late = now - when
        check.token = 0
        self.due = when
        try:
            check.on_timer()
        except Exception:  # an event consumer that raised: log it, go on
            log.exception("%s: timer callback raised", check.name)

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


# --------------------------------------------------------------------------- checks


class _NoAttempt:
    """The attempt of a kind that finished at once: nothing to cancel."""

    __slots__ = ()

    def cancel(self) -> None:
        return None


NO_ATTEMPT = _NoAttempt()


class Latency:
    """Attempt durations, start to result: a cumulative histogram over fixed upper
    edges (Prometheus buckets: each counts the attempts at or under its edge).

    >>> lat = Latency((0.01, 0.1))
    >>> for s in (0.005, 0.05, 3.0):
    ...     lat.observe(s)
    >>> lat.as_dict()["buckets"], lat.count
    ([(0.01, 1), (0.1, 2)], 3)
    """

    __slots__ = ("buckets", "count", "edges", "sum")

    def __init__(self, edges: Any) -> None:
        self.edges = tuple(float(e) for e in edges)
        self.buckets = [0] * len(self.edges)
        self.count = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.sum += seconds
        buckets = self.buckets
        for i, edge in enumerate(self.edges):
            if seconds <= edge:
                buckets[i] += 1

    def as_dict(self) -> dict[str, Any]:
        return {"buckets": list(zip(self.edges, self.buckets, strict=True)),
                "count": self.count, "sum": self.sum}


class Check:
    """One scheduled checker: a kind, its state, the healths it feeds, one timer
    (an entry in the runner's :class:`TimerQueue`; ``token`` 0 means none).

    The attempt's life is here: the timer starts it (``fire``) or ends it at its
    deadline (``expire``), the kind's ``done`` settles it.  The steady state (a
    success of a checker that is up, nothing to retry, no weight change: nearly
    every attempt) is settled here too, with no call into the runner; anything else
    goes to ``runner.settled``, which applies ``settle`` and publishes events.
    The state logic is the runner's, not this class's: ``hafast.check.runner``'s
    ``configure`` sets the initial state and timers (alpha, retry, the delays)
    when ``Runner.add`` makes the check, and ``settle`` every outcome but the
    steady one.  The runner (duck-typed: ``loop``, ``timers``, ``running``,
    ``latency``, ``settled(check, result, since)``, ``start_raised(check, exc)``)
    is ``hafast.check.runner.Runner``.  With a runner ``latency`` (a
    :class:`Latency`), each attempt's duration lands in it.
    """

    __slots__ = ("attempt", "deadline_s", "delay_before_retry_us", "delay_loop_s",
                 "delay_loop_us", "has_run", "healths", "kind", "label",
                 "last_reason", "latency", "log_all", "pending", "retry", "retry_it",
                 "runner", "t0", "token", "up", "weight")

    # Set by the runner's ``configure`` (the state and the timers), not here.
    up: bool
    has_run: bool
    retry_it: int
    retry: int
    delay_loop_us: int
    delay_before_retry_us: int
    log_all: bool
    deadline_s: float
    delay_loop_s: float

    def __init__(self, runner: Any, kind: Any, label: str | None = None) -> None:
        self.runner = runner
        self.kind = kind
        self.label = label
        self.healths: Any = ()  # see feed
        self.token = 0
        self.attempt: Any = NO_ATTEMPT
        self.pending = False
        self.weight: int | None = None
        self.last_reason = ""
        self.latency: Latency | None = getattr(runner, "latency", None)
        self.t0 = 0.0

    # The check is the ``done`` its kind calls: a bound method kept per check was 64
    # bytes each, made per attempt an allocation per attempt (issue 16).
    def __call__(self, result: Any) -> None:
        self._done(result)

    @property
    def done(self) -> Check:
        """What a kind is given to report an attempt's result: the check itself."""
        return self

    @property
    def state(self) -> Check:
        """The up/has_run/retry_it arithmetic (``runner.settle``): the check itself,
        one object less per check (``runner.CheckState`` has the same three fields)."""
        return self

    @property
    def name(self) -> str:
        """For logs: made when needed, not stored ten thousand times."""
        if self.label is not None:
            return str(self.label)
        t = self.kind.target
        return f"{self.kind.keyword} {t.address}:{t.port}"

    def feed(self, health: Any) -> None:
        """Let this check's state count in ``health`` too.

        ``healths`` is what the check feeds, to iterate.  Its one health (the usual
        case) is held alone when that health is its own one-element collection
        (``SELF_COLLECTION``, as ``hafast.check.runner.ServerHealth``): a tuple of one
        was 48 bytes a check (issue 16).  From the second on, a tuple."""
        held = self.healths
        if not held:
            self.healths = health if getattr(health, "SELF_COLLECTION", False) else (health,)
        elif type(held) is tuple:
            self.healths = (*held, health)
        else:
            self.healths = (held, health)
        health.attach(self.up)

    # -- timer callbacks ----------------------------------------------------------

    def on_timer(self) -> None:
        """The check's one timer: the attempt's deadline while one runs, else the start."""
        if self.pending:
            self.expire()
        else:
            self.fire()

    def fire(self) -> None:
        """Start one attempt; arm its deadline unless it finished at once."""
        self.pending = True
        if self.latency is not None:
            self.t0 = self.runner.loop.time()
        try:
            attempt = self.kind.start(self)
        except Exception as exc:  # a kind must not raise; never let it kill the loop
            attempt = NO_ATTEMPT
            self.runner.start_raised(self, exc)
        if self.pending:
            self.attempt = attempt
            self.runner.timers.after(self.deadline_s, self)

    def expire(self) -> None:
        """The deadline passed: cancel the attempt; the kind says what that means."""
        self.token = 0
        if not self.pending:
            return
        self.pending = False
        if self.latency is not None:
            self.latency.observe(self.runner.loop.time() - self.t0)
        attempt, self.attempt = self.attempt, NO_ATTEMPT
        attempt.cancel()
        # The next attempt counts from when the deadline was due, not from this
        # wake-up (up to TimerQueue.GRAIN later): the grid's lateness must not add
        # up over a retry chain (a drop fault is detected after retry + 1 deadlines).
        runner = self.runner
        runner.settled(self, self.kind.on_deadline(), runner.timers.due)

    def _done(self, result: Any) -> None:
        if not self.pending:  # cancelled, or a kind reporting twice: ignore
            return
        self.pending = False
        self.attempt = NO_ATTEMPT
        self.token = 0  # the deadline entry is now stale
        runner = self.runner
        if self.latency is not None:
            self.latency.observe(runner.loop.time() - self.t0)
        if result.ok and self.up and not self.retry_it and result.weight == self.weight:
            # The steady state: what settle() would say, minus its call and the
            # transition bookkeeping; counted as one more in the queue's tally.
            timers = runner.timers
            timers.steady += 1
            self.has_run = True
            if runner.running:
                timers.after(self.delay_loop_s, self)
            return
        runner.settled(self, result)

    def stop(self) -> None:
        self.token = 0
        if self.pending:
            self.pending = False
            attempt, self.attempt = self.attempt, NO_ATTEMPT
            attempt.cancel()
