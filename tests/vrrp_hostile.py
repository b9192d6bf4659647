"""Hostile VRRPv2 packets for a flood (issue 17), and a paced sender that stops by itself.

Each kind of packet fails one receive check of an instance configured as
tests/netns/vrrp_fixtures.conf() writes it (VRRPv2, VRID 51, advert_int 1, PASS
1111, one VIP): :data:`KINDS` names the reason hafast counts it under and the
counter keepalived 2.2.7's stats file counts it under (None: keepalived logs it and
counts nothing; its ``vers_err``/``chk_err`` exist only for SNMP, and it never
increments ``advert_interval_err``).  ``random`` packets are random VRRP payloads
(VRID 51 kept, so they reach the instance's checks); what each one is counted as is
predicted per packet: :func:`hafast_reason` follows hafast's transport and codec,
:func:`keepalived_counter` keepalived 2.2.7's ``vrrp_get_header`` and
``vrrp_check_packet`` (keepalived/vrrp/vrrp.c), check for check.

Run as a program (``python -m tests.vrrp_hostile flood ...`` inside the sender's
namespace) it builds the same packets from the same seed, sends them interleaved
(every kind meets the same receiver state) from an AF_PACKET socket at a bounded
rate, to the group's MAC or one router's, stops after the last packet or at
``--max-seconds``, and prints what it sent as JSON.

Example::

    pkts = build(src="10.77.0.10", each=100, seed=17)
    counts = collections.Counter(hafast_reason(p, EXPECT) for _k, p in pkts)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import socket
import struct
import sys
import time
from collections.abc import Iterable

from hafast._core.checksum import internet_checksum
from hafast._core.vrrp_codec import Expect, decode_ipv4, encode_ipv4
from hafast._core.vrrp_constants import (
    ADDR_LIST_ERR,
    AUTH_NONE,
    AUTH_PASS,
    IPV4_HEADER_LEN,
    PACKET_LEN_ERR,
    VRRP_GROUP4,
    auth_data_from_pass,
)

VRID = 51
PASSWORD = "1111"
ADVER_INT = 1
PRIORITY = 200  # above every instance: a bad packet taken as good would move a master
VIP = "10.77.0.100"  # tests/netns/vrrp_fixtures.VIP4
OTHER = "10.77.0.99"
GROUP = "224.0.0.18"
GROUP_MAC = "01:00:5e:00:00:12"  # RFC 1112 §6.4: 224.0.0.18 on Ethernet
SEED = 17
EXPECT = Expect(version=2, auth_type=AUTH_PASS, auth_data=auth_data_from_pass(PASSWORD),
                adver_int=ADVER_INT)

# kind -> (hafast's reason, keepalived 2.2.7's stats counter or None); "random" varies.
KINDS: dict[str, tuple[str, str | None]] = {
    "truncated_header": (PACKET_LEN_ERR, None),  # ka: "too short", logged only
    "truncated": (PACKET_LEN_ERR, "packet_len_err"),
    "bad_checksum": ("checksum_err", None),
    "wrong_ttl": ("ip_ttl_err", "ip_ttl_err"),
    "wrong_password": ("auth_failure", "auth_failure"),
    "wrong_authtype": ("authtype_mismatch", "authtype_mismatch"),
    "invalid_authtype": ("invalid_authtype", "invalid_authtype"),
    "wrong_vrid": ("unknown_vrid", None),
    "wrong_version": ("version_err", None),
    "wrong_type": ("invalid_type_rcvd", "invalid_type_rcvd"),
    "wrong_interval": ("advert_interval_err", None),
    "wrong_count": (PACKET_LEN_ERR, "packet_len_err"),  # Count 3, one address
    "extra_address": (ADDR_LIST_ERR, "addr_list_err"),  # Count 2, two addresses
    "wrong_address": (ADDR_LIST_ERR, "addr_list_err"),
    "random": ("", None),
    # built only with a unicast_to address: a valid advert sent there, not to the group;
    # keepalived's multicast receive socket is bound to the group and never gets it
    "unicast_dst": (ADDR_LIST_ERR, None),
}


def _reseal(pkt: bytearray) -> bytes:
    """The VRRP checksum (RFC 3768 §5.3.8) made right again after a field was changed."""
    pkt[IPV4_HEADER_LEN + 6:IPV4_HEADER_LEN + 8] = b"\0\0"
    pkt[IPV4_HEADER_LEN + 6:IPV4_HEADER_LEN + 8] = internet_checksum(
        bytes(pkt[IPV4_HEADER_LEN:])).to_bytes(2, "big")
    return bytes(pkt)


def _ip_total_length(pkt: bytes) -> bytes:
    """The IP Total Length set to the packet's, the header checksum made right again
    (an AF_PACKET socket sends the frame as it is)."""
    out = bytearray(pkt)
    struct.pack_into("!H", out, 2, len(out))
    struct.pack_into("!H", out, 10, 0)
    struct.pack_into("!H", out, 10, internet_checksum(bytes(out[:IPV4_HEADER_LEN])))
    return bytes(out)


def templates(src: str, unicast_to: str | None = None) -> dict[str, bytes]:
    """One packet of each kind but ``random``, from ``src``; ``unicast_dst`` only with
    ``unicast_to``."""
    s, group = socket.inet_aton(src), VRRP_GROUP4
    vip, other = socket.inet_aton(VIP), socket.inet_aton(OTHER)
    pw = auth_data_from_pass(PASSWORD)

    def v2(vrid: int = VRID, addresses: Iterable[bytes] = (vip,), *, adver_int: int = ADVER_INT,
           auth_type: int = AUTH_PASS, auth: bytes = pw, ttl: int = 255) -> bytes:
        return encode_ipv4(2, vrid, PRIORITY, list(addresses), adver_int, src=s, dst=group,
                           auth_type=auth_type, auth_data=auth if auth_type else b"", ttl=ttl)

    good = v2()
    bad_sum = bytearray(good)
    bad_sum[IPV4_HEADER_LEN + 6] ^= 0xFF
    invalid_auth = bytearray(good)
    invalid_auth[IPV4_HEADER_LEN + 4] = 5  # RFC 3768 §5.3.6: only 0, 1, 2 exist
    wrong_type = bytearray(good)
    wrong_type[IPV4_HEADER_LEN] = 0x22  # version 2, type 2
    count = bytearray(good)
    count[IPV4_HEADER_LEN + 3] = 3
    out = {
        "truncated_header": _ip_total_length(good[:IPV4_HEADER_LEN + 6]),
        "truncated": _ip_total_length(good[:-4]),
        "bad_checksum": bytes(bad_sum),
        "wrong_ttl": v2(ttl=64),
        "wrong_password": v2(auth=auth_data_from_pass("2222")),
        "wrong_authtype": v2(auth_type=AUTH_NONE),
        "invalid_authtype": _reseal(invalid_auth),
        "wrong_vrid": v2(vrid=VRID + 1),
        "wrong_version": encode_ipv4(3, VRID, PRIORITY, [vip], 100 * ADVER_INT, src=s,
                                     dst=group),
        "wrong_type": _reseal(wrong_type),
        "wrong_interval": v2(adver_int=3),
        "wrong_count": _reseal(count),
        "extra_address": v2(addresses=(vip, other)),
        "wrong_address": v2(addresses=(other,)),
    }
    if unicast_to is not None:
        out["unicast_dst"] = encode_ipv4(2, VRID, PRIORITY, [vip], ADVER_INT, src=s,
                                         dst=socket.inet_aton(unicast_to),
                                         auth_type=AUTH_PASS, auth_data=pw)
    return out


def random_packet(rng: random.Random, src: str) -> bytes:
    """A valid IPv4 header (TTL 255, protocol 112, to the VRRP group) and 0-64 random
    bytes of VRRP, the VRID byte kept at 51; never one hafast would take as an advert."""
    head = encode_ipv4(2, VRID, PRIORITY, [], ADVER_INT, src=socket.inet_aton(src),
                       dst=VRRP_GROUP4)[:IPV4_HEADER_LEN]
    while True:
        body = bytearray(rng.randbytes(rng.randrange(0, 65)))
        if len(body) >= 2:
            body[1] = VRID
        pkt = _ip_total_length(head + bytes(body))
        if hafast_reason(pkt) != "ok" and keepalived_counter(pkt) != "ok":
            return pkt


def build(src: str, each: int, seed: int = SEED, unicast_to: str | None = None
          ) -> list[tuple[str, bytes]]:
    """``each`` packets of every kind, interleaved: [(kind, packet), ...]."""
    rng = random.Random(seed)
    fixed = templates(src, unicast_to)
    out: list[tuple[str, bytes]] = []
    for _ in range(each):
        out.extend(fixed.items())
        out.append(("random", random_packet(rng, src)))
    return out


# --------------------------------------------------------------------------- predictions


def hafast_reason(pkt: bytes, expect: Expect = EXPECT, vips: Iterable[str] = (VIP,)) -> str:
    """What hafast's VRRP socket counts ``pkt`` as (hafast.vrrp.transport._rx4, then the
    codec, then the instance's VIP check); ``ok`` for an advert it would act on."""
    ihl = (pkt[0] & 0x0F) * 4
    if len(pkt) < ihl + 2 or ihl < IPV4_HEADER_LEN:
        return PACKET_LEN_ERR  # too short to name a VRID
    if pkt[ihl + 1] != VRID:
        return "unknown_vrid"
    adv = decode_ipv4(pkt, expect)
    if not adv.ok:
        return str(adv.reason)
    if not 224 <= adv.dst[0] <= 239:
        return ADDR_LIST_ERR  # a multicast instance's advert sent to a unicast address
    want = {socket.inet_aton(v) for v in vips}
    if adv.priority and (adv.count != len(want) or set(adv.addresses) != want):
        return ADDR_LIST_ERR
    return "ok"


