"""From the config model to what the VRRP shell runs: params and wire settings.

Pure (no event loop, socket or subprocess; the ``pure-cores`` contract in
``.importlinter`` checks it): the loader has already resolved inheritance from
``global_defs`` and applied keepalived's defaults; this maps a
:class:`~hafast.config.model.VrrpInstance` onto the FSM's :class:`VrrpParams`
and the transport's :class:`ChannelConfig`.  The source address is left empty
unless ``mcast_src_ip`` / ``unicast_src_ip`` sets it; the worker fills in the
interface's primary address at start-up.  :mod:`hafast.vrrp.build` adds what
needs the I/O side (notify scripts, parsed routes) to make an instance's spec.

Example::

    >>> from hafast.config.loader import load_text
    >>> cfg = load_text("vrrp_instance V { interface lo\\n virtual_router_id 7\\n"
    ...                 " priority 90\\n }\\n").config
    >>> inst, gd = cfg.vrrp_instances[0], cfg.global_defs
    >>> params_for(inst, gd).priority, channel_for(inst, gd).vrid
    (90, 7)
    >>> channel_for(inst, gd).group.hex()
    'e0000012'
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from hafast._core.vrrp_constants import (
    AUTH_AH,
    AUTH_NONE,
    AUTH_PASS,
    CHECKSUM_MESSAGE,
    CHECKSUM_PSEUDO,
    IP_TTL_ERR,
    OK,
    VRRP_TTL,
    auth_data_from_pass,
)
from hafast.config.model import GlobalDefs, VrrpInstance
from hafast.config.vmac import parse_use_ipvlan, parse_use_vmac, vrrp_mac
from hafast.lib.units import US_PER_S
from hafast.vrrp.params import VrrpParams
from hafast.vrrp.rxbufs import RxBufs, advert_len
from hafast.vrrp.timers import US_PER_CENTISECOND

# keepalived auth_type words -> RFC 2338 Auth Type.  AH: keepalived's IPsec AH
# (HMAC-MD5-96 keyed with auth_pass, zero padded to 8 bytes), VRRPv2 over IPv4 only.
AUTH_TYPES = {"PASS": AUTH_PASS, "AH": AUTH_AH}


@dataclass(frozen=True, slots=True)
class VmacConfig:
    """keepalived's ``use_vmac``: a private-mode macvlan carrying the virtual MAC;
    or its ``use_ipvlan`` (``kind`` "ipvlan"): an l2 ipvlan, which shares its
    parent's MAC (``mac`` is empty) and carries ``address``, the adverts' source.

    The VIPs (those without a ``dev``) go on a macvlan; the adverts go out of it too
    unless ``xmit_base``, when they leave from ``parent`` with its own MAC.
    """

    name: str
    parent: str
    mac: bytes  # 6 bytes
    family: int
    xmit_base: bool = False
    # IPv6 stays on: an IPv6 instance, or an IPv6 eVIP without a dev of its own
    # (keepalived's evip_add_ipv6); an IPv4 one otherwise gets disable_ipv6.
    ipv6: bool = False
    kind: str = "macvlan"
    ipvlan_flags: int = 0  # IFLA_IPVLAN_FLAGS: 0 bridge, 1 private, 2 vepa
    address: str | None = None  # "ADDR/PREFIX" on the ipvlan

    @property
    def carries_vips(self) -> bool:
        """keepalived 2.2.7 moves the VIPs (those without a ``dev``) onto a macvlan
        but leaves them on an ipvlan's parent (vrrp.c ``vrrp_complete_instance``: only
        VRRP_VMAC_BIT sends them to ``vrrp->ifp``); an ipvlan carries the adverts."""
        return self.kind == "macvlan"

    @property
    def mac_text(self) -> str:
        return ":".join(f"{b:02x}" for b in self.mac)


def vmac_for(inst: VrrpInstance, gd: GlobalDefs) -> VmacConfig | None:
    """The macvlan ``inst`` asks for with ``use_vmac [NAME] [MAC]``, or None.

    keepalived 2.2.7 names it ``vmac_prefix.VRID`` (``vrrp.51``) unless a name is
    given, for IPv6 instances too; a word with a ``:`` is the MAC; ``name NAME``
    spells the name explicitly.  An invalid name or MAC is ignored, as keepalived
    does (it says so at load).  Unicast needs ``vmac_xmit_base`` and keepalived sets
    it ("unicast with use_vmac requires vmac_xmit_base - setting").

    >>> from hafast.config.loader import load_text
    >>> cfg = load_text("vrrp_instance V { interface eth0\\n virtual_router_id 51\\n"
    ...                 " use_vmac\\n no_virtual_ipaddress\\n }\\n").config
    >>> v = vmac_for(cfg.vrrp_instances[0], cfg.global_defs)
    >>> v.name, v.parent, v.mac_text, v.xmit_base
    ('vrrp.51', 'eth0', '00:00:5e:00:01:33', False)
    """
    if inst.use_ipvlan is not None:
        # keepalived 2.2.7 makes the ipvlan when both are given.
        return ipvlan_for(inst, gd)
    if inst.use_vmac is None:
        return None
    vrid, fam = inst.virtual_router_id, inst.family
    name, mac, _complaints = parse_use_vmac(inst.use_vmac, vrid)  # said at load
    evip6 = any(v.family == 6 and v.dev is None for v in inst.virtual_ipaddress_excluded)
    return VmacConfig(
        name=name or f"{gd.vmac_prefix}.{vrid}",
        parent=inst.interface or gd.default_interface,
        mac=mac or vrrp_mac(vrid, fam),
        family=fam,
        xmit_base=inst.vmac_xmit_base or bool(inst.unicast_peer),
        ipv6=fam == 6 or evip6,
    )


def ipvlan_address(inst: VrrpInstance) -> str | None:
    """The ``use_ipvlan`` address ("ADDR/PREFIX") ``inst`` uses: one of another family
    than the instance's is skipped, as keepalived 2.2.7 skips it (said at load)."""
    addr = parse_use_ipvlan(inst.use_ipvlan or (), inst.name)[1]
    return addr if addr is not None and (6 if ":" in addr else 4) == inst.family else None


