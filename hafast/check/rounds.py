"""When each announced virtual server's first full round of checks is done (issue 18).

A fleet director must not announce a VIP before its checks have had their say: the
quorum at start is keepalived's "alive until proved dead", not a verdict.  So the
announcement machine's STARTUP (:mod:`hafast.fleet.announce`) waits for this: every
check feeding a real server of the virtual server has reached a verdict, a success
or a failure with its retries spent (``has_run`` and ``retry_it`` 0 on the check,
read as the twins keep them: nothing is added to the checks' hot path).

A check worker watches its own shard and reports the virtual servers whose checks
there have all decided (a message ``rounds`` to the parent, which waits for every
shard holding one of the virtual server's checked real servers,
:meth:`hafast.fleet.runner.Announcer.rounds_done`).  The watch reads the undecided
checks every :data:`POLL_S` seconds, dropping each as it decides, and stops once
nothing is left: a few reads per check over the first round, none after.  A reload
watches again (kept checks have decided: their virtual servers report at once).

Only virtual servers with an ``announce`` block are watched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("hafast")

POLL_S = 0.25


def decided(check: Any) -> bool:
    """A verdict reached: it has run and is not in the middle of its retries."""
    return bool(check.has_run) and check.retry_it == 0


class RoundWatch:
    """Reports, once each, the watched virtual servers whose checks have all decided."""

    def __init__(self, loop: Any, publish: Callable[[list[Any]], None]) -> None:
        self.loop = loop
        self.publish = publish
        self.pending: dict[Any, list[Any]] = {}
        self._handle: Any = None

    def begin(self, checks: Iterable[Any], keys: Iterable[Any]) -> None:
        """Watch ``keys`` (virtual server keys) over ``checks`` (the engine's)."""
        self.stop()
        want = set(keys)
        self.pending = {k: [] for k in want}
        for check in checks:
            for key in {h.virtual_server for h in check.healths} & want:
                self.pending[key].append(check)
        if self.pending:
            self._handle = self.loop.call_soon(self._poll)

    def _poll(self) -> None:
        done = []
        for key, checks in list(self.pending.items()):
            left = [c for c in checks if not decided(c)]
            if left:
                self.pending[key] = left
            else:
                del self.pending[key]
                done.append(key)
        if done:
            self.publish(done)
        self._handle = self.loop.call_later(POLL_S, self._poll) if self.pending else None

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
