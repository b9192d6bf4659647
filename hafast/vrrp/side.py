"""The VRRP worker's side: :class:`hafast.vrrp.worker.VrrpWorker` plus resume as
MASTER after a restart, reload, and the VIP backend that adopts a
predecessor's VIPs.  The supervised VRRP worker (``hafast.app.worker``) and the
stand-alone ``python -m hafast.vrrp.daemon`` both run it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hafast.config import model as m
from hafast.vrrp.report import instance_json, state_word

if TYPE_CHECKING:
    from hafast.vrrp.instance import Instance

log = logging.getLogger("hafast")


class VrrpSide:
    """The VRRP worker: :class:`hafast.vrrp.worker.VrrpWorker` plus resume and reload.

    A reload goes through :meth:`VrrpWorker.reload`, the standalone daemon's SIGHUP
    path (sync groups rebuilt, new vrrp_scripts and track_files bound); this side only
    adds the state publisher to each instance the reload started.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, config: m.Config,
                 seed: dict[str, str], resume: bool, dont_release: bool,
                 publish: Callable[[dict[str, tuple[str, int]]], None]) -> None:
        # Here, not at the top: a check worker imports this module too.
        from hafast.vrrp.worker import VrrpWorker

        self.loop, self.config, self.seed = loop, config, seed if resume else {}
        self.dont_release = dont_release
        self.publish = publish
        self.vips = resuming_vips(adopt=resume)
        self.worker = VrrpWorker(loop, config, vips=self.vips)
        self.worker.on_started = self._started_by_reload

    def _changed(self, inst: Any, before: Any, after: Any) -> None:
        self.publish({inst.name: (state_word(after), inst.priority)})

    def _started_by_reload(self, inst: Any) -> None:
        # Hooked after the start, so a master adopted as master is published once as
        # MASTER (no BACKUP in between that would withdraw its pools under ha_suspend).
        inst.listeners.append(self._changed)
        self._changed(inst, None, inst.state)

    def _start_instance(self, inst: Instance, was: str | None = None) -> None:
        """Start ``inst``; ``was`` is the state word the parent last heard from it
        before a worker restart (:meth:`Instance.resume`: a master adopts its VIPs,
        :meth:`ResumingVips.adopt`, and carries on as master at once)."""
        from hafast.vrrp.fsm import State

        inst.listeners.append(self._changed)
        log.info("%s: starting (priority %d on %s)", inst.name, inst.priority,
                 inst.spec.ifname)
        # The words are the states' values; one this worker does not know cannot be
        # where the instance lands, so its notifications go out as usual.
        known = {s.value: s for s in State}
        inst.resume(None if was is None else known.get(was, State.INITIALIZE))
        self._changed(inst, None, inst.state)

    def start(self) -> None:
        # keepalived adds the statics before any instance runs, whatever its state
        self.worker.statics.apply(self.config)
        for inst in self.worker.instances:
            self._start_instance(inst, self.seed.get(inst.name))
        self.worker.tracking.start()

    def reload(self, config: m.Config) -> dict[str, int]:
        """Apply ``config`` as the standalone daemon does on SIGHUP
        (:meth:`hafast.vrrp.daemon.VrrpWorker.reload`): unchanged instances are not
        touched at all; a changed one is replaced by its successor in the same state
        (a master stays master, its VIPs up, no notification); new ones start;
        removed ones stop (priority 0, VIPs released, notify STOP); sync groups are
        rebuilt; vrrp_scripts and track_files the reload names are bound.

        Example::

            side.reload(new_config)   # {"keep": 1, "adopt": 1, "add": 0, "remove": 0}
        """
        self.worker.statics.apply(config)
        counts = self.worker.reload(config)
        self.config = config
        return counts

    def stop(self) -> None:
        if self.dont_release:
            self.vips.keep = True
        self.worker.stop()
        with contextlib.suppress(Exception):
            self.vips.close()

    def last_adverts(self) -> dict[str, float]:
        """When each MASTER instance last advertised (time.monotonic()): sent to the
        parent with every pong, for its VIP guard."""
        return {inst.name: inst.last_advert_s for inst in self.worker.instances
                if inst.last_advert_s is not None and state_word(inst.state) == "MASTER"}

    def status(self) -> dict[str, Any]:
        by_name = {i.name: i for i in self.config.vrrp_instances}
        sockets = self.worker.transport.counters()
        out = []
        for inst in self.worker.instances:
            out.append(instance_json(inst, by_name.get(inst.name), sockets))
        return {"instances": out, "sockets": sockets,
                "alerts": self.worker.notifier.counters(),
                "statics_refused": self.worker.statics.counters()}


class ResumingVips:
    """The VRRP worker's VIP backend: NetlinkVips, plus two things the parent needs.

    * adopt: a restarted worker finds its predecessor's VIPs still up; NetlinkVips
      leaves an address that already exists unowned (never take away an
      administrator's address), so a resumed master says which ones are its own
      (:meth:`NetlinkVips.adopt`) and they go on release like any it added.
    * keep (``-V``): on stop nothing is removed.
    """

    def __init__(self, adopt: bool) -> None:
        from hafast.net.vip import NetlinkVips

        self.inner = NetlinkVips()
        self.resuming = adopt
        self.keep = False

    def adopt(self, owner: str, vips: Any, default_dev: str) -> list[Any]:
        """Take ``vips`` present on their interface as ``owner``'s (resumed workers only)."""
        if not self.resuming:
            return []
        return self.inner.adopt(owner, vips, default_dev)

    def owns(self, vip: Any, default_dev: str) -> bool:
        return self.inner.owns(vip, default_dev)

    def add(self, owner: str, vips: Any, routes: Any, default_dev: str, rules: Any = ()) -> Any:
        return self.inner.add(owner, vips, routes, default_dev, rules)

    def remove(self, owner: str, vips: Any, routes: Any, default_dev: str,
               rules: Any = ()) -> Any:
        import concurrent.futures

        if self.keep:
            done: concurrent.futures.Future[None] = concurrent.futures.Future()
            done.set_result(None)
            return done
        return self.inner.remove(owner, vips, routes, default_dev, rules)

    def release_all(self) -> None:
        if not self.keep:
            self.inner.release_all()

    def close(self) -> None:
        if not self.keep:
            self.release_all()
            self.inner.close()


def resuming_vips(adopt: bool) -> ResumingVips:
    return ResumingVips(adopt)