def ipvlan_for(inst: VrrpInstance, gd: GlobalDefs) -> VmacConfig:
    """keepalived 2.2.7's ``use_ipvlan [NAME] [ADDRESS[/PREFIX]] [bridge|private|vepa]``
    (vrrp_vmac.c ``netlink_link_add_ipvlan``): an ipvlan in mode l2 with those flags
    on the instance's interface, named like a VMAC (``vmac_prefix.VRID``) unless a
    name is given, carrying the address.  The adverts leave from it
    (``vmac_xmit_base`` is for macvlans only); the VIPs stay on the interface.

    An IPv6 instance without an address differs: keepalived waits in FAULT for the
    ipvlan's own link-local (the kernel makes it from the ipvlan's dev_id, so it is
    not the parent's: fe80::b614:6100:133:5278 beside fe80::b414:61ff:fe33:5278, seen
    in the IPVS VM) and sources its adverts from it; hafast takes the parent's at once.

    >>> from hafast.config.loader import load_text
    >>> cfg = load_text("vrrp_instance V { interface eth0\\n virtual_router_id 51\\n"
    ...                 " use_ipvlan 10.0.0.5/24 private\\n no_virtual_ipaddress\\n }\\n").config
    >>> v = vmac_for(cfg.vrrp_instances[0], cfg.global_defs)
    >>> v.kind, v.name, v.parent, v.address, v.ipvlan_flags, v.mac
    ('ipvlan', 'vrrp.51', 'eth0', '10.0.0.5/24', 1, b'')
    """
    vrid, fam = inst.virtual_router_id, inst.family
    name, _addr, flags, _complaints = parse_use_ipvlan(inst.use_ipvlan or (), inst.name)
    evip6 = any(v.family == 6 and v.dev is None for v in inst.virtual_ipaddress_excluded)
    return VmacConfig(
        name=name or f"{gd.vmac_prefix}.{vrid}",
        parent=inst.interface or gd.default_interface,
        mac=b"",
        family=fam,
        ipv6=fam == 6 or evip6,
        kind="ipvlan",
        ipvlan_flags=flags,
        address=ipvlan_address(inst),
    )


