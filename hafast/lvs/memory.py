"""An in-memory pool backend: unit tests and check-only mode (``hafast -C`` without
a kernel table to drive).  It behaves like the kernel where it matters: adding a
destination to a missing service fails, removing what is gone does not, and a
service's destinations keep the kernel's list order (a new or re-added one goes to
the head; :class:`~hafast.lvs.backend.Pool` holds it backwards, :meth:`listed` reads
it as ``ipvsadm -Ln --nosort`` does), which a Maglev table depends on, and each
destination's ``last_weight`` is kept as the kernel keeps it (:meth:`maglev_inputs`).

Example::

    >>> import asyncio
    >>> from hafast.lvs.backend import Service, ServiceKey, Dest
    >>> b = MemoryBackend()
    >>> svc = Service(ServiceKey(4, "TCP", "10.0.0.1", 80))
    >>> asyncio.run(b.ensure_service(svc)); asyncio.run(b.ensure_dest(svc, Dest("10.1.0.1", 80)))
    >>> b.pool.counts(), b.messages
    ((1, 1), 2)
    >>> asyncio.run(b.ensure_dest(svc, Dest("10.1.0.2", 80))); b.listed(svc.key)
    [('10.1.0.2', 80), ('10.1.0.1', 80)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from hafast.lvs.backend import (
    ADD_DEST,
    ADD_SERVICE,
    DEL_DEST,
    DEL_SERVICE,
    EDIT_DEST,
    EDIT_SERVICE,
    BackendError,
    Change,
    Dest,
    DestKey,
    Pool,
    Service,
    ServiceKey,
    Timeouts,
)


class MemoryBackend:
    """Keeps the pool in a :class:`Pool`; ``log`` records every change carried out."""

    name = "memory"

    def __init__(self, initial: Pool | None = None) -> None:
        self.pool = initial.copy() if initial is not None else Pool()
        self.last_weight: dict[tuple[ServiceKey, DestKey], int] = {
            (k, d.key): d.weight or d.last_weight
            for k, ds in self.pool.dests.items() for d in ds.values()}
        self.messages = 0
        self.log: list[Change] = []
        self.timeouts = Timeouts()
        self.opened = False
        self.fail_on: set[str] = set()  # ops that raise (fault injection in tests)

    async def open(self) -> None:
        self.opened = True

    async def close(self) -> None:
        self.opened = False

    async def release(self) -> None:
        """Nothing to undo beyond the services."""

    def listed(self, key: ServiceKey) -> list[DestKey]:
        """The service's destinations in the kernel's list order, head first."""
        return list(reversed(self.pool.dests.get(key, {})))

    def maglev_inputs(self, key: ServiceKey) -> list[tuple[DestKey, int]]:
        """What ``ip_vs_mh`` builds the service's table from: each destination in
        list order with its ``last_weight``, which an add sets and an edit sets only
        to a weight that is not 0 (ip_vs_ctl.c __ip_vs_update_dest).  Two directors
        whose inputs are equal have the same table."""
        return [(d, self.last_weight[(key, d)]) for d in self.listed(key)]

    async def dump(self) -> Pool:
        """The pool as IPVS reads it back: without ``last_weight``."""
        self.messages += 1
        out = self.pool.copy()
        for dests in out.dests.values():
            for k, d in dests.items():
                if d.last_weight:
                    dests[k] = replace(d, last_weight=0)
        return out

    def _do(self, change: Change) -> None:
        self.messages += 1
        if change.op in self.fail_on:
            raise BackendError(f"injected failure: {change}", change)
        if change.op in (ADD_DEST, EDIT_DEST, DEL_DEST) and \
                change.service.key not in self.pool.services:
            if change.op == DEL_DEST:
                return
            raise BackendError(f"no such service: {change}", change)
        self.pool.apply([change])
        self.log.append(change)
        d = change.dest
        if d is not None and (change.op == ADD_DEST or (change.op == EDIT_DEST and d.weight)):
            self.last_weight[(change.service.key, d.key)] = d.weight

    async def ensure_service(self, service: Service) -> None:
        op = EDIT_SERVICE if service.key in self.pool.services else ADD_SERVICE
        self._do(Change(op, service))

    async def remove_service(self, service: Service) -> None:
        if service.key in self.pool.services:
            self._do(Change(DEL_SERVICE, service))

    async def ensure_dest(self, service: Service, dest: Dest) -> None:
        have = self.pool.dests.get(service.key, {})
        self._do(Change(EDIT_DEST if dest.key in have else ADD_DEST, service, dest))

    async def remove_dest(self, service: Service, dest: Dest) -> None:
        if dest.key in self.pool.dests.get(service.key, {}):
            self._do(Change(DEL_DEST, service, dest))

    async def apply(self, changes: Sequence[Change]) -> int:
        for c in changes:
            self._do(c)
        return len(changes)

    async def flush(self) -> None:
        self.messages += 1
        self.pool = Pool()

    async def set_timeouts(self, timeouts: Timeouts) -> None:
        self.messages += 1
        self.timeouts = timeouts
