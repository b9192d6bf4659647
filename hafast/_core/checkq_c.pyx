# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, auto_pickle=False
"""The check engine's timer queue, compiled: the same contract as ``checkq_py``.

The twin keeps its entries as ``(when, seq, check)`` tuples in deques and a heapq
list; here an entry is a C struct (``Entry``) in a ring buffer per lane or in a C
binary heap, holding one strong reference to its check, so arming a timer
allocates no Python object but the token int, and a wake-up walks the due entries
in one C loop.  Every buffer and every reference is released in one place
(``_drop_all``, called by ``clear`` and ``__dealloc__``).
"""

from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.ref cimport Py_DECREF, Py_INCREF, PyObject
from libc.math cimport ceil, INFINITY

import logging

log = logging.getLogger("hafast.check")

__all__ = ["NO_ATTEMPT", "Check", "CheckState", "ConnectSet", "Latency", "TimerQueue"]


cdef struct Entry:
    double when
    long long seq
    PyObject *check        # a strong reference while the entry is held


cdef struct Lane:
    double delay
    Entry *buf
    Py_ssize_t head        # index of the oldest entry
    Py_ssize_t count
    Py_ssize_t cap         # a power of two (0: no buffer yet)


cdef class _Running:
    def cancel(self):
        return None


cdef object _RUNNING = _Running()


cdef inline bint _before(Entry *a, Entry *b) noexcept nogil:
    # The heap's order: time, then arming order (the twin's tuple comparison).
    return a.when < b.when or (a.when == b.when and a.seq < b.seq)


cdef class Check


# A queued item is a Check (its token a C field) or anything with a ``token``
# attribute (tests' stand-ins): the Check case costs no attribute lookup.
cdef inline long long _token(object check) except? -1:
    if isinstance(check, Check):
        return (<Check>check).token
    return <long long>check.token


cdef inline int _set_token(object check, long long token) except -1:
    if isinstance(check, Check):
        (<Check>check).token = token
    else:
        check.token = token
    return 0


