"""The per-VIP announcement machine (hafast.fleet.announce), table driven."""

from __future__ import annotations

import pytest

from hafast.fleet.announce import (
    ANNOUNCED,
    DRAINING,
    STARTUP,
    WITHDRAWN,
    Announce,
    AnnounceState,
    ArmTimer,
    Drain,
    Event,
    QuorumChanged,
    RoundDone,
    Shutdown,
    Tick,
    Withdraw,
    step,
)

P = "192.0.2.100/32"
A, W, D = Announce(P), Withdraw(P), Drain(P)
UP, DOWN = QuorumChanged(True), QuorumChanged(False)

# (name, announce_delay, [(event, phase after, actions)])
CASES: list[tuple[str, float, list[tuple[Event, str, tuple[object, ...]]]]] = [
    ("quorum alone does not leave startup", 2.0, [
        (UP, STARTUP, ()),
        (Tick(100.0), STARTUP, ()),  # no round yet: a stray tick holds
    ]),
    ("round then delay then announce", 2.0, [
        (UP, STARTUP, ()),
        (RoundDone(10.0), STARTUP, (ArmTimer(12.0),)),
        (Tick(11.9), STARTUP, ()),
        (Tick(12.0), ANNOUNCED, (A,)),
    ]),
    ("no delay: announce at the round", 0.0, [
        (UP, STARTUP, ()),
        (RoundDone(10.0), ANNOUNCED, (A,)),
    ]),
    ("no quorum at the end of startup: an explicit withdraw", 1.0, [
        (RoundDone(5.0), STARTUP, (ArmTimer(6.0),)),
        (Tick(6.0), WITHDRAWN, (W,)),
        (UP, ANNOUNCED, (A,)),
    ]),
    ("quorum lost during startup is remembered", 1.0, [
        (UP, STARTUP, ()),
        (RoundDone(5.0), STARTUP, (ArmTimer(6.0),)),
        (DOWN, STARTUP, ()),
        (Tick(6.0), WITHDRAWN, (W,)),
    ]),
    ("only the first round counts", 1.0, [
        (UP, STARTUP, ()),
        (RoundDone(5.0), STARTUP, (ArmTimer(6.0),)),
        (RoundDone(5.5), STARTUP, ()),
        (Tick(6.0), ANNOUNCED, (A,)),
    ]),
    ("quorum loss withdraws at once, gain announces again", 0.0, [
        (UP, STARTUP, ()),
        (RoundDone(1.0), ANNOUNCED, (A,)),
        (DOWN, WITHDRAWN, (W,)),
        (DOWN, WITHDRAWN, ()),  # no change, no action
        (UP, ANNOUNCED, (A,)),
        (UP, ANNOUNCED, ()),
        (RoundDone(9.0), ANNOUNCED, ()),
        (Tick(9.0), ANNOUNCED, ()),
    ]),
]


@pytest.mark.parametrize(("delay", "steps"), [(d, s) for _, d, s in CASES],
                         ids=[c[0] for c in CASES])
def test_steps(delay: float, steps: list[tuple[Event, str, tuple[object, ...]]]) -> None:
    state = AnnounceState.initial(P, delay)
    for i, (event, phase, actions) in enumerate(steps):
        state, out = step(state, event)
        assert (state.phase, out) == (phase, actions), f"step {i}: {event}"


def test_state_is_frozen() -> None:
    state = AnnounceState.initial(P)
    with pytest.raises(AttributeError):
        state.phase = ANNOUNCED  # type: ignore[misc]


