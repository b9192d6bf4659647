"""The pool shell: check events in, kernel changes and notifies out.

:class:`PoolManager` owns a :class:`~hafast.lvs.policy.PoolPolicy` and a backend.
It keeps ``applied``, its view of what the kernel holds for hafast, so an event
costs a diff of the one or few services it touched (never a dump of the table).

- start: open the backend; with ``lvs_flush`` flush the whole table first,
  otherwise ADOPT: dump the kernel and change only what differs from the desired
  pool (a service someone else made is left alone; an entry of ours that is
  already right is not touched, so a restart does not disturb live traffic; but
  a Maglev fleet's destination at weight 0 is set again, since a dump cannot read
  the ``last_weight`` its slots follow, :func:`~hafast.lvs.backend.put_dest`);
  ``lvs_timeouts`` are set;
- events: the policy's actions run at once and in order (FIFO lines are written
  synchronously, scripts are started and reaped on the loop); the changed
  services are synced by one task, coalescing what arrives meanwhile;
- reload: the policy adopts the new configuration and only the difference is
  applied (an unchanged healthy server is never removed, except in a Maglev
  fleet's service: the servers that sort after a new one are deleted and added
  back in the same batch, so the kernel's list is in the order a fresh start
  gives, :func:`~hafast.lvs.backend.ordered_dests`; their connections live on);
- stop: with omega the notifiers run; what hafast owns is removed (with
  ``lvs_flush_on_stop`` alone: the whole table is flushed), and then what
  the backend made for itself (the nft table), unless ``keep`` (keepalived's
  ``--dont-release-ipvs``: everything stays as it was); the scripts still running are
  waited for (at most ``child_wait`` seconds) so none is left unreaped when the
  loop closes.

Scripts (notify_up/down, quorum_up/down) run as their ``user [group]``, else
global ``script_user``; a user without a group runs with that user's own group
(as keepalived does), never with the daemon's.

A failed kernel change is logged, the kernel is dumped again and the diff retried
once; the next event retries whatever still differs.

Example::

    manager = PoolManager(config, IpvsBackend())
    await manager.start(engine.snapshot())
    engine.runner.on_event = manager.on_event
    ...
    await manager.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import subprocess
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from hafast.config import model as m
from hafast.config.pool_backends import AUTO, POOL_BACKENDS, candidates
from hafast.lib.events import ServerEvent
from hafast.lib.notify import Notifier, spawn_reaped
from hafast.lvs.backend import (
    DEL_SERVICE,
    BackendError,
    Change,
    DestKey,
    Pool,
    PoolBackend,
    ServiceKey,
    Timeouts,
    diff,
)
from hafast.lvs.policy import (
    Action,
    FifoLine,
    Outcome,
    PoolPolicy,
    RunScript,
    VsKey,
    maglev_fleet,
)

log = logging.getLogger("hafast.lvs")

# How many of the policy's latest actions PoolManager.actions keeps for a look.
RECENT_ACTIONS = 4096


class LvsNotifier(Notifier):
    """keepalived's lvs_notify_fifo: the notify FIFO, written line by line."""

    def write_line(self, text: str) -> None:
        line = f"{text}\n".encode()
        self.lines.append(line)
        for fd in self._fds:
            try:
                os.write(fd, line)
            except BlockingIOError:
                log.warning("lvs notify fifo full; dropped: %s", text)
            except OSError as exc:
                log.warning("lvs notify fifo write failed: %s", exc)


def make_backend(kind: str, **kwargs: Any) -> PoolBackend:
    """The pool backend ``kind`` names (``lvs_backend``, ``--pool-backend``), made with
    ``kwargs``; ``auto``: the first of :data:`~hafast.config.pool_backends.POOL_BACKENDS`
    that this box has, that reaches the kernel and that can be made (IPVS, else
    nftables).  None: :class:`NoPoolBackend`, saying how to run without a data path.

    >>> make_backend("memory").name
    'memory'
    """
    last: Exception | None = None
    for row in candidates(kind):
        module, _, attr = row.factory.partition(":")
        try:
            backend: PoolBackend = getattr(importlib.import_module(module), attr)(**kwargs)
        except Exception as exc:
            log.warning("pool backend %s unavailable: %s", row.name, exc)
            last = exc
            continue
        return backend
    if kind == AUTO:
        raise NoPoolBackend(no_kernel_backend()) from last
    raise NoPoolBackend(f"pool backend {kind} unavailable" + (f": {last}" if last else "")
                        ) from last


