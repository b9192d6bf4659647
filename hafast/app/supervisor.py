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

Parent and worker talk over a socketpair (:mod:`hafast.app.ipc` lists the messages).

Reload (SIGHUP) is a diff: :mod:`hafast.app.reload`.

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
from collections.abc import Callable, Coroutine
from typing import Any

from hafast.app.cmdline import Options
from hafast.app.desk import StatusDesk
from hafast.app.ipc import CHECK, VRRP, read_message
from hafast.app.process import STARTUP_GRACE_MAX_S, WorkerHandle, WorkerProcess, write_pid_file
from hafast.app.reload import Reloader
from hafast.app.reloadq import ReloadQueue
from hafast.app.spare import SPARE_AFTER_S, Spare
from hafast.app.startstop import run_script
from hafast.app.vipguard import VipGuard
from hafast.config import model as m
from hafast.lib import gcfreeze, memtrim
from hafast.lib.procopts import set_name
from hafast.lvs.keeper import PoolKeeper, make_backend
from hafast.lvs.syncd import SyncDaemons
from hafast.net.addrwatch import AddressWatch

log = logging.getLogger("hafast")

RESTART_BACKOFF = (0.0, 0.2, 0.5, 1.0, 2.0, 5.0)  # after 0, 1, 2... quick deaths
QUICK_DEATH_S = 10.0  # a worker that lived longer resets the backoff
DEFAULT_STARTUP_S = 1.0  # a worker's start-up before one was measured


# --------------------------------------------------------------------------- parent


def _snmp_rfc(gd: m.GlobalDefs) -> tuple[bool, bool]:
    """(RFC 2787 VRRP-MIB, RFC 6527 VRRPv3-MIB) asked for: enable_snmp_rfc is both of
    enable_snmp_rfcv2 and enable_snmp_rfcv3, as in keepalived."""
    return (gd.enable_snmp_rfcv2 or gd.enable_snmp_rfc,
            gd.enable_snmp_rfcv3 or gd.enable_snmp_rfc)


