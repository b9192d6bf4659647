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
import ctypes
import ctypes.util
import errno
import logging
import os
import pickle
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hafast._core.checkq import Latency
from hafast.config import model as m
from hafast.core.cmdline import Options
from hafast.core.eventloop import new_loop
from hafast.core.logging import LogOptions
from hafast.core.logging import setup as setup_logging
from hafast.core.reloadq import ReloadQueue
from hafast.core.vipguard import VipGuard

log = logging.getLogger("hafast")

_HEADER = struct.Struct("!I")
MAX_MESSAGE = 256 * 1024 * 1024  # a Config of 37,000 real servers is a few MB
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
RESTART_BACKOFF = (0.0, 0.2, 0.5, 1.0, 2.0, 5.0)  # after 0, 1, 2... quick deaths
QUICK_DEATH_S = 10.0  # a worker that lived longer resets the backoff
STARTUP_GRACE_S = 60.0  # longest a start or reload may hold a worker's loop
DEFAULT_STARTUP_S = 1.0  # a worker's start-up before one was measured

VRRP = "vrrp"
CHECK = "check"


# --------------------------------------------------------------------------- wire


def encode(kind: str, payload: object = None) -> bytes:
    """One message on the parent<->worker pipe.

    >>> decode_body(encode("ping", 3)[4:])
    ('ping', 3)
    """
    body = pickle.dumps((kind, payload), protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


def decode_body(body: bytes) -> tuple[str, Any]:
    kind, payload = pickle.loads(body)
    return str(kind), payload


async def read_message(reader: asyncio.StreamReader) -> tuple[str, Any] | None:
    """The next message, or None at end of stream."""
    try:
        head = await reader.readexactly(_HEADER.size)
        (n,) = _HEADER.unpack(head)
        if n > MAX_MESSAGE:
            raise ValueError(f"message of {n} bytes")
        return decode_body(await reader.readexactly(n))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None




def die_with_parent(parent_pid: int) -> bool:
    """keepalived's children die with their parent; so do ours (they then stop
    cleanly on SIGTERM: priority-0 adverts, VIPs released).

    Done by the worker itself once it runs, not in a ``preexec_fn``: code between
    fork and exec in a parent that has threads (the nft backend's, the metrics
    server's) can deadlock on a lock another thread held, and the spawn then blocks
    the parent's loop.  Returns False when the parent is already gone.
    """
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    # The parent may have died before prctl: then no signal will ever come.
    return os.getppid() == parent_pid


def enter_namespace(name: str) -> None:
    """keepalived -s NAME: run inside /run/netns/NAME (before any socket is made)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
            err = ctypes.get_errno()
            raise OSError(err, f"setns {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- addresses

NETLINK_ROUTE = 0  # linux/netlink.h
RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR = 0x10, 0x100  # linux/rtnetlink.h
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
IFA_ADDRESS, IFA_LOCAL = 1, 2  # linux/if_addr.h
_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, ifindex
_RTATTR = struct.Struct("=HH")  # length, type
_ADDR_LEN = {socket.AF_INET: 4, socket.AF_INET6: 16}


def parse_addr_messages(data: bytes) -> Iterator[tuple[int, str, int]]:
    """``(message type, address, ifindex)`` of each RTNL address message in ``data``.

    The address is IFA_LOCAL when present (on a point-to-point link IFA_ADDRESS is
    the peer's), else IFA_ADDRESS.  NLMSG_DONE and NLMSG_ERROR come out as
    ``(type, "", 0)`` so a dump knows where it ends.

    >>> body = _IFADDRMSG.pack(socket.AF_INET, 24, 0, 0, 3) + _RTATTR.pack(8, IFA_LOCAL)
    >>> msg = _NLMSGHDR.pack(16 + len(body) + 4, RTM_NEWADDR, 0, 0, 0) + body + bytes([10, 0, 0, 1])
    >>> list(parse_addr_messages(msg))
    [(20, '10.0.0.1', 3)]
    """
    off = 0
    while off + _NLMSGHDR.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, off)
        if length < _NLMSGHDR.size or off + length > len(data):
            return
        body = off + _NLMSGHDR.size
        if kind in (NLMSG_DONE, NLMSG_ERROR):
            yield kind, "", 0
        elif kind in (RTM_NEWADDR, RTM_DELADDR) and length >= _NLMSGHDR.size + _IFADDRMSG.size:
            family, _plen, _fl, _scope, index = _IFADDRMSG.unpack_from(data, body)
            want = _ADDR_LEN.get(family)
            attrs: dict[int, bytes] = {}
            a = body + _IFADDRMSG.size
            end = off + length
            while a + _RTATTR.size <= end:
                alen, atype = _RTATTR.unpack_from(data, a)
                if alen < _RTATTR.size or a + alen > end:
                    break
                attrs[atype] = data[a + _RTATTR.size:a + alen]
                a += (alen + 3) & ~3  # NLA_ALIGN
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if want is not None and raw is not None and len(raw) == want:
                yield kind, socket.inet_ntop(family, raw), index
        off += (length + 3) & ~3  # NLMSG_ALIGN


def dump_addresses() -> set[tuple[str, int]]:
    """Every ``(address, ifindex)`` in this network namespace (an RTM_GETADDR dump)."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                       NETLINK_ROUTE) as s:
        s.settimeout(5.0)
        s.bind((0, 0))
        body = _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        s.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), RTM_GETADDR,
                              NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body)
        held: set[tuple[str, int]] = set()
        while True:
            data = s.recv(1 << 16)
            if not data:
                return held
            for kind, address, index in parse_addr_messages(data):
                if kind in (NLMSG_DONE, NLMSG_ERROR):
                    return held
                if kind == RTM_NEWADDR:
                    held.add((address, index))