def vip_ifname(inst: VrrpInstance, gd: GlobalDefs) -> str:
    """Where ``inst``'s VIPs without a ``dev`` go: its interface, or its macvlan.

    >>> from hafast.config.loader import load_text
    >>> cfg = load_text("vrrp_instance V { interface eth0\\n virtual_router_id 5\\n"
    ...                 " use_vmac vmx5\\n no_virtual_ipaddress\\n }\\n").config
    >>> vip_ifname(cfg.vrrp_instances[0], cfg.global_defs)
    'vmx5'
    """
    vmac = vmac_for(inst, gd)
    if vmac is not None and vmac.carries_vips:
        return vmac.name
    return inst.interface or gd.default_interface


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """How one instance speaks on the wire (:meth:`hafast.vrrp.transport.Transport.channel`)."""

    ifname: str
    family: int  # 4 or 6
    vrid: int
    version: int
    adver_int: int  # wire units: v2 seconds, v3 centiseconds
    addresses: tuple[bytes, ...] = ()  # packed VIPs carried in the advert
    src: bytes = b""  # our source: primary IPv4 / IPv6 link-local (or configured)
    group: bytes = b""  # multicast destination (224.0.0.18 / ff02::12 by default)
    peers: tuple[bytes, ...] = ()  # unicast_peer: send to each instead of the group
    auth_type: int = 0  # v2: 0 none, 1 PASS, 2 AH
    auth_data: bytes = b""  # v2 PASS: the 8 bytes; AH: the HMAC-MD5 key (same 8 bytes)
    v3_checksum: str = CHECKSUM_PSEUDO  # how we send; receive accepts both (detects)
    kernel_rx_buf_size: int = 0  # keepalived's per-instance SO_RCVBUF share (0: policy)
    unicast_ttl: int = VRRP_TTL  # TTL / hop limit of the adverts sent to unicast peers
    # check_unicast_src: accept adverts only from a peer, with a TTL in its range
    check_src: bool = False
    peer_ttl: tuple[tuple[int, int], ...] = ()  # (min_ttl, max_ttl) of each of peers
    # use_vmac: the macvlan the worker makes before opening the channel.  ``ifname``
    # is then the macvlan's name, or the parent's with vmac_xmit_base.
    vmac: VmacConfig | None = None

    @property
    def unicast(self) -> bool:
        return bool(self.peers)

    @property
    def advert_len(self) -> int:
        """What one of our adverts occupies (keepalived's ``vrrp_adv_len``)."""
        return advert_len(self.family, self.version, len(self.addresses), self.auth_type)


def _packed(addr: str) -> bytes:
    return ipaddress.ip_address(addr).packed


def params_for(inst: VrrpInstance, gd: GlobalDefs) -> VrrpParams:
    """The FSM parameters of ``inst`` (``src_addr`` 0 until the worker resolves it)."""
    return VrrpParams(
        priority=inst.priority,
        version=inst.version,
        adver_int_us=inst.advert_int_us,
        initial_master=inst.state == "MASTER",
        # the loader resolves an owner's unset state to MASTER, as keepalived does
        initial_backup=inst.state == "BACKUP",
        nopreempt=inst.nopreempt,
        preempt_delay_us=inst.preempt_delay_us,
        accept=inst.accept,
        strict=inst.strict_mode,
        down_timer_adverts=inst.down_timer_adverts,
        lower_prio_no_advert=inst.lower_prio_no_advert,
        higher_prio_send_advert=inst.higher_prio_send_advert,
        owner_ignore_adverts=inst.owner_ignore_adverts,
        config_faults=config_faults(inst),
        timer_expired_backup=inst.timer_expired_backup,
        garp_master_delay_us=inst.garp_master_delay_us,
        garp_master_repeat=inst.garp_master_repeat,
        garp_master_refresh_us=inst.garp_master_refresh_us,
        garp_master_refresh_repeat=inst.garp_master_refresh_repeat,
        garp_lower_prio_delay_us=inst.garp_lower_prio_delay_us,
        garp_lower_prio_repeat=inst.garp_lower_prio_repeat,
    )


