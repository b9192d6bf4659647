"""The parent process: starts and restarts the VRRP and check workers, heartbeats,
signals, reload, and the pools.

Processes (keepalived's shape, anchors §1.0)::

    hafast (parent)            pool policy + pool backend, control socket, /metrics
      +- hafast_vrrp           one uvloop loop: every vrrp_instance
      +- hafast_healthcheckers one per core, the real servers sharded over them

Where the pool lives: **in the parent**.  Check workers only publish real-server
transitions (``ServerEvent``) over their pipe; the parent feeds them to
:class:`~hafast.lvs.policy.PoolPolicy` and makes the backend (IPVS, nftables or
memory) match.  A check worker that dies or hangs is restarted without touching the
pool: the parent still holds the desired pool and the backend handle, and the new
worker is *seeded* with the last known health of each of its real servers (not
alpha), so its first events are real changes only.  The VRRP worker is seeded
likewise: an instance that was MASTER resumes as MASTER at once (its VIPs are still
on the interface; the restarted worker adopts them, so they are still released on
SIGTERM), with no notify for a transition that did not happen.

Where the pieces live: the message format in :mod:`hafast.app.ipc`; processes, pid
files and daemonising in :mod:`hafast.app.process`; what runs inside a worker in
:mod:`hafast.app.worker` (the VRRP side in :mod:`hafast.vrrp.side`, a check side in
:mod:`hafast.check.side`); the pools in :mod:`hafast.lvs.keeper`; the address watch in
:mod:`hafast.net.addrwatch`; reload serialisation in :mod:`hafast.app.reloadq`; what
happens to the VIPs of a dead or hung VRRP worker in :mod:`hafast.app.vipguard`.

Parent and worker talk over a socketpair with length-prefixed pickles (both ends
are this program).  Messages are ``(kind, payload)`` tuples:

==========  ======================  ==============================================
direction   kind                    payload
==========  ======================  ==============================================
down        init                    role, shard, shards, Config, seed, options
down        ping / pong (up)        sequence number; the heartbeat (issue #2523)
down        status / status (up)    request id / (request id, status dict)
down        reload                  new Config, seed
down        stop                    none (SIGTERM does the same)
down        clear_stats             none (STATS_CLEAR: VRRP counters to zero)
up          events                  list of ServerEvent
up          vrrp                    {instance: (state word, priority)}
==========  ======================  ==============================================

Reload (SIGHUP): the new file is loaded and validated in the parent; with errors the
running configuration stays and each error is logged with its file:line.  Otherwise
the pool policy adopts it (unchanged real servers keep their health and kernel entry;
new ones start as their alpha says), each check worker rebuilds its engine seeded
with its current health, and the VRRP worker applies the instance diff (unchanged
instances are not touched at all).  A side the old file did not have starts (the
first vrrp_instance starts the VRRP worker; the first virtual_server opens the pools
and starts the check workers); a side the new file no longer has stops as it would
on SIGTERM (priority 0 and VIPs released; pools removed, omega notifiers run).

ha_suspend: the parent watches the addresses of its own network namespace (RTNL
address events, as keepalived's checker process does) and tells the pools when a
virtual server's address arrives or leaves; a virtual server whose address is not
here keeps nothing in the kernel.  Without that socket, the VRRP worker's state
reports stand in (MASTER: its VIPs are here).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hafast.app.cmdline import Options
from hafast.app.ipc import CHECK, VRRP, encode, read_message
from hafast.app.process import (
    WorkerProcess,
    daemonize,
    enter_namespace,
    pid_running,
    write_pid_file,
)
from hafast.app.reloadq import ReloadQueue
from hafast.app.vipguard import VipGuard
from hafast.config import model as m
from hafast.lib.eventloop import new_loop
from hafast.lib.logging import setup as setup_logging
from hafast.lvs.keeper import PoolKeeper, make_backend
from hafast.net.addrwatch import AddressWatch

log = logging.getLogger("hafast")

RESTART_BACKOFF = (0.0, 0.2, 0.5, 1.0, 2.0, 5.0)  # after 0, 1, 2... quick deaths
QUICK_DEATH_S = 10.0  # a worker that lived longer resets the backoff
STARTUP_GRACE_S = 60.0  # longest a start or reload may hold a worker's loop
DEFAULT_STARTUP_S = 1.0  # a worker's start-up before one was measured


# --------------------------------------------------------------------------- parent


@dataclass
class WorkerHandle:
    role: str
    index: int
    proc: WorkerProcess | None = None
    writer: asyncio.StreamWriter | None = None
    pid: int = 0
    started: float = 0.0
    last_pong: float = 0.0
    restarts: int = 0
    quick_deaths: int = 0
    heartbeat_kills: int = 0
    last_ping: float = 0.0
    hung_proc: Any = None  # the process killed for not answering (no second verdict)
    # Seconds from spawn to "ready" at its last start (the VRRP worker's resume
    # decision needs it); None until measured.
    startup_s: float | None = None
    retiring: bool = False  # stopped by a reload that removed its side: no restart
    # Building an engine for tens of thousands of servers (start, reload) may hold
    # the worker's loop for seconds: no heartbeat verdict until then.
    grace_until: float = 0.0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    requests: dict[int, asyncio.Future[Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return VRRP if self.role == VRRP else f"{CHECK}{self.index}"

    def send(self, kind: str, payload: object = None) -> bool:
        if self.writer is None or self.writer.is_closing():
            return False
        try:
            self.writer.write(encode(kind, payload))
        except (ConnectionError, RuntimeError):
            return False
        return True


class Supervisor:
    """The parent; :meth:`run` until SIGTERM/SIGINT.  See the module docstring."""

    def __init__(self, options: Options, config: m.Config, *,
                 worker_argv: list[str] | None = None) -> None:
        self.options = options
        self.config = config
        self.loop = asyncio.get_event_loop()
        self.workers: list[WorkerHandle] = []
        self.vrrp_states: dict[str, tuple[str, int]] = {}
        self.pools: PoolKeeper | None = None
        self.addr_watch: AddressWatch | None = None
        self.stopping = False
        self.stopped = asyncio.Event()
        self.reloads_q: ReloadQueue[m.Config] = ReloadQueue(self._load_for_reload,
                                                            self._apply_reload)
        self.vip_guard = VipGuard(config)
        self.started_at = time.time()
        self._seq = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._worker_argv = worker_argv or [sys.executable, "-m", "hafast.app.worker"]
        self.control: Any = None
        self.metrics: Any = None

    # -- what runs ------------------------------------------------------------------

    def wants_vrrp(self) -> bool:
        return not self.options.check_only and bool(self.config.vrrp_instances)

    def wants_checks(self) -> bool:
        return not self.options.vrrp_only and bool(self.config.virtual_servers)

    def check_worker_count(self) -> int:
        n = self.options.check_workers or self.config.global_defs.check_workers \
            or os.cpu_count() or 1
        servers = sum(len(vs.real_servers) for vs in self.config.virtual_servers)
        return max(1, min(n, servers))

    # -- lifecycle --------------------------------------------------------------------

    async def run(self) -> int:
        loop = self.loop
        handlers: dict[int, Callable[[], None]] = {
            signal.SIGTERM: lambda: self.request_stop("SIGTERM"),
            signal.SIGHUP: lambda: self._spawn(self.reload()),
            signal.SIGUSR1: lambda: self._spawn(self.dump("data")),
            signal.SIGUSR2: lambda: self._spawn(self.dump("stats")),
            signal.SIGRTMIN + 2: lambda: self._spawn(self.dump("json")),
            signal.SIGRTMAX - 1: lambda: self._spawn(self.dump("stats", clear=True)),
        }
        handlers[signal.SIGINT] = lambda: self.request_stop("SIGINT")
        for sig, fn in handlers.items():
            loop.add_signal_handler(sig, fn)
        if self.wants_checks():
            await self._open_pools()
            for i in range(self.check_worker_count()):
                self.workers.append(WorkerHandle(CHECK, i))
        if self.wants_vrrp():
            self.workers.insert(0, WorkerHandle(VRRP, 0))
        for w in self.workers:
            await self._start_worker(w)
        from hafast.app.control import ControlServer

        self.control = ControlServer(self.options.control_path, self.handle_control)
        try:
            await self.control.start()
        except OSError as exc:
            log.warning("control socket %s: %s", self.options.control_path, exc)
        self._start_metrics()
        self._spawn(self._heartbeat())
        log.info("started: %s", ", ".join(f"{w.name}={w.pid}" for w in self.workers) or
                 "nothing configured to run")
        await self.stopped.wait()
        await self._shutdown()
        return 0

    def _keeper(self, backend: Any) -> PoolKeeper:
        watch = self.addr_watch
        return PoolKeeper(self.config, backend, keep=self.options.dont_release_ipvs,
                          vips_present=watch.addresses() if watch is not None else None,
                          child_wait=self.options.child_wait)

    async def _open_pools(self) -> None:
        """The pool backend and policy (at start, or when a reload brings the first
        virtual server)."""
        self._watch_addresses()
        kind = self.options.pool_backend
        if kind == "auto":
            kind = getattr(self.config.global_defs, "lvs_backend", None) or "auto"
        self.pools = self._keeper(make_backend(kind))
        try:
            await self.pools.open()
        except Exception as exc:
            if kind != "auto":
                self.pools = None
                raise
            # keepalived carries on without IPVS too; the checks still report.
            log.error("pool backend %s failed to open (%s); pools kept in memory",
                      self.pools.backend.name, exc)
            self.pools = self._keeper(make_backend("memory"))
            await self.pools.open()

    def _watch_addresses(self) -> bool:
        """Open the address watch when some virtual server has ha_suspend; True when
        it was opened just now."""
        if self.addr_watch is not None or not any(
                vs.ha_suspend for vs in self.config.virtual_servers):
            return False
        watch = AddressWatch(self.loop, self._address_changed)
        try:
            watch.open()
        except OSError as exc:
            log.warning("cannot watch addresses (%s); ha_suspend follows the VRRP "
                        "states instead", exc)
            return False
        self.addr_watch = watch
        return True

    def _address_changed(self, address: str, present: bool) -> None:
        if self.pools is not None:
            self.pools.set_vip(address, present)

    def _spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("internal task failed", exc_info=task.exception())

    def request_stop(self, why: str) -> None:
        if self.stopping:
            return
        if why == "SIGINT" and self.options.ignore_sigint:
            return
        log.info("received %s; stopping", why)
        self.stopping = True
        self.stopped.set()

    async def _shutdown(self) -> None:
        # VRRP first: masters send priority 0 while the pools still serve.
        for role in (VRRP, CHECK):
            ws = [w for w in self.workers if w.role == role]
            for w in ws:
                w.send("stop")
            await asyncio.gather(*(self._wait_exit(w) for w in ws))
        if self.pools is not None:
            await self.pools.close()
        if self.addr_watch is not None:
            self.addr_watch.close()
        if self.metrics is not None:
            with contextlib.suppress(Exception):
                self.metrics.stop()
        if self.control is not None:
            await self.control.close()
        for t in list(self._tasks):
            t.cancel()
        log.info("stopped")

    async def _wait_exit(self, w: WorkerHandle) -> None:
        proc = w.proc
        if proc is None or proc.returncode is not None:
            return
        try:
            await asyncio.wait_for(proc.wait(), self.options.child_wait)
        except TimeoutError:
            log.warning("%s (pid %d) did not stop in %.0fs; killing it", w.name, w.pid,
                        self.options.child_wait)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    # -- workers ----------------------------------------------------------------------

    def _seed(self, w: WorkerHandle) -> Any:
        if w.role == VRRP:
            return {name: st for name, (st, _prio) in self.vrrp_states.items()}
        return self.pools.seed() if self.pools is not None else {}

    def _init_payload(self, w: WorkerHandle) -> dict[str, Any]:
        shards = sum(1 for x in self.workers if x.role == CHECK)
        return {"role": w.role, "shard": w.index, "shards": max(shards, 1),
                "config": self.config, "seed": self._seed(w), "log": self.options.log,
                "dont_release_vrrp": self.options.dont_release_vrrp,
                "resume": w.restarts > 0}

    async def _start_worker(self, w: WorkerHandle) -> None:
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            proc = await WorkerProcess.spawn(
                [*self._worker_argv, "--worker-fd", str(child_sock.fileno()),
                 "--parent-pid", str(os.getpid())], child_sock.fileno())
        finally:
            child_sock.close()
        reader, writer = await asyncio.open_unix_connection(sock=parent_sock)
        w.proc, w.writer, w.pid = proc, writer, proc.pid
        w.started = w.last_pong = time.monotonic()
        w.grace_until = w.started + STARTUP_GRACE_S
        w.ready = asyncio.Event()
        w.send("init", self._init_payload(w))
        self._write_pid(w)
        self._spawn(self._read_loop(w, reader))
        self._spawn(self._watch(w, proc))

    def _write_pid(self, w: WorkerHandle) -> None:
        path = None
        if w.role == VRRP:
            path = self.options.vrrp_pid_file
        elif w.index == 0:
            path = self.options.checkers_pid_file
        if path:
            write_pid_file(path, w.pid)

    async def _watch(self, w: WorkerHandle, proc: WorkerProcess) -> None:
        code = await proc.wait()
        if w.proc is not proc:
            return
        if w.writer is not None:
            w.writer.close()
        for fut in w.requests.values():
            if not fut.done():
                fut.set_result(None)
        w.requests.clear()
        if self.stopping or w.retiring:
            return
        how = f"signal {-code}" if code < 0 else f"status {code}"
        if self.options.dont_respawn:
            log.error("%s (pid %d) exited with %s; -R given, stopping", w.name, w.pid, how)
            if w.role == VRRP:
                # Nobody will advertise for its VIPs again.
                await self._release_vips(self._take_masters(), "no respawn (-R)")
            self.request_stop("worker exit")
            return
        now = time.monotonic()
        lived = now - w.started
        w.quick_deaths = w.quick_deaths + 1 if lived < QUICK_DEATH_S else 0
        delay = RESTART_BACKOFF[min(w.quick_deaths, len(RESTART_BACKOFF) - 1)]
        log.error("%s (pid %d) exited with %s; restarting%s", w.name, w.pid, how,
                  f" in {delay:.1f}s" if delay else "")
        deadline = None
        if w.role == VRRP:
            deadline = await self._vrrp_died(w, now, delay)
        if delay:
            await asyncio.sleep(delay)
        if self.stopping:
            return
        w.restarts += 1
        await self._start_worker(w)
        if deadline is not None:
            self._spawn(self._resume_or_release(w, w.proc, deadline))

    # -- never two masters (issue 12, items 1 and 2; see hafast.app.vipguard) ----------

    def _masters(self) -> list[str]:
        return [n for n, (st, _p) in self.vrrp_states.items() if st == "MASTER"]

    def _take_masters(self) -> list[str]:
        """Forget which instances were MASTER (synchronously, before any await: the
        death of the worker may be handled next, and must not resume them); their
        successor starts them afresh (BACKUP, with their notifications)."""
        masters = self._masters()
        for name in masters:
            prio = self.vrrp_states.pop(name)[1]
            # Pools under ha_suspend follow as they would a BACKUP.
            self._vips_moved({name: ("BACKUP", prio)})
        return masters

    async def _release_vips(self, masters: list[str], why: str) -> None:
        """Take the VIPs of ``masters`` off the interfaces, so that the peer may
        take over while no worker advertises for them."""
        if not masters:
            return
        try:
            removed = await self.vip_guard.release(masters)
        except Exception:
            log.exception("releasing the VIPs of %s failed", ", ".join(masters))
            return
        log.error("%s: released the VIPs of %s (%s) so that the peer can take over "
                  "(never two masters)", why, ", ".join(masters), " ".join(removed) or "none up")

    async def _vrrp_died(self, w: WorkerHandle, now: float, delay: float) -> float | None:
        """The VRRP worker is gone: keep its VIPs only if its successor can be
        advertising before a peer may take over.  Returns that deadline when the
        successor is to resume as MASTER, None otherwise."""
        if not self._masters():
            return None
        deadline = self.vip_guard.release_deadline(w.last_pong)
        startup = w.startup_s if w.startup_s is not None else DEFAULT_STARTUP_S
        # Half again the last start-up: a respawn under load is slower than the first.
        if self.vip_guard.can_resume(now, w.last_pong, delay, 1.5 * startup):
            return deadline
        await self._release_vips(self._take_masters(), f"the VRRP worker cannot be back within "
                                 f"{deadline - w.last_pong:.2f}s (restart in {delay:.1f}s, "
                                 f"start-up {startup:.2f}s)")
        return None

    async def _resume_or_release(self, w: WorkerHandle, proc: WorkerProcess | None,
                                 deadline: float) -> None:
        """A successor seeded as MASTER must be advertising by ``deadline``."""
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        if self.stopping or w.proc is not proc or proc is None or w.ready.is_set():
            return
        if proc.returncode is None:
            log.error("%s (pid %d) was not advertising by its predecessor's release "
                      "deadline; killing it", w.name, w.pid)
            w.hung_proc = proc
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        await self._release_vips(self._take_masters(), "the VRRP worker did not resume in time")

    async def _read_loop(self, w: WorkerHandle, reader: asyncio.StreamReader) -> None:
        while True:
            msg = await read_message(reader)
            if msg is None:
                return
            kind, payload = msg
            try:
                await self._on_message(w, kind, payload)
            except Exception:
                log.exception("%s: handling %s failed", w.name, kind)

    async def _on_message(self, w: WorkerHandle, kind: str, payload: Any) -> None:
        # Whatever it says, a worker that says it has a running loop.
        w.last_pong = time.monotonic()
        if kind == "pong":
            w.grace_until = 0.0
        elif kind == "ready":
            w.ready.set()
            w.startup_s = w.last_pong - w.started
            w.grace_until = 0.0
        elif kind == "events":
            if self.pools is not None:
                await self.pools.on_events(payload)
        elif kind == "vrrp":
            self.vrrp_states.update(payload)
            self._vips_moved(payload)
        elif kind == "status":
            req, data = payload
            fut = w.requests.pop(req, None)
            if fut is not None and not fut.done():
                fut.set_result(data)

    def heartbeat_of(self, w: WorkerHandle) -> tuple[float, float]:
        """(ping period, verdict timeout) of ``w``: the VRRP worker's follow its
        advert interval (a hung master must lose its VIPs before a peer can take
        over, :mod:`hafast.app.vipguard`); the check workers' are the options'."""
        interval, timeout = self.options.heartbeat_interval, self.options.heartbeat_timeout
        if w.role != VRRP:
            return interval, timeout
        period, limit = self.vip_guard.heartbeat()
        return min(interval, period), min(timeout, limit)

    async def _heartbeat(self) -> None:
        """Ping every worker; one that stops answering is killed (and so restarted).

        A worker whose loop is stuck (keepalived issue #2523: a checker frozen for a
        day with no log) cannot answer, whatever it is doing.  A hung VRRP worker
        also loses its VIPs at once (it cannot be advertising for them).
        """
        seq = 0
        tick = time.monotonic()
        while not self.stopping:
            beats = [self.heartbeat_of(w) for w in self.workers] or [
                (self.options.heartbeat_interval, self.options.heartbeat_timeout)]
            step = min(p for p, _t in beats)
            await asyncio.sleep(step)
            seq += 1
            now = time.monotonic()
            if now - tick > step + min(t for _p, t in beats) / 2:
                # We stalled ourselves (an overloaded box): the workers' pongs sat
                # unread, so judge nobody this round.
                log.warning("the parent's loop stalled %.2fs; heartbeat verdicts skipped",
                            now - tick - step)
                for w in self.workers:
                    w.last_pong = max(w.last_pong, now)
            tick = now
            for w in list(self.workers):
                if w.proc is None or w.proc.returncode is not None or w.hung_proc is w.proc:
                    continue
                period, timeout = self.heartbeat_of(w)
                if now - w.last_pong > timeout and now > w.grace_until:
                    self._hung(w, now)
                    continue
                if now - w.last_ping >= period * 0.999:
                    w.last_ping = now
                    w.send("ping", seq)

    def _hung(self, w: WorkerHandle, now: float) -> None:
        log.error("%s (pid %d) has not answered the heartbeat for %.2fs; "
                  "killing and restarting it", w.name, w.pid, now - w.last_pong)
        w.heartbeat_kills += 1
        assert w.proc is not None
        w.hung_proc = w.proc
        with contextlib.suppress(ProcessLookupError):
            w.proc.kill()
        if w.role == VRRP:
            # Released now, not when the death is noticed: the seconds count.
            self._spawn(self._release_vips(self._take_masters(), f"{w.name} hung"))

    def _vips_moved(self, states: dict[str, tuple[str, int]]) -> None:
        """ha_suspend without the address watch: a MASTER's VIPs are here."""
        if self.pools is None or self.addr_watch is not None:
            return
        by_name = {i.name: i for i in self.config.vrrp_instances}
        for name, (state, _prio) in states.items():
            inst = by_name.get(name)
            if inst is None:
                continue
            for v in inst.virtual_ipaddress + inst.virtual_ipaddress_excluded:
                self.pools.manager.set_vip(v.address, state == "MASTER")

    # -- reload -------------------------------------------------------------------------

    async def reload(self) -> bool:
        """SIGHUP: load, validate, diff, apply.  A broken file changes nothing.

        Reloads go through one :class:`~hafast.app.reloadq.ReloadQueue`: they never
        overlap, and the file applied last is the newest one (issue 12, item 3)."""
        return await self.reloads_q.request()

    async def _load_for_reload(self) -> m.Config | None:
        from hafast.config.loader import load_file

        log.info("reloading %s", self.options.config_file)
        res = await self.loop.run_in_executor(
            None, lambda: load_file(self.options.config_file, config_id=self.options.config_id))
        for d in res.warnings:
            log.warning("%s", d.format())
        if res.errors or not res.files:
            for d in res.errors:
                log.error("%s", d.format())
            log.error("reload rejected: %d error(s); the running configuration stays",
                      len(res.errors))
            return None
        return res.config

    async def _apply_reload(self, new: m.Config) -> None:
        from hafast.config.diff import diff

        plan = diff(self.config, new)
        log.info("reload plan: %s", plan.summary())
        self.config = new
        self.vip_guard.configure(new)
        fresh = await self._reload_checks(new)
        fresh |= await self._reload_vrrp()
        for w in self.workers:
            if id(w) in fresh:
                continue
            if w.role == CHECK:
                # Not the VRRP worker: a reload that held its loop that long would
                # have stopped its adverts, and its VIPs must go then (vipguard).
                w.grace_until = time.monotonic() + STARTUP_GRACE_S
            w.send("reload", {"config": new, "seed": self._seed(w)})

    async def _reload_checks(self, new: m.Config) -> set[int]:
        """The pool side of a reload; returns the handles started just now (they
        got ``new`` with their init)."""
        if not self.wants_checks():
            if self.pools is not None:
                log.info("reload: no virtual server left; stopping the check workers")
                await self._retire([w for w in self.workers if w.role == CHECK])
                # As on SIGTERM: omega notifiers, our services removed (unless -I).
                await self.pools.close()
                self.pools = None
            if self.addr_watch is not None:
                self.addr_watch.close()
                self.addr_watch = None
            return set()
        if self.pools is None:
            log.info("reload: the first virtual server; starting the check workers")
            try:
                await self._open_pools()
            except Exception as exc:
                log.error("reload: the pools cannot open (%s); no check workers until "
                          "the next reload", exc)
                return set()
            ws = [WorkerHandle(CHECK, i) for i in range(self.check_worker_count())]
            self.workers.extend(ws)
            for w in ws:
                await self._start_worker(w)
            return {id(w) for w in ws}
        # A watch opened just now (the first ha_suspend): every suspension is
        # computed afresh from what is here; otherwise set_vip kept them current.
        opened = self._watch_addresses()
        present = self.addr_watch.addresses() if opened and self.addr_watch else None
        await self.pools.reload(new, present)
        return set()

    async def _reload_vrrp(self) -> set[int]:
        current = [w for w in self.workers if w.role == VRRP]
        if self.wants_vrrp() and not current:
            log.info("reload: the first vrrp_instance; starting the VRRP worker")
            w = WorkerHandle(VRRP, 0)
            self.workers.insert(0, w)
            await self._start_worker(w)
            return {id(w)}
        if current and not self.wants_vrrp():
            log.info("reload: no vrrp_instance left; stopping the VRRP worker")
            # As on SIGTERM: priority 0, VIPs released, notify STOP.
            await self._retire(current)
            self.vrrp_states.clear()
        return set()

    async def _retire(self, ws: list[WorkerHandle]) -> None:
        """Stop workers a reload no longer needs, as SIGTERM would, and forget them."""
        for w in ws:
            w.retiring = True
            w.send("stop")
        await asyncio.gather(*(self._wait_exit(w) for w in ws))
        for w in ws:
            if w in self.workers:
                self.workers.remove(w)
            path = self.options.vrrp_pid_file if w.role == VRRP else (
                self.options.checkers_pid_file if w.index == 0 else None)
            if path:
                with contextlib.suppress(OSError):
                    os.unlink(path)

    # -- status -------------------------------------------------------------------------

    async def worker_status(self, w: WorkerHandle, timeout: float = 2.0) -> Any:
        period, _limit = self.heartbeat_of(w)
        if time.monotonic() - w.last_pong > 2 * period + 0.25:
            # Late on its heartbeat (hung, or building a large engine): it would not
            # answer this either, and `hafast status` must not wait for it.
            return None
        self._seq += 1
        fut: asyncio.Future[Any] = self.loop.create_future()
        w.requests[self._seq] = fut
        if not w.send("status", self._seq):
            w.requests.pop(self._seq, None)
            return None
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            w.requests.pop(self._seq, None)
            return None

    async def status(self) -> dict[str, Any]:
        """Everything `hafast status`, the dumps and /metrics show, in one dict."""
        # A reload may start or stop workers while the replies are awaited.
        current = list(self.workers)
        replies = await asyncio.gather(*(self.worker_status(w) for w in current))
        workers = []
        vrrp: list[Any] = []
        checks: list[Any] = []
        for w, data in zip(current, replies, strict=True):
            workers.append({"name": w.name, "pid": w.pid, "restarts": w.restarts,
                            "heartbeat_kills": w.heartbeat_kills, "answering": data is not None,
                            "last_pong_age": round(time.monotonic() - w.last_pong, 3)})
            if data is None:
                continue
            if w.role == VRRP:
                vrrp.extend(data.get("instances", ()))
            else:
                checks.append(data)
        return {"pid": os.getpid(), "config": self.options.config_file,
                "uptime": round(time.time() - self.started_at, 3),
                "reloads": self.reloads_q.applied, "reload_errors": self.reloads_q.rejected,
                "reload": self.reloads_q.status(), "vip_releases": self.vip_guard.released,
                "workers": workers,
                "vrrp": vrrp, "checkers": checks,
                "pools": self.pools.status() if self.pools is not None else None}

    async def handle_control(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd", "status")
        if cmd == "status":
            return await self.status()
        if cmd == "reload":
            return {"ok": await self.reload()}
        if cmd in ("data", "stats", "json"):
            return {"file": await self.dump(cmd)}
        if cmd == "stats_clear":
            return {"file": await self.dump("stats", clear=True)}
        return {"error": f"unknown command {cmd!r}"}

    async def dump(self, what: str, *, clear: bool = False) -> str:
        """Write the ``what`` dump; ``clear`` (keepalived's STATS_CLEAR) then zeroes
        the VRRP counters."""
        from hafast.status import dump

        st = await self.status()
        if clear:
            for w in self.workers:
                if w.role == VRRP:
                    w.send("clear_stats")
        path = dump.path_for(self.options.dump_prefix, what, self.options.namespace)
        try:
            await self.loop.run_in_executor(None, dump.WRITERS[what], path, st, self.config)
            log.info("wrote %s", path)
        except OSError as exc:
            log.warning("cannot write %s: %s", path, exc)
        return path

    def _start_metrics(self) -> None:
        listen = self.options.metrics or getattr(self.config.global_defs, "metrics_listen", None)
        if not listen:
            return
        from hafast.status.metrics import MetricsServer

        def snapshot() -> dict[str, Any]:
            fut = asyncio.run_coroutine_threadsafe(self.status(), self.loop)
            result: dict[str, Any] = fut.result(timeout=5)
            return result

        try:
            self.metrics = MetricsServer(listen, snapshot)
            self.metrics.start()
            log.info("metrics on http://%s/metrics", listen)
        except (OSError, ValueError) as exc:
            log.error("metrics endpoint %s: %s", listen, exc)


def run_daemon(options: Options, *, worker_argv: list[str] | None = None) -> int:
    """The daemon: load the configuration, run the parent until stopped.

    Exit codes: 0 stopped normally, 3 the configuration cannot be read or has errors,
    1 another instance holds the pid file.
    """
    from hafast.config.loader import load_file

    if options.namespace:
        enter_namespace(options.namespace)
    setup_logging(options.log, "parent")
    res = load_file(options.config_file, config_id=options.config_id)
    for d in res.warnings:
        log.warning("%s", d.format())
    if res.errors or not res.files:
        for d in res.errors:
            log.error("%s", d.format())
        log.error("configuration %s unusable; not starting", options.config_file)
        return 3
    if pid_running(options.pid_file):
        log.error("daemon already running (pid file %s)", options.pid_file)
        return 1
    if not options.dont_fork:
        daemonize()
        setup_logging(options.log, "parent")
    write_pid_file(options.pid_file, os.getpid())
    loop = new_loop()
    asyncio.set_event_loop(loop)
    try:
        sup = Supervisor(options, res.config, worker_argv=worker_argv)
        return loop.run_until_complete(sup.run())
    except Exception:
        # The workers follow (parent-death signal); say why before going.
        log.exception("hafast stopped on an error")
        return 1
    finally:
        loop.close()
        for path in (options.pid_file, options.vrrp_pid_file, options.checkers_pid_file):
            with contextlib.suppress(OSError):
                os.unlink(path)
