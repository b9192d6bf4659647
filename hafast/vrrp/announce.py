"""Gratuitous ARP and unsolicited Neighbor Advertisement frames, and their cadence.

Pure builders: bytes in, bytes out, no sockets.  The shell writes the frames
to an AF_PACKET socket on the VR's interface (or the VMAC interface).

RFC 5798 §6.4.1 / §6.4.2 (and RFC 3768 §6.4.1): on becoming Master, broadcast
a gratuitous ARP request for each IPv4 VIP and send an unsolicited ND Neighbor
Advertisement with the Router flag for each IPv6 VIP (§8.1.2 / §8.2.2 explain
why: hosts and switches must learn that the VIPs now live behind our MAC).

keepalived's GARP (captured in vectors/keepalived-2.2.7/garp_takeover_v2.pcap)
is an ARP *request* with sender IP = target IP = VIP and the target hardware
address set to broadcast; its NA (una_takeover_v6.pcap) goes from the VIP to
ff02::1 with hop limit 255, the Override flag, and a Target Link-Layer Address
option.  keepalived sets the Router flag only when IPv6 forwarding is on for
the interface, which is why the capture shows Override alone; ``router`` is a
parameter here, defaulting to the RFC's "with the Router Flag".

Cadence (keepalived ``vrrp_garp_master_delay``/``_repeat``/``_refresh``):
``repeat`` announcements per VIP at once, ``repeat`` more after ``delay`` (5 and 5 s
by default), then ``refresh_repeat`` every ``refresh`` while master.  The FSM raises
the bursts (``SendGratuitous``); :func:`burst_schedule` lays out one burst,
:func:`takeover_plan` the whole default cadence.

Pacing (keepalived ``garp_group``, and ``vrrp_garp_interval``/``vrrp_gna_interval``
for the links no group names): :class:`GarpPacer` is keepalived's ``garp_delay_t``,
one per group (or per link), shared by every instance announcing there.  It does not
space a burst's ``repeat`` x VIPs messages one by one: the rounds collapse (see there).
"""

from __future__ import annotations

import struct
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

from hafast._core.checksum import internet_checksum, pseudo_sum_ipv6

ETH_P_ARP: Final = 0x0806
ETH_P_IPV4: Final = 0x0800
ETH_P_IPV6: Final = 0x86DD
BROADCAST_MAC: Final = b"\xff" * 6

# RFC 826: ARP hardware type Ethernet, opcode request.
ARP_HRD_ETHER: Final = 1
ARP_OP_REQUEST: Final = 1
ARP_OP_REPLY: Final = 2

# RFC 4291 §2.7.1: all-nodes link-local multicast, the NA destination (RFC 4861 §7.2.6).
ALL_NODES: Final = bytes.fromhex("ff020000000000000000000000000001")
IPPROTO_ICMPV6: Final = 58
# RFC 4861 §4.4: Neighbor Advertisement type, flag bits, option type 2.
ICMPV6_NEIGHBOR_ADVERT: Final = 136
NA_FLAG_ROUTER: Final = 0x80
NA_FLAG_SOLICITED: Final = 0x40
NA_FLAG_OVERRIDE: Final = 0x20
ND_OPT_TARGET_LINKADDR: Final = 2
# RFC 4861 §7.1.2: ND messages carry hop limit 255 so receivers can tell they
# were not forwarded.
ND_HOP_LIMIT: Final = 255

_ETH = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_NA = struct.Struct("!BBHB3x16s")
_OPT_LLA = struct.Struct("!BB6s")


def _check(value: bytes, size: int, what: str) -> bytes:
    value = bytes(value)
    if len(value) != size:
        raise ValueError(f"{what} must be {size} bytes, not {len(value)}")
    return value


def ipv6_multicast_mac(group: bytes) -> bytes:
    """RFC 2464 §7: 33:33 followed by the low 32 bits of the IPv6 multicast group.

    >>> ipv6_multicast_mac(ALL_NODES).hex(":")
    '33:33:00:00:00:01'
    """
    return b"\x33\x33" + _check(group, 16, "IPv6 group")[12:]


def gratuitous_arp(
    vip: bytes,
    mac: bytes,
    *,
    eth_src: bytes | None = None,
    target_mac: bytes = BROADCAST_MAC,
    op: int = ARP_OP_REQUEST,
) -> bytes:
    """A broadcast gratuitous ARP frame announcing ``vip`` at ``mac`` (42 bytes).

    keepalived's form: an ARP request, sender IP = target IP = VIP, target
    hardware address broadcast.  ``eth_src`` defaults to ``mac`` (with use_vmac
    both are the virtual MAC 00:00:5e:00:01:VRID).  The NIC pads to 60 bytes.

    >>> frame = gratuitous_arp(bytes([192, 168, 77, 100]), bytes.fromhex("020000770002"))
    >>> frame.hex()[:28], len(frame)
    ('ffffffffffff0200007700020806', 42)
    """
    vip = _check(vip, 4, "IPv4 VIP")
    mac = _check(mac, 6, "MAC address")
    src = mac if eth_src is None else _check(eth_src, 6, "Ethernet source")
    return _ETH.pack(BROADCAST_MAC, src, ETH_P_ARP) + _ARP.pack(
        ARP_HRD_ETHER,
        ETH_P_IPV4,
        6,
        4,
        op,
        mac,
        vip,
        _check(target_mac, 6, "target MAC"),
        vip,
    )