def keepalived_counter(pkt: bytes, vip_count: int = 1) -> str | None:
    """The stats counter keepalived 2.2.7 raises for ``pkt`` at an instance configured
    as :data:`EXPECT` (MASTER, or BACKUP without skip_check_adv_addr), None for a
    packet it drops without counting (or never gets), ``ok`` for one it accepts.  The
    order of vrrp_check_packet: length, TTL, version, auth type, password, Adver Int,
    type, address count, IP length, checksum, then the addresses."""
    if not 224 <= pkt[16] <= 239:
        # open_vrrp_read_socket binds a multicast instance's socket to the group
        # ("Binding to the multicast address stops us receiving unicast pkts")
        return None
    ihl = (pkt[0] & 0x0F) * 4
    if len(pkt) < IPV4_HEADER_LEN or len(pkt) < ihl + 8:  # vrrp_get_header
        return None
    hd = pkt[ihl:]
    if hd[1] != VRID:
        return None  # unknown VRID: logged with log_unknown_vrids only
    version, naddr = hd[0] >> 4, hd[3]
    if len(pkt) != ihl + 8 + (8 if version == 2 else 0) + 4 * naddr:
        return "packet_len_err"
    if pkt[8] != 255:
        return "ip_ttl_err"
    if version != 2:
        return None  # vers_err: SNMP only
    if hd[4] not in (0, 1, 2):
        return "invalid_authtype"
    if hd[4] != AUTH_PASS:
        return "authtype_mismatch"
    if hd[-8:] != auth_data_from_pass(PASSWORD):
        return "auth_failure"
    if hd[5] != ADVER_INT:
        return None  # VRRP_PACKET_DROP; advert_interval_err is never raised in 2.2.7
    if hd[0] & 0x0F != 1:
        return "invalid_type_rcvd"
    if naddr != vip_count:
        return "addr_list_err"
    if internet_checksum(bytes(hd)) != 0:
        return None  # chk_err: SNMP only
    if hd[8:8 + 4 * naddr] != socket.inet_aton(VIP):
        return "addr_list_err"  # after advert_rcvd was counted
    return "ok"


