"""The VRRP worker's side: :class:`hafast.vrrp.daemon.VrrpWorker` plus resume as
MASTER after a restart, reload, and the VIP backend that adopts a
predecessor's VIPs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from hafast.config import model as m
from hafast.vrrp.report import instance_json, state_word

log = logging.getLogger("hafast")


class VrrpSide:
    """The VRRP worker: :class:`hafast.vrrp.daemon.VrrpWorker` plus resume and reload.

    A reload goes through :meth:`VrrpWorker.reload`, the standalone daemon's SIGHUP
    path (sync groups rebuilt, new vrrp_scripts and track_files bound); this side only
    adds the state publisher to each instance the reload started.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, config: m.Config,
                 seed: dict[str, str], resume: bool, dont_release: bool,
                 publish: Callable[[dict[str, tuple[str, int]]], None]) -> None:
        from hafast.vrrp.daemon import VrrpWorker

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

    def _start_instance(self, inst: Any, was: str | None = None) -> None:
        """Start ``inst``; ``was`` is its state before a worker restart.

        An instance that was MASTER a moment ago still has its VIPs up: it takes
        them as its own (:meth:`ResumingVips.adopt`, so they go on stop) and carries
        on as master at once.  Notifications are held while it starts and dropped
        when it lands where it was (no transition happened for the world);
        otherwise they go out in order.
        """
        from hafast.vrrp import fsm

        if was == "MASTER":
            taken = self.vips.adopt(inst.name, inst.spec.vips + inst.spec.excluded,
                                    inst.spec.ifname)
            if taken:
                log.info("%s: took over %d VIP(s) left up by the previous worker",
                         inst.name, len(taken))
        inst.listeners.append(self._changed)
        notifier = inst.notifier
        held = _HeldNotifier()
        if was is not None:
            inst.notifier = held
        try:
            inst.start()
            st = inst.machine.state
            if was == "MASTER" and st.state is fsm.State.BACKUP and st.master_down_at:
                inst.feed(fsm.timer_fired(fsm.TimerKind.MASTER_DOWN,
                                          inst.timers.now_us(), st.master_down_at))
                log.info("%s: resumed as MASTER", inst.name)
        finally:
            inst.notifier = notifier
        if was is not None and state_word(inst.state) != was and notifier is not None:
            held.replay(notifier)
        self._changed(inst, None, inst.state)

    def start(self) -> None:
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
        counts = self.worker.reload(config)
        self.config = config
        return counts

    def stop(self) -> None:
        if self.dont_release:
            self.vips.keep = True
        self.worker.stop()
        with contextlib.suppress(Exception):
            self.vips.close()

    def status(self) -> dict[str, Any]:
        by_name = {i.name: i for i in self.config.vrrp_instances}
        sockets = self.worker.transport.counters()
        out = []
        for inst in self.worker.instances:
            out.append(instance_json(inst, by_name.get(inst.name), sockets))
        return {"instances": out, "sockets": sockets}


class _HeldNotifier:
    """Stands in for the Notifier while an instance resumes; replays on demand."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def state_change(self, *args: Any) -> None:
        self.calls.append(args)

    def replay(self, notifier: Any) -> None:
        for args in self.calls:
            notifier.state_change(*args)


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

    def add(self, owner: str, vips: Any, routes: Any, default_dev: str) -> Any:
        return self.inner.add(owner, vips, routes, default_dev)

    def remove(self, owner: str, vips: Any, routes: Any, default_dev: str) -> Any:
        import concurrent.futures

        if self.keep:
            done: concurrent.futures.Future[None] = concurrent.futures.Future()
            done.set_result(None)
            return done
        return self.inner.remove(owner, vips, routes, default_dev)

    def release_all(self) -> None:
        if not self.keep:
            self.inner.release_all()

    def close(self) -> None:
        if not self.keep:
            self.release_all()
            self.inner.close()


def resuming_vips(adopt: bool) -> ResumingVips:
    return ResumingVips(adopt)
