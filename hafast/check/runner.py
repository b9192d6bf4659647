"""One scheduler for every checker of a worker: delay_loop, warmup, connect_timeout,
retry, delay_before_retry, alpha, log_all_failures, and per-real-server health.

Two layers, as DESIGN.md asks:

- a pure core with no loop and no clock of its own: :func:`settle` (one attempt's
  outcome -> the delay until the next attempt and the checker's transition) and
  :class:`ServerHealth` (a real server is UP only while every one of its checkers
  is up);
- a thin shell, :class:`Runner`, on the event loop.  Each check has exactly one
  timer at a time: the next start while idle, the attempt's deadline while an
  attempt runs; all of them live in one queue behind one ``loop.call_at`` handle
  (:class:`TimerQueue`, ``hafast._core.checkq``: compiled, or its Python twin).
  No Task, no ``asyncio.timeout`` per check (see ``api.py`` for the memory and CPU
  figures behind that choice).

Retry semantics (keepalived 2.x, ``check_udp.c``/``check_dns.c`` epilogues): a
failed attempt of a checker that is up is retried ``retry`` more times,
``delay_before_retry`` apart; when they all fail the checker goes DOWN.  A DOWN
checker is tried every ``delay_loop`` and goes UP on its first success.  (keepalived's
TCP_CHECK also retries while down; that only delays nothing, so one rule serves all.)

Pacing (keepalived 2.x, ``check_tcp.c``: ``tcp_epilog`` calls ``thread_add_timer``
with ``delay_loop`` when the result is in): the next attempt starts ``delay_loop``
after the previous one COMPLETED, not after it started.  So N checks run at
N / (delay_loop + attempt time) per second, a little under N / delay_loop even
when every server answers at once, and well under it when connects time out.
A rate below that at 16,384 servers with ``delay_loop 1`` means the loop is out
of CPU (the attempt time then grows by the loop's lag), not that the timers drift.

Example, the pure core on numbers alone::

    >>> s = CheckState(up=True)
    >>> settle(s, False, 2, 1_000_000, 200_000)
    (200000, None)
    >>> settle(s, False, 2, 1_000_000, 200_000)
    (200000, None)
    >>> settle(s, False, 2, 1_000_000, 200_000)
    (1000000, False)
    >>> settle(s, True, 2, 1_000_000, 200_000)
    (1000000, True)
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from hafast._core.checkq import TimerQueue
from hafast.check.api import NO_ATTEMPT, Attempt, ProbeKind, ProbeResult
from hafast.check.events import DOWN, UP, WEIGHT, ServerEvent

log = logging.getLogger("hafast.check")

US = 1_000_000

# --------------------------------------------------------------------------- pure core


class CheckState:
    """A checker's health arithmetic: up/down, whether it ran, the retry count."""

    __slots__ = ("has_run", "retry_it", "up")

    def __init__(self, up: bool) -> None:
        self.up = up
        self.has_run = False
        self.retry_it = 0


def settle(
    state: CheckState, ok: bool, retry: int, delay_loop_us: int, delay_before_retry_us: int
) -> tuple[int, bool | None]:
    """Apply one attempt's outcome to ``state``.

    Returns ``(delay_us, transition)``: when to start the next attempt, and
    ``True`` (went UP), ``False`` (went DOWN) or ``None`` (no change).
    """
    state.has_run = True
    if ok:
        state.retry_it = 0
        if state.up:
            return delay_loop_us, None
        state.up = True
        return delay_loop_us, True
    if state.up and state.retry_it < retry:
        state.retry_it += 1
        return delay_before_retry_us, None
    state.retry_it = 0
    if state.up:
        state.up = False
        return delay_loop_us, False
    return delay_loop_us, None


class ServerHealth:
    """One real server under one virtual server: UP while all its checkers are up.

    ``weight`` is the configured weight unless a dynamic checker (misc_dynamic,
    FILE_CHECK) reported another; with several, the lowest wins (the cautious one).
    Memory matters here (one per real server): a count of failing checkers, not a
    set, and the weights table only once a dynamic checker spoke.
    """

    __slots__ = ("base_weight", "checks", "failing", "real_server", "up", "virtual_server",
                 "weight", "weights")

    def __init__(
        self, virtual_server: tuple[object, ...], real_server: tuple[str, int | None],
        base_weight: int = 1,
    ) -> None:
        self.virtual_server = virtual_server
        self.real_server = real_server
        self.base_weight = base_weight
        self.checks = 0
        self.failing = 0
        self.weights: dict[object, int] | None = None
        self.up = True
        self.weight = base_weight

    def attach(self, up: bool) -> None:
        """Count one more checker, in its initial state (alpha: down)."""
        self.checks += 1
        if not up:
            self.failing += 1
        self.up = not self.failing

    def apply(
        self, checker: object, was_up: bool, up: bool, weight: int | None, reason: str,
        at: float,
    ) -> ServerEvent | None:
        """Record that ``checker`` went from ``was_up`` to ``up`` (and its dynamic
        weight); return the event if the server as a whole changed."""
        if was_up != up:
            self.failing += -1 if up else 1
        weights = self.weights
        if weight is not None:
            if weights is None:
                weights = self.weights = {}
            weights[checker] = weight
        elif weights:
            weights.pop(checker, None)
        new_weight = min(weights.values()) if weights else self.base_weight
        new_up = not self.failing
        state = None
        if new_up != self.up:
            state = UP if new_up else DOWN
        elif new_up and new_weight != self.weight:
            state = WEIGHT
        self.up, self.weight = new_up, new_weight
        if state is None:
            return None
        return ServerEvent(
            self.virtual_server, self.real_server, state, new_weight,
            "" if new_up else reason, at,
        )


