"""The check engine's TCP sockets, each kind's in one epoll (compiled, or the
pure-Python twin).

``ConnectSet()`` holds TCP_CHECK's non-blocking connects:
``start(family, address, port) -> fd | -errno``, ``adopt(fd)``,
``ready() -> [(fd, SO_ERROR)]`` (those fds already closed), ``cancel(fd)``,
``close()``.

``FetchSet()`` holds HTTP_GET's plain request/reply exchanges:
``start(family, address, port, request, owner=None) -> fd | -(stage | errno)``,
``ready() -> [(fd, owner, data, status)]`` (status 0: goes on; ``EOF``; or
``CONNECT``/``SEND``/``READ`` | errno; ended fds already closed), ``cancel(fd)``,
``close()``.

Both give ``fileno()`` (the epoll, for ``loop.add_reader``), ``pending`` and
``closed``.  See ``sockset_py`` for the why; the numbers above and what the sets
refuse are ``hafast._core.epoll_set``'s, which both twins read.

>>> from hafast._core.sockset import FetchSet
>>> FetchSet.EOF
1
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hafast._core._select import choose

# Callers are type-checked against the compiled module's stub (stubtest holds the
# stub to the .so); the twin has its own annotations and the tests run both.
if TYPE_CHECKING:
    from hafast._core.sockset_c import (
        ConnectSet,
        FetchSet,
    )
else:
    _impl = choose("sockset")
    ConnectSet = _impl.ConnectSet
    FetchSet = _impl.FetchSet

__all__ = ["ConnectSet", "FetchSet"]