cdef class TimerQueue:
    """Every check's one pending timer, behind one ``loop.call_at`` handle."""

    cdef readonly object loop
    cdef readonly double grain
    cdef readonly object handle
    cdef readonly double armed_at
    cdef readonly long long seq
    cdef readonly double due     # while on_timer runs: the time its entry was due
    cdef public long long steady # steady successes not yet taken (see checkq_py)
    cdef object _run_cb          # the bound _run, made once
    cdef Lane *_lanes
    cdef Py_ssize_t _nlanes
    cdef Py_ssize_t _lanes_cap
    cdef Entry *_heap
    cdef Py_ssize_t _nheap
    cdef Py_ssize_t _heap_cap

    SLACK = 0.001
    BATCH = 65536
    GRAIN = 0.01

    def __init__(self, loop, grain=None):
        self.loop = loop
        self.grain = self.GRAIN if grain is None else grain
        self.seq = 0
        self.due = 0.0
        self.handle = None
        self.armed_at = 0.0
        self._run_cb = self._run

    def __dealloc__(self):
        self._drop_all(False)
        PyMem_Free(self._lanes)
        PyMem_Free(self._heap)

    # -- public -------------------------------------------------------------------

    def at(self, double when, check):
        """Make ``when`` (loop time) the check's one timer, replacing any it had."""
        self._at(when, check)

    cdef int _at(self, double when, object check) except -1:
        self.seq += 1
        _set_token(check, self.seq)
        self._heap_push(when, self.seq, check)
        if self.handle is None or when < self.armed_at:
            self._arm(when)
        return 0

    def after(self, double delay, check):
        """Make "``delay`` seconds from now" the check's one timer (a lane per delay)."""
        self._after(delay, check)

    cdef int _after(self, double delay, object check) except -1:
        cdef double when
        cdef Lane *lane
        self.seq += 1
        _set_token(check, self.seq)
        when = <double>self.loop.time() + delay
        lane = self._lane(delay)
        self._lane_push(lane, when, self.seq, check)
        if self.handle is None or when < self.armed_at:
            self._arm(when)
        return 0

    def __len__(self):
        cdef Py_ssize_t n = self._nheap, i
        for i in range(self._nlanes):
            n += self._lanes[i].count
        return n

    def clear(self):
        """Drop every entry (their checks' tokens go to 0) and the loop timer."""
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self._drop_all(True)

    @property
    def heap(self):
        """The heap's entries as ``(when, seq, check)`` (a copy, in heap order)."""
        cdef Py_ssize_t i
        return [(self._heap[i].when, self._heap[i].seq, <object>self._heap[i].check)
                for i in range(self._nheap)]

    @property
    def lanes(self):
        """``{delay: [(when, seq, check), ...]}`` in firing order (a copy)."""
        cdef Py_ssize_t i, j
        cdef Lane *lane
        out = {}
        for i in range(self._nlanes):
            lane = &self._lanes[i]
            out[lane.delay] = [
                (lane.buf[(lane.head + j) & (lane.cap - 1)].when,
                 lane.buf[(lane.head + j) & (lane.cap - 1)].seq,
                 <object>lane.buf[(lane.head + j) & (lane.cap - 1)].check)
                for j in range(lane.count)]
        return out

    def take_steady(self):
        """The steady successes tallied since the last call (and zero the tally)."""
        n = self.steady
        self.steady = 0
        return n

    # -- the loop timer -----------------------------------------------------------

    cdef _arm(self, double when):
        if self.handle is not None:
            self.handle.cancel()
        if self.grain > 0:
            # (less a hair: a time already on the grid must stay there despite float error)
            when = ceil(when / self.grain - 1e-6) * self.grain
        self.armed_at = when
        self.handle = self.loop.call_at(when, self._run_cb)

    def _run(self):
        cdef double due, earliest
        cdef long left = self.BATCH
        cdef Py_ssize_t i, nlanes
        cdef Lane *lane
        cdef Entry e
        # While the batch runs, entries the callbacks push do not touch the loop timer
        # (armed_at -inf: nothing is "earlier"); the earliest entry is armed once, after.
        self.handle = _RUNNING
        self.armed_at = -INFINITY
        due = <double>self.loop.time() + <double>self.SLACK
        nlanes = self._nlanes  # a lane a callback opens waits for the next wake-up
        i = 0
        while i < nlanes and i < self._nlanes:
            # Re-read the lane each time: a callback may grow or clear the arrays.
            while left > 0 and i < self._nlanes:
                lane = &self._lanes[i]
                if lane.count == 0 or lane.buf[lane.head].when > due:
                    break
                e = lane.buf[lane.head]
                lane.head = (lane.head + 1) & (lane.cap - 1)
                lane.count -= 1
                left -= 1
                self._fire(e)
            i += 1
        while left > 0 and self._nheap > 0 and self._heap[0].when <= due:
            e = self._heap_pop()
            left -= 1
            self._fire(e)
        # Cancelled entries at the front: drop them, do not wake for them.
        earliest = INFINITY
        for i in range(self._nlanes):
            lane = &self._lanes[i]
            while lane.count and not self._live(&lane.buf[lane.head]):
                e = lane.buf[lane.head]
                lane.head = (lane.head + 1) & (lane.cap - 1)
                lane.count -= 1
                Py_DECREF(<object>e.check)
            if lane.count and lane.buf[lane.head].when < earliest:
                earliest = lane.buf[lane.head].when
        while self._nheap and not self._live(&self._heap[0]):
            e = self._heap_pop()
            Py_DECREF(<object>e.check)
        if self._nheap and self._heap[0].when < earliest:
            earliest = self._heap[0].when
        self.handle = None
        if earliest != INFINITY:
            self._arm(earliest)

    cdef inline bint _live(self, Entry *e) except -1:
        return _token(<object>e.check) == e.seq

    cdef _fire(self, Entry e):
        # The entry left its buffer: its reference is ours now, dropped on the way out.
        check = <object>e.check
        Py_DECREF(check)  # `check` holds its own reference for this call
        if _token(check) == e.seq:
            _set_token(check, 0)
            self.due = e.when
            try:
                if isinstance(check, Check):
                    (<Check>check)._on_timer()
                else:
                    check.on_timer()
            except Exception:  # an event consumer that raised: log it, go on
                log.exception("%s: timer callback raised", check.name)

    # -- lanes (ring buffers) -----------------------------------------------------

    cdef Lane *_lane(self, double delay) except NULL:
        cdef Py_ssize_t i
        cdef Lane *lanes
        # A handful of lanes (one per distinct delay): a scan beats a dict of floats.
        for i in range(self._nlanes):
            if self._lanes[i].delay == delay:
                return &self._lanes[i]
        if self._nlanes == self._lanes_cap:
            lanes = <Lane *>PyMem_Realloc(self._lanes,
                                          (self._lanes_cap * 2 + 4) * sizeof(Lane))
            if lanes == NULL:
                raise MemoryError()
            self._lanes = lanes
            self._lanes_cap = self._lanes_cap * 2 + 4
        i = self._nlanes
        self._lanes[i].delay = delay
        self._lanes[i].buf = NULL
        self._lanes[i].head = 0
        self._lanes[i].count = 0
        self._lanes[i].cap = 0
        self._nlanes += 1
        return &self._lanes[i]

    cdef int _lane_push(self, Lane *lane, double when, long long seq, object check) except -1:
        cdef Py_ssize_t cap, j
        cdef Entry *buf
        if lane.count == lane.cap:
            cap = lane.cap * 2 if lane.cap else 64
            buf = <Entry *>PyMem_Realloc(NULL, cap * sizeof(Entry))
            if buf == NULL:
                raise MemoryError()
            for j in range(lane.count):  # unwrap the ring into the new buffer
                buf[j] = lane.buf[(lane.head + j) & (lane.cap - 1)]
            PyMem_Free(lane.buf)
            lane.buf, lane.head, lane.cap = buf, 0, cap
        j = (lane.head + lane.count) & (lane.cap - 1)
        lane.buf[j].when = when
        lane.buf[j].seq = seq
        lane.buf[j].check = <PyObject *>check
        Py_INCREF(check)
        lane.count += 1
        return 0

    # -- the heap (arbitrary times: warmup) ---------------------------------------

    cdef int _heap_push(self, double when, long long seq, object check) except -1:
        cdef Py_ssize_t i, parent, cap
        cdef Entry e
        cdef Entry *heap
        if self._nheap == self._heap_cap:
            cap = self._heap_cap * 2 if self._heap_cap else 64
            heap = <Entry *>PyMem_Realloc(self._heap, cap * sizeof(Entry))
            if heap == NULL:
                raise MemoryError()
            self._heap, self._heap_cap = heap, cap
        e.when, e.seq, e.check = when, seq, <PyObject *>check
        Py_INCREF(check)
        i = self._nheap
        self._nheap += 1
        while i > 0:
            parent = (i - 1) >> 1
            if not _before(&e, &self._heap[parent]):
                break
            self._heap[i] = self._heap[parent]
            i = parent
        self._heap[i] = e
        return 0

    cdef Entry _heap_pop(self) noexcept:
        # The caller checked _nheap > 0; the entry's reference passes to the caller.
        cdef Entry top = self._heap[0]
        cdef Entry last
        cdef Py_ssize_t i = 0, child, n
        self._nheap -= 1
        n = self._nheap
        if n:
            last = self._heap[n]
            while True:
                child = 2 * i + 1
                if child >= n:
                    break
                if child + 1 < n and _before(&self._heap[child + 1], &self._heap[child]):
                    child += 1
                if not _before(&self._heap[child], &last):
                    break
                self._heap[i] = self._heap[child]
                i = child
            self._heap[i] = last
        return top

    # -- release, in one place ----------------------------------------------------

    cdef _drop_all(self, bint reset_tokens):
        cdef Py_ssize_t i, j
        cdef Lane *lane
        cdef PyObject *p
        # Detach everything first: resetting a token runs Python code, which may push.
        held = []
        for i in range(self._nheap):
            p = self._heap[i].check
            held.append(<object>p)
            Py_DECREF(<object>p)
        self._nheap = 0
        for i in range(self._nlanes):
            lane = &self._lanes[i]
            for j in range(lane.count):
                p = lane.buf[(lane.head + j) & (lane.cap - 1)].check
                held.append(<object>p)
                Py_DECREF(<object>p)
            PyMem_Free(lane.buf)
        self._nlanes = 0
        if reset_tokens:
            for check in held:
                _set_token(check, 0)