class AddressWatch:
    """The addresses of this network namespace, kept current from RTNL events;
    ``on_change(address, present)`` when an address arrives on its first interface
    or leaves its last one (keepalived counts the same address on several
    interfaces likewise).

    Subscribed before the first dump, so nothing falls between the two; a socket
    that overflowed (ENOBUFS) is answered with a fresh dump.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 on_change: Callable[[str, bool], None]) -> None:
        self.loop = loop
        self.on_change = on_change
        self.held: set[tuple[str, int]] = set()
        self.resyncs = 0
        self._sock: socket.socket | None = None

    def open(self) -> None:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK
                          | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.bind((0, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
            self.held = dump_addresses()
        except OSError:
            s.close()
            raise
        self._sock = s
        self.loop.add_reader(s.fileno(), self._readable)

    def addresses(self) -> set[str]:
        return {a for a, _i in self.held}

    def _set(self, held: set[tuple[str, int]]) -> None:
        before, after = self.addresses(), {a for a, _i in held}
        self.held = held
        for address in sorted(after - before):
            self.on_change(address, True)
        for address in sorted(before - after):
            self.on_change(address, False)

    def _readable(self) -> None:
        held = set(self.held)
        lost = False
        while self._sock is not None:
            try:
                data = self._sock.recv(1 << 16)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    log.warning("address watch: %s", exc)
                    return
                lost = True
                continue
            for kind, address, index in parse_addr_messages(data):
                if kind == RTM_NEWADDR:
                    held.add((address, index))
                elif kind == RTM_DELADDR:
                    held.discard((address, index))
        if lost:
            # Events were dropped: once the queue is drained (nothing older than
            # the dump is left to apply), the kernel's own table is the truth.
            self.resyncs += 1
            try:
                held = dump_addresses()
            except OSError as exc:
                log.warning("address watch: dump failed: %s", exc)
        self._set(held)

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(Exception):
                self.loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None


# --------------------------------------------------------------------------- pools


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
                 vips_present: Iterable[str] | None = None, child_wait: float = 5.0) -> None:
        from hafast.lvs.manager import PoolManager

        self.backend = CountingBackend(backend)
        self.manager = PoolManager(config, self.backend, keep=keep, vips_present=vips_present,
                                   child_wait=child_wait)

    @property
    def policy(self) -> Any:
        return self.manager.policy

    async def open(self) -> None:
        # The configuration's initial health (alpha servers out): the workers'
        # engines start from the same, so their first events are real changes.
        await self.manager.start()

    async def on_events(self, events: Iterable[Any]) -> None:
        for ev in events:
            self.manager.on_event(ev)

    async def reload(self, config: m.Config, vips_present: Iterable[str] | None = None) -> None:
        await self.manager.reload(config, vips_present)

    def set_vip(self, address: str, present: bool) -> None:
        """ha_suspend: ``address`` arrived on this box or left it."""
        self.manager.set_vip(address, present)

    def seed(self) -> dict[tuple[Any, Any], tuple[bool, int]]:
        """Last known health of every real server, for a (re)started check worker."""
        return {(vk, rk): (r.alive, r.weight) for vk, st in self.policy.vss.items()
                for rk, r in st.rss.items()}

    async def close(self) -> None:
        await self.manager.stop()

    def status(self) -> dict[str, Any]:
        vss = []
        for st in self.policy.vss.values():
            rss = []
            # A suspended virtual server (ha_suspend) has nothing in the pool.
            dests = {} if st.suspended else self.policy.dests_of(st)
            for r in st.rss.values():
                d = dests.get((r.rs.address, r.dest_port))
                rss.append({"address": r.rs.address, "port": r.dest_port, "alive": r.alive,
                            "weight": r.weight, "pool_weight": None if d is None else d.weight})
            vss.append({"name": st.label, "quorum_up": st.quorum_up,
                        "suspended": st.suspended, "real_servers": rss})
        return {"backend": self.backend.name, "virtual_servers": vss,
                "changes": dict(self.backend.changes), "errors": self.manager.errors,
                "messages": getattr(self.backend.inner, "messages", 0)}


def make_backend(kind: str) -> Any:
    """The pool backend ``kind`` names; ``auto``: IPVS when the kernel has it, else
    nftables, else memory (with a warning: nothing reaches the kernel)."""
    from hafast.lvs.manager import make_backend as named

    order = {"auto": ("ipvs", "nft", "memory"), "ipvs": ("ipvs",), "nft": ("nft",),
             "memory": ("memory",)}[kind]
    for name in order:
        if name == "ipvs" and kind == "auto" and not os.path.exists("/proc/net/ip_vs"):
            continue
        if name == "nft" and kind == "auto" and not shutil.which("nft"):
            continue
        try:
            backend = named(name)
        except Exception as exc:
            log.warning("pool backend %s unavailable: %s", name, exc)
            continue
        if name == "memory" and kind == "auto":
            log.warning("no IPVS or nftables: pools are kept in memory only")
        return backend
    raise RuntimeError(f"pool backend {kind} unavailable")


# --------------------------------------------------------------------------- parent


class WorkerProcess:
    """A worker's process, watched through a pidfd on the loop.

    Started by :meth:`spawn` on a helper thread: under memory pressure fork() of a
    big parent can take seconds, and an event loop that spawns synchronously (as
    uvloop does) would stop answering heartbeats and control requests meanwhile.
    """

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.pid = popen.pid
        self._exited: asyncio.Future[int] | None = None

    @classmethod
    async def spawn(cls, argv: list[str], pass_fd: int) -> WorkerProcess:
        loop = asyncio.get_running_loop()

        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen(argv, pass_fds=(pass_fd,), stdin=subprocess.DEVNULL)

        proc = cls(await loop.run_in_executor(None, start))
        proc._watch(loop)
        return proc

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        self._exited = loop.create_future()
        try:
            fd = os.pidfd_open(self.pid)
        except OSError:  # already reaped elsewhere, or no pidfd: poll instead
            loop.create_task(self._poll())
            return

        def readable() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            self._settle(self.popen.wait())

        loop.add_reader(fd, readable)

    async def _poll(self) -> None:
        while self.popen.poll() is None:
            await asyncio.sleep(0.1)
        self._settle(self.popen.returncode)

    def _settle(self, code: int) -> None:
        if self._exited is not None and not self._exited.done():
            self._exited.set_result(code)

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def kill(self) -> None:
        if self.popen.returncode is None:
            self.popen.kill()

    async def wait(self) -> int:
        assert self._exited is not None
        return await asyncio.shield(self._exited)


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
        self._worker_argv = worker_argv or [sys.executable, "-m", "hafast.core.supervisor"]
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
        from hafast.core.control import ControlServer

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

    # -- never two masters (issue 12, items 1 and 2; see hafast.core.vipguard) ----------

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
        over, :mod:`hafast.core.vipguard`); the check workers' are the options'."""
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

        Reloads go through one :class:`~hafast.core.reloadq.ReloadQueue`: they never
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


