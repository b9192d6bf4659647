"""A manual-clock loop: ``call_at``/``call_later``/``call_soon`` and readers/writers,
nothing runs until the test advances time."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any


class Handle:
    __slots__ = ("args", "callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[..., object], args: tuple[Any, ...]):
        self.when, self.callback, self.args = when, callback, args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._heap: list[tuple[float, int, Handle]] = []
        self._seq = itertools.count()
        self.readers: dict[int, Callable[[], object]] = {}
        self.writers: dict[int, Callable[[], object]] = {}

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> Handle:
        h = Handle(when, callback, args)
        heapq.heappush(self._heap, (when, next(self._seq), h))
        return h

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Handle:
        return self.call_at(self.now + delay, callback, *args)

    def call_soon(self, callback: Callable[..., object], *args: Any) -> Handle:
        return self.call_at(self.now, callback, *args)

    def add_reader(self, fd: int, cb: Callable[[], object]) -> None:
        self.readers[fd] = cb

    def remove_reader(self, fd: int) -> bool:
        return self.readers.pop(fd, None) is not None

    def add_writer(self, fd: int, cb: Callable[[], object]) -> None:
        self.writers[fd] = cb

    def remove_writer(self, fd: int) -> bool:
        return self.writers.pop(fd, None) is not None

    def pending(self) -> int:
        return sum(1 for _, _, h in self._heap if not h.cancelled)

    def advance_to(self, t: float) -> None:
        """Run every callback due up to ``t`` in time order, moving the clock."""
        while self._heap and self._heap[0][0] <= t:
            when, _, h = heapq.heappop(self._heap)
            if h.cancelled:
                continue
            self.now = max(self.now, when)
            h.callback(*h.args)
        self.now = max(self.now, t)

    def advance(self, dt: float) -> None:
        self.advance_to(self.now + dt)
