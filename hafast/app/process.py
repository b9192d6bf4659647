"""Processes: a worker's life (parent-death signal, namespace, pidfd watch), the
parent's handle on each worker (:class:`WorkerHandle`), pid files and daemonising.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
from dataclasses import dataclass, field
from typing import Any

from hafast.app.ipc import CHECK, VRRP, encode
from hafast.lib.notify import ExitWatch
from hafast.vrrp.view import vrrp_view

log = logging.getLogger("hafast")


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


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


NETNS_DIR = "/run/netns"  # where `ip netns add NAME` bind-mounts the namespaces


def enter_namespace(name: str) -> None:
    """keepalived -s NAME / net_namespace NAME: run inside /run/netns/NAME (before any
    socket is made; :mod:`hafast.app.netns`).  Python 3.11 has no ``os.setns``."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fd = os.open(f"{NETNS_DIR}/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
            err = ctypes.get_errno()
            raise OSError(err, f"setns {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


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
            # Reaped the way every script is; only the start differs (see spawn).
            ExitWatch(loop, self.popen, self._settle)
        except OSError:  # already reaped elsewhere, or no pidfd: poll instead
            loop.create_task(self._poll())

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


def write_pid_file(path: str, pid: int) -> None:
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        # keepalived's pidfile.c: 0644 whatever umask we were started with (a 0 umask
        # would let anyone rewrite the pid a stop script kills), and no symlink
        # followed (a planted link would have root truncate its target).
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o644)
        with os.fdopen(fd, "w") as f:
            os.fchmod(fd, os.fstat(fd).st_mode & 0o644)
            f.write(f"{pid}\n")
    except OSError as exc:
        log.warning("cannot write pid file %s: %s", path, exc)


def daemonize() -> None:
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


def pid_running(path: str) -> bool:
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


STARTUP_GRACE_S = 60.0  # longest a start or reload may hold a worker's loop
# A check worker killed before it was ready gets twice the time at its next start,
# up to this: on a box so loaded that a start takes longer than the grace, killing it
# each time would throw the start's work away for ever (seen in the emulated IPVS VM).
STARTUP_GRACE_MAX_S = 600.0


@dataclass
class WorkerHandle:
    role: str
    index: int
    shards: int = 1  # how many check workers share the real servers (CHECK only)
    proc: WorkerProcess | None = None
    writer: asyncio.StreamWriter | None = None
    pid: int = 0
    started: float = 0.0
    last_pong: float = 0.0
    # a VRRP worker's masters: when each last advertised, from its latest pong
    last_adverts: dict[str, float] = field(default_factory=dict)
    restarts: int = 0
    quick_deaths: int = 0
    heartbeat_kills: int = 0
    # a VRRP successor killed for not advertising by its predecessor's release
    # deadline (Supervisor._resume_or_release): a restart the worker did not ask for
    deadline_kills: int = 0
    last_ping: float = 0.0
    hung_proc: Any = None  # the process killed for not answering (no second verdict)
    # Seconds from spawn to "ready" at its last start (the VRRP worker's resume
    # decision needs it); None until measured.
    startup_s: float | None = None
    # ... and its last start as a fresh process, not a spare's (hafast.app.spare)
    fresh_startup_s: float | None = None
    from_spare: bool = False  # this start took the spare
    retiring: bool = False  # stopped by a reload that removed its side: no restart
    # Building an engine for tens of thousands of servers (start, reload) may hold
    # the worker's loop for seconds: no heartbeat verdict until then.
    grace_until: float = 0.0
    start_grace_s: float = STARTUP_GRACE_S  # the grace of its next start
    # The heartbeat's last ping, and the ping a grace began after: a pong to that
    # ping or an earlier one may have been sent before the worker took the reload
    # (it sat in the pipe while the parent was parsing), so only a later one ends it.
    ping_seq: int = 0
    grace_from_seq: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    requests: dict[int, asyncio.Future[Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return VRRP if self.role == VRRP else f"{CHECK}{self.index}"

    def send(self, kind: str, payload: object = None) -> bool:
        if self.writer is None or self.writer.is_closing():
            return False
        if self.role == VRRP and kind in ("init", "reload") and isinstance(payload, dict):
            # Its start-up must fit the vipguard's budget: no real servers to pickle
            # and unpickle (hafast.vrrp.view), at start and at reload alike.
            payload = {**payload, "config": vrrp_view(payload["config"])}
        elif self.role == CHECK and kind in ("init", "reload") and isinstance(payload, dict):
            # Its shard's real servers only: the others are other workers' to
            # unpickle and hold.  (Imported here: the VRRP worker, which imports
            # this module, loads no check code.)
            from hafast.check.view import check_view, seed_view

            payload = {**payload,
                       "config": check_view(payload["config"], self.index, self.shards)}
            if isinstance(payload.get("seed"), dict):
                payload["seed"] = seed_view(payload["seed"], self.index, self.shards)
        try:
            self.writer.write(encode(kind, payload))
        except (ConnectionError, RuntimeError):
            return False
        return True