class Supervisor:
    """The parent; :meth:`run` until SIGTERM/SIGINT.  See the module docstring."""

    def __init__(self, options: Options, config: m.Config, *,
                 worker_argv: list[str] | None = None) -> None:
        self.options = options
        self.config = config
        self.loop = asyncio.get_event_loop()
        self.workers: list[WorkerHandle] = []
        self.pools: PoolKeeper | None = None
        self.fleet: Any = None  # hafast.fleet.runner.Announcer, with announce blocks
        # check worker -> virtual servers whose first round it has reported (fleet)
        self.rounds_seen: dict[int, set[Any]] = {}
        self.addr_watch: AddressWatch | None = None
        self.stopping = False
        self.stopped = asyncio.Event()
        self.reloader = Reloader(self)
        self.reloads_q: ReloadQueue[m.Config] = ReloadQueue(self.reloader.load,
                                                            self.reloader.apply)
        self.vip_guard = VipGuard(config)
        # Each instance's last reported (state, priority): seeds a restarted worker.
        self.vrrp_states = self.vip_guard.states
        # lvs_sync_daemon: the kernel's connection sync follows the states reported here
        self.syncd = SyncDaemons(config, sides=lambda: (self.wants_vrrp(), self.wants_checks()))
        self.started_at = time.time()
        self._seq = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._worker_argv = worker_argv or [sys.executable, "-m", "hafast.app.worker"]
        # the VRRP worker's successor, started ahead (hafast.app.spare)
        self.vrrp_spare = Spare(self._worker_cmd)
        self.control: Any = None
        self.metrics: Any = None
        self.snmp: Any = None
        self.desk = StatusDesk(self)

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
            signal.SIGUSR1: lambda: self._spawn(self.desk.dump("data")),
            signal.SIGUSR2: lambda: self._spawn(self.desk.dump("stats")),
            signal.SIGRTMIN + 2: lambda: self._spawn(self.desk.dump("json")),
            signal.SIGRTMAX - 1: lambda: self._spawn(self.desk.dump("stats", clear=True)),
        }
        handlers[signal.SIGINT] = lambda: self.request_stop("SIGINT")
        for sig, fn in handlers.items():
            loop.add_signal_handler(sig, fn)
        set_name(self.config.global_defs.process_name)  # keepalived's process_name
        gd = self.config.global_defs
        if gd.startup_script is not None:
            # keepalived starts nothing before its startup script has ended
            await run_script(gd.startup_script, gd, "startup", gd.startup_script_timeout)
        if self.wants_checks():
            await self._open_pools()
            n = self.check_worker_count()
            self.workers.extend(WorkerHandle(CHECK, i, shards=n) for i in range(n))
        if self.wants_vrrp():
            self.workers.insert(0, WorkerHandle(VRRP, 0))
            await self.vip_guard.prepare()
        await self.syncd.open(self.vrrp_states)
        if self._start_snmp():
            # the traps of the instances' first transitions need the session open
            await self.snmp.first_try()
        for w in self.workers:
            await self._start_worker(w)
        self._open_fleet()
        from hafast.app.control import ControlServer

        self.control = ControlServer(self.options.control_path, self.desk.handle_control)
        try:
            await self.control.start()
        except OSError as exc:
            log.warning("control socket %s: %s", self.options.control_path, exc)
        self.desk.start_metrics()
        self._spawn(self._heartbeat())
        gcfreeze.settle()  # the model and the pools, out of the collector's walks
        memtrim.trim()  # the load's and the first sync's buffers (hafast.lib.memtrim)
        log.info("started: %s", ", ".join(f"{w.name}={w.pid}" for w in self.workers) or
                 "nothing configured to run")
        await self.stopped.wait()
        await self._shutdown()
        return 0

    def _start_snmp(self) -> bool:
        # Read once at start: a reload that turns SNMP on or moves the socket needs a
        # restart (the rows themselves follow each reload's config).
        gd = self.config.global_defs
        rfcv2, rfcv3 = _snmp_rfc(gd)
        if not (gd.enable_snmp_vrrp or gd.enable_snmp_checker or rfcv2 or rfcv3):
            return False
        from hafast.status.snmp import SnmpAgent

        try:
            self.snmp = SnmpAgent(gd.snmp_socket, self.desk.status, lambda: self.config,
                                  keepalived_mib=gd.enable_snmp_vrrp, rfcv2_mib=rfcv2,
                                  rfcv3_mib=rfcv3, checker_mib=gd.enable_snmp_checker,
                                  ipvs_counters=self._ipvs_counters)
        except ValueError as exc:
            log.error("%s", exc)
            return False
        self.snmp.start()
        if gd.enable_snmp_checker:
            self._listen_pools()
        return True

    async def _ipvs_counters(self) -> Any:
        # the checker MIB's statistics, from the pools of the moment (a reload may have
        # made new ones); None, served as zeros, without pools
        return await self.pools.counters() if self.pools is not None else None

    def _listen_pools(self) -> None:
        # the checker traps follow the pool keeper's notifies (enable_traps read per
        # batch, so a reload can turn them on or off)
        if self.pools is not None and self.snmp is not None and self.snmp.checker_mib:
            snmp = self.snmp
            self.pools.listener = lambda done, policy: snmp.pool_transitions(
                done, policy, self.config.global_defs.enable_traps)

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
        self._listen_pools()
        try:
            await self.pools.open()
        except Exception:
            # Also under auto: memory would serve virtual servers no packet follows
            # (lvs_backend memory asks for that by name).
            self.pools = None
            raise

    def _open_fleet(self) -> None:
        """Fleet mode (docs/fleet.md): announce each virtual server's VIP while the
        pools say its quorum is up; the round of checks counts from here, once the
        check workers run."""
        if self.pools is None or not any(vs.announce for vs in self.config.virtual_servers):
            return
        from hafast.fleet.kernel import KernelRoutes
        from hafast.fleet.runner import Announcer

        shards = sum(w.role == CHECK for w in self.workers)
        self.fleet = Announcer(self.loop, KernelRoutes(), shards=max(shards, 1))
        self.fleet.start(self.config, self.pools.policy.quorum)
        # a worker whose first round ended while the announcer was not there yet
        for shard, keys in self.rounds_seen.items():
            self.fleet.rounds_done(shard, list(keys))

    def reload_fleet(self) -> None:
        """After the pools reloaded (hafast.app.reload): the announcements as a diff."""
        wanted = self.pools is not None and any(vs.announce for vs in self.config.virtual_servers)
        if self.fleet is None:
            self._open_fleet()
        elif not wanted:
            self.fleet.reload(self.config, lambda key: False)  # withdraws them all
            self.fleet.stop()
            self.fleet = None
            self.rounds_seen.clear()
        elif self.pools is not None:
            self.fleet.reload(self.config, self.pools.policy.quorum)

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
        if self.fleet is not None:
            # as VRRP's priority 0: the routers move the flows while the pools serve;
            # drain_method/shutdown_drain_time (docs/fleet.md) keep serving a while;
            # then the FRR daemons hafast runs (frr_control run) stop too
            await self.fleet.close()
        # VRRP first: masters send priority 0 while the pools still serve.
        for role in (VRRP, CHECK):
            ws = [w for w in self.workers if w.role == role]
            for w in ws:
                w.send("stop")
            await asyncio.gather(*(self._wait_exit(w) for w in ws))
        await self.vrrp_spare.close()
        await self.syncd.close()
        if self.pools is not None:
            await self.pools.close()
        if self.addr_watch is not None:
            self.addr_watch.close()
        self.vip_guard.close()
        if self.metrics is not None:
            with contextlib.suppress(Exception):
                self.metrics.stop()
        if self.snmp is not None:
            await self.snmp.close()
        if self.control is not None:
            await self.control.close()
        for t in list(self._tasks):
            t.cancel()
        gd = self.config.global_defs
        if gd.shutdown_script is not None:
            # keepalived's runs once every child has gone; the last reload's script
            await run_script(gd.shutdown_script, gd, "shutdown", gd.shutdown_script_timeout)
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
        return {"role": w.role, "shard": w.index, "shards": w.shards,
                "config": self.config, "seed": self._seed(w), "log": self.options.log,
                "dont_release_vrrp": self.options.dont_release_vrrp,
                "resume": w.restarts > 0}

    def _worker_cmd(self, fd: int) -> list[str]:
        return [*self._worker_argv, "--worker-fd", str(fd), "--parent-pid", str(os.getpid())]

    async def _start_worker(self, w: WorkerHandle) -> None:
        spare = self.vrrp_spare.take() if w.role == VRRP and w.restarts else None
        if spare is not None:
            proc, parent_sock = spare
            log.info("%s: the spare worker (pid %d) takes over", w.name, proc.pid)
        else:
            parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                proc = await WorkerProcess.spawn(self._worker_cmd(child_sock.fileno()),
                                                 child_sock.fileno())
            finally:
                child_sock.close()
        w.from_spare = spare is not None
        reader, writer = await asyncio.open_unix_connection(sock=parent_sock)
        w.proc, w.writer, w.pid = proc, writer, proc.pid
        w.started = w.last_pong = time.monotonic()
        w.last_adverts = {}
        w.grace_until = w.started + w.start_grace_s
        w.grace_from_seq = w.ping_seq
        w.ready = asyncio.Event()
        w.send("init", self._init_payload(w))
        self._write_pid(w)
        self._spawn(self._read_loop(w, reader))
        self._spawn(self._watch(w, proc))
        if w.role == VRRP and self.options.vrrp_spare and not self.options.dont_respawn:
            self._spawn(self._refill_spare(w, proc))

    async def _refill_spare(self, w: WorkerHandle, proc: WorkerProcess) -> None:
        """A while after this VRRP worker is ready (a spare started beside it would
        slow its first moments), a spare stands behind it (hafast.app.spare)."""
        await w.ready.wait()
        await asyncio.sleep(SPARE_AFTER_S)
        if not self.stopping and w.proc is proc:
            await self.vrrp_spare.make()

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
                await self._release_masters("no respawn (-R)")
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

    async def _vrrp_died(self, w: WorkerHandle, now: float, delay: float) -> float | None:
        startup = w.startup_s if w.startup_s is not None else DEFAULT_STARTUP_S
        if self.vrrp_spare.pid is None:  # no spare to take: a fresh start, as the last
            startup = max(startup, w.fresh_startup_s or DEFAULT_STARTUP_S)
        # The first start raced the check workers' starts (all spawned at once), so
        # its time already carries the contention a lone respawn does not meet; only
        # a respawn's own time gets the margin.  Too hopeful costs little: a
        # successor not advertising by the deadline is killed and the VIPs released
        # then (_resume_or_release), still before any peer may take over.
        margin = 1.0 if w.restarts == 0 else 1.5
        return await self.vip_guard.on_death(w.last_pong, now, delay, startup, self._vips_moved,
                                             margin, w.last_adverts)

    def _release_masters(self, why: str) -> Coroutine[Any, Any, None]:
        return self.vip_guard.release_masters(self._vips_moved, why)

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
            w.deadline_kills += 1
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        await self._release_masters("the VRRP worker did not resume in time")

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
            seq = payload[0] if isinstance(payload, tuple) else payload
            if not isinstance(seq, int) or seq > w.grace_from_seq:
                w.grace_until = 0.0
            if w.role == VRRP and isinstance(payload, tuple):
                w.last_adverts = payload[1]
        elif kind == "ready":
            w.ready.set()
            w.startup_s = w.last_pong - w.started
            if not w.from_spare:
                w.fresh_startup_s = w.startup_s
            w.grace_until = 0.0
        elif kind == "events":
            if self.pools is not None:
                await self.pools.on_events(payload)
                if self.fleet is not None:
                    self.fleet.sync(self.pools.policy.quorum)
        elif kind == "rounds":
            # fleet mode: these announced virtual servers' first round is done there
            self.rounds_seen.setdefault(w.index, set()).update(payload)
            if self.fleet is not None:
                self.fleet.rounds_done(w.index, payload)
        elif kind == "vrrp":
            self.vrrp_states.update(payload)
            self._vips_moved(payload)
            if self.snmp is not None:
                gd = self.config.global_defs
                self.snmp.vrrp_states(payload, gd.enable_traps, *_snmp_rfc(gd))
        elif kind == "vrrp_rx_error":
            if self.snmp is not None:
                gd = self.config.global_defs
                self.snmp.rx_error(payload, gd.enable_traps, *_snmp_rfc(gd))
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
                    w.last_ping, w.ping_seq = now, seq
                    w.send("ping", seq)

    def _hung(self, w: WorkerHandle, now: float) -> None:
        log.error("%s (pid %d) has not answered the heartbeat for %.2fs; "
                  "killing and restarting it", w.name, w.pid, now - w.last_pong)
        w.heartbeat_kills += 1
        if w.role != VRRP and not w.ready.is_set():
            w.start_grace_s = min(w.start_grace_s * 2, STARTUP_GRACE_MAX_S)
            log.warning("%s had not finished starting: its next start may take %.0f s",
                        w.name, w.start_grace_s)
        assert w.proc is not None
        w.hung_proc = w.proc
        with contextlib.suppress(ProcessLookupError):
            w.proc.kill()
        if w.role == VRRP:
            # Released now, not when the death is noticed: the seconds count.
            self._spawn(self._release_masters(f"{w.name} hung"))

    def _vips_moved(self, states: dict[str, tuple[str, int]]) -> None:
        """ha_suspend without the address watch: a MASTER's VIPs are here.  The sync
        daemon follows its instance from here too."""
        self.syncd.follow(states)
        if self.pools is None or self.addr_watch is not None:
            return
        by_name = {i.name: i for i in self.config.vrrp_instances}
        for name, (state, _prio) in states.items():
            inst = by_name.get(name)
            if inst is None:
                continue
            for v in inst.virtual_ipaddress + inst.virtual_ipaddress_excluded:
                self.pools.manager.set_vip(v.address, state == "MASTER")

    # -- reload (hafast.app.reload) ------------------------------------------------------

    async def reload(self) -> bool:
        """SIGHUP: load, validate, diff, apply; see :mod:`hafast.app.reload`."""
        return await self.reloads_q.request()

    # -- status (hafast.app.desk) -------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        return await self.desk.status()