# --------------------------------------------------------------------------- checks

cdef double US = 1_000_000.0


cdef class _NoAttempt:
    """The attempt of a kind that finished at once: nothing to cancel."""

    def cancel(self):
        return None


NO_ATTEMPT = _NoAttempt()


cdef class Latency:
    """Attempt durations: a cumulative histogram; see ``checkq_py.Latency``."""

    cdef readonly tuple edges
    cdef double *_edges
    cdef long long *_counts
    cdef Py_ssize_t _n
    cdef public long long count
    cdef public double sum

    def __init__(self, edges):
        cdef Py_ssize_t i
        self.edges = tuple(float(e) for e in edges)
        self._n = len(self.edges)
        PyMem_Free(self._edges)
        PyMem_Free(self._counts)
        self._edges = <double *>PyMem_Realloc(NULL, (self._n + 1) * sizeof(double))
        self._counts = <long long *>PyMem_Realloc(NULL, (self._n + 1) * sizeof(long long))
        if self._edges == NULL or self._counts == NULL:
            raise MemoryError()
        for i in range(self._n):
            self._edges[i] = self.edges[i]
            self._counts[i] = 0
        self.count = 0
        self.sum = 0.0

    def __dealloc__(self):
        PyMem_Free(self._edges)
        PyMem_Free(self._counts)

    cdef void _observe(self, double seconds) noexcept:
        cdef Py_ssize_t i
        self.count += 1
        self.sum += seconds
        for i in range(self._n):
            if seconds <= self._edges[i]:
                self._counts[i] += 1

    def observe(self, double seconds):
        self._observe(seconds)

    @property
    def buckets(self):
        return [self._counts[i] for i in range(self._n)]

    def as_dict(self):
        return {"buckets": list(zip(self.edges, self.buckets, strict=True)),
                "count": self.count, "sum": self.sum}


cdef class CheckState:
    """A checker's health arithmetic: up/down, whether it ran, the retry count
    (``runner.settle`` moves it).  See ``checkq_py.CheckState``."""

    cdef public bint up
    cdef public bint has_run
    cdef public long retry_it

    def __init__(self, up):
        self.up = up
        self.has_run = False
        self.retry_it = 0


