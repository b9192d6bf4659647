"""vrrp_track_process, the I/O shell: one scan of /proc at start, then a pidfd per
counted process for its death and a cheap periodic scan for starts.

keepalived 2.2.7 learns of forks, execs and exits from the netlink process connector.
The kernel answers that connector only in the initial network namespace (and only to
CAP_NET_ADMIN): keepalived started with ``ip netns exec`` logs "Failed to set/clear
process event listen - errno 111" and keeps every instance that tracks a process in
FAULT, the process running.  hafast does not use the connector; it works the same in
any namespace:

* deaths: ``pidfd_open(2)`` on each counted process (Linux >= 5.3), watched with
  ``add_reader``: the exit is seen at once, as keepalived sees it.  At most
  :data:`MAX_PIDFDS` are held; beyond that (or where pidfd_open fails) a death is
  seen by the next scan, when the pid leaves /proc.
* starts: every :data:`SCAN_PERIOD_S` the pids of /proc are listed (one getdents) and
  only pids not seen before are read (``/proc/PID/stat``: name, state, parent, start
  time; ``cmdline`` only if a tracker matches on it), plus a few older ones whose
  recheck is due (:data:`~hafast.vrrp.track_process.RECHECK_MAX_SCANS`), within a read
  budget per scan.  A start is seen within one period.
* ``terminate_delay``/``fork_delay``: when the timer expires the watcher scans first
  and decides on what it finds, so a process restarted within the delay keeps the
  quorum however the period falls, as with keepalived's immediate events.
* where the kernel allows it (initial network namespace, CAP_NET_ADMIN), the process
  connector's events (:mod:`hafast.vrrp.procconn`) name pids to read at once: a start
  or an exec is then seen in milliseconds.  They are hints, never counts, so the
  scan above stays the truth, and a namespace that refuses them changes nothing.

Example::

    watch = ProcessWatch(loop, config.track_processes)   # the initial scan
    up = watch.subscribe("haproxy", on_change)
    watch.start()
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections.abc import Callable, Iterable, Iterator

from hafast.config.model import TrackProcess
from hafast.vrrp import procconn
from hafast.vrrp.track_process import Change, ProcessTable, ProcInfo, parse_stat
from hafast.vrrp.transport import RateLimitedLog

log = logging.getLogger("hafast.vrrp.track")

SCAN_PERIOD_S = 1.0  # the latency of seeing a start (a death is seen at once)
MAX_PIDFDS = 256  # a tracked process forking thousands of children must not eat our fds
# Connector events are gathered HINT_DELAY_S, then at most HINT_MAX of their pids read:
# every exec on the host is an event, so an exec storm costs at most 1280 reads a
# second (~30 µs each here: < 4% of the loop); what is dropped waits for the scan.
HINT_DELAY_S = 0.025
HINT_MAX = 32
# A periodic scan gives the loop back after this many reads (or pids gone): 512 reads
# in one go held a VRRP worker's loop 20-70 ms while a tracked process forked a
# thousand children, and a 0.1 s advert_int leaves the heartbeat 100 ms
# (hafast.app.vipguard), so the parent took the busy worker for hung, killed it and
# released its VIPs (2 runs in 26 of tests/netns/test_track_process_hostile.py with
# advert_int 0.1).  Sliced, the loop's longest hold in that storm was 7-16 ms.
SCAN_SLICE = 64
_GONE = (errno.ENOENT, errno.ESRCH)


class ProcessWatch:
    """Every ``vrrp_track_process`` of a worker; ``subscribe`` to a tracker's quorum."""

    def __init__(self, loop: asyncio.AbstractEventLoop, specs: Iterable[TrackProcess],
                 proc: str = "/proc", connector: bool = True) -> None:
        self.loop = loop
        self.proc = proc
        self.table = ProcessTable()
        self.listeners: dict[str, list[Callable[[bool], None]]] = {}
        self.counters = {"scans": 0, "reads": 0, "deferred": 0, "pidfd_exits": 0,
                         "scan_exits": 0, "no_pidfd": 0, "hints": 0, "hints_dropped": 0}
        self._pidfds: dict[int, int] = {}
        self._hints: set[int] = set()
        self._hint_handle: asyncio.Handle | None = None
        self._scan_handle: asyncio.Handle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._rlog = RateLimitedLog(log)
        self._closed = False
        self.connector: procconn.ProcConnector | None = None
        if connector:
            # before the first scan, as keepalived does: nothing starts unseen between
            self._open_connector()
        self.add(specs)

    def _open_connector(self) -> None:
        conn = procconn.ProcConnector(self.loop, self._event, self._lost)
        if conn.open():
            self.connector = conn
            log.info("track_process: process connector on (starts are seen at once)")
        else:
            log.info("track_process: no process connector (%s: not the initial network "
                     "namespace, or no CAP_NET_ADMIN); starts are seen by a scan of /proc "
                     "every %.1f s, deaths by pidfd", conn.error, SCAN_PERIOD_S)

    def _now_us(self) -> int:
        return int(self.loop.time() * 1e6)

    # ------------------------------------------------------------------ reads
    def _pids(self) -> list[int]:
        try:
            return [int(n) for n in os.listdir(self.proc) if n.isdigit()]
        except OSError as exc:
            self._rlog.warning("proc", "track_process: cannot list %s: %s", self.proc, exc)
            return []

    def _read(self, pid: int) -> ProcInfo | bool | None:
        """The process's :class:`ProcInfo`; None when it is gone; False when it could
        not be read for another reason (then nothing is concluded about it)."""
        want = self.table.cmdline_len
        self.counters["reads"] += 1
        try:
            fd = os.open(f"{self.proc}/{pid}/stat", os.O_RDONLY)
            try:
                text = os.read(fd, 1024).decode("utf-8", "replace")
            finally:
                os.close(fd)
            cmdline = b""
            if want:
                fd = os.open(f"{self.proc}/{pid}/cmdline", os.O_RDONLY)
                try:
                    cmdline = os.read(fd, want)
                finally:
                    os.close(fd)
        except OSError as exc:
            if exc.errno in _GONE:
                return None
            self._rlog.warning("read", "track_process: cannot read %s/%d: %s",
                               self.proc, pid, exc)
            return False
        info = parse_stat(text, cmdline)
        return False if info is None else info

    # ------------------------------------------------------------------ setup
    def add(self, specs: Iterable[TrackProcess]) -> None:
        """Track ``specs`` new by name (start, reload): one full read of /proc for them;
        a tracker already known keeps its count and state."""
        fresh = self.table.add(specs)
        if not fresh:
            return
        infos: dict[int, ProcInfo] = {}
        for pid in self._pids():
            info = self._read(pid)
            if isinstance(info, ProcInfo):
                infos[pid] = info
        self.table.initial(infos, fresh)
        for name in fresh:
            q = self.table.quorums[name]
            log.info("track_process %s: %d process(es) match, quorum %s", name, q.count,
                     "held" if q.up else "not held")
        self._dispatch(self._watch_all())

    def up(self, name: str) -> bool:
        return self.table.quorums[name].up

    def subscribe(self, name: str, cb: Callable[[bool], None]) -> bool:
        """Call ``cb(up)`` when ``name`` gains or loses its quorum; returns it now."""
        self.listeners.setdefault(name, []).append(cb)
        return self.up(name)

    def start(self) -> None:
        if self._scan_handle is None and not self._closed:
            self._scan_handle = self.loop.call_later(SCAN_PERIOD_S, self._tick)

    def close(self) -> None:
        self._closed = True
        for h in (self._scan_handle, self._timer, self._hint_handle):
            if h is not None:
                h.cancel()
        if self.connector is not None:
            self.connector.close()
        for pid in list(self._pidfds):
            self._unwatch(pid)

    # ------------------------------------------------------------------ pidfds
    def _watch(self, pid: int) -> list[Change]:
        if pid in self._pidfds or len(self._pidfds) >= MAX_PIDFDS:
            if pid not in self._pidfds:
                self.counters["no_pidfd"] += 1
            return []
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return self.table.exited(pid, self._now_us())
        except (OSError, AttributeError) as exc:
            self.counters["no_pidfd"] += 1
            self._rlog.warning("pidfd", "track_process: no pidfd for %d (%s); its exit "
                               "will be seen by the next scan of /proc", pid, exc)
            return []
        self._pidfds[pid] = fd
        self.loop.add_reader(fd, self._exited, pid)
        return []

    def _unwatch(self, pid: int) -> None:
        fd = self._pidfds.pop(pid, None)
        if fd is not None:
            self.loop.remove_reader(fd)
            os.close(fd)

    def _sync(self, pid: int) -> list[Change]:
        if self.table.matched(pid):
            return self._watch(pid)
        self._unwatch(pid)
        return []

    def _watch_all(self) -> list[Change]:
        changes: list[Change] = []
        for q in self.table.quorums.values():
            for pid in list(q.pids):
                changes += self._watch(pid)
        return changes

    def _exited(self, pid: int) -> None:
        self._unwatch(pid)
        self.counters["pidfd_exits"] += 1
        self._dispatch(self.table.exited(pid, self._now_us()))

    # ------------------------------------------------------------------ hints
    def _event(self, what: int, pid: int, parent: int) -> None:
        if what == procconn.PROC_EVENT_EXIT:
            if pid in self._pidfds or not self.table.matched(pid):
                return  # its pidfd says so, or it did not count
        elif what == procconn.PROC_EVENT_FORK:
            if not self.table.matched(parent) and parent not in self._hints:
                return  # the child has an uncounted parent's name until it execs
        if len(self._hints) >= HINT_MAX:
            self.counters["hints_dropped"] += 1
            return
        self.counters["hints"] += 1
        self._hints.add(pid)
        if self._hint_handle is None and not self._closed:
            self._hint_handle = self.loop.call_later(HINT_DELAY_S, self._read_hints)

    def _lost(self) -> None:
        # Events were dropped: every process is read again, within the scans' budget
        self.table.recheck_all()

    def _read_hints(self) -> None:
        self._hint_handle = None
        pids, self._hints = self._hints, set()
        now = self._now_us()
        changes: list[Change] = []
        for pid in sorted(pids):
            info = self._read(pid)
            if info is False:
                continue
            changes += self.table.seen(pid, info if isinstance(info, ProcInfo) else None, now)
            changes += self._sync(pid)
        self._dispatch(changes)

    # ------------------------------------------------------------------ scans
    def _tick(self, steps: Iterator[None] | None = None) -> None:
        """The periodic scan, a slice per loop turn (:data:`SCAN_SLICE`): adverts,
        heartbeats and pidfds are served between the slices."""
        self._scan_handle = None
        if self._closed:
            return
        if steps is None:
            steps = self._scan_steps(SCAN_SLICE)
        more = False
        try:
            more = next(steps, False) is None
        finally:
            if more:
                self._scan_handle = self.loop.call_soon(self._tick, steps)
            else:
                self.start()

    def scan(self) -> None:
        """One scan, whole and now: pids gone from /proc, new ones and due rechecks read."""
        for _ in self._scan_steps(None):
            pass

    def _scan_steps(self, slice_: int | None) -> Iterator[None]:
        """One scan; with ``slice_``, it yields after that many pids, having
        dispatched what it found so far (a pid gone or read meanwhile by a pidfd, a
        hint or another scan is only looked at again: nothing is counted twice)."""
        self.counters["scans"] += 1
        plan = self.table.plan(self._pids(), self._pidfds)
        changes: list[Change] = []
        done = 0
        for pid in plan.gone:
            if pid in self._pidfds:
                self._unwatch(pid)
            if self.table.matched(pid):
                self.counters["scan_exits"] += 1
            changes += self.table.exited(pid, self._now_us())
            done += 1
            if slice_ is not None and done % slice_ == 0:
                self._dispatch(changes)
                changes = []
                yield None
        for pid in plan.read:
            info = self._read(pid)
            if info is not False:
                changes += self.table.seen(pid, info if isinstance(info, ProcInfo) else None,
                                           self._now_us())
                changes += self._sync(pid)
            done += 1
            if slice_ is not None and done % slice_ == 0:
                self._dispatch(changes)
                changes = []
                yield None
        if plan.deferred:
            self.counters["deferred"] += plan.deferred
            self._rlog.warning("budget", "track_process: %d process(es) left for the next "
                               "scan (at most %d reads a scan)", plan.deferred, len(plan.read))
        self._dispatch(changes)

    # ------------------------------------------------------------------ quorum
    def _dispatch(self, changes: list[Change]) -> None:
        for name, up in changes:
            q = self.table.quorums[name]
            log.info("Quorum %s for tracked process %s (%d running)",
                     "gained" if up else "lost", name, q.count)
            for cb in list(self.listeners.get(name, ())):
                cb(up)
        self._arm()

    def _arm(self) -> None:
        deadline = self.table.deadline_us()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadline is not None and not self._closed:
            self._timer = self.loop.call_at(deadline / 1e6, self._expire, deadline)

    def _expire(self, deadline: int) -> None:
        self._timer = None
        self.scan()  # decide on what runs now, not on what ran at the last scan
        # call_at may fire up to the clock's resolution early: never before the deadline
        self._dispatch(self.table.expire(max(self._now_us(), deadline)))

    def status(self) -> dict[str, dict[str, object]]:
        """Per tracker, keepalived's dump fields (vrrp_data.c dump_vprocess)."""
        return {q.name: {"process": q.pattern.process, "count": q.count,
                         "quorum": q.quorum, "quorum_max": q.quorum_max,
                         "have_quorum": q.up, "timer": q.timer}
                for q in self.table.quorums.values()}
