# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, auto_pickle=False
"""The check engine's TCP sockets, compiled: the same contract as ``sockset_py``.

TCP_CHECK's connects (:class:`ConnectSet`) and plain HTTP_GET's request/reply
exchanges (:class:`FetchSet`) each wait in ONE epoll that the loop watches as one
reader; every syscall of an attempt (socket, options, connect, send, reads,
``SO_ERROR``, close) runs here in C, with no Python socket object per attempt.
Only those syscalls are here, as in the pure twin: the sets' contract (the status
numbers, the buffer and budget, the arguments and states refused, a failure at
once) is ``hafast._core.epoll_set``'s, read at import into the C globals below.
"""

# The sets' contract, once for both twins (plain Python: no attempt that goes well
# calls into it).
from hafast._core import epoll_set as _rules

from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.ref cimport Py_DECREF, Py_INCREF, PyObject

__all__ = ["ConnectSet", "FetchSet"]


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
cdef int _DIAL_SOCKET = _rules.DIAL_SOCKET
cdef int _DIAL_CONNECT = _rules.DIAL_CONNECT


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
        self._max_events = _rules.check_max_events(max_events)
        self._epfd = epoll_create1(EPOLL_CLOEXEC)
        if self._epfd < 0:
            raise OSError(errno, "epoll_create1")
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
    """Non-blocking TCP connects in one epoll, every syscall in C (see
    ``sockset_py.ConnectSet``)."""

    cdef unsigned char *_owned    # _owned[fd]: a connect of ours is in flight on fd
    cdef Py_ssize_t _owned_cap

    def __init__(self, int max_events=_rules.MAX_EVENTS):
        self._open(max_events)

    def __dealloc__(self):
        self._release()

    def start(self, int family, str address, int port):
        """Begin a connect to ``address``:``port``; the fd (>= 0), or ``-errno``."""
        cdef int fd, step
        if self._epfd < 0:
            raise _rules.closed("ConnectSet")
        fd = _dial(family, address, port, False, &step)
        if fd < 0:
            return fd
        # (an immediate success is watched too: epoll reports it writable at once)
        return self._watch(fd)

    def adopt(self, int fd):
        """Watch a connect begun elsewhere (a socket with bind/mark options); the set
        owns ``fd`` from now on, even on failure.  0, or ``-errno``."""
        if self._epfd < 0:
            _rules.refuse_adopt(fd)
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

# What ended a fetch, the read buffer and the budget: see epoll_set.
cdef int _EOF = _rules.EOF
cdef int _CONNECT = _rules.CONNECT
cdef int _SEND = _rules.SEND
cdef int _READ = _rules.READ
cdef int _SOCKET = _rules.SOCKET
cdef Py_ssize_t _READ_SIZE = _rules.READ_SIZE
cdef Py_ssize_t _BUDGET = _rules.BUDGET


cdef struct Fetch:
    PyObject *owner      # a strong reference while the fetch is ours (NULL: slot free)
    PyObject *request    # a strong reference while part of it is unsent
    Py_ssize_t sent
    bint used


cdef class FetchSet(_EpollSet):
    """One request/reply exchange per plain TCP connection, all in one epoll, every
    syscall in C (see ``sockset_py.FetchSet``)."""

    cdef Fetch *_fetches         # indexed by fd
    cdef Py_ssize_t _cap
    cdef char *_buf

    OPEN = _rules.OPEN
    EOF = _rules.EOF
    CONNECT = _rules.CONNECT
    SEND = _rules.SEND
    READ = _rules.READ
    SOCKET = _rules.SOCKET
    STAGE = _rules.STAGE
    READ_SIZE = _rules.READ_SIZE
    BUDGET = _rules.BUDGET

    def __init__(self, int max_events=_rules.MAX_EVENTS):
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
            raise _rules.closed("FetchSet")
        fd = _dial(family, address, port, True, &step)
        if fd < 0:
            return _rules.failed_at_once(step, -fd)
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