# (name, drain (method is not withdraw), shutdown_drain_time, [(event, phase, actions)]),
# each starting from ANNOUNCED (quorum up, no announce_delay)
DRAIN_CASES: list[tuple[str, bool, float, list[tuple[Event, str, tuple[object, ...]]]]] = [
    ("med/prepend/gshut: drain, hold, then withdraw", True, 5.0, [
        (Shutdown(20.0), DRAINING, (D, ArmTimer(25.0))),
        (Tick(24.9), DRAINING, ()),
        (Shutdown(24.95), DRAINING, ()),  # a second SIGTERM does not restart the time
        (Tick(25.0), WITHDRAWN, (W,)),
        (Tick(26.0), WITHDRAWN, ()),
    ]),
    ("withdraw: the route goes at once, the VIP serves out the drain time", False, 5.0, [
        (Shutdown(20.0), DRAINING, (W, ArmTimer(25.0))),
        (Tick(25.0), WITHDRAWN, ()),
    ]),
    ("no drain time: withdraw at once, whatever the method", True, 0.0, [
        (Shutdown(20.0), WITHDRAWN, (W,)),
    ]),
    ("quorum lost while draining: withdraw at once", True, 5.0, [
        (Shutdown(20.0), DRAINING, (D, ArmTimer(25.0))),
        (DOWN, WITHDRAWN, (W,)),
        (UP, WITHDRAWN, ()),  # stopping: no re-announce
    ]),
    ("quorum lost while draining by withdraw: already gone", False, 5.0, [
        (Shutdown(20.0), DRAINING, (W, ArmTimer(25.0))),
        (DOWN, WITHDRAWN, ()),
    ]),
    ("quorum flapping up while draining does not undrain", True, 5.0, [
        (Shutdown(20.0), DRAINING, (D, ArmTimer(25.0))),
        (UP, DRAINING, ()),
        (Tick(25.0), WITHDRAWN, (W,)),
    ]),
]


@pytest.mark.parametrize(("drain", "drain_time", "steps"),
                         [(d, t, s) for _, d, t, s in DRAIN_CASES],
                         ids=[c[0] for c in DRAIN_CASES])
def test_drain(drain: bool, drain_time: float,
               steps: list[tuple[Event, str, tuple[object, ...]]]) -> None:
    state = AnnounceState.initial(P, 0.0, drain=drain, drain_time=drain_time)
    state, _ = step(state, UP)
    state, out = step(state, RoundDone(1.0))
    assert (state.phase, out) == (ANNOUNCED, (A,))
    for i, (event, phase, actions) in enumerate(steps):
        state, out = step(state, event)
        assert (state.phase, out) == (phase, actions), f"step {i}: {event}"


@pytest.mark.parametrize(("before", "actions"), [
    ([], (W,)),  # STARTUP: a route from an earlier run may be there
    ([RoundDone(1.0)], ()),  # WITHDRAWN (no quorum): nothing to do
])
def test_shutdown_when_not_announced(before: list[Event], actions: tuple[object, ...]) -> None:
    state = AnnounceState.initial(P, 0.0, drain=True, drain_time=5.0)
    for ev in before:
        state, _ = step(state, ev)
    state, out = step(state, Shutdown(2.0))
    assert (state.phase, out) == (WITHDRAWN, actions)


def up(t: float) -> QuorumChanged:
    return QuorumChanged(True, t)


def down(t: float) -> QuorumChanged:
    return QuorumChanged(False, t)


