"""A small pcap reader for the keepalived captures: Ethernet, optional VLAN, IPv4/IPv6.

Only what the vector tests need, written from the pcap file format (libpcap's
classic format: a 24-byte global header, then a 16-byte record header per
packet) and the IEEE 802.3 / 802.1Q, RFC 791 and RFC 8200 headers.

>>> import io
>>> header = bytes.fromhex("d4c3b2a1 0200 0400 00000000 00000000 ffff0000 01000000")
>>> read_pcap(io.BytesIO(header))
[]
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

LINKTYPE_ETHERNET = 1
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_ARP = 0x0806
VLAN_ETHERTYPES = (0x8100, 0x88A8)  # 802.1Q tag, 802.1ad outer tag

# magic -> (byte order, timestamp fraction per second)
_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}


@dataclass(frozen=True)
class Frame:
    """One captured Ethernet frame; the IP fields are set for IPv4/IPv6 frames."""

    index: int
    time: float
    eth_dst: bytes
    eth_src: bytes
    vlans: tuple[int, ...]
    ethertype: int
    l3: bytes  # everything after the Ethernet (and VLAN) headers, link padding included
    ip_version: int = 0
    ip_packet: bytes = b""  # the IP packet trimmed to its own length (no link padding)
    ip_header: bytes = b""
    protocol: int = -1  # IPv4 protocol / IPv6 next header (first one)
    src: bytes = b""
    dst: bytes = b""
    ttl: int = -1  # TTL / hop limit
    tos: int = -1  # TOS / traffic class
    ip_id: int = -1  # IPv4 only
    payload: bytes = b""  # after the IP header


def read_pcap(source: str | Path | BinaryIO) -> list[Frame]:
    """All frames of a classic pcap file with Ethernet link type."""
    if isinstance(source, (str, Path)):
        with open(source, "rb") as handle:
            data = handle.read()
    else:
        data = source.read()
    if len(data) < 24 or data[:4] not in _MAGICS:
        raise ValueError("not a classic pcap file")
    order, per_second = _MAGICS[data[:4]]
    linktype = struct.unpack_from(order + "I", data, 20)[0] & 0x0FFFFFFF
    if linktype != LINKTYPE_ETHERNET:
        raise ValueError(f"link type {linktype} is not Ethernet")
    record = struct.Struct(order + "IIII")
    frames: list[Frame] = []
    offset = 24
    while offset + record.size <= len(data):
        seconds, fraction, caplen, _origlen = record.unpack_from(data, offset)
        offset += record.size
        raw = data[offset:offset + caplen]
        offset += caplen
        if len(raw) < caplen:
            raise ValueError("truncated pcap record")
        frames.append(_parse_ethernet(len(frames), seconds + fraction / per_second, raw))
    return frames


def _parse_ethernet(index: int, time: float, raw: bytes) -> Frame:
    if len(raw) < 14:
        raise ValueError(f"frame {index} shorter than an Ethernet header")
    dst, src = raw[0:6], raw[6:12]
    ethertype = int.from_bytes(raw[12:14], "big")
    offset = 14
    vlans: list[int] = []
    while ethertype in VLAN_ETHERTYPES and offset + 4 <= len(raw):
        vlans.append(int.from_bytes(raw[offset:offset + 2], "big") & 0x0FFF)
        ethertype = int.from_bytes(raw[offset + 2:offset + 4], "big")
        offset += 4
    l3 = raw[offset:]
    base = Frame(index, time, dst, src, tuple(vlans), ethertype, l3)
    if ethertype == ETHERTYPE_IPV4 and len(l3) >= 20 and l3[0] >> 4 == 4:
        ihl = (l3[0] & 0x0F) * 4
        total = int.from_bytes(l3[2:4], "big")
        packet = l3[:total]
        return replace(base, ip_version=4, ip_packet=packet, ip_header=packet[:ihl],
                       protocol=l3[9], src=l3[12:16], dst=l3[16:20], ttl=l3[8], tos=l3[1],
                       ip_id=int.from_bytes(l3[4:6], "big"), payload=packet[ihl:])
    if ethertype == ETHERTYPE_IPV6 and len(l3) >= 40 and l3[0] >> 4 == 6:
        payload_len = int.from_bytes(l3[4:6], "big")
        packet = l3[:40 + payload_len]
        traffic_class = (int.from_bytes(l3[0:2], "big") >> 4) & 0xFF
        return replace(base, ip_version=6, ip_packet=packet, ip_header=packet[:40],
                       protocol=l3[6], src=l3[8:24], dst=l3[24:40], ttl=l3[7],
                       tos=traffic_class, payload=packet[40:])
    return base
