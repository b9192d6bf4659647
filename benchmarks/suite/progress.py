"""A progress bar on stderr, no dependency: ``[#####.....] 5/10 2m13s left  step``.

On a terminal the bar redraws one line in place; into a file or pipe it writes
one line per step (logs stay readable).  The time left is the plan's estimate for
the remaining steps, scaled by how far the finished steps ran over or under
their own estimates.

Example::

    bar = Progress([("checks TCP 1000", 40.0), ("config", 30.0)])
    bar.start("checks TCP 1000"); ...; bar.done()
    bar.start("config"); ...; bar.done()
    bar.close()
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

WIDTH = 30


def format_seconds(seconds: float) -> str:
    """``"1h02m"``, ``"2m13s"``, ``"9s"``.

    >>> format_seconds(3725), format_seconds(133), format_seconds(9.4)
    ('1h02m', '2m13s', '9s')
    """
    s = round(max(seconds, 0.0))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def render(done: int, total: int, left_s: float, label: str, width: int = WIDTH) -> str:
    """One line of the bar.

    >>> render(1, 4, 90, "config", width=8)
    '[##......] 1/4 1m30s left  config'
    """
    filled = int(width * done / total) if total else width
    bar = "#" * filled + "." * (width - filled)
    return f"[{bar}] {done}/{total} {format_seconds(left_s)} left  {label}"


class Progress:
    """Steps with estimated seconds; ``start``/``done`` around each."""

    def __init__(self, plan: Sequence[tuple[str, float]], stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.plan = list(plan)
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.finished = 0
        self.spent = 0.0  # actual seconds of finished steps
        self.estimated_done = 0.0  # their estimates
        self._t0 = clock()
        self._label = ""
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    @property
    def total(self) -> int:
        return len(self.plan)

    def left(self) -> float:
        rest = sum(est for _, est in self.plan[self.finished:])
        scale = self.spent / self.estimated_done if self.estimated_done > 0 else 1.0
        return rest * scale

    def start(self, label: str) -> None:
        self._label = label
        self._t0 = self.clock()
        self._draw()

    def done(self) -> None:
        if self.finished < self.total:
            self.spent += self.clock() - self._t0
            self.estimated_done += self.plan[self.finished][1]
            self.finished += 1
        self._draw()

    def note(self, text: str) -> None:
        """A message between bar updates (on its own line)."""
        if self.tty:
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")
        self._draw()

    def _draw(self) -> None:
        line = render(self.finished, self.total, self.left(), self._label)
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