class RateLimit:
    """At most ``burst`` log lines per ``interval`` seconds; counts the rest.

    >>> r = RateLimit(2, 10.0, clock=lambda: 0.0)
    >>> [r.allow() for _ in range(3)], r.suppressed
    ([True, True, False], 1)
    """

    __slots__ = ("burst", "clock", "interval", "left", "since", "suppressed")

    def __init__(
        self, burst: int = 20, interval: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst, self.interval, self.clock = burst, interval, clock
        self.left = burst
        self.since = clock()
        self.suppressed = 0

    def allow(self) -> bool:
        now = self.clock()
        if now - self.since >= self.interval:
            if self.suppressed:
                log.warning("check log: %d lines suppressed", self.suppressed)
            self.since, self.left, self.suppressed = now, self.burst, 0
        if self.left > 0:
            self.left -= 1
            return True
        self.suppressed += 1
        return False


# --------------------------------------------------------------------------- the shell


class Loop(Protocol):
    """The part of an event loop the runner uses (uvloop, asyncio, or a test fake)."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> Any: ...


class Check:
    """One scheduled checker: a kind, its state, the healths it feeds, one timer
    (an entry in the runner's :class:`TimerQueue`; ``token`` 0 means none)."""

    __slots__ = ("attempt", "deadline_s", "delay_before_retry_us", "delay_loop_us",
                 "done", "healths", "kind", "label", "last_reason", "log_all", "pending",
                 "retry", "runner", "state", "token", "weight")

    def __init__(self, runner: Runner, kind: ProbeKind, label: str | None = None) -> None:
        spec = kind.spec
        self.runner = runner
        self.kind = kind
        self.label = label
        immediate = kind.immediate
        self.state = CheckState(up=immediate or not getattr(spec, "alpha", False))
        self.retry: int = 0 if immediate else getattr(spec, "retry", 1)
        self.delay_loop_us: int = getattr(spec, "delay_loop_us", 60 * US)
        self.delay_before_retry_us: int = getattr(spec, "delay_before_retry_us", US)
        self.log_all = runner.log_all_failures or getattr(spec, "log_all_failures", False)
        self.healths: tuple[ServerHealth, ...] = ()
        self.token = 0
        self.attempt: Attempt = NO_ATTEMPT
        self.pending = False
        self.weight: int | None = None
        self.last_reason = ""
        # Both made once: a kind's deadline is a function of its frozen spec, and a
        # bound method made per attempt is an allocation per attempt.
        self.deadline_s = kind.deadline_us() / US
        self.done = self._done

    @property
    def name(self) -> str:
        """For logs: made when needed, not stored ten thousand times."""
        if self.label is not None:
            return self.label
        t = self.kind.target
        return f"{self.kind.keyword} {t.address}:{t.port}"

    def feed(self, health: ServerHealth) -> None:
        """Let this check's state count in ``health`` too."""
        self.healths += (health,)
        health.attach(self.state.up)

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
        try:
            attempt = self.kind.start(self.done)
        except Exception as exc:  # a kind must not raise; never let it kill the loop
            log.exception("%s: checker raised", self.name)
            attempt = NO_ATTEMPT
            if self.pending:
                self.done(ProbeResult(False, "error", repr(exc)))
        if self.pending:
            self.attempt = attempt
            self.runner.timers.after(self.deadline_s, self)

    def expire(self) -> None:
        """The deadline passed: cancel the attempt; the kind says what that means."""
        self.token = 0
        if not self.pending:
            return
        self.pending = False
        attempt, self.attempt = self.attempt, NO_ATTEMPT
        attempt.cancel()
        # The next attempt counts from when the deadline was due, not from this
        # wake-up (up to TimerQueue.GRAIN later): the grid's lateness must not add
        # up over a retry chain (a drop fault is detected after retry + 1 deadlines).
        runner = self.runner
        runner.settled(self, self.kind.on_deadline(), runner.timers.due)

    def _done(self, result: ProbeResult) -> None:
        if not self.pending:  # cancelled, or a kind reporting twice: ignore
            return
        self.pending = False
        self.attempt = NO_ATTEMPT
        self.token = 0  # the deadline entry is now stale
        self.runner.settled(self, result)

    def arm(self, delay_us: int, since: float | None = None) -> None:
        """The next start ``delay_us`` from now, or from ``since`` (loop time)."""
        if since is None:
            self.runner.timers.after(delay_us / US, self)
        else:
            self.runner.timers.at(since + delay_us / US, self)

    def stop(self) -> None:
        self.token = 0
        if self.pending:
            self.pending = False
            attempt, self.attempt = self.attempt, NO_ATTEMPT
            attempt.cancel()


class Runner:
    """Schedules every check of a worker on one loop and publishes transitions.

    ``on_event`` receives :class:`~hafast.check.events.ServerEvent` objects.
    ``counters`` counts attempts, successes, and failures per reason
    (``fail:<reason>``); they become metrics.

    Example::

        runner = Runner(loop, events.append)
        health = ServerHealth(vs.key, rs.key, rs.weight)
        runner.add(TcpKind(spec, Target("10.0.0.1", 80), loop), [health])
        runner.start()
    """

    # What ``add`` builds; a subclass that needs more per check (the supervisor's
    # latency timing) names its own Check subclass here.
    check_class: type[Check] = Check

    def __init__(
        self,
        loop: Loop,
        on_event: Callable[[ServerEvent], object] | None = None,
        *,
        rng: random.Random | None = None,
        log_all_failures: bool = False,
        rate_limit: RateLimit | None = None,
        timer_grain: float | None = None,
    ) -> None:
        self.loop = loop
        self.on_event = on_event
        self.rng = rng or random.Random()
        self.log_all_failures = log_all_failures
        self.checks: list[Check] = []
        self.counters: Counter[str] = Counter()
        self.rate = rate_limit or RateLimit(clock=loop.time)
        self.timers = TimerQueue(loop, timer_grain)  # grain: TimerQueue.GRAIN
        self.running = False

    def add(self, kind: ProbeKind, healths: Iterable[ServerHealth], name: str | None = None
            ) -> Check:
        """Schedule ``kind``; its state feeds every health in ``healths``."""
        check = self.check_class(self, kind, name)
        for h in healths:
            check.feed(h)
        self.checks.append(check)
        if self.running:
            self._first(check)
        return check

    def start(self) -> None:
        """Arm every check's first attempt after its warmup."""
        self.running = True
        for check in self.checks:
            self._first(check)

    def stop(self) -> None:
        """Cancel every timer and attempt and close the kinds."""
        self.running = False
        for check in self.checks:
            check.stop()
            check.kind.close()
        self.timers.clear()

    def _first(self, check: Check) -> None:
        # keepalived: warmup unset = a random delay up to delay_loop, 0 = start now.
        # The random spread is what keeps 10,000 checks from firing as one burst.
        warmup = getattr(check.kind.spec, "warmup_us", None)
        span = check.delay_loop_us if warmup is None else warmup
        delay_us = int(self.rng.random() * span) if span > 0 else 0
        self.timers.at(self.loop.time() + delay_us / US, check)  # random: the heap

    def settled(self, check: Check, result: ProbeResult, since: float | None = None) -> None:
        """Apply an attempt's ``result``; the next start is counted from ``since``
        (loop time: a deadline that was due) or else from now."""
        counters = self.counters
        counters["attempts"] += 1
        state = check.state
        if (result.ok and state.up and not state.retry_it and result.weight == check.weight
                and since is None):
            # The steady state, nearly every attempt: what settle() would say, minus
            # its call and the transition bookkeeping (about 3 µs per check).
            counters["ok"] += 1
            state.has_run = True
            if self.running:
                self.timers.after(check.delay_loop_us / US, check)
            return
        if result.ok:
            counters["ok"] += 1
        else:
            counters["fail:" + result.reason] += 1
            if check.log_all and state.up and self.rate.allow():
                log.info("%s failed: %s %s", check.name, result.reason, result.detail)
        was_up = state.up
        delay_us, transition = settle(
            state, result.ok, check.retry, check.delay_loop_us, check.delay_before_retry_us
        )
        weight_changed = result.ok and result.weight != check.weight
        if not result.ok:
            check.last_reason = f"{check.kind.keyword} {result.reason}"
        if transition is not None or weight_changed:
            if result.ok:
                check.weight = result.weight
            self._transition(check, was_up, transition, result)
        if self.running:
            check.arm(delay_us, since)

    def _transition(self, check: Check, was_up: bool, transition: bool | None,
                    result: ProbeResult) -> None:
        if transition is not None and self.rate.allow():
            if transition:
                log.info("%s: success, checker UP", check.name)
            else:
                retries = f" after {check.retry} retries" if check.retry else ""
                log.info("%s: failed%s (%s %s), checker DOWN", check.name, retries,
                         result.reason, result.detail)
        at = self.loop.time()
        for h in check.healths:
            event = h.apply(check, was_up, check.state.up, check.weight, check.last_reason, at)
            if event is not None:
                self.publish(event)

    def publish(self, event: ServerEvent) -> None:
        """Hand ``event`` to the consumer; its exceptions are logged, never raised here."""
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:  # the consumer's bug must not stop a check's timer
            log.exception("event consumer raised on %s", event)