cdef class Check:
    """One scheduled checker; the same contract as ``checkq_py.Check``.

    Compiled so that the path every attempt takes (the timer fires, the kind
    starts, ``done`` comes back, a steady success re-arms delay_loop) runs no
    Python frame of its own: the queue calls ``_on_timer`` as a C method, and
    ``done`` is a C method the kinds call.  ``fire``/``expire``/``_done`` stay
    overridable from Python (cpdef): the supervisor's timed check and the
    benchmarks subclass them.
    """

    # What every attempt touches first, together (C lays the fields out in this
    # order): ten thousand checks do not stay in the cache between two attempts.
    cdef public long long token
    cdef public bint pending
    cdef public bint up, has_run  # the check is its own CheckState (``state``)
    cdef public long retry_it
    cdef public object kind, done, attempt, weight, latency
    cdef public double deadline_s, delay_loop_s, t0
    cdef TimerQueue _tq
    cdef object _loop
    cdef public object runner
    cdef object _timers          # runner.timers (the compiled queue: _tq too)
    cdef Latency _lat            # latency, when it is the compiled histogram
    # The rest: transitions, logs, reloads.
    cdef public object label, healths, last_reason, delay_loop_us, delay_before_retry_us
    cdef public bint log_all
    cdef public long retry

    def __init__(self, runner, kind, label=None):
        spec = kind.spec
        self.runner = runner
        self.kind = kind
        self.label = label
        immediate = kind.immediate
        self.up = immediate or not getattr(spec, "alpha", False)
        self.has_run = False
        self.retry_it = 0
        self.retry = 0 if immediate else getattr(spec, "retry", 1)
        self.delay_loop_us = getattr(spec, "delay_loop_us", 60 * 1_000_000)
        self.delay_before_retry_us = getattr(spec, "delay_before_retry_us", 1_000_000)
        self.log_all = runner.log_all_failures or getattr(spec, "log_all_failures", False)
        self.healths = ()
        self.token = 0
        self.attempt = NO_ATTEMPT
        self.pending = False
        self.weight = None
        self.last_reason = ""
        self.deadline_s = kind.deadline_us() / US
        self.delay_loop_s = self.delay_loop_us / US
        self._timers = runner.timers
        self._tq = runner.timers if isinstance(runner.timers, TimerQueue) else None
        self._loop = runner.loop
        self.latency = getattr(runner, "latency", None)
        self._lat = self.latency if isinstance(self.latency, Latency) else None
        self.t0 = 0.0
        self.done = self._done

    cdef inline int _observe(self) except -1:
        # (only with a latency: the clock is read twice per attempt for it)
        if self._lat is not None:
            self._lat._observe(<double>self._loop.time() - self.t0)
        elif self.latency is not None:
            self.latency.observe(<double>self._loop.time() - self.t0)
        return 0

    @property
    def state(self):
        """The up/has_run/retry_it arithmetic (``runner.settle``): the check itself,
        one object less per check and one cache miss less per attempt."""
        return self

    @property
    def name(self):
        """For logs: made when needed, not stored ten thousand times."""
        if self.label is not None:
            return str(self.label)
        t = self.kind.target
        return f"{self.kind.keyword} {t.address}:{t.port}"

    def feed(self, health):
        """Let this check's state count in ``health`` too."""
        self.healths += (health,)
        health.attach(self.up)

    # -- timer callbacks ----------------------------------------------------------

    cdef int _after(self, double delay) except -1:
        if self._tq is not None:
            self._tq._after(delay, self)
        else:
            self._timers.after(delay, self)
        return 0

    cdef int _on_timer(self) except -1:
        if self.pending:
            self.expire()
        else:
            self.fire()
        return 0

    def on_timer(self):
        """The check's one timer: the attempt's deadline while one runs, else the start."""
        self._on_timer()

    cpdef fire(self):
        """Start one attempt; arm its deadline unless it finished at once."""
        self.pending = True
        if self.latency is not None:
            self.t0 = self._loop.time()
        try:
            attempt = self.kind.start(self.done)
        except Exception as exc:  # a kind must not raise; never let it kill the loop
            attempt = NO_ATTEMPT
            self.runner.start_raised(self, exc)
        if self.pending:
            self.attempt = attempt
            self._after(self.deadline_s)

    cpdef expire(self):
        """The deadline passed: cancel the attempt; the kind says what that means."""
        self.token = 0
        if not self.pending:
            return
        self.pending = False
        if self.latency is not None:
            self._observe()
        attempt = self.attempt
        self.attempt = NO_ATTEMPT
        attempt.cancel()
        # From when the deadline was due, not this wake-up (see checkq_py.Check).
        runner = self.runner
        runner.settled(self, self.kind.on_deadline(), self._timers.due)

    cpdef _done(self, result):
        if not self.pending:  # cancelled, or a kind reporting twice: ignore
            return
        self.pending = False
        self.attempt = NO_ATTEMPT
        self.token = 0  # the deadline entry is now stale
        if self.latency is not None:
            self._observe()
        if self.up and self.retry_it == 0 and result.ok:
            weight = result.weight
            if weight is self.weight or weight == self.weight:
                # The steady state: what settle() would say, with no call into the
                # runner; one more in the queue's tally (Runner.counters folds it in).
                self.has_run = True
                if self._tq is not None:
                    self._tq.steady += 1
                else:
                    self._timers.steady += 1
                if self.runner.running:
                    self._after(self.delay_loop_s)
                return
        self.runner.settled(self, result)

    def arm(self, delay_us, since=None):
        """The next start ``delay_us`` from now, or from ``since`` (loop time)."""
        if since is None:
            self._after(delay_us / US)
        elif self._tq is not None:
            self._tq._at(since + delay_us / US, self)
        else:
            self._timers.at(since + delay_us / US, self)

    def stop(self):
        self.token = 0
        if self.pending:
            self.pending = False
            attempt = self.attempt
            self.attempt = NO_ATTEMPT
            attempt.cancel()


