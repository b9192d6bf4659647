"""VRRP v2/v3 advertisement codec: the compiled module or its pure-Python twin.

``decode_ipv4`` (whole IPv4 packet, as a raw IPPROTO_VRRP socket returns it) and
``decode_payload`` (the VRRP message with family/src/dst/ttl, as an IPv6 raw
socket returns it) validate and return an ``Advert`` whose ``reason`` is
``"ok"`` or the stable name of the first failed check (``vrrp_constants``);
they never raise on a packet.  ``encode`` builds the VRRP message and
``encode_ipv4`` the whole packet keepalived would send.  Build an ``Expect``
once per VRRP instance from its configuration and pass it to every decode.  The behaviour is
documented in ``vrrp_codec_py``.

>>> from hafast._core.vrrp_constants import CHECKSUM_MESSAGE
>>> src, group = bytes([10, 0, 0, 1]), bytes([224, 0, 0, 18])
>>> pkt = encode_ipv4(3, 7, 200, [bytes([10, 0, 0, 9])], 100, src=src, dst=group,
...                   v3_checksum=CHECKSUM_MESSAGE)
>>> adv = decode_ipv4(pkt)
>>> adv.reason, adv.vrid, adv.priority, adv.checksum_mode
('ok', 7, 200, 'message')
>>> decode_ipv4(pkt[:-1]).reason
'packet_len_err'
>>> decode_ipv4(pkt, Expect(version=2)).reason
'version_err'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hafast._core._select import choose

# Callers are type-checked against the compiled module's stub (stubtest holds the
# stub to the .so); the twin has its own annotations and the tests run both.
if TYPE_CHECKING:
    from hafast._core.vrrp_codec_c import (
        Advert,
        Expect,
        decode_ipv4,
        decode_payload,
        encode,
        encode_ipv4,
    )
else:
    _impl = choose("vrrp_codec")
    Advert = _impl.Advert
    Expect = _impl.Expect
    decode_ipv4 = _impl.decode_ipv4
    decode_payload = _impl.decode_payload
    encode = _impl.encode
    encode_ipv4 = _impl.encode_ipv4

__all__ = ["Advert", "Expect", "decode_ipv4", "decode_payload", "encode", "encode_ipv4"]