# (name, announce_hold_down, announce_max_changes_per_minute, [(event, phase, actions)]),
# each starting ANNOUNCED at t=1 (that announcement counts as a change)
FLAP_CASES: list[tuple[str, float, int, list[tuple[Event, str, tuple[object, ...]]]]] = [
    ("no flap control: every change goes at once", 0.0, 0, [
        (down(2.0), WITHDRAWN, (W,)),
        (up(2.1), ANNOUNCED, (A,)),
        (down(2.2), WITHDRAWN, (W,)),
        (up(2.3), ANNOUNCED, (A,)),
    ]),
    ("hold-down: back too soon waits, the withdrawal never does", 5.0, 0, [
        (down(10.0), WITHDRAWN, (W,)),
        (up(11.0), WITHDRAWN, (ArmTimer(15.0),)),
        (Tick(14.0), WITHDRAWN, ()),  # early: still held
        (Tick(15.0), ANNOUNCED, (A,)),
        (down(15.5), WITHDRAWN, (W,)),  # a withdrawal is never held
    ]),
    ("hold-down: quorum gone again before it ends", 5.0, 0, [
        (down(10.0), WITHDRAWN, (W,)),
        (up(11.0), WITHDRAWN, (ArmTimer(15.0),)),
        (down(12.0), WITHDRAWN, ()),
        (Tick(15.0), WITHDRAWN, ()),  # the timer fires: no quorum, nothing
        (up(16.0), ANNOUNCED, (A,)),  # past the hold-down: at once
    ]),
    ("hold-down: a second up inside it does not arm twice", 5.0, 0, [
        (down(10.0), WITHDRAWN, (W,)),
        (up(11.0), WITHDRAWN, (ArmTimer(15.0),)),
        (down(11.5), WITHDRAWN, ()),
        (up(12.0), WITHDRAWN, ()),
        (Tick(15.0), ANNOUNCED, (A,)),
    ]),
    ("cap 4 a minute: the 5th change waits for the 1st to leave the window", 0.0, 4, [
        (down(2.0), WITHDRAWN, (W,)),  # changes at 1 (the first announce), 2
        (up(3.0), ANNOUNCED, (A,)),  # 3
        (down(4.0), WITHDRAWN, (W,)),  # 4: the cap is reached
        (up(5.0), WITHDRAWN, (ArmTimer(61.0),)),  # 1 + 60
        (Tick(61.0), ANNOUNCED, (A,)),
    ]),
    ("cap: withdrawals over it still go", 0.0, 2, [
        (down(2.0), WITHDRAWN, (W,)),  # 1, 2
        (up(3.0), WITHDRAWN, (ArmTimer(61.0),)),
        (Tick(61.0), ANNOUNCED, (A,)),  # 2, 61
        (down(61.5), WITHDRAWN, (W,)),  # 61, 61.5: over the cap, goes anyway
        (up(62.0), WITHDRAWN, (ArmTimer(121.0),)),
    ]),
    ("cap and hold-down together: the later of the two", 10.0, 3, [
        (down(2.0), WITHDRAWN, (W,)),
        (up(2.5), WITHDRAWN, (ArmTimer(12.0),)),  # hold-down ends first...
        (Tick(12.0), ANNOUNCED, (A,)),  # 1, 2, 12
        (down(13.0), WITHDRAWN, (W,)),
        (up(30.0), WITHDRAWN, (ArmTimer(62.0),)),  # ...here the cap: 2 + 60
    ]),
    ("stopping: a held announcement stays held", 5.0, 0, [
        (down(10.0), WITHDRAWN, (W,)),
        (up(11.0), WITHDRAWN, (ArmTimer(15.0),)),
        (Shutdown(12.0), WITHDRAWN, ()),
        (Tick(15.0), WITHDRAWN, ()),
    ]),
]


@pytest.mark.parametrize(("hold_down", "max_changes", "steps"),
                         [(h, c, s) for _, h, c, s in FLAP_CASES],
                         ids=[c[0] for c in FLAP_CASES])
def test_flap_control(hold_down: float, max_changes: int,
                      steps: list[tuple[Event, str, tuple[object, ...]]]) -> None:
    state = AnnounceState.initial(P, 0.0, hold_down=hold_down, max_changes=max_changes)
    state, _ = step(state, up(0.5))
    state, out = step(state, RoundDone(1.0))
    assert (state.phase, out) == (ANNOUNCED, (A,))
    for i, (event, phase, actions) in enumerate(steps):
        state, out = step(state, event)
        assert (state.phase, out) == (phase, actions), f"step {i}: {event}"


def test_startup_is_not_held_down() -> None:
    """No quorum when STARTUP ends is not a flap: the first announcement is not held."""
    state = AnnounceState.initial(P, 0.0, hold_down=30.0, max_changes=1)
    state, out = step(state, RoundDone(1.0))
    assert (state.phase, out) == (WITHDRAWN, (W,))
    state, out = step(state, up(2.0))
    assert (state.phase, out) == (ANNOUNCED, (A,))