def icmpv6_checksum(src: bytes, dst: bytes, message: bytes) -> int:
    """RFC 4443 §2.3: one's complement sum over the RFC 8200 §8.1 pseudo-header + message.

    ``message`` must carry zero in its checksum field.
    """
    return internet_checksum(message, pseudo_sum_ipv6(src, dst, len(message), IPPROTO_ICMPV6))


def neighbor_advert(
    target: bytes,
    mac: bytes,
    *,
    src: bytes | None = None,
    dst: bytes = ALL_NODES,
    router: bool = True,
    solicited: bool = False,
    override: bool = True,
) -> bytes:
    """The ICMPv6 Neighbor Advertisement message (32 bytes) with its checksum set.

    RFC 4861 §4.4 layout with one Target Link-Layer Address option.  ``src``
    (default: the target itself, as keepalived sends it) and ``dst`` only enter
    the checksum.  Unsolicited, so S is clear (RFC 4861 §7.2.6).
    """
    target = _check(target, 16, "IPv6 target")
    mac = _check(mac, 6, "MAC address")
    src = target if src is None else _check(src, 16, "IPv6 source")
    dst = _check(dst, 16, "IPv6 destination")
    flags = (
        (NA_FLAG_ROUTER if router else 0)
        | (NA_FLAG_SOLICITED if solicited else 0)
        | (NA_FLAG_OVERRIDE if override else 0)
    )
    # The option length counts 8-octet units: type, length, 6-byte MAC = 1.
    body = _NA.pack(ICMPV6_NEIGHBOR_ADVERT, 0, 0, flags, target) + _OPT_LLA.pack(
        ND_OPT_TARGET_LINKADDR, 1, mac
    )
    checksum = icmpv6_checksum(src, dst, body)
    return body[:2] + checksum.to_bytes(2, "big") + body[4:]


def unsolicited_na(
    target: bytes,
    mac: bytes,
    *,
    src: bytes | None = None,
    dst: bytes = ALL_NODES,
    eth_src: bytes | None = None,
    router: bool = True,
    override: bool = True,
) -> bytes:
    """A whole Ethernet frame: unsolicited NA for ``target`` at ``mac`` (86 bytes).

    >>> vip = bytes.fromhex("fd000077000000000000000000000100")
    >>> frame = unsolicited_na(vip, bytes.fromhex("020000770002"), router=False)
    >>> frame[54:58].hex(), len(frame)   # type 136, code 0, checksum as keepalived's
    ('88005737', 86)
    """
    target = _check(target, 16, "IPv6 target")
    src = target if src is None else _check(src, 16, "IPv6 source")
    dst = _check(dst, 16, "IPv6 destination")
    message = neighbor_advert(target, mac, src=src, dst=dst, router=router, override=override)
    ip = _IPV6.pack(6 << 28, len(message), IPPROTO_ICMPV6, ND_HOP_LIMIT, src, dst)
    eth_dst = ipv6_multicast_mac(dst) if dst[0] == 0xFF else BROADCAST_MAC
    eth = _ETH.pack(eth_dst, _check(mac if eth_src is None else eth_src, 6, "MAC"), ETH_P_IPV6)
    return eth + ip + message


# ---------------------------------------------------------------- cadence

T = TypeVar("T")


def burst_schedule(
    start_us: int, vips: Sequence[T], repeat: int, interval_us: int = 0
) -> list[tuple[int, T]]:
    """When each message of one burst goes out: ``repeat`` rounds over ``vips``.

    keepalived sends round by round (every VIP once, then again), back to back when
    the link is not paced.  ``interval_us`` spaces every message evenly: a model, not
    what keepalived does on a paced link (:class:`GarpPacer`).

    >>> burst_schedule(0, ["a", "b"], 2, 1000)
    [(0, 'a'), (1000, 'b'), (2000, 'a'), (3000, 'b')]
    """
    if repeat < 0 or interval_us < 0:
        raise ValueError("repeat and interval must not be negative")
    out: list[tuple[int, T]] = []
    for _ in range(repeat):
        for vip in vips:
            out.append((start_us + len(out) * interval_us, vip))
    return out


