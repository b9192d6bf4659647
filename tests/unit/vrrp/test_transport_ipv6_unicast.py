"""IPv6 unicast receive: the hop limit is recorded but not checked.

Found when the ``vrrp_codec`` chooser began to hand mypy the compiled stub: ``_rx6``
wrote the hop limit into the (read-only) Advert afterwards, which raised
AttributeError on every valid unicast IPv6 advert, with either twin.
"""

from __future__ import annotations

import socket
import struct

from hafast._core.vrrp_codec import encode
from hafast.vrrp.transport import IPV6_HOPLIMIT, IPV6_PKTINFO
from tests.unit.vrrp.test_transport import LL_OWN, LL_PEER, VIP6, _channel, _sock


def test_ipv6_unicast_keeps_hop_limit_unchecked() -> None:
    s = _sock(6)
    _, got = _channel(s, family=6, version=3, adver_int=100, addresses=(VIP6,), src=LL_OWN,
                      group=LL_OWN, peers=(LL_PEER,))
    msg = encode(3, 51, 90, [VIP6], 100, family=6, src=LL_PEER, dst=LL_OWN)
    addr = (socket.inet_ntop(socket.AF_INET6, LL_PEER) + "%eth0", 0, 0, 2)
    anc = [(socket.IPPROTO_IPV6, IPV6_HOPLIMIT, struct.pack("i", 64)),
           (socket.IPPROTO_IPV6, IPV6_PKTINFO, struct.pack("16sI", LL_OWN, 2))]
    s._rx6(msg, anc, addr)
    assert [(a.reason, a.ttl) for a in got] == [("ok", 64)]
