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
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

import logging

log = logging.getLogger("hafast.check")

__all__ = ["NO_ATTEMPT", "Check", "Latency", "TimerQueue"]


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


cdef inline double _monotonic() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9


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
    cdef public double late      # worst lateness of an entry run (see checkq_py)
    cdef object _run_cb          # the bound _run, made once
    cdef double _now             # the loop's time at this wake-up (for late)
    cdef Lane *_lanes
    cdef Py_ssize_t _nlanes
    cdef Py_ssize_t _lanes_cap
    cdef Entry *_heap
    cdef Py_ssize_t _nheap
    cdef Py_ssize_t _heap_cap

    SLACK = 0.001
    BUDGET = 0.005  # seconds of callbacks per wake-up (why: checkq_py.TimerQueue)
    GRAIN = 0.01

    def __init__(self, loop, grain=None):
        self.loop = loop
        self.grain = self.GRAIN if grain is None else grain
        self.seq = 0
        self.due = 0.0
        self.late = 0.0
        self._now = 0.0
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

    def take_late(self):
        """The worst lateness (seconds) of an entry run since the last call."""
        late = self.late
        self.late = 0.0
        return late

    # -- the loop timer -----------------------------------------------------------

    cdef _arm(self, double when):
        if self.handle is not None:
            self.handle.cancel()
        if self.grain > 0 and when > <double>self.loop.time() + <double>self.SLACK:
            # (less a hair: a time already on the grid must stay there despite float error)
            when = ceil(when / self.grain - 1e-6) * self.grain
        self.armed_at = when
        self.handle = self.loop.call_at(when, self._run_cb)

    def _run(self):
        cdef double due, earliest, stop
        cdef bint left = True
        cdef Py_ssize_t i, nlanes
        cdef Lane *lane
        cdef Entry e
        # While the batch runs, entries the callbacks push do not touch the loop timer
        # (armed_at -inf: nothing is "earlier"); the earliest entry is armed once, after.
        self.handle = _RUNNING
        self.armed_at = -INFINITY
        self._now = <double>self.loop.time()
        due = self._now + <double>self.SLACK
        stop = _monotonic() + <double>self.BUDGET
        nlanes = self._nlanes  # a lane a callback opens waits for the next wake-up
        i = 0
        while i < nlanes and i < self._nlanes:
            # Re-read the lane each time: a callback may grow or clear the arrays.
            while left and i < self._nlanes:
                lane = &self._lanes[i]
                if lane.count == 0 or lane.buf[lane.head].when > due:
                    break
                e = lane.buf[lane.head]
                lane.head = (lane.head + 1) & (lane.cap - 1)
                lane.count -= 1
                self._fire(e)
                left = _monotonic() < stop
            i += 1
        while left and self._nheap > 0 and self._heap[0].when <= due:
            e = self._heap_pop()
            self._fire(e)
            left = _monotonic() < stop
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
            if self._now - e.when > self.late:
                self.late = self._now - e.when
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


cdef class Check:
    """One scheduled checker; the same contract as ``checkq_py.Check``.

    Compiled so that the path every attempt takes (the timer fires, the kind
    starts, ``done`` comes back, a steady success re-arms delay_loop) runs no
    Python frame of its own: the queue calls ``_on_timer`` as a C method, and
    ``done`` is a C method the kinds call.  ``fire``/``expire``/``_done`` stay
    overridable from Python (cpdef): tests and benchmarks subclass them.  The
    runner's ``timers`` must be this module's TimerQueue and its ``latency`` this
    module's Latency (or None): the flavours are not mixed.

    No state logic is compiled: the runner's ``configure`` sets the initial state
    and timers (alpha, retry, the delays), its ``settle`` every outcome but the
    steady success, for both twins alike.
    """

    # What every attempt touches first, together (C lays the fields out in this
    # order): ten thousand checks do not stay in the cache between two attempts.
    cdef public long long token
    cdef public bint pending
    cdef public bint up, has_run  # the check is its own state (``state``)
    cdef public long retry_it
    cdef public object kind, attempt, weight
    cdef public Latency latency
    cdef public double deadline_s, delay_loop_s, t0
    cdef TimerQueue _tq          # runner.timers
    cdef object _loop
    cdef public object runner
    # The rest: transitions, logs, reloads.
    cdef public object label, healths, last_reason, delay_loop_us, delay_before_retry_us
    cdef public bint log_all
    cdef public long retry

    def __init__(self, runner, kind, label=None):
        # (up, retry, the delays: the runner's configure, after this)
        self.runner = runner
        self.kind = kind
        self.label = label
        self.healths = ()
        self.token = 0
        self.attempt = NO_ATTEMPT
        self.pending = False
        self.weight = None
        self.last_reason = ""
        self._tq = runner.timers
        self._loop = runner.loop
        self.latency = getattr(runner, "latency", None)
        self.t0 = 0.0

    # The check is the ``done`` its kind calls (see checkq_py.Check.__call__).
    def __call__(self, result):
        self._done(result)

    @property
    def done(self):
        """What a kind is given to report an attempt's result: the check itself."""
        return self

    cdef inline int _observe(self) except -1:
        # (only with a latency: the clock is read twice per attempt for it)
        if self.latency is not None:
            self.latency._observe(<double>self._loop.time() - self.t0)
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
        """Let this check's state count in ``health`` too.

        ``healths`` is what the check feeds, to iterate.  Its one health (the usual
        case) is held alone when that health is its own one-element collection
        (``SELF_COLLECTION``, as ``hafast.check.runner.ServerHealth``): a tuple of one
        was 48 bytes a check (issue 16).  From the second on, a tuple."""
        held = self.healths
        if not held:
            self.healths = health if getattr(health, "SELF_COLLECTION", False) else (health,)
        elif type(held) is tuple:
            self.healths = (*held, health)
        else:
            self.healths = (held, health)
        health.attach(self.up)

    # -- timer callbacks ----------------------------------------------------------

    cdef inline int _after(self, double delay) except -1:
        return self._tq._after(delay, self)

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
            attempt = self.kind.start(self)
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
        runner.settled(self, self.kind.on_deadline(), self._tq.due)

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
                self._tq.steady += 1
                if self.runner.running:
                    self._after(self.delay_loop_s)
                return
        self.runner.settled(self, result)

    def stop(self):
        self.token = 0
        if self.pending:
            self.pending = False
            attempt = self.attempt
            self.attempt = NO_ATTEMPT
            attempt.cancel()
