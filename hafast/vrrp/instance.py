"""One VRRP instance: the pure FSM driven by the loop, its actions carried out in order.

The shell around :func:`hafast.vrrp.fsm.step`.  Events come from the transport
(validated adverts), from timers armed on the loop, from trackers (weight, fault)
and from the daemon (start, stop); every event is fed through ``step`` and the
returned actions are executed in the order given:

* ``SendAdvert`` -> the transport channel; ``SendGratuitous`` -> the announcer
  (GARP on an AF_PACKET socket, unsolicited NA for IPv6);
* ``AddVips`` / ``RemoveVips`` -> the VIP backend (virtual_ipaddress,
  virtual_ipaddress_excluded, virtual_routes);
* ``StartTimer`` replaces the pending timer of its kind; a firing carries the
  deadline it was armed for (``at_us``) so a stale one is ignored by the FSM;
* ``Notify`` -> notify scripts and FIFOs (``INITIALIZE`` is keepalived's STOP).

Events raised while actions run (a sync group reacting to our change) are queued
and fed after, so the FSM never sees re-entrant calls.

Counters use keepalived's JSON names.  Rejected packets are counted per reason
and logged rate-limited; nothing a peer sends can raise out of here.

Example (unit-test style, everything in memory)::

    clock = ManualTimers()
    inst = Instance(spec, timers=clock, vips=MemoryVips(), announcer=NullAnnouncer(),
                    notifier=None, sender=fake_channel)
    inst.start(); clock.advance(4_000_000)   # no master heard: we are master
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import heapq
import ipaddress
import itertools
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from hafast._core.vrrp_codec import Advert
from hafast._core.vrrp_constants import (
    ADDR_LIST_ERR,
    AUTH_FAILURE,
    AUTHTYPE_MISMATCH,
    CHECKSUM_ERR,
    INVALID_AUTHTYPE,
    IP_TTL_ERR,
    PRIORITY_STOP,
    VERSION_ERR,
)
from hafast.config.iprule import IpRule
from hafast.config.model import VirtualAddress
from hafast.lib.notify import Notifier, NotifyScripts
from hafast.lib.units import NS_PER_US, US_PER_S
from hafast.net.vip import RouteSpec, VipOps
from hafast.vrrp import fsm
from hafast.vrrp.announce import gratuitous_arp, unsolicited_na
from hafast.vrrp.fsm import State, TimerKind
from hafast.vrrp.pacing import GarpPacing
from hafast.vrrp.params import VrrpParams
from hafast.vrrp.transport import RateLimitedLog

log = logging.getLogger("hafast.vrrp")

# keepalived's per-instance statistics (vrrp_json.c / SNMP), in its order.
COUNTER_NAMES = (
    "advert_rcvd",
    "advert_sent",
    "become_master",
    "release_master",
    "packet_len_err",
    "advert_interval_err",
    "ip_ttl_err",
    "invalid_type_rcvd",
    "addr_list_err",
    "invalid_authtype",
    "authtype_mismatch",
    "auth_failure",
    "pri_zero_rcvd",
    "pri_zero_sent",
)

# Adverts an address owner drops (owner_ignore_adverts); keepalived counts them nowhere.
OWNER_IGNORE = "owner_ignore_adverts"

# The rejects keepalived 2.2.7 raises an SNMP notification for (vrrp_check_packet),
# with their codes.  RFC 2787 vrrpTrapAuthErrorType: invalidAuthType(1),
# authTypeMismatch(2), authFailure(3) (an AH that does not verify says authFailure).
AUTH_ERROR_TYPES = {INVALID_AUTHTYPE: 1, AUTHTYPE_MISMATCH: 2, AUTH_FAILURE: 3}
# RFC 6527 vrrpv3StatisticsProtoErrReason: ipTtlError(1) (a multicast TTL not 255 or a
# unicast peer's out of its min_ttl/max_ttl), versionError(2), checksumError(3); the
# instance keeps the last one.  keepalived never says vrIdError(4): a packet for
# another VRID reaches no instance.
PROTO_ERROR_REASONS = {IP_TTL_ERR: 1, VERSION_ERR: 2, CHECKSUM_ERR: 3}

# Notify words keepalived uses for each FSM state.
STATE_WORDS = {State.MASTER: "MASTER", State.BACKUP: "BACKUP", State.FAULT: "FAULT",
               State.INITIALIZE: "STOP"}


# ------------------------------------------------------------------ time


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Timers(Protocol):
    """The clock and timer service an instance runs on (µs, monotonic)."""

    def now_us(self) -> int: ...

    def call_at(self, at_us: int, callback: Callable[[], None]) -> TimerHandle: ...


class LoopTimers:
    """Timers on an asyncio/uvloop loop, times from CLOCK_MONOTONIC in µs."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def now_us(self) -> int:
        return time.monotonic_ns() // NS_PER_US

    def call_at(self, at_us: int, callback: Callable[[], None]) -> TimerHandle:
        delay = max(0, at_us - self.now_us()) / US_PER_S
        return self.loop.call_later(delay, callback)