# --------------------------------------------------------------------------- connects

cdef extern from "<sys/socket.h>":
    ctypedef unsigned int socklen_t
    struct sockaddr:
        pass
    struct linger:
        int l_onoff
        int l_linger
    int socket(int domain, int type, int protocol) nogil
    int connect(int fd, const sockaddr *addr, socklen_t len) nogil
    int getsockopt(int fd, int level, int name, void *val, socklen_t *len) nogil
    int setsockopt(int fd, int level, int name, const void *val, socklen_t len) nogil
    int AF_INET, AF_INET6, SOCK_STREAM, SOCK_NONBLOCK, SOCK_CLOEXEC
    int SOL_SOCKET, SO_ERROR, SO_LINGER

cdef extern from "<netinet/in.h>":
    struct in_addr:
        pass
    struct in6_addr:
        pass
    struct sockaddr_in:
        int sin_family
        unsigned short sin_port
        in_addr sin_addr
    struct sockaddr_in6:
        int sin6_family
        unsigned short sin6_port
        in6_addr sin6_addr
    unsigned short htons(unsigned short) nogil

cdef extern from "<arpa/inet.h>":
    int inet_pton(int af, const char *src, void *dst) nogil

cdef extern from "<sys/epoll.h>":
    union epoll_data:
        int fd
    struct epoll_event:
        unsigned int events
        epoll_data data
    int epoll_create1(int flags) nogil
    int epoll_ctl(int epfd, int op, int fd, epoll_event *ev) nogil
    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout) nogil
    int EPOLL_CLOEXEC, EPOLL_CTL_ADD, EPOLLOUT, EPOLLONESHOT

cdef extern from "<unistd.h>":
    int close(int fd) nogil

from libc.errno cimport errno, EINPROGRESS, EINVAL, EINTR
from libc.string cimport memset


cdef extern from "<netinet/in.h>":
    int IPPROTO_TCP

cdef extern from "<netinet/tcp.h>":
    int TCP_QUICKACK

cdef int _ZERO = 0

# Which step of _dial failed.
cdef enum:
    _DIAL_SOCKET = 1     # socket(): nothing was tried
    _DIAL_CONNECT = 2    # the address, or connect() itself


cdef int _dial(int family, str address, int port, bint smart, int *step) except? -2:
    """Begin a non-blocking TCP connect: the fd, or ``-errno`` with ``step[0]`` the
    step that failed.

    SO_LINGER {1, 0} before the connect: every close of the fd is a RST, no
    TIME_WAIT on either side.  ``smart``: no quick ACKs (HAProxy's "option
    tcp-smart-connect"), for a connection that sends at once: the ACK of the
    SYN-ACK rides on the request, and the reply is not ACKed before the RST: 7
    packets a check instead of 9, each of them costing both ends' TCP on this CPU.
    """
    cdef sockaddr_in sin
    cdef sockaddr_in6 sin6
    cdef const sockaddr *sa
    cdef socklen_t salen
    cdef linger lg
    cdef int fd, err
    cdef bytes raw = address.encode("ascii", "replace")
    step[0] = _DIAL_CONNECT
    if family == AF_INET:
        memset(&sin, 0, sizeof(sin))
        sin.sin_family = AF_INET
        sin.sin_port = htons(<unsigned short>port)
        if inet_pton(AF_INET, raw, &sin.sin_addr) != 1:
            return -EINVAL
        sa, salen = <const sockaddr *>&sin, sizeof(sin)
    elif family == AF_INET6:
        memset(&sin6, 0, sizeof(sin6))
        sin6.sin6_family = AF_INET6
        sin6.sin6_port = htons(<unsigned short>port)
        if inet_pton(AF_INET6, raw, &sin6.sin6_addr) != 1:
            return -EINVAL
        sa, salen = <const sockaddr *>&sin6, sizeof(sin6)
    else:
        return -EINVAL
    fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)
    if fd < 0:
        step[0] = _DIAL_SOCKET
        return -errno
    lg.l_onoff, lg.l_linger = 1, 0
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg))
    if smart:
        setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &_ZERO, sizeof(_ZERO))
    if connect(fd, sa, salen) < 0 and errno != EINPROGRESS:
        err = errno
        close(fd)
        return -err
    return fd


