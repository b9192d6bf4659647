"""The parent's pools: the policy and the backend, kept across worker restarts
and reloads (:class:`PoolKeeper`).  The backend chooser is
:func:`hafast.lvs.manager.make_backend`, re-exported here for the supervisor.
"""

from __future__ import annotations

import asyncio
import functools
import operator
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from hafast.config import model as m
from hafast.lib.jsonstream import JsonArray
from hafast.lvs.alerts import QuorumAlerts
from hafast.lvs.backend import Timeouts
from hafast.lvs.manager import PoolManager, make_backend
from hafast.lvs.rows import cut, row, row_text, rows

__all__ = ["CountingBackend", "PoolKeeper", "make_backend"]

_ALIVE = operator.attrgetter("alive")


class CountingBackend:
    """A pool backend that counts the operations it carries out, by kind
    (``add-dest``, ``del-dest``, ``edit-dest``...): how tests and metrics prove that
    a reload or a worker restart removed nothing."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.changes: Counter[str] = Counter()
        self.name = getattr(inner, "name", "?")

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.inner, attr)

    async def apply(self, changes: Any) -> int:
        n: int = await self.inner.apply(changes)
        for c in changes:
            self.changes[c.op] += 1
        return n


class PoolKeeper:
    """The pools, in the parent: :class:`hafast.lvs.manager.PoolManager` fed with the
    check workers' events, plus the views the supervisor needs (seed, status)."""

    def __init__(self, config: m.Config, backend: Any, *, keep: bool,
                 vips_present: Iterable[str] | None = None, child_wait: float = 5.0,
                 timeouts: Timeouts | None = None) -> None:
        self.backend = CountingBackend(backend)
        self.manager = PoolManager(config, self.backend, keep=keep, vips_present=vips_present,
                                   child_wait=child_wait, timeouts=timeouts)
        self.config = config
        self.alerts: QuorumAlerts | None = None  # made on open(), on the parent's loop
        # Told each batch's transitions after the alerts (the SNMP checker traps,
        # hafast.status.snmp.SnmpAgent.pool_transitions), with the policy they left.
        self.listener: Callable[[list[Any], Any], None] | None = None

    @property
    def policy(self) -> Any:
        return self.manager.policy

    async def open(self) -> None:
        # The configuration's initial health (alpha servers out): the workers'
        # engines start from the same, so their first events are real changes.
        with self.manager.recording() as started:
            await self.manager.start()
        self.alerts = QuorumAlerts(asyncio.get_running_loop(), self.config)
        # the mails read the transitions the policy worked out for the notifies
        self.alerts.started(started)

    async def on_events(self, events: Iterable[Any]) -> None:
        with self.manager.recording() as done:
            for ev in events:
                self.manager.on_event(ev)
        if self.alerts is not None:
            self.alerts.after_events(done)
        if self.listener is not None:
            self.listener(done, self.policy)

    async def reload(self, config: m.Config, vips_present: Iterable[str] | None = None) -> None:
        with self.manager.recording() as done:
            await self.manager.reload(config, vips_present)
        self.config = config
        if self.alerts is not None:
            self.alerts.reloaded(config, done)
        if self.listener is not None:
            self.listener(done, self.policy)

    def set_vip(self, address: str, present: bool) -> None:
        """ha_suspend: ``address`` arrived on this box or left it."""
        self.manager.set_vip(address, present)

    def seed(self) -> dict[tuple[Any, Any], tuple[bool, int]]:
        """Last known health of the real servers, for a (re)started check worker.

        Left out: a real server no check has reported yet that is up, as every real
        server without alpha starts; the worker starts its checks up too, which is
        what seeding it would do (:func:`hafast.check.side.seed_engine`).  So a first
        start sends nothing for such a farm: the seed was ~0.2 KiB a real server per
        worker, unpickled with the init message and freed after the build, and that
        freed memory stayed in each worker's PSS (CPython keeps arenas that are
        partly in use; issue 16).
        """
        return {(vk, rk): (r.alive, r.weight) for vk, st in self.policy.vss.items()
                for rk, r in st.rss.items() if r.reported or not r.alive}

    def _pool_dests(self, st: Any) -> dict[Any, Any]:
        """What the pool holds for the virtual server ``st`` (its first service's
        destinations, which :meth:`PoolPolicy._sync` keeps current), read, not made
        again: ``dests_of`` made a Dest per real server, 1 MB at 10,000 of them, on
        every ``hafast status``."""
        if st.suspended:
            return {}  # ha_suspend: nothing of it is in the pool
        if st.services:
            held = self.policy.pool.dests.get(st.services[0].key)
            if held is not None:
                return held
        return self.policy.dests_of(st)

    async def close(self) -> None:
        await self.manager.stop()
        if self.alerts is not None:
            self.alerts.close()

    async def counters(self) -> Any:
        """The backend's IPVS counters (:meth:`hafast.lvs.ipvs.IpvsBackend.counters`,
        for the checker MIB); None from a backend that keeps none (nft, memory)."""
        read = getattr(self.backend.inner, "counters", None)
        return await read() if read is not None else None

    def status(self, *, lazy_rows: bool = False, down: bool = False,
               limit: int | None = None) -> dict[str, Any]:
        """The pools for ``hafast status``.  ``lazy_rows``: each virtual server's
        real servers as a :class:`~hafast.lib.jsonstream.JsonArray`, made as the
        control socket writes them (a reply's rows are not all alive at once).
        ``down``/``limit``: only the rows :func:`hafast.lvs.rows.cut` keeps, and
        each virtual server's ``counts`` (:func:`hafast.status.select.select`
        then leaves its rows alone)."""
        vss = []
        for st in self.policy.vss.values():
            dests = self._pool_dests(st)
            vs: dict[str, Any] = {"name": st.label, "quorum_up": st.quorum_up,
                                  "suspended": st.suspended}
            if down or limit is not None:
                vs["real_servers"], vs["counts"] = cut(
                    st.rss.values(), _ALIVE, functools.partial(row, dests=dests),
                    down=down, limit=limit)
            elif lazy_rows:
                vs["real_servers"] = JsonArray(
                    st.rss.values, text=functools.partial(row_text, dests=dests),
                    item=functools.partial(row, dests=dests))
            else:
                vs["real_servers"] = list(rows(st, dests))
            vss.append(vs)
        return {"backend": self.backend.name, "virtual_servers": vss,
                "changes": dict(self.backend.changes), "errors": self.manager.errors,
                "messages": getattr(self.backend.inner, "messages", 0),
                "alerts": dict(self.alerts.mailer.counters) if self.alerts else {}}
