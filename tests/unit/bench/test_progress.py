"""The progress bar: rendering, estimates that learn, and plain lines off a tty."""

from __future__ import annotations

import io

from benchmarks.suite.progress import Progress, format_seconds, render


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_render_and_format() -> None:
    assert render(0, 2, 5, "a", width=4) == "[....] 0/2 5s left  a"
    assert render(2, 2, 0, "b", width=4) == "[####] 2/2 0s left  b"
    assert format_seconds(-3) == "0s" and format_seconds(3600) == "1h00m"


def test_time_left_scales_with_what_ran() -> None:
    clock, out = Clock(), io.StringIO()
    bar = Progress([("a", 10.0), ("b", 10.0), ("c", 20.0)], stream=out, clock=clock)
    assert bar.left() == 40.0
    bar.start("a")
    clock.t = 20.0  # the first step took twice its estimate
    bar.done()
    assert bar.finished == 1
    assert bar.left() == 60.0  # 30 s of estimates left, times 2
    bar.note("hello")
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("left  a") and "hello" in lines
    assert not any("\r" in ln for ln in lines)  # not a tty: plain lines


def test_done_past_the_plan_is_harmless() -> None:
    bar = Progress([("a", 1.0)], stream=io.StringIO(), clock=Clock())
    bar.done()
    bar.done()
    assert bar.finished == 1 and bar.left() == 0.0
