"""One scheduler for every checker of a worker: delay_loop, warmup, connect_timeout,
retry, delay_before_retry, alpha, log_all_failures, and per-real-server health.

Two layers, as DESIGN.md asks:

- a pure core with no loop and no clock of its own: :func:`settle` (one attempt's
  outcome -> the delay until the next attempt and the checker's transition) and
  :class:`ServerHealth` (a real server is UP only while every one of its checkers
  is up);
- a thin shell, :class:`Runner`, on the event loop.  Each check (:class:`Check`)
  has exactly one timer at a time: the next start while idle, the attempt's
  deadline while an attempt runs; all of them live in one queue behind one
  ``loop.call_at`` handle (:class:`TimerQueue`).  Both come from
  ``hafast._core.checkq``, compiled or as their Python twins: the path nearly
  every attempt takes (timer, start, a success of an up checker, the next timer)
  runs there with no Python frame but the kind's; only a failure or a
  transition comes back here (:meth:`Runner.settled`).  No Task, no
  ``asyncio.timeout`` per check (see ``api.py`` for the memory and CPU figures
  behind that choice).

The checker's state logic lives here once, for both twins: its initial state and
timers (:func:`configure`: alpha, retry, the delays) and every outcome but the
steady success (:func:`settle`, through :meth:`Runner.settled`).  The twins keep
only the attempt's life and that one shortcut, which ``test_runner`` holds to
:func:`settle` on both.

Retry semantics (keepalived 2.x, ``check_udp.c``/``check_dns.c`` epilogues): a
failed attempt of a checker that is up is retried ``retry`` more times,
``delay_before_retry`` apart; when they all fail the checker goes DOWN.  A DOWN
checker is tried every ``delay_loop`` and goes UP on its first success.  (keepalived's
TCP_CHECK also retries while down; that only delays nothing, so one rule serves all.)

Events: a real server's health is published when it changes as a whole, and once
more for an alpha checker's first result when that finds it down and leaves it so
(keepalived notifies that first result; :meth:`Runner._first_down`).

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
import resource
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from hafast._core.checkq import Check, Latency, TimerQueue
from hafast.check.api import ProbeKind, ProbeResult
from hafast.lib.events import DOWN, UP, WEIGHT, ServerEvent
from hafast.lib.units import US_PER_S as US

log = logging.getLogger("hafast.check")

# --------------------------------------------------------------------------- pure core


class CheckState:
    """A checker's health arithmetic: up/down, whether it ran, the retry count.
    (A :class:`Check` carries the same three fields and is its own state.)"""

    __slots__ = ("has_run", "retry_it", "up")

    def __init__(self, up: bool) -> None:
        self.up = up
        self.has_run = False
        self.retry_it = 0


def settle(
    state: CheckState | Check, ok: bool, retry: int, delay_loop_us: int, delay_before_retry_us: int
) -> tuple[int, bool | None]:
    """Apply one attempt's outcome to ``state``.

    Returns ``(delay_us, transition)``: when to start the next attempt, and
    ``True`` (went UP), ``False`` (went DOWN) or ``None`` (no change).

    The one case the checks settle themselves, never calling here (``Check._done``
    in both ``checkq`` twins: nearly every attempt, so no Python frame for it in
    the compiled one): ``ok`` while up with ``retry_it`` 0 and an unchanged
    weight, which this function answers with ``(delay_loop_us, None)`` and
    ``has_run`` set.
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


def configure(check: Check, log_all_failures: bool) -> None:
    """Give a new ``check`` its initial state and timers from its kind's spec.

    keepalived: an ``alpha`` checker starts DOWN (one success to go UP); a kind that
    reads a state rather than probes (``immediate``: FILE_CHECK) neither starts
    down nor retries.  The twins' hot path re-arms with ``delay_loop_s`` and
    ``deadline_s``, seconds worked out once here rather than per attempt.

    >>> from types import SimpleNamespace as NS
    >>> kind = NS(spec=NS(alpha=True, retry=3, delay_loop_us=2 * US), immediate=False,
    ...           deadline_us=lambda: 500_000)
    >>> check = NS(kind=kind)
    >>> configure(check, False)
    >>> check.up, check.retry, check.delay_loop_s, check.deadline_s, check.log_all
    (False, 3, 2.0, 0.5, False)
    """
    kind = check.kind
    spec = kind.spec
    immediate = kind.immediate
    check.up = immediate or not getattr(spec, "alpha", False)
    check.has_run = False
    check.retry_it = 0
    check.retry = 0 if immediate else getattr(spec, "retry", 1)
    check.delay_loop_us = delay_loop_us = getattr(spec, "delay_loop_us", 60 * US)
    check.delay_before_retry_us = getattr(spec, "delay_before_retry_us", US)
    check.log_all = log_all_failures or getattr(spec, "log_all_failures", False)
    check.deadline_s = kind.deadline_us() / US
    check.delay_loop_s = delay_loop_us / US