class TimerfdTimers:
    """Microsecond timers on one timerfd watched by the loop (Linux).

    uvloop (libuv) keeps timers in whole milliseconds against a loop time cached
    at the start of each iteration, which made takeovers fire up to ~4 ms late on
    a busy host; keepalived's takeovers land within a fraction of a millisecond.
    Here every deadline sits in a heap, and one CLOCK_MONOTONIC timerfd armed
    (absolute time) for the earliest wakes the loop exactly then.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._libc = _libc()
        fd = self._libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self.fd = fd
        self._heap: list[tuple[int, int, _ManualHandle, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._armed: int | None = None
        loop.add_reader(fd, self._on_expiry)

    def now_us(self) -> int:
        return time.monotonic_ns() // NS_PER_US

    def call_at(self, at_us: int, callback: Callable[[], None]) -> TimerHandle:
        h = _ManualHandle()
        heapq.heappush(self._heap, (at_us, next(self._seq), h, callback))
        if self._armed is None or at_us < self._armed:
            self._arm(at_us)
        return h

    def _arm(self, at_us: int) -> None:
        self._armed = at_us
        # An absolute deadline of 0 would disarm the timer: never ask for less than 1 µs.
        at_us = max(at_us, 1)
        sec, us = divmod(at_us, US_PER_S)
        spec = _ITimerSpec(_TimeSpec(0, 0), _TimeSpec(sec, us * NS_PER_US))
        if self._libc.timerfd_settime(self.fd, TFD_TIMER_ABSTIME, ctypes.byref(spec), None) < 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")

    def _on_expiry(self) -> None:
        try:
            os.read(self.fd, 8)
        except BlockingIOError:
            pass
        self._armed = None
        now = self.now_us()
        while self._heap and self._heap[0][0] <= now:
            _, _, h, cb = heapq.heappop(self._heap)
            if not h.cancelled:
                try:
                    cb()
                except Exception:
                    log.exception("timer callback failed")
            now = self.now_us()
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        if self._heap:
            self._arm(self._heap[0][0])

    def close(self) -> None:
        self.loop.remove_reader(self.fd)
        os.close(self.fd)


CLOCK_MONOTONIC = 1
TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = os.O_CLOEXEC
TFD_TIMER_ABSTIME = 1


class _TimeSpec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _ITimerSpec(ctypes.Structure):
    _fields_ = [("it_interval", _TimeSpec), ("it_value", _TimeSpec)]


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.timerfd_settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
                                     ctypes.c_void_p]
    return libc


def precise_timers(loop: asyncio.AbstractEventLoop) -> Timers:
    """A :class:`TimerfdTimers` where the kernel has timerfd, else :class:`LoopTimers`."""
    try:
        return TimerfdTimers(loop)
    except (OSError, AttributeError):
        return LoopTimers(loop)


class _ManualHandle:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualTimers:
    """A manual clock for tests: nothing happens until :meth:`advance`.

    >>> t = ManualTimers(); fired = []
    >>> _ = t.call_at(10, lambda: fired.append(t.now_us()))
    >>> t.advance(5); fired
    []
    >>> t.advance(5); fired
    [10]
    """

    def __init__(self, start_us: int = 0) -> None:
        self._now = start_us
        self._heap: list[tuple[int, int, _ManualHandle, Callable[[], None]]] = []
        self._seq = itertools.count()

    def now_us(self) -> int:
        return self._now

    def call_at(self, at_us: int, callback: Callable[[], None]) -> TimerHandle:
        h = _ManualHandle()
        heapq.heappush(self._heap, (at_us, next(self._seq), h, callback))
        return h

    def advance(self, us: int) -> None:
        """Move time forward by ``us``, firing due timers in deadline order."""
        end = self._now + us
        while self._heap and self._heap[0][0] <= end:
            at, _, h, cb = heapq.heappop(self._heap)
            if h.cancelled:
                continue
            self._now = max(self._now, at)
            cb()
        self._now = end


# ------------------------------------------------------------------ announcements


class Announcer(Protocol):
    def announce(self, vips: Sequence[VirtualAddress], repeat: int, owner: str = "") -> None:
        ...

    def withdraw(self, owner: str) -> None: ...

    def close(self) -> None: ...


class NullAnnouncer:
    """Records bursts instead of sending them (tests, interfaces without L2)."""

    def __init__(self) -> None:
        self.bursts: list[tuple[int, int]] = []

    def announce(self, vips: Sequence[VirtualAddress], repeat: int, owner: str = "") -> None:
        self.bursts.append((len(vips), repeat))

    def withdraw(self, owner: str) -> None:
        pass

    def close(self) -> None:
        pass


class PacketAnnouncer:
    """GARP (RFC 5798 §6.4.1, IPv4) and unsolicited NA (§8.2.2, IPv6) on an AF_PACKET socket."""

    def __init__(self, loop: asyncio.AbstractEventLoop, ifname: str, mac: bytes,
                 pacing: GarpPacing | None = None) -> None:
        self.loop = loop
        self.ifname = ifname
        self.mac = mac
        # garp_group / vrrp_garp_interval: shared by every announcer of the process
        self.pacing = pacing
        self.sent = 0
        self.dropped = 0
        self.sock = _packet_socket(ifname)
        self._router = _forwarding(ifname)
        # VIPs written "dev OTHER": keepalived announces each on its own interface, with
        # that interface's MAC (vrrp_send_link_update per VIP ifp), so the hosts behind
        # it (a real server's gateway VIP) learn the new master at once instead of after
        # their neighbour entry goes stale.  Opened on first use, kept until it fails.
        self._links: dict[str, tuple[socket.socket, bytes, bool]] = {}

    def _link(self, ifname: str) -> tuple[socket.socket, bytes, bool] | None:
        if ifname == self.ifname:
            return self.sock, self.mac, self._router
        got = self._links.get(ifname)
        if got is None:
            try:
                sock = _packet_socket(ifname)
                # a bound packet socket's name carries the link's hardware address (and
                # is the socket's namespace's view, unlike /sys under a plain setns)
                got = (sock, bytes(sock.getsockname()[4]), _forwarding(ifname))
            except OSError as exc:
                self.dropped += 1
                log.warning("%s: gratuitous ARP/NA not sent: %s", ifname, exc)
                return None
            self._links[ifname] = got
        return got

    def _frame(self, vip: VirtualAddress, mac: bytes, router: bool) -> bytes:
        packed = socket.inet_pton(socket.AF_INET if vip.family == 4 else socket.AF_INET6,
                                  vip.address)
        if vip.family == 4:
            return gratuitous_arp(packed, mac)
        return unsolicited_na(packed, mac, router=router)

    def _send(self, ifname: str, sock: socket.socket, frame: bytes) -> None:
        try:
            sock.send(frame)
            self.sent += 1
        except OSError as exc:
            self.dropped += 1
            log.warning("%s: gratuitous ARP/NA not sent: %s", ifname, exc)
            if sock is not self.sock and self._links.get(ifname, (None,))[0] is sock:
                del self._links[ifname]  # the link went away: reopen on the next burst
                sock.close()

    def announce(self, vips: Sequence[VirtualAddress], repeat: int, owner: str = "") -> None:
        # keepalived vrrp_send_link_update: ``repeat`` rounds over the VIPs, each on its
        # own link; where a pacer spaces the link, what it holds back waits there.
        links: dict[str, tuple[socket.socket, bytes, bool] | None] = {}
        plan: list[tuple[int, int, str, socket.socket, bytes]] = []
        for index, v in enumerate(vips):
            ifname = v.dev or self.ifname
            if ifname not in links:
                links[ifname] = self._link(ifname)
            link = links[ifname]
            if link is not None:
                sock, mac, router = link
                plan.append((index, v.family, ifname, sock, self._frame(v, mac, router)))
        for _ in range(repeat):
            for index, family, ifname, sock, frame in plan:
                if self.pacing is None:
                    self._send(ifname, sock, frame)
                else:
                    self.pacing.send(ifname, family, owner, index,
                                     functools.partial(self._send, ifname, sock, frame))

    def withdraw(self, owner: str) -> None:
        if self.pacing is not None:
            self.pacing.withdraw(owner)

    def close(self) -> None:
        self.sock.close()
        for sock, _mac, _router in self._links.values():
            sock.close()
        self._links.clear()


def _packet_socket(ifname: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.setblocking(False)
    s.bind((ifname, 0))
    return s


def _forwarding(ifname: str) -> bool:
    # keepalived sets the NA Router flag only when the interface forwards IPv6.
    try:
        with open(f"/proc/sys/net/ipv6/conf/{ifname}/forwarding") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


# ------------------------------------------------------------------ the instance


class AdvertSender(Protocol):
    def send(self, priority: int) -> bool: ...


class StateNotifier(Protocol):
    """Where state changes are reported (hafast.lib.notify.Notifier)."""

    def state_change(self, kind: str, name: str, state: str, priority: int,
                     scripts: NotifyScripts) -> None: ...


class _HeldNotifier:
    """Stands in for the notifier while an instance resumes; replays on demand.

    Only state changes are held: priority and lower-priority-advert reports are
    looked up with getattr, so during a resume they are not made at all."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, int, NotifyScripts]] = []

    def state_change(self, kind: str, name: str, state: str, priority: int,
                     scripts: NotifyScripts) -> None:
        self.calls.append((kind, name, state, priority, scripts))

    def replay(self, notifier: StateNotifier) -> None:
        for args in self.calls:
            notifier.state_change(*args)


