"""The VRRP worker's side: :class:`hafast.vrrp.worker.VrrpWorker` plus resume as
MASTER after a restart, reload, and the VIP backend that adopts a
predecessor's VIPs.  The supervised VRRP worker (``hafast.app.worker``) and the
stand-alone ``python -m hafast.vrrp.daemon`` both run it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hafast.config import model as m
from hafast.vrrp.report import instance_json, state_word

if TYPE_CHECKING:
    from hafast.vrrp.instance import Instance

log = logging.getLogger("hafast")

# The SNMP error notifications (vrrpTrapAuthFailure, vrrpv3ProtoError) an instance may
# send: keepalived sends one per rejected packet, unbounded; a misconfigured VRRPv3 peer
# at a 10 ms interval, or a flood, would mean 100s of traps a second, each a message to
# the parent and a Notify to snmpd.  A bucket of ERROR_TRAP_BURST refilled at
# ERROR_TRAPS_PER_S per instance passes anything a peer's adverts could cause at
# advert_int >= 100 ms, as keepalived does, and drops (and logs) the rest.
ERROR_TRAPS_PER_S = 10.0
ERROR_TRAP_BURST = 10


class TokenBucket:
    """``take()`` is True at most ``burst`` times at once and ``rate`` times a second
    after that.

    >>> now = [0.0]
    >>> b = TokenBucket(rate=1.0, burst=2, clock=lambda: now[0])
    >>> [b.take() for _ in range(3)], b.dropped
    ([True, True, False], 1)
    >>> now[0] = 1.0; b.take()
    True
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = float(burst)
        self.at = clock()
        self.dropped = 0

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(float(self.burst), self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        self.dropped += 1
        return False


class VrrpSide:
    """The VRRP worker: :class:`hafast.vrrp.worker.VrrpWorker` plus resume and reload.

    A reload goes through :meth:`VrrpWorker.reload`, the standalone daemon's SIGHUP
    path (sync groups rebuilt, new vrrp_scripts and track_files bound); this side only
    adds the state publisher to each instance the reload started.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, config: m.Config,
                 seed: dict[str, str], resume: bool, dont_release: bool,
                 publish: Callable[[dict[str, tuple[str, int]]], None],
                 rx_errors: Callable[[dict[str, Any]], None] | None = None) -> None:
        # Here, not at the top: a check worker imports this module too.
        from hafast.vrrp.transport import RateLimitedLog
        from hafast.vrrp.worker import VrrpWorker

        self.loop, self.config, self.seed = loop, config, seed if resume else {}
        self.dont_release = dont_release
        self.publish = publish
        # The parent's SNMP agent: each reject keepalived sends a trap for
        # (:meth:`_rx_error`); None: not reported (the stand-alone daemon)
        self.rx_errors = rx_errors
        self._buckets: dict[str, TokenBucket] = {}
        self._clock: Callable[[], float] = time.monotonic
        self._rlog = RateLimitedLog(log)
        self.vips = resuming_vips(adopt=resume)
        self.worker = VrrpWorker(loop, config, vips=self.vips)
        self.worker.on_started = self._started_by_reload

    def _changed(self, inst: Any, before: Any, after: Any) -> None:
        self.publish({inst.name: (state_word(after), inst.priority)})

    def _rx_error(self, inst: Instance, reason: str, src: bytes) -> None:
        """An advert ``inst`` rejected for a reason keepalived sends a trap for: told
        to the parent, which builds and sends the trap (a write on the pipe, never a
        wait), only with ``enable_traps`` and at most ERROR_TRAPS_PER_S a second."""
        from hafast.vrrp.instance import AUTH_ERROR_TYPES, PROTO_ERROR_REASONS

        if self.rx_errors is None or not self.config.global_defs.enable_traps:
            return
        bucket = self._buckets.get(inst.name)
        if bucket is None:
            bucket = self._buckets[inst.name] = TokenBucket(ERROR_TRAPS_PER_S,
                                                            ERROR_TRAP_BURST, self._clock)
        if not bucket.take():
            self._rlog.warning(f"traps/{inst.name}", "%s: SNMP notifications for rejected "
                               "adverts over %g a second are not sent", inst.name,
                               ERROR_TRAPS_PER_S)
            return
        cfg = next((c for c in self.config.vrrp_instances if c.name == inst.name), None)
        self.rx_errors({
            "iname": inst.name,
            "vrid": cfg.virtual_router_id if cfg is not None else 0,
            "version": inst.spec.params.version,
            "family": inst.spec.family,
            "vips": len(inst.spec.vips),
            "ifname": inst.spec.ifname,
            "src": src,
            "auth_error": AUTH_ERROR_TYPES.get(reason, 0),
            "proto_error": PROTO_ERROR_REASONS.get(reason, 0),
        })

    def _started_by_reload(self, inst: Any) -> None:
        # Hooked after the start, so a master adopted as master is published once as
        # MASTER (no BACKUP in between that would withdraw its pools under ha_suspend).
        inst.on_rx_error = self._rx_error
        inst.listeners.append(self._changed)
        self._changed(inst, None, inst.state)

    def _start_instance(self, inst: Instance, was: str | None = None) -> None:
        """Start ``inst``; ``was`` is the state word the parent last heard from it
        before a worker restart (:meth:`Instance.resume`: a master adopts its VIPs,
        :meth:`ResumingVips.adopt`, and carries on as master at once)."""
        from hafast.vrrp.fsm import State

        inst.listeners.append(self._changed)
        inst.on_rx_error = self._rx_error
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