def takeover_plan(
    became_master_us: int,
    until_us: int,
    *,
    repeat: int = 5,
    delay_us: int = 5_000_000,
    refresh_us: int = 0,
    refresh_repeat: int = 1,
) -> list[tuple[int, int]]:
    """The bursts (time, announcements per VIP) from becoming master until ``until_us``.

    The same cadence the FSM produces with its GARP timers: ``repeat`` at once,
    ``repeat`` again after ``delay_us`` (0 = no second burst), and
    ``refresh_repeat`` every ``refresh_us`` (0 = no refresh).

    >>> takeover_plan(0, 20_000_000)
    [(0, 5), (5000000, 5)]
    >>> takeover_plan(0, 25_000_000, refresh_us=10_000_000, refresh_repeat=2)
    [(0, 5), (5000000, 5), (10000000, 2), (20000000, 2)]
    """
    bursts: list[tuple[int, int]] = []
    if repeat:
        bursts.append((became_master_us, repeat))
        if delay_us and became_master_us + delay_us < until_us:
            bursts.append((became_master_us + delay_us, repeat))
    if refresh_us and refresh_repeat:
        at = became_master_us + refresh_us
        while at < until_us:
            bursts.append((at, refresh_repeat))
            at += refresh_us
    return sorted(bursts)


K = TypeVar("K", bound=Hashable)


@dataclass(slots=True, eq=False)  # hashed by identity: a timer per pacer
class GarpPacer(Generic[K, T]):
    """Keeps the gratuitous ARPs (family 4) or NAs (6) of a link group ``interval`` apart.

    keepalived 2.2.7's ``garp_delay_t`` (vrrp_arp.c ``send_gratuitous_arp``,
    vrrp_ndisc.c, vrrp_scheduler.c ``vrrp_arp_thread``), whose quirks matter because
    they set how many frames leave: a message offered before the link's next free
    time is not queued again but marks its VIP *pending* (one flag per VIP of an
    instance), so the ``repeat`` rounds of a burst collapse; at each free time the
    first pending VIP in instance order, then address order, goes.  With
    ``garp_interval 0.5``, a burst of 5 for VIPs a, b sends a at 0, a at 0.5 and b at
    1.0 (captured from keepalived 2.2.7 in tests/netns/test_garp_pacing.py).  ARPs and
    NAs keep separate free times; a family without an interval is not paced.

    ``key`` orders and identifies a pending message (``(instance order, name, VIP
    index)``); ``item`` is what the caller sends when :meth:`due` hands it back.

    >>> p = GarpPacer(garp_interval_us=500_000)
    >>> [p.offer(0, 4, k, k) for k in ("a", "b", "a", "b")]
    [True, False, False, False]
    >>> p.wake_us(), p.due(500_000), p.wake_us(), p.due(1_000_000), p.wake_us()
    (500000, ['a'], 1000000, ['b'], None)
    """

    garp_interval_us: int | None = None
    gna_interval_us: int | None = None
    _free_at: dict[int, int] = field(default_factory=dict)  # family -> next send allowed
    _pending: dict[K, tuple[int, T]] = field(default_factory=dict)  # key -> (family, item)

    def interval_us(self, family: int) -> int | None:
        return self.garp_interval_us if family == 4 else self.gna_interval_us

    def offer(self, now_us: int, family: int, key: K, item: T) -> bool:
        """True: send ``item`` now (the pacer counts it sent).  False: it is pending."""
        interval = self.interval_us(family)
        if interval is None:
            return True
        free = self._free_at.get(family)
        if free is not None and now_us < free:
            self._pending[key] = (family, item)
            return False
        # keepalived leaves the VIP's pending flag as it was: a pending VIP sent by a
        # new burst still goes again at its turn
        self._free_at[family] = now_us + interval
        return True

    def due(self, now_us: int) -> list[T]:
        """The pending items whose turn came by ``now_us``: at most one per family."""
        out: list[T] = []
        for key in sorted(self._pending):  # type: ignore[type-var]
            family, item = self._pending[key]
            free = self._free_at.get(family)
            if free is None or now_us >= free:
                del self._pending[key]
                self._free_at[family] = now_us + (self.interval_us(family) or 0)
                out.append(item)
        return out

    def wake_us(self) -> int | None:
        """When :meth:`due` next has something, or None when nothing is pending."""
        families = {family for family, _ in self._pending.values()}
        times = [self._free_at.get(f, 0) for f in families]
        return min(times) if times else None

    def withdraw(self, owner: object) -> None:
        """Forget what is pending for ``owner`` (``key[1]``): it left MASTER, its VIPs
        went (keepalived ``vrrp_remove_delayed_arp``)."""
        for key in [k for k in self._pending if k[1] == owner]:  # type: ignore[index]
            del self._pending[key]