cdef class _EpollSet:
    """One epoll and its event buffer: what ConnectSet and FetchSet share.  A
    subclass calls ``_open`` from ``__init__`` and ``_close_epoll`` from its release."""

    cdef int _epfd
    cdef int _max_events
    cdef epoll_event *_events
    cdef readonly Py_ssize_t pending

    def __cinit__(self):
        self._epfd = -1

    cdef int _open(self, int max_events) except -1:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self._epfd = epoll_create1(EPOLL_CLOEXEC)
        if self._epfd < 0:
            raise OSError(errno, "epoll_create1")
        self._max_events = max_events
        self._events = <epoll_event *>PyMem_Realloc(NULL, max_events * sizeof(epoll_event))
        if self._events == NULL:
            raise MemoryError()
        return 0

    cdef void _close_epoll(self) noexcept:
        if self._epfd >= 0:
            close(self._epfd)
            self._epfd = -1
        PyMem_Free(self._events)
        self._events = NULL

    cdef int _wait(self) except -1:
        """The events ready now (no waiting): how many are in ``_events``."""
        cdef int n
        if self._epfd < 0:
            return 0
        n = epoll_wait(self._epfd, self._events, self._max_events, 0)
        if n < 0:
            if errno == EINTR:
                return 0
            raise OSError(errno, "epoll_wait")
        return n

    def fileno(self):
        """The epoll descriptor, for ``loop.add_reader``."""
        return self._epfd

    @property
    def closed(self):
        return self._epfd < 0


cdef class ConnectSet(_EpollSet):
    """Non-blocking TCP connects in one epoll, every syscall in C (see ``checkq_py``)."""

    cdef unsigned char *_owned    # _owned[fd]: a connect of ours is in flight on fd
    cdef Py_ssize_t _owned_cap

    def __init__(self, int max_events=4096):
        self._open(max_events)

    def __dealloc__(self):
        self._release()

    def start(self, int family, str address, int port):
        """Begin a connect to ``address``:``port``; the fd (>= 0), or ``-errno``."""
        cdef int fd, step
        if self._epfd < 0:
            raise ValueError("ConnectSet is closed")
        fd = _dial(family, address, port, False, &step)
        if fd < 0:
            return fd
        # (an immediate success is watched too: epoll reports it writable at once)
        return self._watch(fd)

    def adopt(self, int fd):
        """Watch a connect begun elsewhere (a socket with bind/mark options); the set
        owns ``fd`` from now on, even on failure.  0, or ``-errno``."""
        if self._epfd < 0:
            close(fd)
            raise ValueError("ConnectSet is closed")
        err = self._watch(fd)
        return err if err < 0 else 0

    cdef int _watch(self, int fd) except? -2:
        cdef epoll_event ev
        cdef int err
        cdef Py_ssize_t cap
        cdef unsigned char *owned
        if fd >= self._owned_cap:
            cap = max(fd + 1, self._owned_cap * 2, 1024)
            owned = <unsigned char *>PyMem_Realloc(self._owned, cap)
            if owned == NULL:
                close(fd)
                raise MemoryError()
            memset(owned + self._owned_cap, 0, cap - self._owned_cap)
            self._owned, self._owned_cap = owned, cap
        ev.events = EPOLLOUT | EPOLLONESHOT
        ev.data.fd = fd
        if epoll_ctl(self._epfd, EPOLL_CTL_ADD, fd, &ev) < 0:
            err = errno
            close(fd)
            return -err
        self._owned[fd] = 1
        self.pending += 1
        return fd

    def ready(self):
        """``[(fd, SO_ERROR), ...]`` of the connects that finished; their fds are closed."""
        cdef int n, i, fd, soerr
        cdef socklen_t optlen
        out = []
        n = self._wait()
        for i in range(n):
            fd = self._events[i].data.fd
            if fd < 0 or fd >= self._owned_cap or not self._owned[fd]:
                continue
            soerr = 0
            optlen = sizeof(soerr)
            if getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &optlen) < 0:
                soerr = errno
            self._owned[fd] = 0
            self.pending -= 1
            close(fd)  # closing also takes it out of the epoll set
            out.append((fd, soerr))
        return out

    def cancel(self, int fd):
        """Abandon the connect on ``fd`` (closed with a RST); False if not ours."""
        if fd < 0 or fd >= self._owned_cap or not self._owned[fd]:
            return False
        self._owned[fd] = 0
        self.pending -= 1
        close(fd)
        return True

    def close(self):
        """Close every connect in flight and the epoll."""
        self._release()

    cdef void _release(self) noexcept:
        cdef Py_ssize_t fd
        for fd in range(self._owned_cap):
            if self._owned[fd]:
                close(<int>fd)
        PyMem_Free(self._owned)
        self._owned, self._owned_cap, self.pending = NULL, 0, 0
        self._close_epoll()


