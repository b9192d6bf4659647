"""The check engine's timer queue (compiled, or the pure-Python twin).

``TimerQueue(loop, grain=None)`` holds every check's one pending timer behind one
``loop.call_at`` handle: ``after(delay, check)`` (a FIFO lane per fixed delay),
``at(when, check)`` (a heap, for warmup), ``clear()``.  A queued item has an int
``token`` (0: no timer), ``on_timer()`` and ``name``.

``ConnectSet()`` holds TCP_CHECK's non-blocking connects in one epoll:
``start(family, address, port) -> fd | -errno``, ``adopt(fd)``,
``ready() -> [(fd, SO_ERROR)]`` (those fds already closed), ``cancel(fd)``,
``close()``.  See ``checkq_py`` for the why.

``FetchSet()`` holds HTTP_GET's plain request/reply exchanges in one epoll:
``start(family, address, port, request, owner=None) -> fd | -(stage | errno)``,
``ready() -> [(fd, owner, data, status)]`` (status 0: goes on; ``EOF``; or
``CONNECT``/``SEND``/``READ`` | errno; ended fds already closed), ``cancel(fd)``,
``close()``.

>>> from hafast._core.checkq import TimerQueue
>>> TimerQueue.GRAIN
0.01
"""

from hafast._core._select import choose

_impl = choose("checkq")

TimerQueue = _impl.TimerQueue
ConnectSet = _impl.ConnectSet
FetchSet = _impl.FetchSet

__all__ = ["ConnectSet", "FetchSet", "TimerQueue"]