# The fault reason of an instance keepalived puts in FAULT for good at start.
UNICAST_NO_PEER = "config:unicast_fault_no_peer"
IPVLAN_NO_ADDRESS = "config:ipvlan_no_address"


def config_faults(inst: VrrpInstance) -> tuple[str, ...]:
    """What keeps ``inst`` in FAULT whatever happens (keepalived's num_config_faults).

    keepalived 2.2.7 (vrrp.c ``vrrp_complete_instance``): ``unicast_fault_no_peer``
    without a ``unicast_peer`` goes to FAULT instead of falling back to multicast.

    An IPv4 ``use_ipvlan`` without an address of its own: "IPv4 ipvlan requires a
    source ip address to be configured. setting instance to fault state".

    >>> config_faults(VrrpInstance("V", unicast_fault_no_peer=True))
    ('config:unicast_fault_no_peer',)
    >>> config_faults(VrrpInstance("V", use_ipvlan=("bridge",)))
    ('config:ipvlan_no_address',)
    """
    out: tuple[str, ...] = ()
    if inst.unicast_fault_no_peer and not inst.unicast_peer:
        out += (UNICAST_NO_PEER,)
    if inst.use_ipvlan is not None and inst.family == 4 and ipvlan_address(inst) is None:
        out += (IPVLAN_NO_ADDRESS,)
    return out


def channel_for(inst: VrrpInstance, gd: GlobalDefs) -> ChannelConfig:
    """The wire settings of ``inst``."""
    fam = inst.family
    if inst.version == 2:
        adver_int = inst.advert_int_us // US_PER_S  # RFC 3768 §5.3.7
    else:
        adver_int = inst.advert_int_us // US_PER_CENTISECOND  # RFC 5798 §5.2.7
    group = inst.mcast_dst_ip or (gd.vrrp_mcast_group4 if fam == 4 else gd.vrrp_mcast_group6)
    src_text = inst.unicast_src_ip if inst.unicast_peer else None
    src_text = src_text or inst.mcast_src_ip
    if inst.use_ipvlan is not None and not src_text:
        # keepalived takes the ipvlan's address for the source unless one is set.
        src_text = (ipvlan_address(inst) or "").partition("/")[0] or None
    auth_type, auth_data = AUTH_NONE, b""
    if inst.authentication is not None and inst.version == 2:
        auth_type = AUTH_TYPES.get(inst.authentication.auth_type.upper(), AUTH_NONE)
        if auth_type == AUTH_AH and fam != 4:
            auth_type = AUTH_NONE  # keepalived speaks AH over IPv4 only
        if auth_type in (AUTH_PASS, AUTH_AH):
            auth_data = auth_data_from_pass(inst.authentication.auth_pass)
    # The loader copies global_defs' v3_checksum_as_v2 into instances that do not set it.
    as_v2 = inst.v3_checksum_as_v2
    vmac = vmac_for(inst, gd)
    ifname = inst.interface or gd.default_interface
    if vmac is not None and not vmac.xmit_base:
        ifname = vmac.name
    return ChannelConfig(
        ifname=ifname,
        family=fam,
        vrid=inst.virtual_router_id,
        version=inst.version,
        adver_int=adver_int,
        addresses=tuple(_packed(v.address) for v in inst.virtual_ipaddress),
        src=_packed(src_text) if src_text else b"",
        group=_packed(group),
        peers=tuple(_packed(p.address) for p in inst.unicast_peer),
        auth_type=auth_type,
        auth_data=auth_data,
        v3_checksum=CHECKSUM_MESSAGE if as_v2 else CHECKSUM_PSEUDO,
        kernel_rx_buf_size=inst.kernel_rx_buf_size,
        unicast_ttl=inst.unicast_ttl,
        # keepalived (vrrp_data.c alloc_vrrp_unicast_peer): a peer's min_ttl or
        # max_ttl turns check_unicast_src on.  The model keeps no "given" flag, so a
        # range other than the default 0-255 stands for it (an explicit "min_ttl 0"
        # alone checks nothing here).
        check_src=inst.check_unicast_src
        or any((p.min_ttl, p.max_ttl) != (0, 255) for p in inst.unicast_peer),
        peer_ttl=tuple((p.min_ttl, p.max_ttl) for p in inst.unicast_peer),
        vmac=vmac,
    )


