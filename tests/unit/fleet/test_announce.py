"""The per-VIP announcement machine (hafast.fleet.announce), table driven."""

from __future__ import annotations

import pytest

from hafast.fleet.announce import (
    ANNOUNCED,
    STARTUP,
    WITHDRAWN,
    Announce,
    AnnounceState,
    ArmTimer,
    Event,
    QuorumChanged,
    RoundDone,
    Tick,
    Withdraw,
    step,
)

P = "192.0.2.100/32"
A, W = Announce(P), Withdraw(P)
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
