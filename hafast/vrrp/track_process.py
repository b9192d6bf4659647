"""vrrp_track_process, the pure part: which processes match, how many run, and when a
tracker gains or loses its quorum.  No I/O: :mod:`hafast.vrrp.procwatch` reads /proc,
holds the pidfds and the timers, and feeds what it saw here.

Semantics of keepalived 2.2.7 (``core/track_process.c``, ``vrrp/vrrp_parser.c``):

* a process matches on its name, ``/proc/PID/comm`` (at most 15 characters), exactly
  (``pgrep '^name$'``); with ``full_command``, or when ``process`` has parameters, or
  with ``param_match``, on ``/proc/PID/cmdline`` instead: argv[0] exactly, then the
  parameters: exactly (the default), ``partial`` (the first N match, more may
  follow) or ``initial`` (as partial, and the last one may be longer).  Zombies do
  not count.
* the tracker is up while ``quorum <= count <= quorum_max``.
* keepalived acts when a count crosses a boundary (``quorum`` or ``quorum_max + 1``).
  A crossing caused by a *fork* of a counted process waits ``fork_delay``, one
  caused by an *exit* waits ``terminate_delay`` (``delay`` sets both); the opposite
  crossing while that timer runs cancels it (the bounce is absorbed).  A crossing
  caused by an exec or a rename (a process that starts matching, or stops) acts at
  once.  When a timer expires the tracker takes whatever the count then says.

Example::

    >>> from hafast.config.model import TrackProcess
    >>> t = ProcessTable([TrackProcess("web", process=("nginx",), quorum=2)])
    >>> t.initial({10: ProcInfo("nginx", "S", 1, 5), 11: ProcInfo("nginx", "S", 10, 6)})
    >>> t.quorums["web"].up, t.quorums["web"].count
    (True, 2)
    >>> t.exited(11, now_us=0)
    [('web', False)]
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from hafast.config.model import TrackProcess

COMM_LEN = 15  # TASK_COMM_LEN - 1: the kernel truncates /proc/PID/comm to this
QUORUM_MAX_NONE = 2**32 - 1  # keepalived's UINT_MAX: no upper bound

ParamMatch = Literal["none", "exact", "partial", "initial"]
TimerKind = Literal["fork", "terminate"]
Change = tuple[str, bool]  # (vrrp_track_process name, quorum now held)

# A pid that did not match is read again after 1, 2, 4, ... scans, at most this many
# apart: a fork is matched only after its exec (systemd's child is "(haproxy)" until
# then, a shell wrapper may exec seconds later), and this finds it without reading
# every process on every scan.  Measured cost: one read of /proc/PID/stat is ~10 µs,
# so 2000 idle processes cost ~70 reads (< 1 ms) per scan once they are old.
RECHECK_MAX_SCANS = 30
# What one scan may read, so a tracked process that forks thousands of children
# cannot stall the event loop; the rest waits for the next scan (new pids first).
SCAN_READ_BUDGET = 512


@dataclass(frozen=True, slots=True)
class ProcInfo:
    """What one read of ``/proc/PID/stat`` (and ``cmdline`` when needed) tells."""

    comm: str
    state: str  # one letter; "Z" (zombie) and "X" (dead) do not count as running
    ppid: int
    start: int  # start time in clock ticks: tells a reused pid from its predecessor
    cmdline: bytes = b""

    @property
    def running(self) -> bool:
        return self.state not in ("Z", "X")


def parse_stat(text: str, cmdline: bytes = b"") -> ProcInfo | None:
    """A :class:`ProcInfo` from the text of ``/proc/PID/stat``; None if it is malformed.

    The name sits in parentheses and may itself hold spaces and ")", so the fields are
    taken after the *last* ")" (keepalived takes the first, and misreads such names).

    >>> parse_stat("42 (my proc) x) S 1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 777 0")
    ProcInfo(comm='my proc) x', state='S', ppid=1, start=777, cmdline=b'')
    >>> parse_stat("garbage") is None
    True
    """
    left, right = text.find("("), text.rfind(")")
    if left < 0 or right < left:
        return None
    rest = text[right + 1:].split()
    # state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime
    # stime cutime cstime priority nice num_threads itrealvalue starttime (proc(5))
    if len(rest) < 20:
        return None
    try:
        return ProcInfo(text[left + 1:right], rest[0], int(rest[1]), int(rest[19]), cmdline)
    except ValueError:
        return None


def _raw(text: str) -> bytes:
    """Config text back to the bytes of the file (/proc/PID/cmdline is bytes): the
    lexer keeps bytes that are not UTF-8 as surrogates."""
    return text.encode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class Pattern:
    """How one vrrp_track_process recognises its processes."""

    process: str
    params: bytes | None = None  # each parameter followed by a NUL, as in cmdline
    param_match: ParamMatch = "none"
    full_command: bool = False

    @classmethod
    def of(cls, spec: TrackProcess) -> Pattern:
        """keepalived's parser: parameters imply an exact match of the command line;
        ``param_match`` implies ``full_command``.

        >>> Pattern.of(TrackProcess("p", process=("sleep", "60")))
        Pattern(process='sleep', params=b'60\\x00', param_match='exact', full_command=True)
        """
        path, *args = spec.process or ("",)
        params = b"".join(_raw(a) + b"\0" for a in args) if args else None
        match: ParamMatch = "none"
        if spec.param_match in ("partial", "initial", "exact"):
            # "exact" is param_match written alone: a process with no parameters only
            match = spec.param_match  # type: ignore[assignment]
        elif args:
            match = "exact"
        full = spec.full_command or bool(args) or match != "none"
        return cls(path, params, match, full)

    @property
    def cmdline_len(self) -> int:
        """How much of ``/proc/PID/cmdline`` decides a match (keepalived reads as much,
        plus a byte or two to see that there is more)."""
        if not self.full_command:
            return 0
        return len(_raw(self.process)) + 1 + len(self.params or b"") + 2

    def matches(self, info: ProcInfo) -> bool:
        """
        >>> p = Pattern("sleep", b"60\\x00", "initial", True)
        >>> p.matches(ProcInfo("sleep", "S", 1, 0, b"sleep\\x00600\\x00"))
        True
        >>> p.matches(ProcInfo("sleep", "S", 1, 0, b"sleep\\x005\\x00"))
        False
        """
        if not info.running:
            return False
        if not self.full_command:
            return info.comm == self.process
        argv0, nul, rest = info.cmdline.partition(b"\0")
        if argv0 != _raw(self.process):
            return False
        return self.param_match == "none" or self._params_match(rest if nul else b"")

    def _params_match(self, got: bytes) -> bool:
        # check_params() in track_process.c, on the bytes after argv[0]'s NUL.
        want = self.params
        if self.param_match == "exact":
            return got == (want or b"")
        if want is None:
            return True
        if self.param_match == "partial":
            return got[: len(want)] == want
        # initial: all but the last parameter's NUL, so the last one may go on
        return len(got) >= len(want) and got[: len(want) - 1] == want[:-1]


@dataclass(slots=True)
class Quorum:
    """One vrrp_track_process: its count, whether it holds its quorum, its timer."""

    name: str
    pattern: Pattern
    quorum: int = 1
    quorum_max: int = QUORUM_MAX_NONE
    fork_delay_us: int = 0
    terminate_delay_us: int = 0
    count: int = 0
    up: bool = False
    timer: TimerKind | None = None
    deadline_us: int = 0
    pids: set[int] = field(default_factory=set)

    @classmethod
    def of(cls, spec: TrackProcess) -> Quorum:
        quorum, qmax = spec.quorum, spec.quorum_max
        if qmax == 0:  # keepalived: "failure if the process is running at all"
            quorum = 0
        # 'delay' sets both; the model keeps them apart, an explicit one wins
        return cls(
            spec.name, Pattern.of(spec), quorum,
            QUORUM_MAX_NONE if qmax is None else qmax,
            spec.fork_delay_us or spec.delay_us,
            spec.terminate_delay_us or spec.delay_us,
        )

    @property
    def in_range(self) -> bool:
        return self.quorum <= self.count <= self.quorum_max

    def _set(self, up: bool) -> Change | None:
        if up == self.up:
            return None
        self.up = up
        return (self.name, up)

    def _arm(self, kind: TimerKind, now_us: int, delay_us: int) -> None:
        self.timer, self.deadline_us = kind, now_us + delay_us

    def added(self, now_us: int, by_fork: bool) -> Change | None:
        """One more matching process; ``by_fork``: a child of one already counted."""
        self.count += 1
        if self.count != self.quorum and self.count != self.quorum_max + 1:
            return None
        now_up = self.count == self.quorum
        if self.timer == "terminate":
            self.timer = None  # an exit's bounce absorbed
        elif by_fork and self.fork_delay_us:
            self._arm("fork", now_us, self.fork_delay_us)
            return None
        return self._set(now_up)

    def removed(self, now_us: int, by_exit: bool) -> Change | None:
        """One matching process fewer; ``by_exit``: it ended (else it exec'd or was
        renamed into something that does not match)."""
        self.count -= 1
        if self.count + 1 != self.quorum and self.count != self.quorum_max:
            return None
        now_up = self.count == self.quorum_max
        if self.timer == "fork":
            self.timer = None
        elif by_exit and self.terminate_delay_us:
            self._arm("terminate", now_us, self.terminate_delay_us)
            return None
        return self._set(now_up)

    def expire(self, now_us: int) -> Change | None:
        if self.timer is None or now_us < self.deadline_us:
            return None
        self.timer = None
        return self._set(self.in_range)


@dataclass(slots=True)
class _Seen:
    start: int
    comm: str
    matched: tuple[str, ...] = ()
    next_scan: int = 0
    gap: int = 1


@dataclass(frozen=True, slots=True)
class ScanPlan:
    gone: list[int]  # listed before, not any more: ended (and reaped)
    read: list[int]  # read these (new first, then rechecks), within the budget
    deferred: int  # what the budget left for the next scan


class ProcessTable:
    """Every vrrp_track_process of a worker and the processes they count.

    The shell lists /proc each scan and asks :meth:`plan` what to read; it reports what
    it read with :meth:`seen`, a death (pidfd, or a pid no longer listed) with
    :meth:`exited`, and calls :meth:`expire` at :meth:`deadline_us`.  Each returns
    the trackers whose quorum changed, in order.
    """

    def __init__(self, specs: Iterable[TrackProcess] = ()) -> None:
        self.quorums: dict[str, Quorum] = {}
        self.known: dict[int, _Seen] = {}
        self.scans = 0
        self.add(specs)

    def add(self, specs: Iterable[TrackProcess]) -> list[str]:
        """Trackers new by name (a reload); the shell then re-reads every process for
        them with :meth:`initial`.  Returns their names."""
        fresh = []
        for spec in specs:
            if spec.name not in self.quorums:
                self.quorums[spec.name] = Quorum.of(spec)
                fresh.append(spec.name)
        return fresh

    @property
    def cmdline_len(self) -> int:
        """0 when no tracker needs the command line (keepalived then never reads it:
        reading it can fault in a swapped-out process's memory)."""
        return max((q.pattern.cmdline_len for q in self.quorums.values()), default=0)

    def initial(self, infos: Mapping[int, ProcInfo], names: Iterable[str] | None = None) -> None:
        """Count from a full scan, without delays (keepalived's start-up); ``names``
        limits it to those trackers (new ones at a reload)."""
        which = [self.quorums[n] for n in (self.quorums if names is None else names)]
        for q in which:
            for pid in q.pids:
                seen = self.known.get(pid)
                if seen is not None:
                    seen.matched = tuple(n for n in seen.matched if n != q.name)
            q.pids.clear()
            q.count, q.timer = 0, None
        for pid, info in infos.items():
            seen = self.known.get(pid)
            if seen is None or seen.start != info.start:
                # Old processes: rechecked at the slowest rate, spread over the scans.
                seen = self.known[pid] = _Seen(
                    info.start, info.comm, next_scan=self.scans + 1 + pid % RECHECK_MAX_SCANS,
                    gap=RECHECK_MAX_SCANS)
            for q in which:
                if q.pattern.matches(info):
                    q.pids.add(pid)
                    q.count += 1
                    seen.matched += (q.name,)
        for q in which:
            q.up = q.in_range

    # ------------------------------------------------------------------ scans
    def plan(self, listed: Iterable[int], watched: Container[int] = (),
             budget: int = SCAN_READ_BUDGET) -> ScanPlan:
        """One scan: ``listed`` is every pid /proc shows now; ``watched`` the pids whose
        death a pidfd reports.  A counted process without one is read every scan: an
        unreaped zombie stays listed, and only its state says it ended."""
        self.scans += 1
        now = set(listed)
        gone = [pid for pid in self.known if pid not in now]
        new = sorted(pid for pid in now if pid not in self.known)
        due = [pid for pid, s in self.known.items()
               if pid in now and (s.next_scan <= self.scans
                                  or (s.matched and pid not in watched))]
        read = (new + due)[:budget]
        return ScanPlan(gone, read, len(new) + len(due) - len(read))

    def recheck_all(self) -> None:
        """Read every known process again from the next scan on (within its budget):
        the process connector dropped events, so an exec may have gone unseen."""
        for s in self.known.values():
            s.next_scan = self.scans + 1

    def seen(self, pid: int, info: ProcInfo | None, now_us: int) -> list[Change]:
        """What a read of ``pid`` found (None: it was gone by then)."""
        if info is None:
            return self.exited(pid, now_us)
        old = self.known.get(pid)
        changes: list[Change] = []
        if old is not None and old.start != info.start:
            changes += self.exited(pid, now_us)  # the pid was reused
            old = None
        if old is None:
            old = self.known[pid] = _Seen(info.start, info.comm)
        else:
            old.gap = min(old.gap * 2, RECHECK_MAX_SCANS)
        old.next_scan = self.scans + old.gap
        old.comm = info.comm
        was = set(old.matched)
        now = [q for q in self.quorums.values() if q.pattern.matches(info)]
        old.matched = tuple(q.name for q in now)
        for q in self.quorums.values():
            ch: Change | None = None
            if q.name in was and q not in now:
                q.pids.discard(pid)
                ch = q.removed(now_us, by_exit=not info.running)
            elif q.name not in was and q in now:
                q.pids.add(pid)
                ch = q.added(now_us, by_fork=info.ppid in q.pids)
            if ch is not None:
                changes.append(ch)
        return changes

    def exited(self, pid: int, now_us: int) -> list[Change]:
        """``pid`` ended (its pidfd said so, or /proc no longer lists it)."""
        old = self.known.pop(pid, None)
        changes: list[Change] = []
        for name in old.matched if old is not None else ():
            q = self.quorums[name]
            q.pids.discard(pid)
            ch = q.removed(now_us, by_exit=True)
            if ch is not None:
                changes.append(ch)
        return changes

    def matched(self, pid: int) -> bool:
        seen = self.known.get(pid)
        return seen is not None and bool(seen.matched)

    # ------------------------------------------------------------------ timers
    def deadline_us(self) -> int | None:
        times = [q.deadline_us for q in self.quorums.values() if q.timer is not None]
        return min(times) if times else None

    def expire(self, now_us: int) -> list[Change]:
        return [ch for q in self.quorums.values() if (ch := q.expire(now_us)) is not None]