class AcceptFilter(Protocol):
    """Drops traffic to a master's VIPs when it has no Accept_Mode (net.noaccept.NoAcceptFilter)."""

    def block(self, owner: str, vips: Sequence[VirtualAddress]) -> None: ...

    def unblock(self, owner: str, vips: Sequence[VirtualAddress]) -> None: ...


@dataclass(frozen=True, slots=True)
class InstanceSpec:
    """Everything about one ``vrrp_instance`` the shell needs (built by from_config)."""

    name: str
    ifname: str
    family: int
    params: VrrpParams
    vips: tuple[VirtualAddress, ...] = ()
    excluded: tuple[VirtualAddress, ...] = ()
    routes: tuple[RouteSpec, ...] = ()
    rules: tuple[IpRule, ...] = ()  # virtual_rules: up after the routes, down before
    scripts: NotifyScripts = field(default_factory=NotifyScripts)
    check_adv_addr: bool = True  # False: keepalived skip_check_adv_addr
    notify_priority_changes: bool = False
    notify_deleted: bool = False  # removed by a reload: DELETED rather than FAULT
    # garp_extra_if (hafast.vrrp.build.extra_if_garp): every this many µs while master,
    # one announcement for each of these VIPs (one per other interface); 0: off
    extra_if_garp_us: int = 0
    extra_if_vips: tuple[VirtualAddress, ...] = ()

    @property
    def packed_vips(self) -> tuple[bytes, ...]:
        fam = socket.AF_INET if self.family == 4 else socket.AF_INET6
        return tuple(socket.inet_pton(fam, v.address) for v in self.vips)