class ServerHealth:
    """One real server under one virtual server: UP while all its checkers are up.

    ``weight`` is the configured weight unless a dynamic checker (misc_dynamic,
    FILE_CHECK) reported another; with several, the lowest wins (the cautious one).
    Memory matters here (one per real server): a count of failing checkers, not a
    set, and the weights table only once a dynamic checker spoke.
    """

    __slots__ = ("base_weight", "checks", "failing", "real_server", "up", "virtual_server",
                 "weight", "weights")

    # A check that feeds one health holds it alone, not in a tuple of one (Check.feed,
    # both checkq twins): so a health is also the one-element collection of itself
    # (__iter__, __len__, __getitem__ below).
    SELF_COLLECTION = True

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

    def __iter__(self) -> Iterator[ServerHealth]:
        yield self

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> ServerHealth:
        if index in (0, -1):
            return self
        raise IndexError(index)

    def attach(self, up: bool) -> None:
        """Count one more checker, in its initial state (alpha: down)."""
        self.checks += 1
        if not up:
            self.failing += 1
        self.up = not self.failing

    def current(self, reason: str, at: float) -> ServerEvent:
        """The real server's health as it stands, as an event (``reason`` if down)."""
        return ServerEvent(self.virtual_server, self.real_server, UP if self.up else DOWN,
                           self.weight, "" if self.up else reason, at)

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


class Healths:
    """A shard's :class:`ServerHealth` objects by ``(virtual server key, real server
    key)``, read as a mapping of those pairs.

    Kept in two levels, virtual server then real server, keyed by the very tuples
    each health holds: a flat dict needed a pair tuple per real server beside them,
    64 bytes a check of the worker's memory (issue 16).  Iteration follows the order
    the healths were added, grouped by virtual server as the engine adds them.

    >>> hs = Healths()
    >>> hs.add(ServerHealth(("vs",), ("10.0.0.1", 80)))
    >>> (("vs",), ("10.0.0.1", 80)) in hs, len(hs), list(hs)
    (True, 1, [(('vs',), ('10.0.0.1', 80))])
    >>> hs.get((("vs",), ("10.0.0.2", 80))) is None
    True
    """

    __slots__ = ("_by_vs", "_count")

    def __init__(self) -> None:
        self._by_vs: dict[tuple[object, ...], dict[tuple[str, int | None], ServerHealth]] = {}
        self._count = 0

    def add(self, health: ServerHealth) -> None:
        """``health`` under its own keys (replacing one held there)."""
        inner = self._by_vs.get(health.virtual_server)
        if inner is None:
            inner = self._by_vs[health.virtual_server] = {}
        if health.real_server not in inner:
            self._count += 1
        inner[health.real_server] = health

    def get(self, key: tuple[tuple[object, ...], tuple[str, int | None]],
            default: ServerHealth | None = None) -> ServerHealth | None:
        inner = self._by_vs.get(key[0])
        return default if inner is None else inner.get(key[1], default)

    def __getitem__(self, key: tuple[tuple[object, ...], tuple[str, int | None]]
                    ) -> ServerHealth:
        return self._by_vs[key[0]][key[1]]

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 2:
            return False
        inner = self._by_vs.get(key[0])
        return inner is not None and key[1] in inner

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[tuple[tuple[object, ...], tuple[str, int | None]]]:
        for vs, inner in self._by_vs.items():
            for rs in inner:
                yield vs, rs

    def values(self) -> Iterator[ServerHealth]:
        for inner in self._by_vs.values():
            yield from inner.values()

    def items(self) -> Iterator[tuple[tuple[tuple[object, ...], tuple[str, int | None]],
                                      ServerHealth]]:
        for vs, inner in self._by_vs.items():
            for rs, health in inner.items():
                yield (vs, rs), health


# Failures that are the checker's own, not the real server's.  keepalived
# (check_tcp.c, tcp_connect_thread) logs "TCP connect fail to create socket.
# Rescheduling." and tries again a delay_loop later, counting nothing; counting
# them took every healthy server of a worker out of the pool once the worker hit
# its open-files limit (tests/netns/test_chaos_reload.py, RLIMIT_NOFILE 64).
LOCAL_REASONS = {
    "fd-limit": "the open-files limit (RLIMIT_NOFILE {nofile}) is reached",
}


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


