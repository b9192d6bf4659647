"""The kernel's IPVS connection sync daemon, following a VRRP instance (keepalived's
``lvs_sync_daemon``), in the parent.

keepalived 2.2.7 (``vrrp.c``, ``vrrp_scheduler.c``, ``ipvswrapper.c``): the instance
named by ``lvs_sync_daemon`` runs the *master* daemon (it multicasts the connection
table) while MASTER and the *backup* daemon (it fills the table from the master's
messages) otherwise, from its first state on; becoming MASTER stops the backup daemon
and starts the master one, leaving MASTER the reverse; at stop the running one is
stopped.  Without an instance both daemons run for the daemon's life.  So a backup
director already holds the master's connections when it takes over, and established
flows keep going through it.

Here the parent does it, where the VRRP worker's state reports arrive (the same
reports ha_suspend follows), so a VRRP worker that dies and is restarted changes
nothing, and one whose masters the parent releases (``hafast.app.vipguard``) turns
the daemon to backup with them.  The netlink requests run on a thread of their own
(:class:`hafast.lvs.ipvs.BatchLink`, one request each), never on the loop; requests
are carried out one at a time and the last wanted state wins.

A request the kernel refuses (no such interface, IPVS missing) is logged and tried
again on the next state report; nothing else is affected.

Example (the pure part)::

    >>> from hafast.lvs.ipvs import SyncDaemon
    >>> d = SyncDaemon("master", "eth1", 51)
    >>> steps({"backup": d.with_state("backup")}, {"master": d})
    [('del', 'backup', 51), ('new', SyncDaemon(state='master', interface='eth1', syncid=51, \
maxlen=0, port=0, ttl=0, group=None))]
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hafast.config import model as m
from hafast.config.lvs_syncd import resolve
from hafast.lvs.backend import BackendError
from hafast.lvs.ipvs import BatchLink, SyncDaemon, modprobe_ip_vs

log = logging.getLogger("hafast")

Step = tuple[Any, ...]  # ("del", state, syncid) | ("new", SyncDaemon)


def wanted(settings: m.LvsSyncDaemon | None, state: str | None) -> dict[str, SyncDaemon]:
    """The daemons to run for ``settings`` while the instance is in ``state`` (a VRRP
    state word; None: not reported yet, which keepalived's start treats as BACKUP)."""
    if settings is None:
        return {}
    base = SyncDaemon("backup", settings.interface, settings.syncid or 0, settings.maxlen,
                      settings.port, settings.ttl, settings.group)
    if settings.instance is None:
        return {"master": base.with_state("master"), "backup": base}
    role = "master" if state == "MASTER" else "backup"
    return {role: base.with_state(role)}


def _same(a: SyncDaemon, b: SyncDaemon) -> bool:
    """``b`` (as asked) already runs as ``a`` (as dumped: the kernel fills in its
    defaults, so only what was asked for is compared)."""
    return (a.interface == b.interface and a.syncid == b.syncid
            and (not b.maxlen or a.maxlen == b.maxlen) and (not b.port or a.port == b.port)
            and (not b.ttl or a.ttl == b.ttl) and (b.group is None or a.group == b.group))


def steps(running: Mapping[str, SyncDaemon], want: Mapping[str, SyncDaemon]) -> list[Step]:
    """The requests from ``running`` to ``want``: stops first (keepalived's order: the
    backup daemon goes before the master one starts), then starts."""
    out: list[Step] = []
    for state, d in running.items():
        w = want.get(state)
        if w is None or not _same(d, w):
            out.append(("del", state, d.syncid))
    for state, w in want.items():
        now = running.get(state)
        if now is None or not _same(now, w):
            out.append(("new", w))
    return out


class SyncDaemons:
    """The parent's sync daemons: :meth:`open`, :meth:`follow` each state report,
    :meth:`configure` at a reload, :meth:`close` at stop.

    ``link`` makes the netlink link (a :class:`BatchLink` by default; tests pass a fake).
    ``sides()`` says whether the VRRP side and the check side run (``-P``/``-C``): as in
    keepalived, the daemon of an instance needs the VRRP side (its process drives it),
    the instance-less pair the check side (the checker process starts it).
    """

    def __init__(self, config: m.Config, *, link: Callable[[], Any] | None = None,
                 modprobe: bool = True,
                 sides: Callable[[], tuple[bool, bool]] | None = None) -> None:
        self._sides = sides or (lambda: (True, True))
        self.settings = self._settings(config)
        self.state: str | None = None
        self.running: dict[str, SyncDaemon] = {}
        self.errors = 0
        self._make_link = link or BatchLink
        self._modprobe = modprobe
        self._link: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def _settings(self, config: m.Config) -> m.LvsSyncDaemon | None:
        # the loader has said what is wrong with the setting (hafast -t, start-up log)
        settings = resolve(config)
        if settings is None:
            return None
        vrrp, checks = self._sides()
        return settings if (vrrp if settings.instance is not None else checks) else None

    @property
    def active(self) -> bool:
        return self.settings is not None

    # -- thread side (one request at a time) -----------------------------------------

    def _sync(self, want: dict[str, SyncDaemon], learn: bool) -> None:
        if self._link is None:
            if self._modprobe and os.geteuid() == 0:
                modprobe_ip_vs()
            self._link = self._make_link()
        if learn:
            # a previous run's daemons (a crash, keepalived before us): adopt or replace
            self.running = {d.state: d for d in self._link.daemons()}
        for step in steps(self.running, want):
            if step[0] == "del":
                self._stop(step[1], step[2])
            else:
                self._start(step[1])

    def _stop(self, state: str, syncid: int) -> None:
        try:
            self._link.del_daemon(state, syncid)
        except OSError as exc:
            if exc.errno != errno.ESRCH:  # ESRCH: none runs, as wanted
                self._failed(f"cannot stop the {state} sync daemon", exc)
                return
        self.running.pop(state, None)
        log.info("lvs_sync_daemon: %s daemon stopped", state)

    def _start(self, d: SyncDaemon) -> None:
        try:
            self._link.new_daemon(d)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                self._failed(f"cannot start the {d.state} sync daemon on {d.interface}", exc)
                return
            # one we did not know of, with other settings: replace it
            try:
                self._link.del_daemon(d.state, d.syncid)
                self._link.new_daemon(d)
            except OSError as exc2:
                self._failed(f"cannot restart the {d.state} sync daemon on {d.interface}",
                             exc2)
                return
        self.running[d.state] = d
        log.info("lvs_sync_daemon: %s daemon started on %s, syncid %d", d.state,
                 d.interface, d.syncid)

    def _failed(self, what: str, exc: OSError) -> None:
        self.errors += 1
        code = exc.errno or 0
        log.error("lvs_sync_daemon: %s: %s (errno %d)", what, os.strerror(code), code)

    # -- loop side ----------------------------------------------------------------------

    async def _converge(self, learn: bool = False) -> None:
        async with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="hafast-syncd")
            want = wanted(self.settings, self.state)
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(self._executor, self._sync, want, learn)
            except (OSError, BackendError) as exc:  # no IPVS family, no netlink socket
                self.errors += 1
                log.error("lvs_sync_daemon: cannot reach IPVS: %s", exc)

    def _kick(self) -> None:
        task = asyncio.get_running_loop().create_task(self._converge())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def open(self, states: Mapping[str, tuple[str, int]]) -> None:
        """Start what the instance's last known state asks for (BACKUP if none)."""
        if self.settings is None:
            return
        self._pick(states)
        await self._converge(learn=True)

    def _pick(self, states: Mapping[str, tuple[str, int]]) -> bool:
        name = self.settings.instance if self.settings is not None else None
        entry = states.get(name) if name is not None else None
        if entry is None or entry[0] == self.state:
            return False
        self.state = entry[0]
        return True

    def follow(self, states: Mapping[str, tuple[str, int]]) -> None:
        """A state report from the VRRP worker (or the parent's release of its masters)."""
        if self.settings is None:
            return
        if self._pick(states) or set(self.running) != set(wanted(self.settings, self.state)):
            self._kick()

    async def configure(self, config: m.Config,
                        states: Mapping[str, tuple[str, int]]) -> None:
        """A reload: restart the daemons whose settings changed, stop them all when the
        keyword is gone."""
        self.settings = self._settings(config)
        self.state = None
        self._pick(states)
        if self.settings is not None or self.running:
            await self._converge(learn=self._link is None)

    async def close(self) -> None:
        """Stop the daemons (keepalived stops them when its VRRP process ends)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.running:
            self.settings = None
            await self._converge()
        if self._executor is not None:
            link, self._link = self._link, None
            if link is not None:
                await asyncio.get_running_loop().run_in_executor(self._executor, link.close)
            self._executor.shutdown(wait=True)
            self._executor = None
