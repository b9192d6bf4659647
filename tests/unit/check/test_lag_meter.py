"""The check engine's lag (``hafast status``, ``hafast_check_engine_lag_seconds``):
the loop's own lateness, or the timer queue's when that is worse (a queue that falls
behind yields every few milliseconds, so the loop's timers alone stay on time)."""

from __future__ import annotations

import pytest

from hafast.check.side import LagMeter
from tests.unit.check.fakeloop import FakeLoop


def test_the_worse_of_the_loops_lag_and_the_queues_is_reported() -> None:
    loop = FakeLoop(start=0.0)
    queue_late = [0.0]

    def take() -> float:
        late, queue_late[0] = queue_late[0], 0.0
        return late

    meter = LagMeter(loop, period=0.25, late=take)  # type: ignore[arg-type]
    meter.start()
    loop.advance_to(0.25)
    assert meter.take() == {"last": 0.0, "max": 0.0}
    queue_late[0] = 0.7  # checks started 0.7 s late, the loop on time
    loop.advance_to(0.5)
    assert meter.take()["max"] == pytest.approx(0.7)
    loop.advance_to(0.75)  # the next period is on time again (a take starts from last)
    assert meter.take()["last"] == 0.0
    loop.advance_to(1.0)
    assert meter.take() == {"last": 0.0, "max": 0.0}
    loop.now = 1.3  # the loop itself held up 0.05 s past the tick due at 1.25
    loop.advance_to(1.3)
    assert meter.take()["last"] == pytest.approx(0.05)
    meter.stop()