# --------------------------------------------------------------------------- fetches

cdef extern from "<sys/socket.h>":
    ssize_t send(int fd, const void *buf, size_t n, int flags) nogil
    ssize_t recv(int fd, void *buf, size_t n, int flags) nogil
    int MSG_NOSIGNAL

cdef extern from "<sys/epoll.h>":
    int EPOLLIN, EPOLLERR, EPOLLHUP, EPOLL_CTL_MOD

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.ref cimport Py_XDECREF
from libc.errno cimport EAGAIN

__all__ += ["FetchSet"]

# What ended a fetch (``status`` in ``ready``'s tuples, ``-status`` from ``start``):
# the stage in the high bits, the errno in the low 16.  0: the fetch goes on.
cdef enum:
    _EOF = 1
    _CONNECT = 0x10000   # the connect failed (or the first send said how it failed)
    _SEND = 0x20000      # sending the rest of the request failed
    _READ = 0x30000      # reading the reply failed
    _SOCKET = 0x40000    # no socket (socket(), epoll_ctl): nothing was tried
    _READ_SIZE = 262144  # one read buffer for the whole set; a chunk is at most this
    _BUDGET = 1048576    # bytes read per ready() call before yielding to the loop


cdef struct Fetch:
    PyObject *owner      # a strong reference while the fetch is ours (NULL: slot free)
    PyObject *request    # a strong reference while part of it is unsent
    Py_ssize_t sent
    bint used