class Runner:
    """Schedules every check of a worker on one loop and publishes transitions.

    ``on_event`` receives :class:`~hafast.lib.events.ServerEvent` objects.
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
        latency: Latency | None = None,
    ) -> None:
        self.loop = loop
        # every attempt's duration, when given (the check worker's metrics)
        self.latency = latency
        self.on_event = on_event
        self.rng = rng or random.Random()
        self.log_all_failures = log_all_failures
        self.checks: list[Check] = []
        self._counters: Counter[str] = Counter()
        self.rate = rate_limit or RateLimit(clock=loop.time)
        # one line per 10 s: at the fd limit every check of the worker says the same
        self.local_rate = RateLimit(1, 10.0, clock=loop.time)
        self.timers = TimerQueue(loop, timer_grain)  # grain: TimerQueue.GRAIN
        self.running = False

    @property
    def counters(self) -> Counter[str]:
        """Attempts, successes and failures per reason (``fail:<reason>``).  A steady
        success is tallied in the timer queue (a C integer, not two dict updates per
        check) and folded in here when read."""
        steady = self.timers.take_steady()
        if steady:
            counters = self._counters
            counters["attempts"] += steady
            counters["ok"] += steady
        return self._counters

    def add(self, kind: ProbeKind, healths: Iterable[ServerHealth], name: str | None = None
            ) -> Check:
        """Schedule ``kind``; its state feeds every health in ``healths``."""
        check = self.check_class(self, kind, name)
        configure(check, self.log_all_failures)
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
        # (The steady state, a success of an up checker with nothing to retry, is
        # settled in Check._done and never comes here.)
        counters = self._counters
        counters["attempts"] += 1
        state = check.state
        if not result.ok and result.reason in LOCAL_REASONS:
            counters["fail:" + result.reason] += 1
            self._local_failure(check, result, since)
            return
        if result.ok:
            counters["ok"] += 1
        else:
            counters["fail:" + result.reason] += 1
            if check.log_all and state.up and self.rate.allow():
                log.info("%s failed: %s %s", check.name, result.reason, result.detail)
        was_up = state.up
        first = not state.has_run
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
        elif first and not state.up and getattr(check.kind.spec, "alpha", False):
            self._first_down(check, result)
        if self.running:
            if since is None:
                self.timers.after(delay_us / US, check)  # a fixed delay: its lane
            else:
                self.timers.at(since + delay_us / US, check)

    def _local_failure(self, check: Check, result: ProbeResult, since: float | None) -> None:
        """Nothing was tried (LOCAL_REASONS): the check keeps its state and its
        retry count, and tries again a delay_loop later."""
        if self.local_rate.allow():
            nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            log.warning("%s: %s (%s): rescheduled in delay_loop, the real server keeps "
                        "its state", check.name,
                        LOCAL_REASONS[result.reason].format(nofile=nofile), result.detail)
        if self.running:
            if since is None:
                self.timers.after(check.delay_loop_us / US, check)
            else:
                self.timers.at(since + check.delay_loop_us / US, check)

    def start_raised(self, check: Check, exc: Exception) -> None:
        """A kind's ``start`` raised (it must not): log it, fail the attempt."""
        log.exception("%s: checker raised", check.name)
        if check.pending:
            check.done(ProbeResult(False, "error", repr(exc)))

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

    def _first_down(self, check: Check, result: ProbeResult) -> None:
        """An alpha checker's first result found its real servers down and left them
        so: published all the same, as keepalived 2.2.7 reports it (ipwrapper.c
        update_svr_checker_state: a checker that has not run yet notifies its first
        result when it is alpha, even when that changes nothing).  Whether that makes a
        notify is the pool policy's call (:meth:`hafast.lvs.policy.PoolPolicy.on_event`);
        a reload or a restarted worker starts new checks, which say it again."""
        if self.rate.allow():
            log.info("%s: failed (%s %s), checker stays DOWN (its first result)", check.name,
                     result.reason, result.detail)
        at = self.loop.time()
        for h in check.healths:
            self.publish(h.current(check.last_reason, at))

    def publish(self, event: ServerEvent) -> None:
        """Hand ``event`` to the consumer; its exceptions are logged, never raised here."""
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:  # the consumer's bug must not stop a check's timer
            log.exception("event consumer raised on %s", event)