# An advert from an address that is not one of the instance's unicast peers.
UNICAST_SRC_ERR = "unicast_src_err"


def peer_ranges(cfg: ChannelConfig) -> dict[bytes, tuple[int, int]] | None:
    """``{peer: (min_ttl, max_ttl)}`` to check received adverts against, or None
    when nothing is checked (multicast, or no ``check_unicast_src``).

    keepalived 2.2.7 (vrrp.c ``vrrp_check_packet``) checks only in unicast mode,
    with the instance's ``check_unicast_src`` or global ``vrrp_check_unicast_src``.

    >>> a, b = bytes([10, 0, 0, 2]), bytes([10, 0, 0, 3])
    >>> peer_ranges(ChannelConfig("eth0", 4, 1, 2, 1, peers=(a, b), check_src=True,
    ...                           peer_ttl=((0, 255), (250, 255))))[b]
    (250, 255)
    >>> peer_ranges(ChannelConfig("eth0", 4, 1, 2, 1, peers=(a,))) is None
    True
    """
    if not (cfg.check_src and cfg.peers):
        return None
    ttls = cfg.peer_ttl or ((0, VRRP_TTL),) * len(cfg.peers)
    # A peer listed twice: keepalived takes the first match, and so does setdefault.
    out: dict[bytes, tuple[int, int]] = {}
    for peer, rng in zip(cfg.peers, ttls, strict=True):
        out.setdefault(peer, rng)
    return out


def source_verdict(ranges: dict[bytes, tuple[int, int]], src: bytes, ttl: int) -> str:
    """``"ok"``, or why an advert from ``src`` with TTL / hop limit ``ttl`` is dropped.

    The source must be a unicast peer (``unicast_src_err``, which keepalived logs
    but counts nowhere), and a TTL known to us (-1: not known, not checked)
    within that peer's ``min_ttl``..``max_ttl`` (``ip_ttl_err``, keepalived's
    counter).  The TTL is the received one: the IPv4 header's, or IPv6's
    IPV6_HOPLIMIT ancillary data.

    >>> r = {bytes([10, 0, 0, 2]): (250, 255)}
    >>> [source_verdict(r, bytes([10, 0, 0, 2]), t) for t in (255, 249, -1)]
    ['ok', 'ip_ttl_err', 'ok']
    >>> source_verdict(r, bytes([10, 0, 0, 9]), 255)
    'unicast_src_err'
    """
    rng = ranges.get(src)
    if rng is None:
        return UNICAST_SRC_ERR
    if ttl != -1 and not rng[0] <= ttl <= rng[1]:
        return IP_TTL_ERR
    return OK


def startup_delay_us(gd: GlobalDefs, uptime_us: int) -> int:
    """How long the VRRP instances wait at a start ``uptime_us`` after boot.

    keepalived 2.3 (global_parser.c): the longer of ``vrrp_startup_delay`` and what
    is left of ``vrrp_delay_after_boot`` (so a restart long after boot waits only
    the former).  2.2.7 knows only ``vrrp_startup_delay``.

    >>> gd = GlobalDefs(vrrp_startup_delay_us=2_000_000, vrrp_delay_after_boot_us=60_000_000)
    >>> startup_delay_us(gd, 55_000_000), startup_delay_us(gd, 600_000_000)
    (5000000, 2000000)
    """
    return max(gd.vrrp_startup_delay_us, gd.vrrp_delay_after_boot_us - uptime_us, 0)


def rx_bufs_of(gd: GlobalDefs) -> RxBufs:
    """keepalived's ``vrrp_rx_bufs_policy`` and ``vrrp_rx_bufs_multiplier``."""
    return RxBufs(gd.vrrp_rx_bufs_policy, gd.vrrp_rx_bufs_multiplier)