# --------------------------------------------------------------------------- the sender


@dataclasses.dataclass
class Pace:
    rate: float  # packets per second
    max_seconds: float


@dataclasses.dataclass
class Sent:
    """What :func:`flood` did: packets tried (a prefix of the list), the indexes of
    those the kernel refused, and how long it took."""

    tried: int
    refused: list[int]
    seconds: float

    def packets(self, packets: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        """The packets that left, out of the list :func:`flood` was given."""
        skip = set(self.refused)
        return [p for i, p in enumerate(packets[:self.tried]) if i not in skip]


def flood(sock: socket.socket, packets: list[tuple[str, bytes]], pace: Pace,
          dst_mac: str = GROUP_MAC) -> Sent:
    """Send ``packets`` in order at ``pace.rate`` (bursts of 50, then sleep to the
    schedule), stopping after ``pace.max_seconds`` whatever is left.  A send the
    kernel refuses (ENOBUFS) is retried once after a pause, then recorded as refused."""
    refused: list[int] = []
    head = bytes.fromhex(dst_mac.replace(":", "")) + sock.getsockname()[4] + b"\x08\x00"
    start = time.monotonic()
    tried = 0
    for i, (_kind, pkt) in enumerate(packets):
        if i % 50 == 0:
            now = time.monotonic() - start
            if now > pace.max_seconds:
                break
            ahead = i / pace.rate - now
            if ahead > 0:
                time.sleep(ahead)
        tried = i + 1
        for attempt in (0, 1):
            try:
                sock.send(head + pkt)
                break
            except OSError:
                if attempt == 0:
                    time.sleep(0.001)
                else:
                    refused.append(i)
    return Sent(tried, refused, round(time.monotonic() - start, 3))


def sender_socket(ifname: str) -> socket.socket:
    """An AF_PACKET socket on ``ifname``: whole Ethernet frames, so the flood can go to
    the VRRP group's MAC (every router) or to one router's MAC alone (the kernel
    takes a multicast IP packet in a frame to its own MAC), and nothing is looped
    back to this host, where the advert watcher listens."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((ifname, 0))
    return s


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.vrrp_hostile")
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("flood", help="send the hostile packets, print what was sent")
    f.add_argument("--src", required=True)
    f.add_argument("--ifname", default="eth0")
    f.add_argument("--each", type=int, default=1000, help="packets of each kind")
    f.add_argument("--seed", type=int, default=SEED)
    f.add_argument("--unicast-to", help="also send valid adverts to this address")
    f.add_argument("--rate", type=float, default=10000.0, help="packets per second")
    f.add_argument("--max-seconds", type=float, default=60.0)
    f.add_argument("--mac", default=GROUP_MAC,
                   help="Ethernet destination (default: the VRRP group's, every router)")
    args = ap.parse_args(argv)
    packets = build(args.src, args.each, args.seed, args.unicast_to)
    with sender_socket(args.ifname) as s:
        sent = flood(s, packets, Pace(args.rate, args.max_seconds), args.mac)
    json.dump(dataclasses.asdict(sent), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