StateListener = Callable[["Instance", State, State], None]
# (inst, reason, source address) for each reject of AUTH_ERROR_TYPES or
# PROTO_ERROR_REASONS: the supervised worker tells the parent (its SNMP traps).
RxErrorListener = Callable[["Instance", str, bytes], None]


class Instance:
    """A running VRRP instance (see the module docstring)."""

    def __init__(
        self,
        spec: InstanceSpec,
        *,
        timers: Timers,
        vips: VipOps,
        announcer: Announcer,
        notifier: Notifier | None,
        sender: AdvertSender | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.machine = fsm.VrrpMachine(spec.params)
        self.timers = timers
        self.vips = vips
        self.announcer = announcer
        self.notifier: StateNotifier | None = notifier
        self.sender = sender
        self.counters: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)
        # When the last advert with a live priority went out (time.monotonic(), the
        # parent's clock too): the parent's VIP guard times a dead worker's release
        # from it (hafast.app.vipguard).
        self.last_advert_s: float | None = None
        self.rejects: dict[str, int] = {}  # every reject reason, keepalived-named or not
        self.master_heard = b""  # the last master heard as BACKUP (SNMP)
        # keepalived's stats->proto_err_reason: the PROTO_ERROR_REASONS code of the
        # last protocol error, 0 before any (RFC 6527 vrrpv3StatisticsProtoErrReason)
        self.proto_err_reason = 0
        self.on_rx_error: RxErrorListener | None = None
        # (inst, before, after) on each transition, and with before == after when a
        # tracker waited for (hold) reported without moving us: a sync group waits.
        self.listeners: list[StateListener] = []
        self.transitions: list[tuple[int, State]] = []  # (µs, state) history, bounded
        self._timers: dict[TimerKind, TimerHandle] = {}
        self._queue: deque[fsm.Event] = deque()
        self._busy = False
        self._expected = frozenset(spec.packed_vips)
        self._rlog = RateLimitedLog(log)
        self._weights: dict[str, int] = {}
        self.accept_filter: AcceptFilter | None = None  # set by the daemon
        self.retired = False
        # keepalived vrrp_startup_delay: when (µs, our clock) the daemon's delay ends;
        # set by the worker, 0 for none (fsm.Startup.delayed_until_us)
        self.delayed_until_us = 0
        self._extra_garp_at: int | None = None  # garp_extra_if: next due, while master

    # -- queries ------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self.machine.state.state

    @property
    def priority(self) -> int:
        return self.machine.state.priority

    def status(self) -> dict[str, object]:
        s = self.machine.state
        return {"name": self.name, "state": STATE_WORDS.get(s.state, s.state.value),
                "priority": s.priority, "base_priority": s.base_priority,
                "stats": dict(self.counters), "rejects": dict(self.rejects)}

    # -- inputs -------------------------------------------------------------------

    def start(self) -> None:
        self.feed(fsm.Startup(self.timers.now_us(), self.delayed_until_us))

    def resume(self, was: State | None, *, adopt: bool = True) -> None:
        """Start, carrying on from ``was``: the state this instance's predecessor (the
        worker before a restart, or the instance a reload replaced) was in; None is a
        plain :meth:`start`.

        A predecessor that was MASTER left its VIPs up.  With ``adopt`` the VIP
        backend takes them as ours (its ``adopt``, if it has one: they then go on
        stop like any we added); a reload passes False, as the backend of the same
        process still holds them.  A resumed master does not wait out
        Master_Down_Interval (a backup would, and the VIPs would flap): the down
        timer fires at once.  Notifications are held while it starts and replayed,
        in order, only when it lands in another state than ``was``: otherwise
        nothing changed for the world.

        Example::

            inst.resume(State.MASTER)   # master now, its VIPs kept, nothing notified
        """
        if was is None:
            self.start()
            return
        # The predecessor knew its trackers' results; this one's trackers have not
        # run yet.  They are taken as good, as before the restart, rather than
        # holding a master in a silent Fault until their first report.
        for reason in sorted(self.machine.state.pending):
            self.clear_fault(reason)
        if was is State.MASTER and adopt:
            take = getattr(self.vips, "adopt", None)
            if take is not None:
                taken = take(self.name, self.spec.vips + self.spec.excluded, self.spec.ifname)
                if taken:
                    log.info("%s: took over %d VIP(s) left up by the previous worker",
                             self.name, len(taken))
        notifier, held = self.notifier, _HeldNotifier()
        self.notifier = held
        try:
            self.start()
            st = self.machine.state
            if was is State.MASTER and st.state is State.BACKUP and st.master_down_at:
                self.feed(fsm.timer_fired(TimerKind.MASTER_DOWN, self.timers.now_us(),
                                          st.master_down_at))
                log.info("%s: resumed as MASTER", self.name)
        finally:
            self.notifier = notifier
        if self.state is not was and notifier is not None:
            held.replay(notifier)

    def stop(self) -> None:
        """Shutdown: a master sends priority 0 and releases its VIPs; notify STOP."""
        self.feed(fsm.Shutdown(self.timers.now_us()))
        for h in self._timers.values():
            h.cancel()
        self._timers.clear()

    def delete(self) -> None:
        """Removed by a reload: as :meth:`stop` (priority 0 from a master, VIPs
        released) but, as keepalived's clear_diff_vrrp, it says FAULT (its old way,
        still the default), or DELETED with ``notify_deleted`` (and that script runs),
        not STOP; an instance in FAULT already says nothing without ``notify_deleted``.

        Example::

            inst.delete()   # FIFO: INSTANCE "VI_2" FAULT 100
        """
        was, notifier = self.state, self.notifier
        self.notifier = None
        try:
            self.stop()
        finally:
            self.notifier = notifier
        if notifier is None or (was is State.FAULT and not self.spec.notify_deleted):
            return
        word = "DELETED" if self.spec.notify_deleted else "FAULT"
        notifier.state_change("INSTANCE", self.name, word, self.priority, self.spec.scripts)

    def retire(self) -> None:
        """Leave without a Shutdown (a reload replaces us): no priority 0, no notify,
        VIPs left in place for the successor of the same name; later events are ignored."""
        self.retired = True
        for h in self._timers.values():
            h.cancel()
        self._timers.clear()
        self._queue.clear()

    def set_weight(self, source: str, weight: int) -> None:
        """Tracker ``source`` now contributes ``weight`` to the priority."""
        if self._weights.get(source) == weight:
            return
        self._weights[source] = weight
        self.feed(fsm.PriorityChanged(self.timers.now_us(), sum(self._weights.values())))

    def raise_fault(self, reason: str) -> None:
        if reason not in self.machine.state.faults:
            self.feed(fsm.FaultRaised(self.timers.now_us(), reason))

    def clear_fault(self, reason: str) -> None:
        s = self.machine.state
        if reason in s.faults or reason in s.pending:
            self.feed(fsm.FaultCleared(self.timers.now_us(), reason))

    def hold(self, reason: str) -> None:
        """Before :meth:`start`: tracker ``reason`` may fault us and has not reported
        yet (:class:`hafast.vrrp.fsm.FaultPending`); its first :meth:`raise_fault` or
        :meth:`clear_fault` settles it."""
        self.feed(fsm.FaultPending(self.timers.now_us(), reason))

    def on_advert(self, adv: Advert, at_us: int | None = None) -> str | None:
        """A packet for our VRID: count it, and feed it to the FSM when it is valid.

        ``at_us`` is when it arrived (the transport's kernel stamp); the FSM's
        timers then run from the arrival, not from when Python got to it.
        Returns the reason a valid advert was dropped here (the transport counts
        it on its socket too), None when it went to the FSM or the codec had
        already rejected it.
        """
        if not adv.ok:
            self._reject(adv.reason, adv)
            return None
        if fsm.ignores_adverts(self.machine.params, self.machine.state):
            # keepalived vrrp_check_packet: dropped before it counts as received.
            self.rejects[OWNER_IGNORE] = self.rejects.get(OWNER_IGNORE, 0) + 1
            self._rlog.warning(OWNER_IGNORE, "(%s) Dropping packet(s) from %s since we are "
                               "address owner", self.name,
                               ipaddress.ip_address(bytes(adv.src)) if adv.src else "?")
            return OWNER_IGNORE
        if self.spec.check_adv_addr and adv.priority != PRIORITY_STOP:
            # keepalived vrrp_check_packet: the advert must list exactly our VIPs
            # (RFC 3768 §7.1 "MAY verify"; keepalived logs and drops a mismatch).
            if adv.count != len(self._expected) or set(adv.addresses) != self._expected:
                self._reject(ADDR_LIST_ERR, adv)
                return ADDR_LIST_ERR
        self.counters["advert_rcvd"] += 1
        if adv.priority == PRIORITY_STOP:
            self.counters["pri_zero_rcvd"] += 1
        elif self.state is State.BACKUP:
            # keepalived's master_saddr (RFC 2787 vrrpOperMasterIpAddr): the last
            # sender heard while BACKUP, kept while MASTER, where the FSM names itself
            self.master_heard = bytes(adv.src)
        now = self.timers.now_us()
        when = now if at_us is None or at_us > now else at_us
        self.feed(fsm.AdvertReceived(when, adv.priority, bytes(adv.src),
                                     adv.adver_int if adv.version == 3 else 0))
        return None

    def reject(self, reason: str, adv: Advert) -> None:
        """A valid advert the transport dropped (``check_unicast_src``): counted here
        as keepalived counts it (``ip_ttl_err`` for a TTL out of the peer's range);
        the transport has logged it."""
        self.rejects[reason] = self.rejects.get(reason, 0) + 1
        if reason in self.counters:
            self.counters[reason] += 1
        self._rx_error(reason, adv)

    def _reject(self, reason: str, adv: Advert) -> None:
        self.rejects[reason] = self.rejects.get(reason, 0) + 1
        if reason in self.counters:
            self.counters[reason] += 1
        self._rx_error(reason, adv)
        src = adv.src.hex() if adv.src else "?"
        self._rlog.warning(reason, "%s: advert rejected (%s) from %s: %r", self.name, reason,
                           src, adv)

    def _rx_error(self, reason: str, adv: Advert) -> None:
        # keepalived reads no packet in FAULT or INIT (vrrp_dispatcher_read skips it
        # before vrrp_check_packet), so it neither records nor notifies one then.
        if self.state not in (State.BACKUP, State.MASTER):
            return
        code = PROTO_ERROR_REASONS.get(reason)
        if code is not None:
            self.proto_err_reason = code
        elif reason not in AUTH_ERROR_TYPES:
            return
        if self.on_rx_error is not None:
            self.on_rx_error(self, reason, bytes(adv.src or b""))

    def clear_stats(self) -> None:
        """keepalived's stats cleared (``STATS_CLEAR``): every counter to zero, and the
        last protocol error forgotten (it lives in the same stats block there)."""
        for name in self.counters:
            self.counters[name] = 0
        self.proto_err_reason = 0

    # -- the engine ---------------------------------------------------------------

    def feed(self, event: fsm.Event) -> None:
        """Step the FSM with ``event`` and carry out its actions (queued if busy)."""
        if self.retired:
            return
        self._queue.append(event)
        if self._busy:
            return
        self._busy = True
        try:
            while self._queue:
                ev = self._queue.popleft()
                before = self.state
                pending = self.machine.state.pending
                actions = self.machine.handle(ev)
                for action in actions:
                    try:
                        self._do(action)
                    except Exception:  # an I/O failure must not stop the sequence
                        log.exception("%s: action %r failed", self.name, action)
                after = self.state
                if after is not before:
                    self._transition(before, after)
                elif pending and len(self.machine.state.pending) < len(pending):
                    self._tell(before, after)
        finally:
            self._busy = False

    def _transition(self, before: State, after: State) -> None:
        self.transitions.append((self.timers.now_us(), after))
        del self.transitions[:-64]
        if after is State.MASTER:
            self.counters["become_master"] += 1
        if before is State.MASTER:
            self.counters["release_master"] += 1
        log.info("%s: entering %s state (priority %d)", self.name,
                 STATE_WORDS.get(after, after.value), self.priority)
        self._tell(before, after)

    def _tell(self, before: State, after: State) -> None:
        for listener in list(self.listeners):
            try:
                listener(self, before, after)
            except Exception:
                log.exception("%s: state listener failed", self.name)

    def _do(self, action: fsm.Action) -> None:
        handler = _ACTIONS[type(action)]
        handler(self, action)

    def _send_advert(self, a: fsm.SendAdvert) -> None:
        if self.sender is None:
            return
        self.sender.send(a.priority)
        if a.priority != PRIORITY_STOP:
            self.last_advert_s = time.monotonic()
        # keepalived vrrp_state_master_tx: the garp_extra_if timer is looked at as a
        # master's advert goes out, and runs from when the VIPs went up.  keepalived
        # schedules its next advert from after that (vrrp_init_instance_sands), so the
        # advert at the period's end is always past the timer: the GARPs go every
        # period (measured: 2.0, 4.0, 6.0 s for 'garp_extra_if 2').  Our adverts keep
        # their own beat, so the one within half an interval of the timer counts.
        due = self._extra_garp_at
        if due is not None and self.timers.now_us() >= due - self.spec.params.adver_int_us // 2:
            self.announcer.announce(self.spec.extra_if_vips, 1, self.name)
            self._extra_garp_at = self.timers.now_us() + self.spec.extra_if_garp_us
        self.counters["advert_sent"] += 1
        if a.priority == PRIORITY_STOP:
            self.counters["pri_zero_sent"] += 1

    def _send_gratuitous(self, a: fsm.SendGratuitous) -> None:
        self.announcer.announce(self.spec.vips + self.spec.excluded, a.repeat, self.name)

    @property
    def filtered(self) -> bool:
        """Whether traffic to our VIPs is dropped while we are master (no Accept_Mode)."""
        return self.accept_filter is not None and not self.spec.params.accept_effective

    def _add_vips(self, a: fsm.AddVips) -> None:
        s = self.spec
        # RFC 5798 §6.4.3: without Accept_Mode the filter goes up before the VIPs,
        # so there is no moment when they answer.
        if self.filtered:
            self.accept_filter.block(self.name, s.vips + s.excluded)  # type: ignore[union-attr]
        self.vips.add(self.name, s.vips + s.excluded, s.routes, s.ifname, s.rules)
        if s.extra_if_garp_us:
            self._extra_garp_at = self.timers.now_us() + s.extra_if_garp_us

    def _remove_vips(self, a: fsm.RemoveVips) -> None:
        s = self.spec
        # keepalived vrrp_restore_interface -> vrrp_remove_delayed_arp
        self.announcer.withdraw(self.name)
        self._extra_garp_at = None
        self.vips.remove(self.name, s.vips + s.excluded, s.routes, s.ifname, s.rules)
        if self.filtered:
            self.accept_filter.unblock(self.name, s.vips + s.excluded)  # type: ignore[union-attr]

    def _start_timer(self, a: fsm.StartTimer) -> None:
        old = self._timers.pop(a.kind, None)
        if old is not None:
            old.cancel()
        kind, at = a.kind, a.at_us
        self._timers[kind] = self.timers.call_at(at, lambda: self._fired(kind, at))

    def _fired(self, kind: TimerKind, at_us: int) -> None:
        self._timers.pop(kind, None)
        self.feed(fsm.timer_fired(kind, self.timers.now_us(), at_us))

    def _cancel_timer(self, a: fsm.CancelTimer) -> None:
        old = self._timers.pop(a.kind, None)
        if old is not None:
            old.cancel()

    def _notify(self, a: fsm.Notify) -> None:
        if self.notifier is not None:
            word = STATE_WORDS.get(a.state, a.state.value)
            self.notifier.state_change("INSTANCE", self.name, word, a.priority, self.spec.scripts)

    def _notify_priority(self, a: fsm.NotifyPriority) -> None:
        log.info("%s: effective priority now %d", self.name, a.priority)
        # keepalived send_instance_priority_notifies: FIFO only, MASTER_ or BACKUP_PRIORITY.
        report = getattr(self.notifier, "priority_change", None)
        if self.spec.notify_priority_changes and report is not None:
            report(self.name, self.state is State.MASTER, a.priority)

    def _rx_lower(self, a: fsm.NotifyMasterRxLowerPri) -> None:
        self._rlog.warning("rx_lower", "%s: master received lower priority %d advert",
                           self.name, a.priority)
        # keepalived send_event_notify: every such advert, with our effective priority.
        report = getattr(self.notifier, "master_rx_lower_pri", None)
        if report is not None:
            report(self.name, self.priority, self.spec.scripts)

    def _warn(self, a: fsm.Warn) -> None:
        self._rlog.warning(a.reason, "%s: %s", self.name, a.reason)


_ACTIONS: dict[type, Callable[[Instance, fsm.Action], None]] = {
    fsm.SendAdvert: Instance._send_advert,  # type: ignore[dict-item]
    fsm.SendGratuitous: Instance._send_gratuitous,  # type: ignore[dict-item]
    fsm.AddVips: Instance._add_vips,  # type: ignore[dict-item]
    fsm.RemoveVips: Instance._remove_vips,  # type: ignore[dict-item]
    fsm.StartTimer: Instance._start_timer,  # type: ignore[dict-item]
    fsm.CancelTimer: Instance._cancel_timer,  # type: ignore[dict-item]
    fsm.Notify: Instance._notify,  # type: ignore[dict-item]
    fsm.NotifyPriority: Instance._notify_priority,  # type: ignore[dict-item]
    fsm.NotifyMasterRxLowerPri: Instance._rx_lower,  # type: ignore[dict-item]
    fsm.Warn: Instance._warn,  # type: ignore[dict-item]
}
