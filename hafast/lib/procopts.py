"""keepalived's per-process options, applied by the process they name (keepalived
2.2.7's ``set_process_priorities`` and ``set_process_cpu_affinity`` in ``lib/process.c``,
``set_process_name`` in ``lib/utils.c``).

=======================  ============================================================
global_defs              what the VRRP worker (``vrrp_*``) or each check worker
                         (``checker_*``) does with it
=======================  ============================================================
``*_priority N``         nice N (only without ``*_rt_priority``, as keepalived)
``*_rt_priority N``      SCHED_RR at N, with SCHED_RESET_ON_FORK so scripts it starts
                         run with normal scheduling
``*_rlimit_rttime US``   with ``*_rt_priority``: RLIMIT_RTTIME soft US/2 (default
                         10000; 1 counts as 2): SIGXCPU there is logged with
                         keepalived's words and the worker drops to normal scheduling
                         until the next reload; hard US but at least 1 s (keepalived:
                         hard US, and the kernel kills it there; see _realtime)
``*_no_swap``            mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)
``*_cpu_affinity C...``  sched_setaffinity to those CPUs (ids 0..online-1; one bad id
                         drops the whole set, as keepalived)
``process_names``        the workers are named keepalived_vrrp and keepalived_lvs
                         (keepalived's code; its man page says keepalived_ipvs)
``*_process_name NAME``  prctl(PR_SET_NAME): /proc/PID/comm, what ps and pgrep show
``max_auto_priority N``  (every worker) a loop late by more than
``min_auto_priority_``   ``min_auto_priority_delay`` (µs, default 1 s) logs keepalived's
``delay US``             "A thread timer expired S seconds ago" (with or without
                         max_auto_priority) and goes SCHED_RR at the least priority,
                         one more each time, up to N (the keyword alone: 99), with
                         the role's rlimit_rttime (:class:`LatenessWatch`)
=======================  ============================================================

A failure (EPERM without CAP_SYS_NICE or CAP_IPC_LOCK, a CPU that went offline) is
logged and the process runs on, as keepalived's does.  Linux keeps nice, policy and
affinity per thread: they are set on every thread the process has (threads started
later inherit them from the main thread).

With a negative nice and no real-time priority, SCHED_RESET_ON_FORK is set too: the
kernel then starts scripts at nice 0, where keepalived resets its children to the
original priority.  A positive nice is inherited by scripts (keepalived resets that
too).

Example::

    opts = ProcessOptions.of(config.global_defs, "vrrp")
    tuning = ProcessTuning("vrrp")
    tuning.apply(opts)      # at start, and after each reload
    tuning.relax()          # before a reload: normal scheduling while it runs
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import resource
import signal
import struct
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("hafast")

RT_RLIMIT_DEFAULT = 10000  # keepalived's lib/process.h, microseconds
RT_HARD_FLOOR_US = 1_000_000  # the least hard RLIMIT_RTTIME (see ProcessTuning._realtime)
TASK_COMM_LEN = 16  # <linux/sched.h>: 15 characters and the NUL
PR_SET_NAME = 15  # <linux/prctl.h>
PR_GET_NAME = 16
MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4  # <sys/mman.h>
RLIMIT_RTTIME = getattr(resource, "RLIMIT_RTTIME", 15)

# The names process_names gives (keepalived's process_names_handler).
DEFAULT_NAMES = {"vrrp": "keepalived_vrrp", "checker": "keepalived_lvs"}

# role -> the GlobalDefs fields of that role: (nice, rt priority, rlimit_rttime,
# no_swap, cpu affinity, process name)
FIELDS = {
    "vrrp": ("vrrp_process_priority", "vrrp_rt_priority", "vrrp_rlimit_rttime",
             "vrrp_no_swap", "vrrp_cpu_affinity", "vrrp_process_name"),
    "checker": ("checker_process_priority", "checker_rt_priority", "checker_rlimit_rttime",
                "checker_no_swap", "checker_cpu_affinity", "checker_process_name"),
}

_libc: Any = None


def _c() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


def _errno_text() -> str:
    return os.strerror(ctypes.get_errno())


@dataclass(frozen=True, slots=True)
class ProcessOptions:
    """What one process should be (see the module docstring); the defaults change
    nothing."""

    nice: int = 0
    rt_priority: int = 0
    rlimit_rttime: int = RT_RLIMIT_DEFAULT
    no_swap: bool = False
    cpus: tuple[str, ...] = ()  # as written; checked against the online CPUs when used
    name: str | None = None
    max_auto_priority: int = 0  # 0: never raised when late
    min_auto_delay_us: int = 1_000_000

    @classmethod
    def of(cls, gd: object, role: str) -> ProcessOptions:
        """The options of ``role`` (``vrrp``, ``checker``) from a GlobalDefs.

        >>> from types import SimpleNamespace as NS
        >>> o = ProcessOptions.of(NS(vrrp_process_priority=-5, process_names=True), "vrrp")
        >>> o.nice, o.rt_priority, o.rlimit_rttime, o.name
        (-5, 0, 10000, 'keepalived_vrrp')
        """
        nice, rt, rttime, no_swap, cpus, name = (getattr(gd, f, None) for f in FIELDS[role])
        if name is None and getattr(gd, "process_names", False):
            name = DEFAULT_NAMES[role]
        # keepalived's max_auto_priority_handler: alone, SCHED_RR's maximum; -1 off
        auto = getattr(gd, "max_auto_priority", 0)
        auto = os.sched_get_priority_max(os.SCHED_RR) if auto is None else max(auto, 0)
        delay = getattr(gd, "min_auto_priority_delay", 0) or 1_000_000
        return cls(nice=nice or 0, rt_priority=rt or 0,
                   rlimit_rttime=RT_RLIMIT_DEFAULT if rttime is None else rttime,
                   no_swap=bool(no_swap), cpus=tuple(cpus or ()), name=name,
                   max_auto_priority=auto, min_auto_delay_us=delay)


# sched_setattr(2)/sched_getattr(2): struct sched_attr (SCHED_ATTR_SIZE_VER1), and the
# two calls' numbers per machine (os.uname().machine)
_SCHED_ATTR = struct.Struct("=IIQiIQQQII")
_SCHED_ATTR_CALLS = {"x86_64": (314, 315), "aarch64": (274, 275)}
SCHED_FLAG_RESET_ON_FORK = 0x01
# The parent's time slice (Linux 6.12+, EEVDF's custom slice).  Every verdict goes
# through the parent to the kernel, and the parent is woken by a worker's message on
# CPUs its check workers keep busy: at the default slice (0.7 ms x (1 + log2 CPUs))
# a woken parent waited for the running worker's slice.  A shorter slice makes the
# kernel run it first (its deadline is the earliest): at 10,000 real servers on 2
# CPUs, checker DOWN -> kernel p99 went from 8.5-15 ms to 6.7-9.4 (issue 16).
DISPATCH_SLICE_NS = 200_000


def short_slice(ns: int = DISPATCH_SLICE_NS) -> bool:
    """Ask for a time slice of ``ns`` for the calling thread (nothing else about its
    scheduling changes), not passed on to the processes and threads it starts
    (SCHED_FLAG_RESET_ON_FORK: the workers and scripts keep the default).  True when
    the kernel keeps it; older kernels (before 6.12) and a thread at real-time
    priority are left as they are.  (No doctest: it would change the test process;
    tests/netns/test_process_options.py checks it on the daemon.)
    """
    calls = _SCHED_ATTR_CALLS.get(os.uname().machine)
    if calls is None or os.sched_getscheduler(0) != os.SCHED_OTHER:
        return False
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    attr = ctypes.create_string_buffer(
        _SCHED_ATTR.pack(_SCHED_ATTR.size, os.SCHED_OTHER, SCHED_FLAG_RESET_ON_FORK, nice,
                         0, ns, 0, 0, 0, 0), _SCHED_ATTR.size)
    if _c().syscall(calls[0], 0, attr, 0) != 0:
        return False
    return slice_of(0) == ns


def slice_of(tid: int) -> int | None:
    """The time slice (ns) of thread ``tid`` (0: the calling one), as sched_getattr(2)
    says it (0 before Linux 6.12); None where it cannot be read."""
    calls = _SCHED_ATTR_CALLS.get(os.uname().machine)
    got = ctypes.create_string_buffer(_SCHED_ATTR.size)
    if calls is None or _c().syscall(calls[1], tid, got, _SCHED_ATTR.size, 0) != 0:
        return None
    return int(_SCHED_ATTR.unpack(got.raw)[5])


def cpu_set(words: tuple[str, ...], process: str, online: int | None = None) -> set[int]:
    """keepalived's ``get_cpu_affinity``: each word a CPU id in [0, online CPUs); one
    that is not drops the whole set (logged with keepalived's words).

    >>> sorted(cpu_set(("0", "2"), "vrrp", online=4)), cpu_set(("0", "9"), "vrrp", online=4)
    ([0, 2], set())
    """
    count = online if online is not None else os.sysconf("SC_NPROCESSORS_ONLN")
    cpus: set[int] = set()
    for w in words:
        try:
            cpu = int(w, 10)
        except ValueError:
            cpu = -1
        if not 0 <= cpu < count:
            log.error("Invalid cpu_id:%s specified for %s process", w, process)
            return set()
        cpus.add(cpu)
    return cpus


def set_name(name: str | None, original: str | None = None) -> None:
    """prctl(PR_SET_NAME): the calling thread's /proc/PID/comm (the main thread's is
    the process's).  None puts back ``original`` when given."""
    if name is None:
        if original is None:
            return
        name = original
    if len(name.encode()) >= TASK_COMM_LEN:
        log.error("Process name %s more than %d characters, truncating", name,
                  TASK_COMM_LEN - 1)
    raw = name.encode()[:TASK_COMM_LEN - 1]
    if _c().prctl(PR_SET_NAME, ctypes.c_char_p(raw), 0, 0, 0) != 0:
        log.info("Failed to set process name '%s'", name)


def get_name() -> str:
    buf = ctypes.create_string_buffer(TASK_COMM_LEN)
    _c().prctl(PR_GET_NAME, buf, 0, 0, 0)
    return buf.value.decode(errors="replace")


def _threads() -> list[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


class ProcessTuning:
    """Applies :class:`ProcessOptions` to this process and takes them back."""

    def __init__(self, process: str) -> None:
        self.process = process  # keepalived's word in messages: vrrp, checker
        self.applied = ProcessOptions()
        self._original_name: str | None = None
        self._original_nice: int | None = None
        self._original_rttime: tuple[int, int] | None = None
        self._rt = False
        self._locked = False
        self._auto_rt = 0  # keepalived's cur_rt_priority

    def apply(self, opts: ProcessOptions) -> None:
        """Make this process what ``opts`` says (failures are logged, never raised)."""
        if opts.name is not None or self._original_name is not None:
            if self._original_name is None:
                self._original_name = get_name()
            set_name(opts.name, self._original_name)
        self._auto_rt = opts.rt_priority  # a reload forgets the automatic raises
        if opts.rt_priority:
            self._realtime(opts.rt_priority, opts.rlimit_rttime)
        elif opts.nice:
            self._nice(opts.nice)
        elif self._original_nice is not None:
            self._nice(self._original_nice)
        if opts.no_swap and not self._locked:
            if _c().mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0:
                log.info("Unable to lock process in memory - %s", _errno_text())
            else:
                self._locked = True
        elif not opts.no_swap and self._locked:
            _c().munlockall()
            self._locked = False
        if opts.cpus:
            cpus = cpu_set(opts.cpus, self.process)
            if cpus:
                try:
                    for tid in _threads():
                        os.sched_setaffinity(tid, cpus)
                except OSError as exc:
                    log.warning("unable to set cpu affinity to %s process (%s)",
                                self.process, exc.strerror)
        self.applied = opts

    def overdue(self, late_us: int) -> None:
        """A timer of this process ran ``late_us`` late: keepalived's check in
        lib/scheduler.c and its increment_process_priority.

        >>> t = ProcessTuning("vrrp"); t.overdue(10)   # under min_auto_priority_delay
        """
        if late_us <= self.applied.min_auto_delay_us:
            return
        log.info("A thread timer expired %d.%06d seconds ago", late_us // 1_000_000,
                 late_us % 1_000_000)
        top = self.applied.max_auto_priority
        if not top or self._auto_rt >= top:
            return
        self._auto_rt = self._auto_rt + 1 if self._auto_rt else \
            os.sched_get_priority_min(os.SCHED_RR)
        self._realtime(self._auto_rt, self.applied.rlimit_rttime)
        if self._rt:
            log.info("Set realtime priority %d", self._auto_rt)

    def relax(self) -> None:
        """keepalived's ``reset_process_priorities`` before a reload: normal scheduling
        (RLIMIT_RTTIME would kill a long reload under SCHED_RR)."""
        if self._rt:
            try:
                for tid in _threads():
                    os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
                self._rt = False
            except OSError:
                log.warning("%s process: cannot reset realtime scheduling", self.process)
            if self._original_rttime is not None:
                try:
                    resource.setrlimit(RLIMIT_RTTIME, self._original_rttime)
                except (OSError, ValueError):
                    log.warning("%s process cannot reset realtime rlimit", self.process)

    def _nice(self, nice: int) -> None:
        if self._original_nice is None:
            self._original_nice = os.getpriority(os.PRIO_PROCESS, 0)
        try:
            for tid in _threads():
                os.setpriority(os.PRIO_PROCESS, tid, nice)
        except OSError as exc:
            log.info("Unable to set process priority to %d - %s", nice, exc.strerror)
            return
        if nice < 0:
            # keepalived's script children reset their priority before exec; the kernel
            # does that for a negative nice with this flag (positive nice is inherited)
            try:
                for tid in _threads():
                    os.sched_setscheduler(tid, os.SCHED_OTHER | os.SCHED_RESET_ON_FORK,
                                          os.sched_param(0))
            except OSError:
                pass

    def _realtime(self, priority: int, rlimit_rttime: int) -> None:
        try:
            for tid in _threads():
                os.sched_setscheduler(tid, os.SCHED_RR | os.SCHED_RESET_ON_FORK,
                                      os.sched_param(priority))
        except OSError:
            log.warning("%s process: cannot raise priority", self.process)
            return
        self._rt = True
        if not rlimit_rttime:
            return
        limit = max(rlimit_rttime, 2)  # halved below, and the half must not be 0
        signal.signal(signal.SIGXCPU, self._sigxcpu)
        try:
            if self._original_rttime is None:
                self._original_rttime = resource.getrlimit(RLIMIT_RTTIME)
            # soft: keepalived's (half), where SIGXCPU warns and drops real-time
            # (_sigxcpu); hard: at least RT_HARD_FLOOR_US, because Python runs the
            # handler only between bytecodes and a long C call (a check round over
            # tens of thousands of servers) outlasts keepalived's 5 ms to the kill
            resource.setrlimit(RLIMIT_RTTIME, (limit // 2, max(limit, RT_HARD_FLOOR_US)))
        except (OSError, ValueError):
            log.warning("%s process cannot set realtime rlimit", self.process)

    def _sigxcpu(self, _signum: int, _frame: object) -> None:
        log.info("%s process has used too much CPU time, %s_rlimit_rttime may need to be "
                 "increased", self.process.upper() if self.process == "vrrp" else "Checker",
                 self.process)
        # keepalived logs and runs on until the hard limit kills it (and is restarted,
        # to be killed again on the next burst).  A Python worker's bursts are longer
        # than keepalived's, so the same limit would leave a large pool unchecked in a
        # restart loop: the burst ends at normal scheduling instead (RLIMIT_RTTIME
        # counts only real-time time), real-time again from the next reload.
        if self._rt:
            self.relax()
            log.warning("%s process: realtime scheduling dropped until the next reload",
                        self.process)


class LatenessWatch:
    """Ticks on ``loop`` every ``period_s`` and reports how late each tick ran, in µs,
    to ``report`` (:meth:`ProcessTuning.overdue`).  keepalived measures its earliest
    timer at each wake-up; one tick among our timers sees the same stalls (a blocked
    loop, a process not scheduled) at two wake-ups a second.

    Example::

        watch = LatenessWatch(loop, tuning.overdue)
        ...
        watch.close()
    """

    def __init__(self, loop: Any, report: Any, period_s: float = 0.5) -> None:
        self.loop, self.report, self.period_s = loop, report, period_s
        self._at = loop.time() + period_s
        self._handle = loop.call_at(self._at, self._tick)

    def _tick(self) -> None:
        late_us = int((self.loop.time() - self._at) * 1_000_000)
        self._at = self.loop.time() + self.period_s
        self._handle = self.loop.call_at(self._at, self._tick)
        if late_us > 0:
            self.report(late_us)

    def close(self) -> None:
        self._handle.cancel()
