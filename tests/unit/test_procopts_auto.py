"""max_auto_priority / min_auto_priority_delay in hafast.lib.procopts without privileges:
the options read from the config, the raise sequence (SCHED_RR set by a stub), and the
lateness tick on a fake loop.  The real worker is tests/netns/test_process_options.py."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from hafast.config.loader import load_text
from hafast.lib import procopts
from hafast.lib.procopts import LatenessWatch, ProcessOptions, ProcessTuning


def _opts(lines: str) -> ProcessOptions:
    gd = load_text(f"global_defs {{\n{lines}\n}}\n").config.global_defs
    return ProcessOptions.of(gd, "vrrp")


def test_options_from_the_config() -> None:
    assert (_opts("").max_auto_priority, _opts("").min_auto_delay_us) == (0, 1_000_000)
    assert _opts("  max_auto_priority").max_auto_priority == \
        os.sched_get_priority_max(os.SCHED_RR)
    assert _opts("  max_auto_priority -1").max_auto_priority == 0
    got = _opts("  max_auto_priority 5\n  min_auto_priority_delay 250000")
    assert (got.max_auto_priority, got.min_auto_delay_us) == (5, 250000)


def test_each_stall_raises_one_level_up_to_the_maximum(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    levels: list[int] = []
    said: list[str] = []
    monkeypatch.setattr(procopts.log, "info", lambda msg, *a: said.append(msg % a))

    def realtime(self: ProcessTuning, priority: int, rlimit_rttime: int) -> None:
        levels.append(priority)
        self._rt = True

    monkeypatch.setattr(ProcessTuning, "_realtime", realtime)
    t = ProcessTuning("vrrp")
    t.applied = ProcessOptions(max_auto_priority=2, min_auto_delay_us=300_000)
    t.overdue(300_000)  # not more than the delay
    for _ in range(3):
        t.overdue(1_250_000)
    assert levels == [1, 2]
    assert said == ["A thread timer expired 1.250000 seconds ago", "Set realtime priority 1",
                    "A thread timer expired 1.250000 seconds ago", "Set realtime priority 2",
                    "A thread timer expired 1.250000 seconds ago"]

    levels.clear()
    t.applied = ProcessOptions(rt_priority=20, max_auto_priority=21)
    t._auto_rt = 20  # apply() sets it from the configured rt priority
    t.overdue(2_000_000)
    assert levels == [21]


class FakeLoop:
    def __init__(self) -> None:
        self.now = 0.0
        self.pending: list[tuple[float, Callable[[], None]]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, at: float, cb: Callable[[], None]) -> Any:
        self.pending.append((at, cb))

        class Handle:
            def cancel(self_inner) -> None:
                self.pending.clear()

        return Handle()

    def run_at(self, now: float) -> None:
        self.now = now
        _at, cb = self.pending.pop(0)
        cb()


def test_the_tick_reports_how_late_it_ran() -> None:
    loop, seen = FakeLoop(), list[int]()
    watch = LatenessWatch(loop, seen.append, period_s=0.5)
    loop.run_at(0.5)  # on time: nothing
    loop.run_at(2.5)  # due at 1.0
    assert seen == [1_500_000]
    watch.close()
    assert loop.pending == []
