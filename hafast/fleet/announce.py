"""The announcement state machine of one VIP: pure, no clock, no I/O.

States (issue 18):

- ``STARTUP``: nothing announced yet.  Held until the first full round of checks has
  finished and ``announce_delay`` has passed after it, so a director that just booted
  does not pull traffic onto real servers it has not yet seen answer.
- ``ANNOUNCED``: the virtual server has quorum; the announce route is in the kernel and
  FRR advertises the prefix (``network VIP/32`` with import-check).
- ``WITHDRAWN``: quorum lost (or never had): the route is gone, FRR withdraws.
- ``DRAINING``: the daemon is stopping (:class:`Shutdown`).  With a ``drain_method``
  other than ``withdraw`` the VIP stays announced but worse (:class:`Drain`: a higher
  MED, a longer AS path or RFC 8326's GRACEFUL_SHUTDOWN community), so the routers move
  new flows to the other directors while this one still serves the flows they keep
  sending; with ``withdraw`` the route goes at once and the director only keeps serving.
  Either way ``shutdown_drain_time`` later the VIP is ``WITHDRAWN``.  Quorum loss while
  draining withdraws at once, as everywhere.

Against a flapping quorum, announcing again is held back (withdrawing never is):

- ``announce_hold_down``: a VIP withdrawn for a lost quorum stays withdrawn at least
  this long, even if the quorum comes back at once.
- ``announce_max_changes_per_minute``: at most this many announcements and
  withdrawals in any 60 s; an announcement over the cap waits until the oldest change
  leaves the window.  Withdrawals count but are never held, so a flapping VIP rests
  withdrawn.

A held announcement arms a timer; when it fires the quorum is looked at again.

Quorum loss withdraws at once, whatever the state: a director with no live real server
must stop attracting flows before anything else.  Leaving ``STARTUP`` for ``WITHDRAWN``
still emits :class:`Withdraw`, so a route left by an earlier run is taken away.

The caller owns time: it feeds :class:`RoundDone` and :class:`Tick` with its own clock
and arms a timer for each :class:`ArmTimer`.

Example::

    >>> s = AnnounceState.initial("192.0.2.100/32", delay=2.0)
    >>> s, out = step(s, QuorumChanged(True))
    >>> s.phase, out
    ('STARTUP', ())
    >>> s, out = step(s, RoundDone(now=10.0))
    >>> out
    (ArmTimer(at=12.0),)
    >>> s, out = step(s, Tick(now=12.0))
    >>> s.phase, out
    ('ANNOUNCED', (Announce(prefix='192.0.2.100/32'),))
    >>> step(s, QuorumChanged(False))[1]
    (Withdraw(prefix='192.0.2.100/32'),)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

STARTUP, ANNOUNCED, WITHDRAWN, DRAINING = "STARTUP", "ANNOUNCED", "WITHDRAWN", "DRAINING"


# ----------------------------------------------------------------------------- inputs
@dataclass(frozen=True, slots=True)
class QuorumChanged:
    """The virtual server's quorum (hafast.lvs.policy) is now ``up``."""

    up: bool
    now: float = 0.0  # the caller's clock: hold-down and the change cap need it


@dataclass(frozen=True, slots=True)
class RoundDone:
    """Every check of the virtual server has run at least once, at ``now``."""

    now: float


@dataclass(frozen=True, slots=True)
class Tick:
    """A timer armed by :class:`ArmTimer` fired, at ``now``."""

    now: float


@dataclass(frozen=True, slots=True)
class Shutdown:
    """The daemon is stopping (SIGTERM), at ``now``: drain, then withdraw."""

    now: float


Event = QuorumChanged | RoundDone | Tick | Shutdown


# ---------------------------------------------------------------------------- actions
@dataclass(frozen=True, slots=True)
class Announce:
    prefix: str


@dataclass(frozen=True, slots=True)
class Withdraw:
    prefix: str


@dataclass(frozen=True, slots=True)
class Drain:
    """Keep the prefix announced, but as a worse path (the drain route)."""

    prefix: str


@dataclass(frozen=True, slots=True)
class ArmTimer:
    at: float


Action = Announce | Withdraw | Drain | ArmTimer


@dataclass(frozen=True, slots=True)
class AnnounceState:
    prefix: str
    delay: float  # announce_delay, seconds
    phase: str = STARTUP
    quorum: bool = False
    hold_until: float | None = None  # set by RoundDone: STARTUP ends at this time
    drain: bool = False  # drain_method is not withdraw: the path is made worse
    drain_time: float = 0.0  # shutdown_drain_time, seconds
    drain_until: float | None = None  # set by Shutdown: DRAINING ends at this time
    stopping: bool = False  # after Shutdown: WITHDRAWN is final
    hold_down: float = 0.0  # announce_hold_down, seconds
    max_changes: int = 0  # announce_max_changes_per_minute, 0: no cap
    withdrawn_at: float | None = None  # the last withdrawal for a lost quorum
    changes: tuple[float, ...] = ()  # times of the changes in the last minute
    retry_at: float | None = None  # a held announcement's timer

    @classmethod
    def initial(cls, prefix: str, delay: float = 0.0, *, drain: bool = False,
                drain_time: float = 0.0, hold_down: float = 0.0,
                max_changes: int = 0) -> AnnounceState:
        return cls(prefix, delay, drain=drain, drain_time=drain_time, hold_down=hold_down,
                   max_changes=max_changes)


