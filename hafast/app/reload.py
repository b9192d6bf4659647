"""Reload (SIGHUP): the new file is loaded and validated in the parent; with errors
the running configuration stays and each error is logged with its file:line.
Otherwise the pool policy adopts it (unchanged real servers keep their health and
kernel entry; new ones start as their alpha says), each check worker rebuilds its
engine seeded with its current health, and the VRRP worker applies the instance
diff (unchanged instances are not touched at all).  A side the old file did not
have starts (the first vrrp_instance starts the VRRP worker; the first
virtual_server opens the pools and starts the check workers); a side the new file
no longer has stops as it would on SIGTERM (priority 0 and VIPs released; pools
removed, omega notifiers run).

Reloads run one at a time through :class:`hafast.app.reloadq.ReloadQueue`, which
calls :meth:`Reloader.load` and :meth:`Reloader.apply`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import TYPE_CHECKING

from hafast.app import netns
from hafast.app.ipc import CHECK, VRRP
from hafast.app.process import STARTUP_GRACE_S, WorkerHandle
from hafast.config import model as m
from hafast.lib import gcfreeze, memtrim

if TYPE_CHECKING:
    from hafast.app.supervisor import Supervisor

log = logging.getLogger("hafast")

class Reloader:
    """The parent's reload steps; see the module docstring."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup

    async def load(self) -> m.Config | None:
        from hafast.app import loadconf

        log.info("reloading %s", self.sup.options.config_file)
        opts = self.sup.options
        res = await loadconf.load_async(opts.config_file, opts.config_id)
        for d in res.warnings:
            log.warning("%s", d.format())
        if res.errors or not res.files:
            for d in res.errors:
                log.error("%s", d.format())
            log.error("reload rejected: %d error(s); the running configuration stays",
                      len(res.errors))
            return None
        refusal = netns.reload_refusal(opts, res.config)
        if refusal is not None:
            # keepalived drops the whole reload, not just the namespace change
            log.error("%s; reload rejected, the running configuration stays", refusal)
            return None
        return res.config

    async def apply(self, new: m.Config) -> None:
        from hafast.config.diff import diff

        plan = diff(self.sup.config, new)
        log.info("reload plan: %s", plan.summary())
        self.sup.config = new
        self.sup.vip_guard.configure(new)
        fresh = await self._checks(new)
        self.sup.reload_fleet()
        fresh |= await self._vrrp()
        await self.sup.syncd.configure(new, self.sup.vrrp_states)
        for w in self.sup.workers:
            if id(w) in fresh:
                continue
            if w.role == CHECK:
                # Not the VRRP worker: a reload that held its loop that long would
                # have stopped its adverts, and its VIPs must go then (vipguard).
                w.grace_until = time.monotonic() + STARTUP_GRACE_S
                w.grace_from_seq = w.ping_seq  # an older pong says nothing of the reload
            w.send("reload", {"config": new, "seed": self.sup._seed(w)})
        gcfreeze.settle()  # the old model's cycles freed, the new one frozen
        memtrim.trim()  # the old model and the load's buffers (hafast.lib.memtrim)

    async def _checks(self, new: m.Config) -> set[int]:
        """The pool side of a reload; returns the handles started just now (they
        got ``new`` with their init)."""
        if not self.sup.wants_checks():
            if self.sup.pools is not None:
                log.info("reload: no virtual server left; stopping the check workers")
                await self._retire([w for w in self.sup.workers if w.role == CHECK])
                # As on SIGTERM: omega notifiers, our services removed (unless -I).
                await self.sup.pools.close()
                self.sup.pools = None
            if self.sup.addr_watch is not None:
                self.sup.addr_watch.close()
                self.sup.addr_watch = None
            return set()
        if self.sup.pools is None:
            log.info("reload: the first virtual server; starting the check workers")
            try:
                await self.sup._open_pools()
            except Exception as exc:
                log.error("reload: the pools cannot open (%s); no check workers until "
                          "the next reload", exc)
                return set()
            n = self.sup.check_worker_count()
            ws = [WorkerHandle(CHECK, i, shards=n) for i in range(n)]
            self.sup.workers.extend(ws)
            for w in ws:
                await self.sup._start_worker(w)
            return {id(w) for w in ws}
        # A watch opened just now (the first ha_suspend): every suspension is
        # computed afresh from what is here; otherwise set_vip kept them current.
        opened = self.sup._watch_addresses()
        present = self.sup.addr_watch.addresses() if opened and self.sup.addr_watch else None
        await self.sup.pools.reload(new, present)
        return set()

    async def _vrrp(self) -> set[int]:
        current = [w for w in self.sup.workers if w.role == VRRP]
        if self.sup.wants_vrrp() and not current:
            log.info("reload: the first vrrp_instance; starting the VRRP worker")
            w = WorkerHandle(VRRP, 0)
            self.sup.workers.insert(0, w)
            await self.sup._start_worker(w)
            return {id(w)}
        if current and not self.sup.wants_vrrp():
            log.info("reload: no vrrp_instance left; stopping the VRRP worker")
            # As on SIGTERM: priority 0, VIPs released, notify STOP.
            await self._retire(current)
            self.sup.vrrp_states.clear()
            await self.sup.vrrp_spare.close()  # nothing left for it to stand behind
        return set()

    async def _retire(self, ws: list[WorkerHandle]) -> None:
        """Stop workers a reload no longer needs, as SIGTERM would, and forget them."""
        for w in ws:
            w.retiring = True
            w.send("stop")
        await asyncio.gather(*(self.sup._wait_exit(w) for w in ws))
        for w in ws:
            if w in self.sup.workers:
                self.sup.workers.remove(w)
            path = self.sup.options.vrrp_pid_file if w.role == VRRP else (
                self.sup.options.checkers_pid_file if w.index == 0 else None)
            if path:
                with contextlib.suppress(OSError):
                    os.unlink(path)