cdef class FetchSet(_EpollSet):
    """One request/reply exchange per plain TCP connection, all in one epoll, every
    syscall in C (see ``checkq_py.FetchSet``)."""

    cdef Fetch *_fetches         # indexed by fd
    cdef Py_ssize_t _cap
    cdef char *_buf

    OPEN = 0
    EOF = _EOF
    CONNECT = _CONNECT
    SEND = _SEND
    READ = _READ
    SOCKET = _SOCKET
    STAGE = 0xFFFF0000
    READ_SIZE = _READ_SIZE
    BUDGET = _BUDGET

    def __init__(self, int max_events=4096):
        self._open(max_events)
        self._buf = <char *>PyMem_Realloc(NULL, _READ_SIZE)
        if self._buf == NULL:
            raise MemoryError()

    def __dealloc__(self):
        self._release()

    def start(self, int family, str address, int port, bytes request, owner=None):
        """Connect to ``address``:``port`` and send ``request``: the fd (>= 0), or
        ``-(stage | errno)`` when it failed at once."""
        cdef int fd, err, step
        cdef ssize_t sent
        cdef epoll_event ev
        cdef Py_ssize_t size = PyBytes_GET_SIZE(request)
        if self._epfd < 0:
            raise ValueError("FetchSet is closed")
        fd = _dial(family, address, port, True, &step)
        if fd < 0:
            return -((_SOCKET if step == _DIAL_SOCKET else _CONNECT) | -fd)
        if fd >= self._cap and self._grow(fd) < 0:
            close(fd)
            raise MemoryError()
        # Send at once: over loopback or a veth the handshake has usually completed
        # inside connect().  Linux says EAGAIN while still in SYN_SENT
        # (sk_stream_wait_connect) and the connect's own error once it failed.
        sent = send(fd, PyBytes_AS_STRING(request), <size_t>size, MSG_NOSIGNAL)
        if sent < 0:
            err = errno
            if err != EAGAIN and err != EINTR:
                close(fd)
                return -(_CONNECT | err)
            sent = 0
        # Unsent bytes: watch writability too (and keep reading: a server may answer
        # before it has read everything, as a 413 does).
        ev.events = EPOLLIN if sent == size else EPOLLIN | EPOLLOUT
        ev.data.fd = fd
        if epoll_ctl(self._epfd, EPOLL_CTL_ADD, fd, &ev) < 0:
            err = errno
            close(fd)
            return -(_SOCKET | err)
        self._fetches[fd].used = True
        self._fetches[fd].owner = <PyObject *>owner
        Py_INCREF(owner)
        self._fetches[fd].sent = sent
        if sent < size:
            self._fetches[fd].request = <PyObject *>request
            Py_INCREF(request)
        else:
            self._fetches[fd].request = NULL
        self.pending += 1
        return fd

    cdef int _grow(self, int fd) noexcept:
        cdef Py_ssize_t cap = max(fd + 1, self._cap * 2, 1024)
        cdef Fetch *fetches = <Fetch *>PyMem_Realloc(self._fetches, cap * sizeof(Fetch))
        if fetches == NULL:
            return -1
        memset(fetches + self._cap, 0, (cap - self._cap) * sizeof(Fetch))
        self._fetches, self._cap = fetches, cap
        return 0

    cdef inline Fetch *_ours(self, int fd) noexcept:
        if fd < 0 or fd >= self._cap or not self._fetches[fd].used:
            return NULL
        return &self._fetches[fd]

    cdef object _end(self, int fd):
        """Close ``fd`` (a RST) and free its slot; the owner's reference passes to
        the caller."""
        cdef Fetch *f = &self._fetches[fd]
        owner = <object>f.owner
        Py_DECREF(owner)   # `owner` holds its own reference now
        Py_XDECREF(f.request)
        f.owner, f.request, f.sent, f.used = NULL, NULL, 0, False
        self.pending -= 1
        close(fd)  # closing also takes it out of the epoll set
        return owner

    cdef int _send_rest(self, int fd, Fetch *f) noexcept:
        """Writable (or an error): the connect's outcome, then the rest of the
        request.  0 (goes on), or the status that ended it."""
        cdef int soerr = 0
        cdef socklen_t optlen = sizeof(soerr)
        cdef ssize_t n
        cdef Py_ssize_t size = PyBytes_GET_SIZE(<object>f.request)
        cdef epoll_event ev
        if f.sent == 0:
            # Nothing went out yet: the handshake just finished, SO_ERROR says how.
            if getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &optlen) < 0:
                soerr = errno
            if soerr:
                return _CONNECT | soerr
        n = send(fd, PyBytes_AS_STRING(<object>f.request) + f.sent,
                 <size_t>(size - f.sent), MSG_NOSIGNAL)
        if n < 0:
            if errno == EAGAIN or errno == EINTR:
                return 0
            return _SEND | errno
        f.sent += n
        if f.sent == size:
            Py_DECREF(<object>f.request)
            f.request = NULL
            ev.events = EPOLLIN
            ev.data.fd = fd
            if epoll_ctl(self._epfd, EPOLL_CTL_MOD, fd, &ev) < 0:
                return _SEND | errno
        return 0

    def ready(self):
        """``[(fd, owner, data, status), ...]``: what each fetch read in this call
        (``data``: bytes, or None) and how it ended (``status`` 0: it goes on).  An
        ended fetch's fd is closed already."""
        cdef int n, i, fd, status, events
        cdef ssize_t got
        cdef Py_ssize_t have, budget = _BUDGET
        cdef Fetch *f
        out = []
        n = self._wait()
        for i in range(n):
            if budget <= 0:
                break  # level-triggered: the rest are reported again next time
            fd = self._events[i].data.fd
            f = self._ours(fd)
            if f == NULL:
                continue
            events = self._events[i].events
            status = 0
            if f.request != NULL and events & (EPOLLOUT | EPOLLERR | EPOLLHUP):
                status = self._send_rest(fd, f)
            have = 0
            if status == 0 and events & (EPOLLIN | EPOLLERR | EPOLLHUP):
                # Read to EAGAIN, EOF or a full buffer: the server's FIN usually
                # follows its reply at once, and seeing it now saves a round trip.
                while have < _READ_SIZE:
                    got = recv(fd, self._buf + have, <size_t>(_READ_SIZE - have), 0)
                    if got > 0:
                        have += got
                    elif got == 0:
                        status = _EOF
                        break
                    else:
                        if errno != EAGAIN and errno != EINTR:
                            status = _READ | errno
                        break
                budget -= have
            if have == 0 and status == 0:
                continue
            # The owner first: making the bytes may run the GC, and a finalizer may
            # call back into the set (``f`` would dangle, the slot may be gone).
            owner = self._end(fd) if status else <object>f.owner
            data = PyBytes_FromStringAndSize(self._buf, have) if have else None
            out.append((fd, owner, data, status))
        return out

    def cancel(self, int fd):
        """Abandon the fetch on ``fd`` (closed with a RST); False if not ours."""
        if self._ours(fd) == NULL:
            return False
        self._end(fd)
        return True

    def close(self):
        """Close every fetch in flight and the epoll."""
        self._release()

    cdef void _release(self) noexcept:
        cdef Py_ssize_t fd
        cdef Fetch *fetches = self._fetches
        cdef Py_ssize_t cap = self._cap
        # Close everything first, references last: dropping an owner may run Python
        # code that calls back in, and must find the set closed and empty.
        self._fetches, self._cap, self.pending = NULL, 0, 0
        for fd in range(cap):
            if fetches[fd].used:
                close(<int>fd)
        self._close_epoll()
        PyMem_Free(self._buf)
        self._buf = NULL
        for fd in range(cap):
            if fetches[fd].used:
                Py_XDECREF(fetches[fd].owner)
                Py_XDECREF(fetches[fd].request)
        PyMem_Free(fetches)