def write_pid_file(path: str, pid: int) -> None:
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w") as f:
            f.write(f"{pid}\n")
    except OSError as exc:
        log.warning("cannot write pid file %s: %s", path, exc)


def _daemonize() -> None:
    """keepalived without -n: detach from the terminal (double fork, new session)."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    fd = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(fd, std)
    if fd > 2:
        os.close(fd)


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
    if _pid_running(options.pid_file):
        log.error("daemon already running (pid file %s)", options.pid_file)
        return 1
    if not options.dont_fork:
        _daemonize()
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


def _pid_running(path: str) -> bool:
    try:
        with open(path) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return False
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"hafast" in f.read()
    except OSError:
        return False


# --------------------------------------------------------------------------- workers


class LagMeter:
    """How late the loop runs a timer: the check engine's lag, reported as a metric."""

    def __init__(self, loop: asyncio.AbstractEventLoop, period: float = 0.25) -> None:
        self.loop, self.period = loop, period
        self.last = 0.0
        self.max = 0.0
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._due = self.loop.time() + self.period
        self._handle = self.loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        now = self.loop.time()
        self.last = max(0.0, now - self._due)
        self.max = max(self.max, self.last)
        self._due = now + self.period
        self._handle = self.loop.call_at(self._due, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def take(self) -> dict[str, float]:
        out = {"last": round(self.last, 6), "max": round(self.max, 6)}
        self.max = self.last
        return out


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def seed_engine(engine: Any, seed: dict[tuple[Any, Any], tuple[bool, int]]) -> int:
    """Start each check from the parent's last known health instead of alpha.

    A check feeding several healths (the engine dedupes) is up only when all of them
    were.  Returns how many healths were seeded.
    """
    checks_of: dict[int, list[Any]] = {}
    for check in engine.runner.checks:
        known = [seed[k] for h in check.healths
                 if (k := (h.virtual_server, h.real_server)) in seed]
        if known:
            check.state.up = all(up for up, _w in known)
        for h in check.healths:
            checks_of.setdefault(id(h), []).append(check)
    n = 0
    for key, h in engine.healths.items():
        if key not in seed:
            continue
        h.failing = sum(1 for c in checks_of.get(id(h), ()) if not c.state.up)
        h.up = not h.failing
        n += 1
    return n


class CheckSide:
    """A check worker's engine, rebuilt on reload, seeded from the parent."""

    def __init__(self, loop: asyncio.AbstractEventLoop, shard: int, shards: int,
                 publish: Callable[[list[Any]], None]) -> None:
        self.loop, self.shard, self.shards = loop, shard, shards
        self.publish = publish
        self.engine: Any = None
        self.pending: list[Any] = []
        self.latency = Latency(LATENCY_BUCKETS)
        self.lag = LagMeter(loop)
        self.events = 0
        self.counters: Counter[str] = Counter()

    def _on_event(self, ev: Any) -> None:
        self.events += 1
        if not self.pending:
            self.loop.call_soon(self._flush)
        self.pending.append(ev)

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        if batch:
            self.publish(batch)

    def build(self, config: m.Config, seed: dict[Any, Any]) -> None:
        from hafast.check.engine import Engine
        from hafast.check.runner import Runner

        # Every attempt is timed into the worker's latency histogram.
        runner = Runner(self.loop, None, latency=self.latency,
                        log_all_failures=config.global_defs.checker_log_all_failures)
        engine = Engine(config, self.loop, self._on_event, shard_index=self.shard,
                        shard_count=self.shards, runner=runner)
        seeded = seed_engine(engine, seed)
        old, self.engine = self.engine, engine
        if old is not None:
            self.counters.update(old.runner.counters)
            old.stop()
        engine.start()
        log.info("shard %d/%d: %d checks for %d real servers (%d seeded)", self.shard,
                 self.shards, engine.checks, len(engine.healths), seeded)

    def start(self, config: m.Config, seed: dict[Any, Any]) -> None:
        self.build(config, seed)
        self.lag.start()

    def reload(self, config: m.Config, seed: dict[Any, Any]) -> None:
        # The engine's own view is the freshest for the servers it checks.
        mine = {k: (h.up, h.weight) for k, h in self.engine.healths.items()}
        self._flush()
        self.build(config, {**seed, **mine})

    def stop(self) -> None:
        self.lag.stop()
        if self.engine is not None:
            self.engine.stop()
        self._flush()

    def status(self) -> dict[str, Any]:
        e = self.engine
        counters = Counter(self.counters)
        counters.update(e.runner.counters)
        up = sum(1 for h in e.healths.values() if h.up)
        return {"shard": self.shard, "shards": self.shards, "checks": e.checks,
                "real_servers": len(e.healths), "up": up, "down": len(e.healths) - up,
                "counters": dict(counters), "events": self.events,
                "latency": self.latency.as_dict(), "lag": self.lag.take(),
                "skipped": len(e.skipped)}


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
        self.vips = _resuming_vips(adopt=resume)
        self.worker = VrrpWorker(loop, config, vips=self.vips)
        self.worker.on_started = self._started_by_reload

    def _changed(self, inst: Any, before: Any, after: Any) -> None:
        self.publish({inst.name: (_state_word(after), inst.priority)})

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
        if was is not None and _state_word(inst.state) != was and notifier is not None:
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


def _state_word(state: Any) -> str:
    from hafast.vrrp.instance import STATE_WORDS

    word = STATE_WORDS.get(state)
    return "INIT" if word in (None, "STOP") else str(word)


# keepalived's vrrp_json.c state numbers.
KA_STATES = {"INIT": 0, "BACKUP": 1, "MASTER": 2, "FAULT": 3}


def _auth_type(inst: Any, cfg: m.VrrpInstance) -> int:
    """keepalived's ``auth_type`` number (vrrp_json.c: 0 none, 1 PASS, 2 AH) of what
    the instance speaks: its channel's, so VRRPv3 (RFC 5798 has no authentication)
    and AH over IPv6 say 0, as keepalived does after its own fix-ups."""
    from hafast.vrrp.from_config import channel_for

    wire = getattr(getattr(inst, "sender", None), "cfg", None)
    if wire is None:
        wire = channel_for(cfg, m.GlobalDefs())
    return int(wire.auth_type)


def instance_json(inst: Any, cfg: m.VrrpInstance | None,
                  sockets: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """One instance in keepalived's JSON shape: ``{"data": {...}, "stats": {...}}``,
    plus hafast's ``rejects`` (every reason this instance dropped an advert for,
    keepalived-named or not) and ``socket``: the view of the socket it receives on
    (drops by reason, kernel drops; :meth:`hafast.vrrp.transport.VrrpSocket.view`)
    from ``sockets``.  The parent passes each instance on as it is, so the socket's
    counters travel with its instances (the dumps and /metrics take each socket once).
    """
    p = inst.spec.params
    s = inst.machine.state
    word = _state_word(s.state)
    last = inst.transitions[-1][0] / 1e6 if inst.transitions else 0.0
    data: dict[str, Any] = {
        "iname": inst.name,
        "ifp_ifname": inst.spec.ifname,
        "vrid": cfg.virtual_router_id if cfg is not None else 0,
        "version": p.version,
        "base_priority": s.base_priority,
        "effective_priority": s.priority,
        "state": KA_STATES.get(word, 0),
        "wantstate": KA_STATES.get(word, 0),
        "adver_int": p.adver_int_us / 1e6,
        "master_adver_int": getattr(s, "master_adver_int_us", p.adver_int_us) / 1e6,
        "accept": int(bool(p.accept if p.accept is not None else not p.strict)),
        "nopreempt": int(p.nopreempt),
        "preempt_delay": p.preempt_delay_us / 1e6,
        "strict_mode": int(p.strict),
        "garp_delay": p.garp_master_delay_us / 1e6,
        "lower_prio_no_advert": int(p.lower_prio_no_advert),
        "higher_prio_send_advert": int(p.higher_prio_send_advert),
        "last_transition": last,
        "vips": [f"{v.address}/{v.prefix}" if getattr(v, "prefix", None) is not None
                 else v.address for v in inst.spec.vips],
        "evips": [v.address for v in inst.spec.excluded],
        "state_name": word,
    }
    if cfg is not None:
        data["auth_type"] = _auth_type(inst, cfg)
        data["track_script"] = [t.name for t in cfg.track_script]
    out: dict[str, Any] = {"data": data, "stats": dict(inst.counters),
                           "rejects": dict(inst.rejects)}
    sock = getattr(getattr(inst, "sender", None), "sock", None)
    if sockets is not None and sock is not None and sock.name in sockets:
        out["socket"] = sockets[sock.name]
    return out


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


def _resuming_vips(adopt: bool) -> ResumingVips:
    return ResumingVips(adopt)


async def _worker_main(fd: int) -> int:
    loop = asyncio.get_running_loop()
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    msg = await read_message(reader)
    if msg is None or msg[0] != "init":
        return 2
    init = msg[1]
    role = init["role"]
    log_opts: LogOptions = init["log"]
    setup_logging(log_opts, role)

    def send(kind: str, payload: object = None) -> None:
        if not writer.is_closing():
            writer.write(encode(kind, payload))

    side: Any
    if role == VRRP:
        side = VrrpSide(loop, init["config"], init["seed"], init["resume"],
                        init["dont_release_vrrp"], lambda states: send("vrrp", states))
        side.start()
    else:
        side = CheckSide(loop, init["shard"], init["shards"], lambda ev: send("events", ev))
        side.start(init["config"], init["seed"])
    stop = loop.create_future()

    def finish() -> None:
        if not stop.done():
            stop.set_result(None)

    loop.add_signal_handler(signal.SIGTERM, finish)
    # The parent decides about these; a terminal's Ctrl-C reaches the whole group.
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    send("ready", os.getpid())

    async def serve() -> None:
        while True:
            got = await read_message(reader)
            if got is None:
                finish()  # the parent is gone
                return
            kind, payload = got
            if kind == "ping":
                send("pong", payload)
            elif kind == "status":
                try:
                    data = side.status()
                except Exception:
                    log.exception("status failed")
                    data = None
                send("status", (payload, data))
            elif kind == "reload":
                try:
                    if role == VRRP:
                        side.reload(payload["config"])
                    else:
                        side.reload(payload["config"], payload["seed"])
                except Exception:
                    log.exception("reload failed")
            elif kind == "clear_stats" and role == VRRP:
                for inst in side.worker.instances:
                    for name in inst.counters:
                        inst.counters[name] = 0
            elif kind == "stop":
                finish()
                return

    server = loop.create_task(serve())
    await stop
    server.cancel()
    side.stop()
    with contextlib.suppress(Exception):
        await writer.drain()
    # Let priority-0 adverts and notify_stop spawns leave the loop.
    await asyncio.sleep(0)
    writer.close()
    return 0


def worker_entry(argv: list[str]) -> int:
    """``python -m hafast.core.supervisor --worker-fd N``: what the parent starts."""
    fd = int(argv[argv.index("--worker-fd") + 1])
    if "--parent-pid" in argv and not die_with_parent(int(argv[argv.index("--parent-pid") + 1])):
        return 1
    loop = new_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_worker_main(fd))
    finally:
        loop.close()


if __name__ == "__main__":
    sys.exit(worker_entry(sys.argv[1:]))
