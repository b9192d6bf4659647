"""VRRP sockets: IP protocol 112 over IPv4 and IPv6, multicast and unicast.

The only owner of VRRP sockets.  One raw socket per (interface, family) is shared
by every instance on it; received adverts are demultiplexed by VRID to the
instance's :class:`Channel`, which validates them with the codec against that
instance's expectations (version, auth, interval).  Unknown VRIDs are counted on
the socket.  Sockets are non-blocking and driven by ``loop.add_reader``; a send
that would block is dropped and counted, never waited for.

Every packet received and not handed on is counted on its socket under one stable
reason (:data:`DROP_REASONS`: the codec's reject reasons, keepalived's names where
it has one, plus ``unknown_vrid``, ``check_unicast_src``'s ``unicast_src_err`` and
what the instance drops after the codec: ``addr_list_err``, ``owner_ignore``),
and the kernel's own count of what it dropped before we could read it (a full
receive buffer) is read from /proc/net/raw[6]: the socket's view
(:meth:`VrrpSocket.view`) is what status, the stats dump and /metrics show.  The
receive buffer is sized as keepalived's ``vrrp_rx_bufs_policy`` says
(:mod:`hafast.vrrp.rxbufs`).

IPv4 packets are built whole (``encode_ipv4``: TTL 255 or, to unicast peers,
``unicast_ttl``; TOS 0xc0) and sent with IP_HDRINCL, because the v3 pseudo-header
checksum needs the exact source address and binding a raw socket to a unicast
source would stop it receiving multicast.  IPv6 carries the source in IPV6_PKTINFO
for the same reason (and ``unicast_ttl`` in IPV6_HOPLIMIT), and the hop limit
arrives as IPV6_HOPLIMIT ancillary data (RFC 5798 §7.1 checks it).

With ``check_unicast_src`` (or a peer's ``min_ttl``/``max_ttl``) a unicast channel
drops a valid advert from an address that is not one of its peers, or whose
received TTL / hop limit is outside that peer's range, as keepalived 2.2.7 does;
multicast adverts need TTL 255 (RFC 5798 §5.1.1.3), unicast ones only that range.
As keepalived, an IPv4 advert sent to a unicast address is dropped by a multicast
instance, and one sent to a multicast group by a unicast instance (``addr_list_err``).

Example::

    pool = Transport(loop)
    ch = pool.channel(ChannelConfig(ifname="eth0", family=4, vrid=51, version=2, ...),
                      on_advert=instance.on_advert)
    ch.send(100)
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import logging
import os
import socket
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hafast._core.vrrp_codec import Advert, decode_ipv4, decode_payload, encode, encode_ipv4
from hafast._core.vrrp_constants import (
    ADDR_LIST_ERR,
    AUTH_AH,
    AUTH_PASS,
    BUFFER_ERR,
    CHECKSUM_ANY,
    FAMILY_IPV4,
    FAMILY_IPV6,
    IPPROTO_AH,
    IPPROTO_VRRP,
    OK,
    PACKET_LEN_ERR,
    PARAM_ERR,
    REASONS,
    VRRP_TOS,
    VRRP_TTL,
)
from hafast.lib.units import NS_PER_US, US_PER_S
from hafast.vrrp.from_config import UNICAST_SRC_ERR, ChannelConfig, peer_ranges, source_verdict
from hafast.vrrp.rxbufs import (
    DEFAULT_RX_BUF,
    POLICY_MTU,
    RxBufs,
    RxMember,
    rx_buf_size,
)

log = logging.getLogger("hafast.vrrp.transport")

# Socket options Python may not name on every build (linux/in.h, linux/in6.h).
IP_MULTICAST_ALL = getattr(socket, "IP_MULTICAST_ALL", 49)
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
IPV6_TCLASS = getattr(socket, "IPV6_TCLASS", 67)

RX_BUFFER = 65536
RX_BATCH = 64  # datagrams drained per readiness callback before yielding to the loop
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_ANC_SIZE = socket.CMSG_SPACE(4) + socket.CMSG_SPACE(20) + socket.CMSG_SPACE(16)
_TIMESPEC = struct.Struct("qq")
# A kernel stamp further back than this is a wall-clock step, not queueing delay.
_MAX_QUEUED_US = US_PER_S


def arrival_us(anc: list[tuple[int, int, bytes]]) -> int:
    """The packet's arrival on CLOCK_MONOTONIC in µs, from its SO_TIMESTAMPNS stamp.

    The kernel stamps with the wall clock; the time the packet waited in the
    socket is moved onto the monotonic clock, so timers run from the arrival
    (as the RFC's timers do) and not from when the interpreter got round to it.
    Without a usable stamp: now.
    """
    now = time.monotonic_ns() // NS_PER_US
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = _TIMESPEC.unpack_from(data)
            waited = time.time_ns() // NS_PER_US - (sec * US_PER_S + nsec // NS_PER_US)
            if 0 <= waited <= _MAX_QUEUED_US:
                return now - waited
    return now
_LOG_EVERY_S = 10.0


# A packet for a VRID no instance on the socket has (RFC 6527 vrrpRouterVrIdErrors).
UNKNOWN_VRID = "unknown_vrid"
# Every reason a received packet is dropped for, in a fixed order: each socket reports
# all of them (zeros too), so a metric series exists before its first drop.  The codec
# can also say buffer_err/param_err, but only for arguments we pass, never for a packet.
# unicast_src_err: check_unicast_src (the channel's check after the codec's).
DROP_REASONS: tuple[str, ...] = (
    UNKNOWN_VRID, *(r for r in REASONS if r not in (OK, BUFFER_ERR, PARAM_ERR)),
    UNICAST_SRC_ERR)


@dataclass(slots=True)
class SocketCounters:
    rx_packets: int = 0
    unknown_vrid: int = 0
    short_packets: int = 0  # too short to name a VRID (reported as packet_len_err)
    tx_dropped: int = 0
    own_packets: int = 0  # our own adverts, looped back (not a drop)
    rejects: dict[str, int] = field(default_factory=dict)  # a channel's codec verdicts

    def drops(self) -> dict[str, int]:
        """Every receive drop by reason (:data:`DROP_REASONS`, zeros included)."""
        out = dict.fromkeys(DROP_REASONS, 0)
        for reason, n in self.rejects.items():
            out[reason] = out.get(reason, 0) + n
        out[UNKNOWN_VRID] += self.unknown_vrid
        out[PACKET_LEN_ERR] += self.short_packets
        return out


def parse_proc_net_raw(text: str) -> dict[int, int]:
    """``{inode: drops}`` from /proc/net/raw or /proc/net/raw6.

    ``drops`` is the socket's ``sk_drops``: what the kernel threw away for it, mostly
    because its receive buffer was full (``sock_queue_rcv_skb`` failing in
    ``raw_rcv_skb``).  The inode is the tenth column, drops the last.

    >>> parse_proc_net_raw("  sl local rem st tx:rx tr retr uid timeout inode ref ptr drops\\n"
    ...                    " 1: 0:0070 0:0 07 0:0 00:0 0 0 0 4242 2 0 14791\\n")
    {4242: 14791}
    """
    out: dict[int, int] = {}
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 13:
            continue
        try:
            out[int(cols[9])] = int(cols[-1])
        except ValueError:
            continue
    return out


def read_kernel_drops() -> dict[int, int]:
    """``{inode: drops}`` of every raw socket in this network namespace."""
    out: dict[int, int] = {}
    for path in ("/proc/net/raw", "/proc/net/raw6"):
        try:
            with open(path) as f:
                out.update(parse_proc_net_raw(f.read()))
        except OSError:
            continue
    return out


SIOCGIFMTU = 0x8921  # <linux/sockios.h>
_IFREQ = struct.Struct("16si16x")


def interface_mtu(ifname: str) -> int:
    """The MTU of ``ifname`` (ioctl: no /sys needed, which a namespace may not remount)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        got = fcntl.ioctl(s.fileno(), SIOCGIFMTU, _IFREQ.pack(ifname.encode(), 0))
    return int(_IFREQ.unpack(got)[1])


class RateLimitedLog:
    """At most one message per key every ``every`` seconds, with the count suppressed."""

    def __init__(self, logger: logging.Logger, every: float = _LOG_EVERY_S) -> None:
        self._log = logger
        self._every = every
        self._last: dict[str, tuple[float, int]] = {}

    def warning(self, key: str, msg: str, *args: object) -> None:
        now = time.monotonic()
        last, suppressed = self._last.get(key, (-1e18, 0))
        if now - last < self._every:
            self._last[key] = (last, suppressed + 1)
            return
        self._last[key] = (now, 0)
        if suppressed:
            msg += f" ({suppressed} more since the last report)"
        self._log.warning(msg, *args)


class _Lazy:
    """``fn(*args)`` as text only when a log line is written: a flood of drops is
    mostly suppressed by the rate limit, and formatting an address costs more than
    the drop itself."""

    __slots__ = ("args", "fn")

    def __init__(self, fn: Callable[..., str], *args: object) -> None:
        self.fn, self.args = fn, args

    def __str__(self) -> str:
        return self.fn(*self.args)


def _ntop(family: int, packed: bytes) -> str:
    return str(ipaddress.ip_address(packed)) if packed else "?"


class VrrpSocket:
    """The raw IPPROTO_VRRP socket of one interface and family."""

    # What the kernel granted for SO_RCVBUF (it doubles the request, capped at
    # rmem_max): reported, because a policy the kernel capped is not what was asked.
    rcvbuf = 0
    inodes: tuple[int, ...] = ()  # of the socket(s), to find their kernel drop counts

    def __init__(self, loop: asyncio.AbstractEventLoop, ifname: str, family: int) -> None:
        self.loop = loop
        self.ifname = ifname
        self.family = family
        self.ifindex = socket.if_nametoindex(ifname)
        self.counters = SocketCounters()
        self._channels: dict[int, Channel] = {}
        self._groups: set[bytes] = set()
        self._ip_id = 0
        self._rlog = RateLimitedLog(log)
        af = socket.AF_INET if family == FAMILY_IPV4 else socket.AF_INET6
        s = socket.socket(af, socket.SOCK_RAW, IPPROTO_VRRP)
        try:
            s.setblocking(False)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
            # Sized once its channels are known (size_rx_bufs); until then the default.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, DEFAULT_RX_BUF)
            if family == FAMILY_IPV4:
                s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
                # RFC 5798 §5.1.1.3: TTL 255 (the header we build carries it too).
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, VRRP_TTL)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
                s.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                             struct.pack("4s4si", b"\0" * 4, b"\0" * 4, self.ifindex))
            else:
                # RFC 5798 §5.1.2.3: hop limit 255, checked on receive (§7.1).
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, VRRP_TTL)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, VRRP_TTL)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.ifindex)
                s.setsockopt(socket.IPPROTO_IPV6, IPV6_TCLASS, VRRP_TOS)
                s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
                s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            s.close()
            raise
        self.sock = s
        self.ah_sock: socket.socket | None = None
        self.inodes = (os.fstat(s.fileno()).st_ino,)
        loop.add_reader(s.fileno(), self._on_readable, s)

    def enable_ah(self) -> None:
        """Also receive IP protocol 51: keepalived's ``auth_type AH`` wraps VRRPv2 in an
        AH header (RFC 2402/4302 transport mode), which a protocol-112 socket never
        sees.  Sending needs nothing more: the IP_HDRINCL header names protocol 51."""
        if self.ah_sock is not None or self.family != FAMILY_IPV4:
            return
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_AH)
        try:
            s.setblocking(False)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.ifname.encode())
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, DEFAULT_RX_BUF)
            s.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            for group in self._groups:
                s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                             struct.pack("4s4si", group, b"\0" * 4, self.ifindex))
        except OSError:
            s.close()
            raise
        self.ah_sock = s
        self.inodes = (*self.inodes, os.fstat(s.fileno()).st_ino)
        self.loop.add_reader(s.fileno(), self._on_readable, s)

    # -- membership and demux -----------------------------------------------------

    def join(self, group: bytes) -> None:
        """Join ``group`` on this interface (once)."""
        if group in self._groups:
            return
        if self.family == FAMILY_IPV4:
            mreq = struct.pack("4s4si", group, b"\0" * 4, self.ifindex)
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            if self.ah_sock is not None:
                self.ah_sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        else:
            mreq6 = struct.pack("16sI", group, self.ifindex)
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq6)
        self._groups.add(group)

    def register(self, channel: Channel) -> None:
        vrid = channel.cfg.vrid
        if vrid in self._channels:
            raise ValueError(f"VRID {vrid} already in use on {self.ifname} IPv{self.family}")
        self._channels[vrid] = channel

    def unregister(self, channel: Channel) -> None:
        if self._channels.get(channel.cfg.vrid) is channel:
            del self._channels[channel.cfg.vrid]

    @property
    def idle(self) -> bool:
        return not self._channels

    @property
    def name(self) -> str:
        """How status and metrics name the socket: ``eth0/v4``."""
        return f"{self.ifname}/v{self.family}"

    # -- receive buffer -----------------------------------------------------------

    def size_rx_bufs(self, bufs: RxBufs) -> None:
        """Ask for the SO_RCVBUF ``bufs`` gives the channels on this socket.

        keepalived keeps AH instances on a socket of their own (protocol 51), and so
        do we: each socket is sized for the instances whose adverts it receives.
        Nothing configured: :data:`DEFAULT_RX_BUF`.  SO_RCVBUF, not SO_RCVBUFFORCE,
        as keepalived: net.core.rmem_max still caps it.
        """
        channels = list(self._channels.values())
        mtu = 0
        if bufs.policy == POLICY_MTU:
            try:
                mtu = interface_mtu(self.ifname)
            except OSError as exc:
                self._rlog.warning("mtu", "%s: cannot read the MTU (%s)", self.ifname, exc)
        for s, ah in ((self.sock, False), (self.ah_sock, True)):
            if s is None:
                continue
            members = [RxMember(c.cfg.advert_len, mtu, c.cfg.kernel_rx_buf_size)
                       for c in channels if (c.cfg.auth_type == AUTH_AH) is ah]
            size = rx_buf_size(bufs, members) or DEFAULT_RX_BUF
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
            except OSError as exc:
                self._rlog.warning("rcvbuf", "%s: SO_RCVBUF %d: %s", self.ifname, size, exc)
            if not ah:
                self.rcvbuf = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)

    # -- what it counted ------------------------------------------------------------

    def view(self, kernel_drops: Mapping[int, int]) -> dict[str, Any]:
        """The socket's counters for status, dumps and metrics; ``kernel_drops`` is
        :func:`read_kernel_drops` (read once for all sockets)."""
        c = self.counters
        return {"name": self.name, "ifname": self.ifname, "family": self.family,
                "rx_packets": c.rx_packets, "unknown_vrid": c.unknown_vrid,
                "short_packets": c.short_packets, "tx_dropped": c.tx_dropped,
                "own_packets": c.own_packets, "drops": c.drops(),
                "kernel_drops": sum(kernel_drops.get(i, 0) for i in self.inodes),
                "rcvbuf": self.rcvbuf}

    # -- receive ------------------------------------------------------------------

    def _on_readable(self, sock: socket.socket) -> None:
        for _ in range(RX_BATCH):
            try:
                data, anc, _flags, addr = sock.recvmsg(RX_BUFFER, _ANC_SIZE)
                if self.family == FAMILY_IPV4:
                    self._rx4(data, arrival_us(anc))
                else:
                    self._rx6(data, anc, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._rlog.warning("rx", "%s: VRRP receive error: %s", self.ifname, exc)
                return
            except Exception:  # a bug in a handler must not kill the worker
                log.exception("%s: VRRP packet handling failed", self.ifname)

    def _channel_for(self, vrid: int, src: bytes) -> Channel | None:
        ch = self._channels.get(vrid)
        if ch is None:
            self.counters.unknown_vrid += 1
            # _Lazy: a flood of any VRID is the cheapest one to send; formatting the
            # address (suppressed by the rate limit anyway) was a third of a drop's cost
            self._rlog.warning(f"vrid{vrid}", "%s: advert for unknown VRID %d from %s",
                               self.ifname, vrid, _Lazy(_ntop, self.family, src))
        return ch

    def _rx4(self, pkt: bytes, at_us: int | None = None) -> None:
        self.counters.rx_packets += 1
        ihl = (pkt[0] & 0x0F) * 4 if pkt else 0
        if len(pkt) < ihl + 2 or ihl < 20:
            self.counters.short_packets += 1
            return
        vrrp_at = ihl
        if pkt[9] == IPPROTO_AH:
            # RFC 4302 §2.2: AH Payload Len is its length in 32-bit words minus 2.
            vrrp_at += (pkt[ihl + 1] + 2) * 4
            if len(pkt) < vrrp_at + 2:
                self.counters.short_packets += 1
                return
        src = pkt[12:16]
        ch = self._channel_for(pkt[vrrp_at + 1], src)
        if ch is None:
            return
        if src == ch.cfg.src:
            self.counters.own_packets += 1
            return
        ch.receive(decode_ipv4(pkt, check_ttl=not ch.cfg.unicast, version=ch.cfg.version,
                               auth_type=ch.rx_auth_type, auth_data=ch.rx_auth_data,
                               adver_int=ch.rx_adver_int, v3_checksum=CHECKSUM_ANY), at_us)

    def _rx6(self, msg: bytes, anc: list[tuple[int, int, bytes]], addr: tuple[object, ...]) -> None:
        self.counters.rx_packets += 1
        src = socket.inet_pton(socket.AF_INET6, str(addr[0]).split("%", 1)[0])
        hop = -1
        dst = b""
        for level, kind, value in anc:
            if level == socket.IPPROTO_IPV6 and kind == IPV6_HOPLIMIT and len(value) >= 4:
                hop = struct.unpack("i", value[:4])[0]
            elif level == socket.IPPROTO_IPV6 and kind == IPV6_PKTINFO and len(value) >= 16:
                dst = value[:16]
        if len(msg) < 2:
            self.counters.short_packets += 1
            return
        ch = self._channel_for(msg[1], src)
        if ch is None:
            return
        if src == ch.cfg.src:
            self.counters.own_packets += 1
            return
        # RFC 5798 §7.1: hop limit must be 255 (unicast peers across routers excepted).
        # The Advert is read-only, so the hop limit goes in and check_ttl says whether it
        # is checked (as _rx4 does).
        adv = decode_payload(msg, FAMILY_IPV6, src, dst or ch.cfg.group, hop,
                             check_ttl=not ch.cfg.unicast, version=ch.cfg.version,
                             v3_checksum=CHECKSUM_ANY)
        ch.receive(adv, arrival_us(anc))

    # -- send -------------------------------------------------------------------------

    def send4(self, packet: bytes, dst: bytes) -> bool:
        try:
            self.sock.sendto(packet, (socket.inet_ntop(socket.AF_INET, dst), 0))
            return True
        except (BlockingIOError, InterruptedError):
            self.counters.tx_dropped += 1
        except OSError as exc:
            self.counters.tx_dropped += 1
            self._rlog.warning("tx", "%s: VRRP send failed: %s", self.ifname, exc)
        return False

    def send6(self, message: bytes, src: bytes, dst: bytes, hop_limit: int | None = None) -> bool:
        """``hop_limit``: this message's, when not the socket's 255 (``unicast_ttl``:
        instances with different ones share the socket, so it goes per message)."""
        anc = [(socket.IPPROTO_IPV6, IPV6_PKTINFO, struct.pack("16sI", src, self.ifindex))]
        if hop_limit is not None:
            anc.append((socket.IPPROTO_IPV6, IPV6_HOPLIMIT, struct.pack("i", hop_limit)))
        target = (socket.inet_ntop(socket.AF_INET6, dst), 0, 0, self.ifindex)
        try:
            self.sock.sendmsg([message], anc, 0, target)
            return True
        except (BlockingIOError, InterruptedError):
            self.counters.tx_dropped += 1
        except OSError as exc:
            self.counters.tx_dropped += 1
            self._rlog.warning("tx", "%s: VRRP send failed: %s", self.ifname, exc)
        return False

    def next_ip_id(self) -> int:
        self._ip_id = (self._ip_id + 1) & 0xFFFF
        return self._ip_id

    def close(self) -> None:
        for s in (self.sock, self.ah_sock):
            if s is None:
                continue
            try:
                self.loop.remove_reader(s.fileno())
            except (ValueError, RuntimeError):
                pass
            s.close()


@dataclass
class Channel:
    """One instance's view of its socket: builds its adverts, checks what arrives."""

    sock: VrrpSocket
    cfg: ChannelConfig
    # The instance: returns the reason it dropped a valid advert (its VIP check,
    # owner_ignore_adverts), counted on the socket too; None otherwise.
    on_advert: Callable[[Advert, int | None], str | None]
    # A valid advert the channel drops (check_unicast_src): the reason, for the
    # instance's own counters.  None: counted on the socket only.
    on_reject: Callable[[str, Advert], None] | None = None
    sent: int = 0
    # What received v2 adverts must carry (-1 / None / 0 = not checked).
    rx_auth_type: int = -1
    rx_auth_data: bytes | None = None
    rx_adver_int: int = 0
    ah_seq: int = 0  # keepalived's AH sequence number: +1 per advert (receivers drop replays)
    # check_unicast_src: {peer: (min_ttl, max_ttl)}; None (the usual case) checks nothing.
    src_ranges: dict[bytes, tuple[int, int]] | None = None
    # The TTL / hop limit of our unicast adverts when it is not the socket's 255.
    tx_hop_limit: int | None = None

    def __post_init__(self) -> None:
        c = self.cfg
        self.src_ranges = peer_ranges(c)
        if c.unicast and c.unicast_ttl != VRRP_TTL:
            self.tx_hop_limit = c.unicast_ttl
        if c.version == 2:
            # RFC 3768 §7.1: verify Auth Type, the password (or AH's ICV) and Adver Int.
            self.rx_auth_type = c.auth_type
            self.rx_adver_int = c.adver_int
            if c.auth_type in (AUTH_PASS, AUTH_AH):
                self.rx_auth_data = c.auth_data

    def receive(self, advert: Advert, at_us: int | None = None) -> None:
        """Hand ``advert`` (arrived at ``at_us`` monotonic µs, None = now) to the instance."""
        if not advert.ok:
            # The socket's tally of every drop; the instance keeps its own as well.
            rejects = self.sock.counters.rejects
            rejects[advert.reason] = rejects.get(advert.reason, 0) + 1
        elif self.cfg.family == FAMILY_IPV4 and (224 <= advert.dst[0] <= 239) == self.cfg.unicast:
            # keepalived 2.2.7 vrrp_check_packet: a multicast instance takes only
            # multicast adverts and a unicast one only unicast (addr_list_err).  IPv4
            # only: an IPv6 destination comes from IPV6_PKTINFO, which may be missing.
            self._drop(ADDR_LIST_ERR, advert)
            return
        elif self.src_ranges is not None:
            reason = source_verdict(self.src_ranges, advert.src, advert.ttl)
            if reason != OK:
                self._drop(reason, advert)
                return
        dropped = self.on_advert(advert, at_us)
        if dropped is not None:
            rejects = self.sock.counters.rejects
            rejects[dropped] = rejects.get(dropped, 0) + 1

    def _drop(self, reason: str, advert: Advert) -> None:
        """keepalived's check_unicast_src and destination drops, worded as keepalived logs
        them."""
        rejects = self.sock.counters.rejects
        rejects[reason] = rejects.get(reason, 0) + 1
        src = _Lazy(_ntop, self.cfg.family, advert.src)
        if reason == UNICAST_SRC_ERR:
            self.sock._rlog.warning(f"{reason}/{self.cfg.vrid}",
                                    "%s: VRID %d: unicast source address %s not a unicast peer",
                                    self.sock.ifname, self.cfg.vrid, src)
        elif reason == ADDR_LIST_ERR:
            want, got = ("un", "mult") if self.cfg.unicast else ("mult", "un")
            self.sock._rlog.warning(f"{reason}/{self.cfg.vrid}",
                                    "%s: VRID %d: expected %sicast packet but received %sicast "
                                    "packet from %s", self.sock.ifname, self.cfg.vrid, want, got,
                                    src)
        else:
            lo, hi = self.src_ranges[advert.src] if self.src_ranges else (0, VRRP_TTL)
            self.sock._rlog.warning(f"{reason}/{self.cfg.vrid}",
                                    "%s: VRID %d: TTL/HL %d from %s not in range %d - %d",
                                    self.sock.ifname, self.cfg.vrid, advert.ttl, src, lo, hi)
        if self.on_reject is not None:
            self.on_reject(reason, advert)

    def encode(self, priority: int, dst: bytes) -> bytes:
        c = self.cfg
        if c.family == FAMILY_IPV4:
            if c.auth_type == AUTH_AH:
                self.ah_seq = (self.ah_seq + 1) & 0xFFFFFFFF
            return encode_ipv4(
                c.version, c.vrid, priority, c.addresses, c.adver_int, src=c.src, dst=dst,
                ip_id=self.sock.next_ip_id(), auth_type=c.auth_type, auth_data=c.auth_data,
                v3_checksum=c.v3_checksum, ah_seq=self.ah_seq, unicast=c.unicast,
                ttl=c.unicast_ttl if c.unicast else VRRP_TTL,
            )
        return encode(c.version, c.vrid, priority, c.addresses, c.adver_int,
                      family=FAMILY_IPV6, src=c.src, dst=dst)

    def send(self, priority: int) -> bool:
        """Send one advert with ``priority`` to the group or every unicast peer."""
        ok = True
        for dst in self.cfg.peers or (self.cfg.group,):
            data = self.encode(priority, dst)
            if self.cfg.family == FAMILY_IPV4:
                ok = self.sock.send4(data, dst) and ok
            else:
                ok = self.sock.send6(data, self.cfg.src, dst, self.tx_hop_limit) and ok
        self.sent += 1
        return ok

    def close(self) -> None:
        self.sock.unregister(self)


class Transport:
    """The pool of VRRP sockets of one worker: one per interface and family.

    ``rx_bufs``: keepalived's ``vrrp_rx_bufs_policy`` / ``_multiplier``; each socket
    is sized again whenever a channel joins it, and on :meth:`set_rx_bufs`.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, rx_bufs: RxBufs | None = None) -> None:
        self.loop = loop
        self.rx_bufs = rx_bufs or RxBufs()
        self.sockets: dict[tuple[str, int], VrrpSocket] = {}

    def channel(self, cfg: ChannelConfig,
                on_advert: Callable[[Advert, int | None], str | None],
                on_reject: Callable[[str, Advert], None] | None = None) -> Channel:
        key = (cfg.ifname, cfg.family)
        sock = self.sockets.get(key)
        if sock is None:
            sock = self.sockets[key] = VrrpSocket(self.loop, cfg.ifname, cfg.family)
        if cfg.auth_type == AUTH_AH:
            sock.enable_ah()
        if not cfg.unicast:
            sock.join(cfg.group)
        ch = Channel(sock, cfg, on_advert, on_reject)
        sock.register(ch)
        sock.size_rx_bufs(self.rx_bufs)
        return ch

    def reopen(self, ifname: str) -> bool:
        """``ifname`` was deleted and made again: its sockets are bound to the old
        link (SO_BINDTODEVICE resolves the name once), so open new ones and move the
        channels, their groups and their counters onto them, as keepalived 2.2.7
        opens its sockets again when an interface comes back.  False when nothing
        needed it (the same link) or the interface is not there.

        Example::

            pool.reopen("eth0")   # after `ip link del eth0` and its return
        """
        try:
            index = socket.if_nametoindex(ifname)
        except OSError:
            return False
        moved = False
        for key, old in list(self.sockets.items()):
            if key[0] != ifname or old.ifindex == index:
                continue
            try:
                new = VrrpSocket(self.loop, ifname, key[1])
                if old.ah_sock is not None:
                    new.enable_ah()
                for group in old._groups:
                    new.join(group)
            except OSError as exc:
                log.warning("%s: cannot open the VRRP socket again: %s", ifname, exc)
                continue
            new.counters = old.counters
            for ch in list(old._channels.values()):
                ch.sock = new
                new.register(ch)
            old._channels.clear()
            old.close()
            self.sockets[key] = new
            new.size_rx_bufs(self.rx_bufs)
            moved = True
        return moved

    def set_rx_bufs(self, bufs: RxBufs) -> None:
        """A reload: size every socket again (channels may also have left)."""
        self.rx_bufs = bufs
        for s in self.sockets.values():
            s.size_rx_bufs(bufs)

    def counters(self, kernel_drops: Mapping[int, int] | None = None) -> dict[str, dict[str, Any]]:
        """Every socket's :meth:`VrrpSocket.view` by name (``eth0/v4``)."""
        kernel = read_kernel_drops() if kernel_drops is None else kernel_drops
        return {s.name: s.view(kernel) for s in self.sockets.values()}

    def close(self) -> None:
        for s in self.sockets.values():
            s.close()
        self.sockets.clear()


__all__ = ["Channel", "ChannelConfig", "RateLimitedLog", "Transport", "VrrpSocket"]
