"""keepalived's ``use_vmac``: the private-mode macvlan that carries an instance's
virtual MAC (RFC 5798 §7.3), and the sysctls it needs.

What keepalived 2.2.7 does, and so what this does (checked side by side in
``tests/netns/test_vrrp_vmac.py``):

- a ``macvlan`` link in ``private`` mode on the instance's interface, named
  ``vrrp.VRID`` (or as configured), with MAC 00:00:5e:00:01:VRID
  (00:00:5e:00:02:VRID for IPv6), ``addr_gen_mode none`` (RFC 5798 §7.4: no
  link-local made from the virtual MAC), then set up;
- an existing link of that name is reused when it is a macvlan on the same parent
  with the same MAC (a restarted worker's, say), replaced when it is a macvlan that
  differs, and never touched when it is anything else (a real interface);
- IPv4 instances, on a link it made: on the macvlan ``arp_ignore=1``,
  ``accept_local=1``, ``rp_filter=0``, ``promote_secondaries=1``; on the parent
  ``arp_ignore=1`` and ``arp_filter=1`` (the parent must not answer ARP for the
  VIPs); and, because the kernel uses the larger of ``all.rp_filter`` and the
  interface's, a non-zero ``all.rp_filter`` is moved onto ``default`` and every
  interface before ``all`` is set to 0 (keepalived's ``clear_rp_filter``), so
  the macvlan's 0 counts and no other interface filters less than before;
  ``disable_ipv6=1`` on the macvlan unless an IPv6 eVIP needs it;
- IPv6 instances: the parent's link-local address (or the configured source) is
  added to the macvlan, ``nodad`` and deprecated (preferred lifetime 0), so the
  adverts leave from it with the virtual MAC and nothing else picks it;
- the IGMP (IPv4) and MLD (IPv6) reports the macvlan would send go out of the
  parent instead, and its router solicitations not at all (keepalived's nftables
  ``vmac_map``; here in hafast's own ``hafast_vmac`` tables, through libnftables):
  a backup's macvlan joins the VRRP group too, and a report from it would teach the
  switches that the virtual MAC lives on the backup's port;
- at stop the macvlan is deleted and what was changed is put back: the rp_filter
  values where they are still what we set (keepalived's ``restore_rp_filter``),
  and the parent's arp_ignore/arp_filter once its last macvlan is gone.  (That
  last one keepalived 2.2.7 documents but was seen not to do: it leaves the
  parent at 1/1.  Leaving a host changed after exit is the bug; we restore.)

keepalived's ``use_ipvlan`` is the same link of another kind (:data:`KINDS`), and
keepalived 2.2.7 (vrrp_vmac.c ``netlink_link_add_ipvlan``) does less with it: an
``ipvlan`` in mode ``l2`` (the mode that hears the VRRP multicast) with the flags
configured (``bridge`` by default, ``private``, ``vepa``), named like a VMAC, with
its parent's MAC (an ipvlan has no MAC of its own, so no virtual MAC, no
``addr_gen_mode``, no report redirection), set up, ``disable_ipv6`` as above, and
the configured address added to it (the adverts' source; the VIPs stay on the
parent, where keepalived 2.2.7 puts them).  None of the IPv4 sysctls: keepalived
calls ``set_interface_parameters`` for macvlans only.  Checked
side by side in ``tests/ipvs/test_vrrp_ipvlan.py`` (the host kernel has no ipvlan).

Everything here is a blocking netlink round trip or a /proc/sys write, done at
start, reload and stop only, never on a VRRP timer path.

Example (root, in a scratch namespace)::

    links = VmacLinks()
    links.ensure("VI_1", vmac_for(inst, gd))   # vrrp.51 is up
    links.close()                              # and gone again
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hafast.lib import netlink
from hafast.lib.netlink import (
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    RTM_NEWADDR,
)
from hafast.net.nftables import Nft, NftError
from hafast.net.vip import IFA_F_NODAD, Rtnl

log = logging.getLogger("hafast.vrrp.vmac")

# linux/rtnetlink.h, linux/if_link.h
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
IFLA_ADDRESS, IFLA_IFNAME, IFLA_LINK, IFLA_LINKINFO = 1, 3, 5, 18
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_MACVLAN_MODE = 1
MACVLAN_MODE_PRIVATE = 1
IFLA_IPVLAN_MODE, IFLA_IPVLAN_FLAGS = 1, 2  # both u16
IPVLAN_MODE_L2 = 0
IN6_ADDR_GEN_MODE_NONE = 1
IFF_UP = 0x1
RT_SCOPE_LINK = 253
INFINITY_LIFE_TIME = 0xFFFFFFFF  # linux/if_addr.h: a valid lifetime of "forever"
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change

# keepalived's set_interface_parameters (vrrp_if_config.c), IPv4 instances.
VMAC_SYSCTLS: tuple[tuple[str, int], ...] = (
    ("arp_ignore", 1),  # no ARP replies here for the parent's addresses
    ("accept_local", 1),  # hear another instance's adverts from a local source
    ("rp_filter", 0),  # receive on the macvlan while it has no address
    ("promote_secondaries", 1),
)
PARENT_SYSCTLS: tuple[tuple[str, int], ...] = (
    ("arp_ignore", 1),  # the parent must not answer ARP for the VIPs
    ("arp_filter", 1),
)


def conf_key(ifname: str, name: str, family: int = 4) -> str:
    """The /proc/sys path of a per-interface setting (the name's dots stay dots).

    >>> conf_key("vrrp.51", "arp_ignore")
    'net/ipv4/conf/vrrp.51/arp_ignore'
    """
    return f"net/ipv{family}/conf/{ifname}/{name}"


def link_local_from_mac(mac: bytes) -> bytes:
    """The modified EUI-64 link-local address of ``mac`` (RFC 4291 appendix A), as
    keepalived makes one for the macvlan when the parent has no link-local.

    >>> str(ipaddress.IPv6Address(link_local_from_mac(bytes.fromhex("964cc8844ac2"))))
    'fe80::944c:c8ff:fe84:4ac2'
    """
    eui = bytes((mac[0] ^ 0x02, mac[1], mac[2], 0xFF, 0xFE, mac[3], mac[4], mac[5]))
    return bytes((0xFE, 0x80)) + bytes(6) + eui


def rp_filter_plan(all_value: int, default_value: int, ifaces: Mapping[str, int]
                   ) -> list[tuple[str, int, int]]:
    """keepalived's ``clear_rp_filter``: the writes, ``(key, old, new)`` in order,
    that make ``all.rp_filter`` 0 without any interface filtering less.

    The kernel filters with max(all, interface): a macvlan's ``rp_filter=0`` counts
    only once ``all`` is 0, so ``default`` and every interface below ``all`` are
    raised to it first.

    >>> rp_filter_plan(2, 0, {"eth0": 1, "eth1": 2})
    ... # doctest: +NORMALIZE_WHITESPACE
    [('net/ipv4/conf/default/rp_filter', 0, 2), ('net/ipv4/conf/eth0/rp_filter', 1, 2),
     ('net/ipv4/conf/all/rp_filter', 2, 0)]
    >>> rp_filter_plan(0, 0, {"eth0": 1})
    []
    """
    if all_value <= 0:
        return []
    out = []
    if default_value < all_value:
        out.append((conf_key("default", "rp_filter"), default_value, all_value))
    for name, value in ifaces.items():
        if value < all_value:
            out.append((conf_key(name, "rp_filter"), value, all_value))
    out.append((conf_key("all", "rp_filter"), all_value, 0))
    return out


def restore_plan(writes: Iterable[tuple[str, int, int]], now: Mapping[str, int | None]
                 ) -> list[tuple[str, int]]:
    """keepalived's ``restore_rp_filter`` (and the parents' arp settings): put back
    each ``old`` value only where the setting still holds what we wrote; one an
    administrator changed since is theirs.

    >>> restore_plan([("a", 1, 2), ("b", 0, 1)], {"a": 2, "b": 0})
    [('a', 1)]
    """
    return [(key, old) for key, old, new in writes if now.get(key) == new]


@dataclass
class Sysctl:
    """/proc/sys, read and written one integer at a time (``root`` for tests)."""

    root: Path = Path("/proc/sys")

    def get(self, key: str) -> int | None:
        try:
            return int((self.root / key).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def set(self, key: str, value: int) -> bool:
        try:
            (self.root / key).write_text(f"{value}\n")
            return True
        except OSError as exc:
            log.warning("cannot set %s to %d: %s", key.replace("/", "."), value, exc)
            return False

    def interfaces(self) -> list[str]:
        """Every interface with IPv4 settings, but loopback (keepalived 2.2.7 left
        lo's rp_filter alone, and the kernel does not filter on it)."""
        try:
            names = os.listdir(self.root / "net/ipv4/conf")
        except OSError:
            return []
        return sorted(n for n in names if n not in ("all", "default", "lo"))


class VmacConfig(Protocol):
    """What a macvlan is to be (:class:`hafast.vrrp.from_config.VmacConfig`)."""

    @property
    def name(self) -> str: ...
    @property
    def parent(self) -> str: ...
    @property
    def mac(self) -> bytes: ...
    @property
    def mac_text(self) -> str: ...
    @property
    def family(self) -> int: ...
    @property
    def ipv6(self) -> bool: ...
    @property
    def kind(self) -> str: ...
    @property
    def ipvlan_flags(self) -> int: ...
    @property
    def address(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """What a link of the wanted name is now (RTM_GETLINK)."""

    index: int
    mac: bytes
    parent: int  # IFLA_LINK, 0 when none
    kind: str  # "macvlan", "ipvlan", "veth", "" for a physical one
    macvlan_mode: int = 0
    ipvlan_mode: int = -1
    ipvlan_flags: int = -1


@dataclass(frozen=True, slots=True)
class LinkKind:
    """What keepalived 2.2.7 does differently with its two kinds of VRRP link."""

    label: str  # in the log, keepalived's word
    info_data: Callable[[VmacConfig], bytes]  # IFLA_INFO_DATA's attributes
    same: Callable[[LinkInfo, VmacConfig], bool]  # an existing link is reusable
    own_mac: bool  # the virtual MAC (IFLA_ADDRESS); an ipvlan has its parent's
    # set_interface_parameters, clear_rp_filter, addr_gen_mode none, the IGMP/MLD
    # report redirection, the link-local copy: a macvlan's, never an ipvlan's
    macvlan_extras: bool


def _u16(value: int) -> bytes:
    return struct.pack("=H", value)


KINDS: dict[str, LinkKind] = {
    # Private: frames between macvlans of one parent are not bridged, so two
    # instances' virtual MACs on one host never talk locally.
    "macvlan": LinkKind(
        "VMAC",
        lambda cfg: netlink.attr(IFLA_MACVLAN_MODE, struct.pack("=I", MACVLAN_MODE_PRIVATE)),
        lambda found, cfg: found.kind == "macvlan" and found.mac == cfg.mac,
        own_mac=True, macvlan_extras=True),
    # keepalived's "In l2 mode, ipvlan will receive frames" (the multicast adverts).
    "ipvlan": LinkKind(
        "ipvlan",
        lambda cfg: (netlink.attr(IFLA_IPVLAN_MODE, _u16(IPVLAN_MODE_L2))
                     + netlink.attr(IFLA_IPVLAN_FLAGS, _u16(cfg.ipvlan_flags))),
        lambda found, cfg: (found.kind == "ipvlan" and found.ipvlan_mode == IPVLAN_MODE_L2
                            and found.ipvlan_flags == cfg.ipvlan_flags),
        own_mac=False, macvlan_extras=False),
}


REPORTS_TABLE = "hafast_vmac"
# keepalived 2.2.7's vrrp_nftables.c rules, per family: a multicast report leaving a
# macvlan is duplicated out of its parent (the map) and dropped; IPv6 router
# solicitations from a macvlan are dropped.
_REPORT_RULES = {
    4: ('ip protocol igmp meta oifkind "macvlan" '
        "dup to ip daddr device oif map @vmac_map drop",),
    6: ('icmpv6 type mld2-listener-report meta oifkind "macvlan" '
        "dup to ip6 daddr device oif map @vmac_map drop",
        'icmpv6 type nd-router-solicit meta oifkind "macvlan" oif @vmac_set drop'),
}


class ReportRedirect:
    """The ``hafast_vmac`` tables: multicast reports of the macvlans leave by their
    parents (see the module docstring).  A table is made with its first macvlan and
    deleted at close; libnftables, never the nft program (this runs on the worker's
    loop at a reload); without it, said once, and the reports leave the macvlan.

    Example (root)::

        r = ReportRedirect()
        r.add("vrrp.51", "eth0", (4,))
        r.close()
    """

    def __init__(self, nft: Nft | None = None) -> None:
        self.nft = nft
        self.failed = False
        self.tables: set[int] = set()
        self.members: dict[str, tuple[str, tuple[int, ...]]] = {}

    def _run(self, script: str) -> bool:
        if self.nft is None:
            nft = Nft()
            if nft.lib is None:
                if not self.failed:
                    log.warning("libnftables did not load; VMAC interfaces send their own "
                                "IGMP/MLD reports (with the virtual MAC)")
                self.failed = True
                return False
            self.nft = nft
        try:
            self.nft.run(script)
        except NftError as exc:
            log.warning("%s", exc)
            return False
        return True

    @staticmethod
    def _fam(family: int) -> str:
        return "ip" if family == 4 else "ip6"

    def _table(self, family: int) -> bool:
        if family in self.tables:
            return True
        t, fam = REPORTS_TABLE, self._fam(family)
        sets = "  set vmac_set { type iface_index; }\n" if family == 6 else ""
        rules = "".join(f"    {r}\n" for r in _REPORT_RULES[family])
        # From empty: a crashed predecessor's elements name links that may be gone.
        ok = self._run(f"table {fam} {t}\ndelete table {fam} {t}\ntable {fam} {t} {{\n"
                       "  map vmac_map { type iface_index : iface_index; }\n" + sets
                       + "  chain out {\n"
                       "    type filter hook output priority filter - 1; policy accept;\n"
                       + rules + "  }\n}\n")
        if ok:
            self.tables.add(family)
        return ok

    def add(self, name: str, parent: str, families: tuple[int, ...]) -> None:
        """Send ``name``'s reports of ``families`` out of ``parent``."""
        if name in self.members or self.failed:
            return
        done = []
        for family in families:
            if not self._table(family):
                continue
            fam, lines = self._fam(family), []
            lines.append(f'add element {fam} {REPORTS_TABLE} vmac_map '
                         f'{{ "{name}" : "{parent}" }}')
            if family == 6:
                lines.append(f'add element {fam} {REPORTS_TABLE} vmac_set {{ "{name}" }}')
            if self._run("\n".join(lines) + "\n"):
                done.append(family)
        self.members[name] = (parent, tuple(done))

    def remove(self, name: str) -> None:
        """Before ``name`` is deleted: its elements go (they hold its ifindex)."""
        parent, families = self.members.pop(name, ("", ()))
        for family in families:
            fam, lines = self._fam(family), []
            lines.append(f'delete element {fam} {REPORTS_TABLE} vmac_map '
                         f'{{ "{name}" : "{parent}" }}')
            if family == 6:
                lines.append(f'delete element {fam} {REPORTS_TABLE} vmac_set {{ "{name}" }}')
            self._run("\n".join(lines) + "\n")

    def close(self) -> None:
        """The tables go (stop)."""
        for family in sorted(self.tables):
            self._run(f"delete table {self._fam(family)} {REPORTS_TABLE}\n")
        self.tables.clear()
        self.members.clear()


@dataclass
class _Held:
    cfg: VmacConfig
    index: int
    owners: set[str] = field(default_factory=set)
    link_local: bytes | None = None


class VmacLinks:
    """The macvlans (and ipvlans) of one VRRP worker, and the sysctls they made it change."""

    def __init__(self, sysctl: Sysctl | None = None,
                 reports: ReportRedirect | None = None) -> None:
        self.sysctl = sysctl or Sysctl()
        self.reports = reports or ReportRedirect()
        self._nl: Rtnl | None = None
        self._held: dict[str, _Held] = {}
        # parent -> (macvlans made on it, the writes to put back with the last)
        self._parents: dict[str, tuple[int, list[tuple[str, int, int]]]] = {}
        self._rp_writes: list[tuple[str, int, int]] | None = None

    @property
    def nl(self) -> Rtnl:
        # Opened (and pyroute2 imported) by the first instance with use_vmac only.
        if self._nl is None:
            from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
            from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

            self._ifinfmsg = ifinfmsg
            self._ifaddrmsg = ifaddrmsg
            self._nl = Rtnl()
        return self._nl

    @property
    def names(self) -> list[str]:
        """The macvlans held now."""
        return list(self._held)

    # -- netlink ------------------------------------------------------------------

    def lookup(self, name: str) -> LinkInfo | None:
        """The link called ``name``, or None."""
        body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        body += netlink.attr(IFLA_IFNAME, name.encode("utf-8", "surrogateescape") + b"\0")
        self.nl._seq += 1
        seq = self.nl._seq
        msg = netlink.pack_message(RTM_GETLINK, NLM_F_REQUEST, seq, body)
        errors: dict[int, int] = {}
        replies = netlink.exchange(self.nl.sock, [(seq, msg)], errors=errors)
        for m in replies:
            if m.kind != RTM_NEWLINK or len(m.body) < _IFINFOMSG.size:
                continue
            index = _IFINFOMSG.unpack_from(m.body)[2]
            attrs = netlink.parse_attrs(m.body, _IFINFOMSG.size)
            kind, mode, ipvlan = "", 0, [-1, -1]
            info = attrs.get(IFLA_LINKINFO)
            if info is not None:
                inner = netlink.parse_attrs(info)
                raw_kind = inner.get(IFLA_INFO_KIND)
                kind = raw_kind.tobytes().rstrip(b"\0").decode() if raw_kind is not None else ""
                data = inner.get(IFLA_INFO_DATA)
                if kind == "macvlan" and data is not None:
                    raw_mode = netlink.parse_attrs(data).get(IFLA_MACVLAN_MODE)
                    if raw_mode is not None and len(raw_mode) >= 4:
                        mode = struct.unpack_from("=I", raw_mode)[0]
                elif kind == "ipvlan" and data is not None:
                    got = netlink.parse_attrs(data)
                    for i, key in enumerate((IFLA_IPVLAN_MODE, IFLA_IPVLAN_FLAGS)):
                        raw = got.get(key)
                        if raw is not None and len(raw) >= 2:
                            ipvlan[i] = struct.unpack_from("=H", raw)[0]
            link = attrs.get(IFLA_LINK)
            return LinkInfo(index=index, mac=bytes(attrs.get(IFLA_ADDRESS, b"")),
                            parent=struct.unpack_from("=i", link)[0] if link is not None else 0,
                            kind=kind, macvlan_mode=mode, ipvlan_mode=ipvlan[0],
                            ipvlan_flags=ipvlan[1])
        err = errors.get(seq, 0)
        if err not in (0, errno.ENODEV):
            raise OSError(err, os.strerror(err))
        return None

    def _link_msg(self, index: int, attrs: list[tuple[str, Any]], up: bool = False) -> Any:
        self.nl  # noqa: B018  (opens the socket and imports the message classes)
        m = self._ifinfmsg()
        m["family"] = socket.AF_UNSPEC
        m["index"] = index
        if up:
            m["flags"] = IFF_UP
            m["change"] = IFF_UP
        m["attrs"] = attrs
        return m

    def _create(self, cfg: VmacConfig, parent: int) -> int:
        # Framed here: pyroute2 0.9.7 cannot encode IFLA_IPVLAN_FLAGS.
        kind = KINDS[cfg.kind]
        body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        body += netlink.attr(IFLA_IFNAME, cfg.name.encode("utf-8", "surrogateescape") + b"\0")
        body += netlink.attr(IFLA_LINK, struct.pack("=i", parent))
        if kind.own_mac:
            body += netlink.attr(IFLA_ADDRESS, bytes(cfg.mac))
        body += netlink.attr(IFLA_LINKINFO, netlink.attr(IFLA_INFO_KIND, cfg.kind.encode())
                             + netlink.attr(IFLA_INFO_DATA, kind.info_data(cfg)))
        self.nl._seq += 1
        seq = self.nl._seq
        return netlink.request(self.nl.sock, seq, netlink.pack_message(
            RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, body))

    def _delete(self, index: int) -> int:
        return self.nl.request(self._link_msg(index, []), RTM_DELLINK, 0)

    def _no_autoconf(self, index: int) -> None:
        # RFC 5798 §7.4: no link-local address made from the virtual MAC.
        msg = self._link_msg(index, [("IFLA_AF_SPEC", {"attrs": [
            ("AF_INET6", {"attrs": [("IFLA_INET6_ADDR_GEN_MODE", IN6_ADDR_GEN_MODE_NONE)]}),
        ]})])
        err = self.nl.request(msg, RTM_NEWLINK, 0)
        if err not in (0, errno.EAFNOSUPPORT):
            log.warning("cannot set addr_gen_mode none: %s", os.strerror(err))

    def _add_link_local(self, index: int, address: bytes) -> None:
        text = str(ipaddress.IPv6Address(address))
        # Deprecated at once (keepalived's too): the adverts' source, and nothing
        # else's choice.
        err = self._add_address(index, ipaddress.ip_interface(f"{text}/64"), RT_SCOPE_LINK,
                                IFA_F_NODAD, deprecated=True)
        if err not in (0, errno.EEXIST):
            log.warning("adding link-local address %s to the VMAC failed: %s", text,
                        os.strerror(err))

    def _add_address(self, index: int, addr: ipaddress.IPv4Interface | ipaddress.IPv6Interface,
                     scope: int = 0, flags: int = 0, deprecated: bool = False) -> int:
        self.nl  # noqa: B018
        m = self._ifaddrmsg()
        m["family"] = socket.AF_INET if addr.version == 4 else socket.AF_INET6
        m["prefixlen"] = addr.network.prefixlen
        m["index"] = index
        m["scope"] = scope
        m["flags"] = flags
        text = str(addr.ip)
        attrs: list[tuple[str, Any]] = [("IFA_ADDRESS", text)]
        if addr.version == 4:
            attrs.append(("IFA_LOCAL", text))
        if deprecated:
            attrs.append(("IFA_CACHEINFO", {"ifa_preferred": 0, "ifa_valid": INFINITY_LIFE_TIME,
                                            "cstamp": 0, "tstamp": 0}))
        m["attrs"] = attrs
        return self.nl.request(m, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL)

    def _up(self, index: int) -> int:
        return self.nl.request(self._link_msg(index, [], up=True), RTM_NEWLINK, 0)

    # -- the macvlan of an instance -----------------------------------------------

    def ensure(self, owner: str, cfg: VmacConfig, link_local: bytes | None = None) -> bool:
        """Make ``cfg``'s macvlan (or reuse it) for ``owner`` and bring it up.

        ``link_local``: for an IPv6 instance, the address its adverts leave from
        (the parent's link-local, or the configured source); it goes on the
        macvlan.  False (and logged) when the macvlan cannot be had.
        """
        held = self._held.get(cfg.name)
        if held is not None:
            if (held.cfg.parent, held.cfg.mac, held.cfg.kind, held.cfg.ipvlan_flags) != (
                    cfg.parent, cfg.mac, cfg.kind, cfg.ipvlan_flags):
                log.error("%s: %s interface %s is already used by %s", owner,
                          KINDS[cfg.kind].label, cfg.name, ", ".join(sorted(held.owners)))
                return False
            held.owners.add(owner)
            return True
        try:
            return self._ensure(owner, cfg, link_local)
        except OSError as exc:
            log.error("%s: cannot make %s interface %s: %s", owner, KINDS[cfg.kind].label,
                      cfg.name, exc)
            return False

    def _ensure(self, owner: str, cfg: VmacConfig, link_local: bytes | None) -> bool:
        kind = KINDS[cfg.kind]
        try:
            parent = socket.if_nametoindex(cfg.parent)
        except OSError:
            log.error("%s: no interface %s for %s %s", owner, cfg.parent, kind.label, cfg.name)
            return False
        found = self.lookup(cfg.name)
        create = True
        if found is not None:
            if found.parent == parent and kind.same(found, cfg):
                create = False  # ours from before (a restarted worker): keep it
            elif found.kind not in KINDS:
                # Never remove a real interface that happens to have the name.
                log.error("%s: interface %s exists and is not a macvlan or ipvlan; %s not "
                          "made", owner, cfg.name, kind.label)
                return False
            else:
                log.info("%s: removing old %s interface %s due to conflicting interface "
                         "or MAC", owner, found.kind, cfg.name)
                err = self._delete(found.index)
                if err not in (0, errno.ENODEV):
                    log.error("%s: cannot remove %s interface %s: %s", owner, found.kind,
                              cfg.name, os.strerror(err))
                    return False
        if create:
            err = self._create(cfg, parent)
            if err:
                log.error("%s: unable to create %s interface %s: %s", owner, kind.label,
                          cfg.name, os.strerror(err))
                return False
            log.info("%s: success creating %s interface %s", owner, kind.label, cfg.name)
        index = socket.if_nametoindex(cfg.name)
        self._held[cfg.name] = _Held(cfg, index, {owner}, link_local)
        if kind.macvlan_extras:
            self._no_autoconf(index)
        if cfg.family == 4:
            if create and kind.macvlan_extras:
                self._set_ipv4(cfg)
            # Reused: it may have been left with IPv6 in either state.
            self.sysctl.set(conf_key(cfg.name, "disable_ipv6", 6), 0 if cfg.ipv6 else 1)
        elif not kind.macvlan_extras:
            self.sysctl.set(conf_key(cfg.name, "disable_ipv6", 6), 0)  # link_set_ipv6(true)
        if cfg.family == 6 and link_local and kind.macvlan_extras:
            self._add_link_local(index, link_local)
        if cfg.address:
            err = self._add_address(index, ipaddress.ip_interface(cfg.address))
            if err not in (0, errno.EEXIST):
                log.warning("%s: Failed to add interface address %s to %s: %s", owner,
                            cfg.address, cfg.name, os.strerror(err))
        if kind.macvlan_extras:
            # Before it is up: the first reports leave as soon as it is.
            self.reports.add(cfg.name, cfg.parent, (4, 6) if cfg.family == 4 and cfg.ipv6
                             else (cfg.family,))
        err = self._up(index)
        if err:
            log.warning("%s: cannot set %s up: %s", owner, cfg.name, os.strerror(err))
        return True

    def _set_ipv4(self, cfg: VmacConfig) -> None:
        if self._rp_writes is None:
            self._rp_writes = self._clear_rp_filter()
        for name, value in VMAC_SYSCTLS:
            self.sysctl.set(conf_key(cfg.name, name), value)
        count, writes = self._parents.get(cfg.parent, (0, []))
        if count == 0:
            writes = []
            for name, value in PARENT_SYSCTLS:
                key = conf_key(cfg.parent, name)
                old = self.sysctl.get(key)
                if old is not None and old != value and self.sysctl.set(key, value):
                    writes.append((key, old, value))
        self._parents[cfg.parent] = (count + 1, writes)

    def _clear_rp_filter(self) -> list[tuple[str, int, int]]:
        get = self.sysctl.get
        all_value = get(conf_key("all", "rp_filter"))
        if not all_value:
            return []
        ifaces = {n: v for n in self.sysctl.interfaces()
                  if (v := get(conf_key(n, "rp_filter"))) is not None}
        plan = rp_filter_plan(all_value, get(conf_key("default", "rp_filter")) or 0, ifaces)
        done = []
        for key, old, new in plan:
            if key.startswith("net/ipv4/conf/all/") or key.startswith("net/ipv4/conf/default/"):
                log.info("NOTICE: setting sysctl %s from %d to %d", key.replace("/", "."),
                         old, new)
            if self.sysctl.set(key, new):
                done.append((key, old, new))
        return done

    def revive(self, parent: str) -> list[str]:
        """``parent`` is back after it was deleted, and its macvlans went with it:
        make them again (keepalived 2.2.7 does, on the parent's return).  Returns
        the names made again; the sockets bound to the old links are the caller's.
        """
        gone = [(n, h) for n, h in self._held.items()
                if h.cfg.parent == parent and self._gone(n, h)]
        if not gone:
            return []
        # The old parent's settings died with it; the new one's are saved afresh.
        self._parents.pop(parent, None)
        out = []
        for name, held in gone:
            del self._held[name]
            self.reports.members.pop(name, None)  # its map element named the old link
            try:
                ok = self._ensure(min(held.owners), held.cfg, held.link_local)
            except OSError as exc:
                log.error("cannot make VMAC interface %s again: %s", name, exc)
                ok = False
            if ok:
                self._held[name].owners = set(held.owners)
                out.append(name)
            else:
                self._held[name] = held
        return out

    @staticmethod
    def _gone(name: str, held: _Held) -> bool:
        try:
            return socket.if_nametoindex(name) != held.index
        except OSError:
            return True

    def release(self, owner: str) -> None:
        """``owner`` is gone (a reload removed it): its macvlan goes unless another
        instance still uses it; the parent's settings come back with its last one."""
        for name, held in list(self._held.items()):
            held.owners.discard(owner)
            if not held.owners:
                self._drop(name, held)

    def _drop(self, name: str, held: _Held) -> None:
        del self._held[name]
        self.reports.remove(name)
        cfg = held.cfg
        if cfg.parent in self._parents and cfg.family == 4 and KINDS[cfg.kind].macvlan_extras:
            count, writes = self._parents[cfg.parent]
            if count <= 1:
                del self._parents[cfg.parent]
                self._restore(writes)
            else:
                self._parents[cfg.parent] = (count - 1, writes)
        try:
            err = self._delete(held.index)
        except OSError as exc:
            err = exc.errno or errno.EIO
        if err in (0, errno.ENODEV):
            log.info("success removing VMAC interface %s", name)
        else:
            log.warning("error removing VMAC interface %s: %s", name, os.strerror(err))

    def _restore(self, writes: list[tuple[str, int, int]]) -> None:
        now = {key: self.sysctl.get(key) for key, _old, _new in writes}
        for key, old in restore_plan(writes, now):
            self.sysctl.set(key, old)

    def close(self, keep: bool = False) -> None:
        """Stop: every macvlan deleted and the sysctls put back, unless ``keep``
        (``-V``, VIPs left up: they live on the macvlans)."""
        if not keep:
            for name, held in list(self._held.items()):
                self._drop(name, held)
            if self._rp_writes:
                for key, _old, new in self._rp_writes:
                    if key.startswith("net/ipv4/conf/all/") and self.sysctl.get(key) == new:
                        log.info("NOTICE: resetting sysctl %s to %d",
                                 key.replace("/", "."), _old)
                # all first: an interface set back below all filters no less meanwhile.
                self._restore(sorted(self._rp_writes,
                                     key=lambda w: not w[0].startswith("net/ipv4/conf/all/")))
            self._rp_writes = None
            self.reports.close()
        self._held.clear()
        if self._nl is not None:
            self._nl.close()
            self._nl = None


__all__ = [
    "LinkInfo",
    "Sysctl",
    "VmacLinks",
    "link_local_from_mac",
    "restore_plan",
    "rp_filter_plan",
]
