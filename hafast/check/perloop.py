"""One shared object per event loop: what every check of a kind shares on a worker's
loop (TCP_CHECK's ConnectSet, HTTP_GET's FetchSet, PING_CHECK's echo pool per
family), counted by its users; the last ``release`` closes it.

A shared object has ``loop``, an integer ``users`` and ``close()``.  Objects left on
loops that were closed without a release (tests, tools) are closed when the next
one is made, not at exit.

Example::

    >>> class Thing:
    ...     def __init__(self, loop): self.loop, self.users, self.closed = loop, 0, False
    ...     def close(self): self.closed = True
    >>> things = PerLoop()
    >>> loop = object()
    >>> a = things.acquire(loop, lambda: Thing(loop))
    >>> things.acquire(loop, lambda: Thing(loop)) is a, a.users
    (True, 2)
    >>> things.release(a); things.release(a); a.closed, len(things)
    (True, 0)
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    """The shared objects of one kind of resource, by (loop, key)."""

    def __init__(self) -> None:
        self.held: dict[tuple[int, Hashable], T] = {}

    def acquire(self, loop: Any, make: Callable[[], T], key: Hashable = None) -> T:
        """The loop's object (for ``key``), made on first use; one more user."""
        k = (id(loop), key)
        obj: Any = self.held.get(k)
        if obj is None or obj.loop is not loop:
            self._sweep()
            obj = self.held[k] = make()
        obj.users += 1
        return obj

    def release(self, obj: Any, key: Hashable = None) -> None:
        """One user less; the last one closes ``obj``."""
        obj.users -= 1
        if obj.users <= 0:
            self.forget(obj, key)
            obj.close()

    def forget(self, obj: Any, key: Hashable = None) -> None:
        """Stop sharing ``obj`` (it is being closed)."""
        k = (id(obj.loop), key)
        if self.held.get(k) is obj:
            del self.held[k]

    def holds(self, loop: Any) -> bool:
        """Whether ``loop`` has an object here."""
        return any(k[0] == id(loop) for k in self.held)

    def __len__(self) -> int:
        return len(self.held)

    def __iter__(self) -> Iterator[T]:
        return iter(list(self.held.values()))

    def _sweep(self) -> None:
        for k, old in list(self.held.items()):
            is_closed = getattr(getattr(old, "loop", None), "is_closed", None)
            if is_closed is not None and is_closed():  # (test loops may lack it)
                del self.held[k]
                old.close()  # type: ignore[attr-defined]
