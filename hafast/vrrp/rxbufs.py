"""How big a VRRP socket's receive buffer is: keepalived's ``vrrp_rx_bufs_policy``.

Pure arithmetic (no sockets); :mod:`hafast.vrrp.transport` applies the result with
SO_RCVBUF.  keepalived 2.2.7 (``vrrp_scheduler.c`` ``vrrp_create_sockpool``,
``vrrp_if.c`` ``setup_interface``/``update_mtu``) sums one term per instance that
receives on the socket, first rule that applies:

==============================  ==================================================
the instance has                its term
==============================  ==================================================
``kernel_rx_buf_size N``        N (per instance; wins over any global policy)
``vrrp_rx_bufs_policy NUMBER``  NUMBER
``vrrp_rx_bufs_policy ADVERT``  multiplier x the advert it sends (``vrrp_adv_len``)
``vrrp_rx_bufs_policy MTU``     multiplier x its interface's MTU
nothing                         0
==============================  ==================================================

``vrrp_rx_bufs_multiplier`` defaults to 3.  A total of 0 means nothing was asked
for: keepalived then leaves the system default (net.core.rmem_default), hafast its
own :data:`DEFAULT_RX_BUF`.  The kernel doubles what SO_RCVBUF asks for (room for
its skb overhead) and caps the request at net.core.rmem_max, as it does for
keepalived.

Example::

    >>> member = RxMember(advert_len=advert_len(4, 2, 1, 1), mtu=1500)
    >>> rx_buf_size(RxBufs("ADVERT"), [member, member]), rx_buf_size(RxBufs("MTU", 2), [member])
    (240, 3000)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hafast._core.vrrp_constants import (
    AH_HEADER_LEN,
    AUTH_AH,
    FAMILY_IPV4,
    IPV4_HEADER_LEN,
    VRRP_AUTH_DATA_LEN,
    VRRP_HEADER_LEN,
)

POLICY_MTU = "MTU"
POLICY_ADVERT = "ADVERT"
MULTIPLIER_DEFAULT = 3  # keepalived global_data.c: vrrp_rx_bufs_multiples = 3
# hafast's size when nothing is configured: a burst of adverts from many VRIDs (or a
# flood) must not overflow the default ~200 KiB; the kernel caps it at rmem_max.
DEFAULT_RX_BUF = 1 << 20
SO_RCVBUF_MAX = 2**31 - 1  # SO_RCVBUF takes an int


@dataclass(frozen=True, slots=True)
class RxBufs:
    """The global settings: ``policy`` is ``"MTU"``, ``"ADVERT"``, a byte count, or
    None (``vrrp_rx_bufs_policy`` not given)."""

    policy: str | int | None = None
    multiplier: int = MULTIPLIER_DEFAULT


@dataclass(frozen=True, slots=True)
class RxMember:
    """One instance receiving on the socket."""

    advert_len: int
    mtu: int
    kernel_rx_buf_size: int = 0


def advert_len(family: int, version: int, vip_count: int, auth_type: int = 0) -> int:
    """keepalived's ``vrrp_adv_len``: what one of the instance's adverts occupies.

    IPv4 counts the IP header (and keepalived's AH header); IPv6 only the VRRP
    message, as keepalived does.

    >>> advert_len(4, 2, 1), advert_len(4, 2, 1, AUTH_AH), advert_len(4, 3, 2), advert_len(6, 3, 1)
    (40, 64, 36, 24)
    """
    if family == FAMILY_IPV4:
        n = VRRP_HEADER_LEN + vip_count * 4 + IPV4_HEADER_LEN
        if version == 2:
            n += VRRP_AUTH_DATA_LEN  # RFC 3768 §5.3.10
            if auth_type == AUTH_AH:
                n += AH_HEADER_LEN
        return n
    return VRRP_HEADER_LEN + vip_count * 16


def rx_buf_size(bufs: RxBufs, members: Iterable[RxMember]) -> int:
    """The SO_RCVBUF to ask for (0: nothing configured); see the module table.

    >>> rx_buf_size(RxBufs(65536), [RxMember(40, 1500), RxMember(40, 1500, 4096)])
    69632
    >>> rx_buf_size(RxBufs(), [RxMember(40, 1500)])
    0
    """
    total = 0
    for m in members:
        if m.kernel_rx_buf_size:
            total += m.kernel_rx_buf_size
        elif isinstance(bufs.policy, int):
            total += bufs.policy
        elif bufs.policy == POLICY_ADVERT:
            total += bufs.multiplier * m.advert_len
        elif bufs.policy == POLICY_MTU:
            total += bufs.multiplier * m.mtu
    return min(total, SO_RCVBUF_MAX)


__all__ = ["DEFAULT_RX_BUF", "MULTIPLIER_DEFAULT", "POLICY_ADVERT", "POLICY_MTU", "RxBufs",
           "RxMember", "advert_len", "rx_buf_size"]