class NoPoolBackend(RuntimeError):
    """No pool backend could be made: the daemon says it in one line and stops."""


def no_kernel_backend() -> str:
    """Why ``auto`` found nothing, and the two ways on."""
    names = [k.name for k in POOL_BACKENDS.values() if k.kernel]
    return (f"no {' or '.join(names)} pool backend works here, so no packet would follow "
            "the virtual servers: load ip_vs (or install nftables), or run the checks "
            "without a data path by asking for it: lvs_backend memory in global_defs, "
            "or --pool-backend memory")


def ordered_services(policy: PoolPolicy) -> frozenset[ServiceKey]:
    """The services whose kernel destination list must be in the policy's order: a
    Maglev fleet's, so that a director that adds a real server by a reload ends
    with the list (and the Maglev table) of one started with the new config."""
    return frozenset(svc.key for st in policy.vss.values() if maglev_fleet(st.vs)
                     for svc in st.services)


class PoolManager:
    """Keeps a backend in step with the policy.  All methods run on one loop."""

    def __init__(
        self,
        config: m.Config,
        backend: PoolBackend,
        *,
        keep: bool = False,
        flush: bool | None = None,
        timeouts: Timeouts | None = None,
        service_flags: Mapping[VsKey, Iterable[str]] | None = None,
        rs_init_notifies: bool = False,
        vips_present: Iterable[str] | None = None,
        run_scripts: bool = True,
        notify_fifo: str | None = None,
        child_wait: float = 5.0,
    ) -> None:
        self.config = config
        self.backend = backend
        self.keep = keep
        self.flush = config.global_defs.lvs_flush if flush is None else flush
        gd = config.global_defs
        configured = gd.lvs_timeouts
        if timeouts is None and (configured.tcp or configured.tcpfin or configured.udp):
            timeouts = Timeouts(configured.tcp, configured.tcpfin, configured.udp)
        self.timeouts = timeouts
        self.run_scripts = run_scripts
        self.policy = PoolPolicy(config, service_flags=service_flags,
                                 rs_init_notifies=rs_init_notifies or gd.rs_init_notifies,
                                 vips_present=vips_present)
        self.applied = Pool()
        self.owned: set[ServiceKey] = set()
        self.ordered: frozenset[ServiceKey] = frozenset()
        # The policy's latest actions, in order, for a look from outside (status, tests):
        # bounded, since a daemon that kept every one would grow with every flap.
        # Whoever needs all of one call's actions records them (:meth:`recording`).
        self.actions: deque[Action] = deque(maxlen=RECENT_ACTIONS)
        self._limits_said: set[str] = set()
        self._recorders: list[list[Action]] = []
        self.changes_applied = 0
        self.errors = 0
        self.last_sync_seconds = 0.0
        self.child_wait = child_wait
        self.children: dict[int, subprocess.Popen[bytes]] = {}  # scripts not yet reaped
        self._children_gone = asyncio.Event()
        self._children_gone.set()
        self._fifo_path = notify_fifo
        self._notifier: LvsNotifier | None = None
        # the services to sync, with the destinations that changed (its actions unused)
        self._pending = Outcome()
        self._sync_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    # -- life cycle ---------------------------------------------------------------

    async def start(
        self, health: Mapping[tuple[VsKey, tuple[str, int | None]], tuple[bool, int]] | None = None
    ) -> int:
        """Open, flush or adopt, apply the first pool; return the changes made."""
        self._loop = asyncio.get_running_loop()
        self._open_notifier()
        await self.backend.open()
        if self.flush:
            await self.backend.flush()
        if self.timeouts is not None:
            await self.backend.set_timeouts(self.timeouts)
        self._say_limits()
        outcome = self.policy.start(health)
        self.owned = self.policy.owned()
        self.ordered = ordered_services(self.policy)
        self.applied = Pool() if self.flush else await self.backend.dump()
        n = await self._converge(None)
        if not n:
            # nft makes its table with the first pool (one transaction, so a restart
            # never commits an empty pool); with no pool to apply, it is made now.
            await self.backend.apply([])
        self._run_actions(outcome.actions)
        return n

    def _open_notifier(self) -> None:
        # keepalived's checker writes its VS/RS lines to notify_fifo AND
        # lvs_notify_fifo; only lvs_notify_fifo_script is this process's to start
        # (notify_fifo_script belongs to whichever process owns notify_fifo first).
        gd = self.config.global_defs
        lvs_path = self._fifo_path or (gd.lvs_notify_fifo[0] if gd.lvs_notify_fifo else None)
        paths = [p for p in (gd.notify_fifo[0] if gd.notify_fifo else None, lvs_path) if p]
        paths = list(dict.fromkeys(paths))
        if not paths or self._loop is None:
            return
        script = gd.lvs_notify_fifo_script.argv if gd.lvs_notify_fifo_script else None
        scripts = [script if p == lvs_path and self.run_scripts else None for p in paths]
        self._notifier = LvsNotifier(self._loop, paths, scripts)

    async def stop(self) -> int:
        """Omega notifiers; remove what hafast owns unless ``keep``; close."""
        await self.wait_idle()
        self._run_actions(self.policy.stop().actions)
        n = 0
        if not self.keep:
            # keepalived 2.2.7 clear_services(): lvs_flush_on_stop alone flushes the
            # whole table (IPVS_CMD_FLUSH, what others made too), but only with virtual
            # servers configured; "VS" deletes each service and lets the kernel take
            # its destinations; without the keyword each destination goes first, then
            # the service: the same table afterwards, so both are one delete here.
            how = self.config.global_defs.lvs_flush_on_stop
            if how == "full" and self.config.virtual_servers:
                log.info("ipvs: flushing the whole table (lvs_flush_on_stop)")
                await self.backend.flush()
                n = len(self.applied.services)
                self.applied = Pool()
            else:
                changes = [Change(DEL_SERVICE, self.applied.services[k])
                           for k in sorted(self.owned & set(self.applied.services), key=str)]
                n = await self._apply(changes)
            await self.backend.release()
        await self.backend.close()
        if self._notifier is not None:
            self._notifier.close()
            self._notifier = None
        await self.wait_children(self.child_wait)
        return n

    async def wait_children(self, timeout: float) -> bool:
        """Until every script started so far is reaped, or ``timeout`` seconds.

        Omega's notifiers start at stop; reaped from the loop, they would be
        left behind if the loop closed first.  Returns False on timeout.
        """
        if not self.children:
            return True
        try:
            await asyncio.wait_for(self._children_gone.wait(), timeout)
            return True
        except TimeoutError:
            log.warning("scripts still running after %.1fs, not waited for: pid %s",
                        timeout, ", ".join(str(p) for p in sorted(self.children)))
            return False

    async def reload(self, config: m.Config, vips_present: Iterable[str] | None = None) -> int:
        """Adopt ``config``; apply only the difference; return the changes made."""
        await self.wait_idle()
        old_owned = self.owned
        self.config = config
        self._say_limits()
        outcome = self.policy.reload(config, vips_present)
        self.owned = self.policy.owned()
        self.ordered = ordered_services(self.policy)
        n = await self._converge(outcome.changed, owned=old_owned | self.owned)
        self._run_actions(outcome.actions)
        return n

    # -- events -------------------------------------------------------------------

    def on_event(self, event: ServerEvent) -> None:
        """The engine's callback (on the loop): act now, sync the kernel soon."""
        self.handle(self.policy.on_event(event))

    def set_vip(self, address: str, present: bool) -> None:
        self.handle(self.policy.set_vip(address, present))

    def handle(self, outcome: Outcome) -> None:
        self._run_actions(outcome.actions)
        if outcome.changed:
            self._pending.merge_changes(outcome)
            self._idle.clear()
            if self._sync_task is None or self._sync_task.done():
                loop = self._loop or asyncio.get_running_loop()
                self._sync_task = loop.create_task(self._sync_pending())

    async def _sync_pending(self) -> None:
        try:
            while self._pending.changed:
                pending, self._pending = self._pending, Outcome()
                await self._converge(pending.changed, only=pending.only)
        finally:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Until every change asked for so far is in the kernel."""
        while not self._idle.is_set() or (self._sync_task and not self._sync_task.done()):
            await self._idle.wait()
            if self._sync_task is not None:
                await asyncio.wait([self._sync_task])

    # -- kernel -------------------------------------------------------------------

    async def _converge(self, keys: set[ServiceKey] | None,
                        owned: set[ServiceKey] | None = None,
                        only: dict[ServiceKey, set[DestKey]] | None = None) -> int:
        t0 = time.perf_counter()
        owned = self.owned if owned is None else owned
        changes = diff(self.applied, self.policy.pool, owned=owned, keys=keys,
                       ordered=self.ordered, only=only)
        try:
            n = await self._apply(changes)
        except BackendError as exc:
            self.errors += 1
            log.error("pool change failed: %s; reading the kernel again", exc)
            self.applied = await self.backend.dump()
            changes = diff(self.applied, self.policy.pool, owned=owned, keys=keys,
                           ordered=self.ordered)
            try:
                n = await self._apply(changes)
            except BackendError as exc2:
                self.errors += 1
                log.error("pool change failed again: %s", exc2)
                self.applied = await self.backend.dump()
                n = 0
        self.last_sync_seconds = time.perf_counter() - t0
        return n

    async def _apply(self, changes: list[Change]) -> int:
        if not changes:
            return 0
        for c in changes:
            log.info("ipvs: %s", c)
        done = await self.backend.apply(changes)
        self.applied.apply(changes)
        self.changes_applied += done
        return done

    # -- notifies -----------------------------------------------------------------

    def _say_limits(self) -> None:
        """Log what the backend does not do as keepalived's IPVS would for this config
        (nftables: :func:`hafast.lvs.nft.limits`), each line once per daemon."""
        limits = getattr(self.backend, "limits", None)
        for line in limits(self.config) if limits is not None else ():
            if line not in self._limits_said:
                self._limits_said.add(line)
                log.warning("pool on %s: %s", self.backend.name, line)

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[Action]]:
        """Every action the policy asks for inside the ``with`` block, however many
        (the quorum mails read a reload's or a start's whole batch)."""
        got: list[Action] = []
        self._recorders.append(got)
        try:
            yield got
        finally:
            self._recorders.remove(got)

    def _run_actions(self, actions: list[Action]) -> None:
        self.actions.extend(actions)
        for got in self._recorders:
            got.extend(actions)
        for a in actions:
            if isinstance(a, FifoLine):
                log.info("%s", a.line)
                if self._notifier is not None:
                    self._notifier.write_line(a.line)
            elif isinstance(a, RunScript) and self.run_scripts and self._loop is not None:
                self._spawn(a)

    def _spawn(self, a: RunScript) -> None:
        assert self._loop is not None
        pid = 0

        def exited(code: int) -> None:
            self.children.pop(pid, None)
            if not self.children:
                self._children_gone.set()
            if code:
                log.info("%s (%s) exited with %d", a.argv[0], a.why, code)

        # A user without a group: spawn_reaped's script_identity gives the login group.
        proc = spawn_reaped(self._loop, a.argv, exited, user=a.user, group=a.group)
        if proc is not None:
            pid = proc.pid
            self.children[pid] = proc
            self._children_gone.clear()