Out = tuple[AnnounceState, tuple[Action, ...]]


WINDOW = 60.0  # seconds: announce_max_changes_per_minute


def _announce_at(s: AnnounceState, recent: tuple[float, ...], now: float) -> float:
    """The earliest time an announcement may go out."""
    at = now
    if s.hold_down > 0 and s.withdrawn_at is not None:
        at = max(at, s.withdrawn_at + s.hold_down)
    if s.max_changes and len(recent) >= s.max_changes:
        # the window holds max_changes changes once this one has left it
        at = max(at, recent[len(recent) - s.max_changes] + WINDOW)
    return at


def _settle(s: AnnounceState, now: float) -> Out:
    """Where quorum puts a VIP that is past STARTUP."""
    want = ANNOUNCED if s.quorum else WITHDRAWN
    if want == s.phase:
        return s, ()
    recent = tuple(t for t in s.changes if t > now - WINDOW)
    if not s.quorum:  # never held: no live real server behind this director
        return (replace(s, phase=WITHDRAWN, withdrawn_at=now, changes=(*recent, now)),
                (Withdraw(s.prefix),))
    at = _announce_at(s, recent, now)
    if at > now:
        if s.retry_at == at:
            return s, ()
        return replace(s, retry_at=at, changes=recent), (ArmTimer(at),)
    return (replace(s, phase=ANNOUNCED, changes=(*recent, now), retry_at=None),
            (Announce(s.prefix),))


def _shutdown(s: AnnounceState, ev: Shutdown) -> Out:
    """Leave service: an announced VIP drains for drain_time, anything else withdraws
    (a VIP still in STARTUP may have a route from an earlier run)."""
    if s.phase == WITHDRAWN:
        return replace(s, stopping=True), ()
    if s.phase != ANNOUNCED or s.drain_time <= 0:
        return replace(s, phase=WITHDRAWN, stopping=True), (Withdraw(s.prefix),)
    until = ev.now + s.drain_time
    first: Action = Drain(s.prefix) if s.drain else Withdraw(s.prefix)
    return (replace(s, phase=DRAINING, drain_until=until, stopping=True),
            (first, ArmTimer(until)))


def _startup(s: AnnounceState, ev: Event) -> Out:
    if isinstance(ev, Shutdown):
        return _shutdown(s, ev)
    if isinstance(ev, QuorumChanged):
        return replace(s, quorum=ev.up), ()
    if isinstance(ev, RoundDone):
        if s.hold_until is not None:
            return s, ()  # only the first round counts
        hold_until = ev.now + s.delay
        s = replace(s, hold_until=hold_until)
        if s.delay > 0:
            return s, (ArmTimer(hold_until),)
        ev = Tick(ev.now)
    if s.hold_until is None or ev.now < s.hold_until:
        return s, ()  # a stray tick (or one before the hold ends): still held
    # STARTUP may only be left for WITHDRAWN by an explicit withdraw (a route from an
    # earlier run may still be there)
    s = replace(s, phase=WITHDRAWN)
    return (s, (Withdraw(s.prefix),)) if not s.quorum else _settle(s, ev.now)


def _running(s: AnnounceState, ev: Event) -> Out:
    if isinstance(ev, Shutdown):
        return _shutdown(s, ev)
    if isinstance(ev, QuorumChanged):
        if s.stopping:  # a quorum coming back must not re-announce a stopping director
            return replace(s, quorum=ev.up), ()
        return _settle(replace(s, quorum=ev.up), ev.now)
    if isinstance(ev, Tick) and s.retry_at is not None and not s.stopping:
        if ev.now < s.retry_at:
            return s, ()
        return _settle(replace(s, retry_at=None), ev.now)  # a held announcement
    return s, ()  # rounds and other ticks no longer matter


def _draining(s: AnnounceState, ev: Event) -> Out:
    # with withdraw as the drain method the route is already gone: nothing to take
    gone = () if not s.drain else (Withdraw(s.prefix),)
    if isinstance(ev, QuorumChanged):
        s = replace(s, quorum=ev.up)
        if ev.up:
            return s, ()  # stopping all the same
        return replace(s, phase=WITHDRAWN), gone
    if isinstance(ev, Tick) and s.drain_until is not None and ev.now >= s.drain_until:
        return replace(s, phase=WITHDRAWN), gone
    return s, ()  # an early tick, a round, a second SIGTERM


_HANDLERS: dict[str, Callable[[AnnounceState, Event], Out]] = {
    STARTUP: _startup,
    ANNOUNCED: _running,
    WITHDRAWN: _running,
    DRAINING: _draining,
}


def step(state: AnnounceState, event: Event) -> Out:
    """The one place an announcement state changes: the new state and the actions."""
    return _HANDLERS[state.phase](state, event)
