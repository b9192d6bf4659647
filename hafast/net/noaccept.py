"""keepalived's nftables tables for masters without Accept_Mode (``no_accept``, ``vrrp_strict``).

RFC 5798 §6.4.3: a master that is not the address owner "MUST NOT accept packets
addressed to the IPvX address(es) associated with the virtual router" unless
Accept_Mode is True.  keepalived 2.2.7 built with nftables and without iptables
(Debian's: ``keepalived -v`` lists NFTABLES, not IPTABLES) does this with two tables,
and so does :class:`NoAcceptFilter`, object for object, so ``nft list ruleset`` reads
the same under either daemon (``tests/netns/test_noaccept_as_keepalived.py``)::

    table ip keepalived {                      # ``nftables [NAME]``, default keepalived
        set vips { type ipv4_addr }
        chain out { type filter hook output priority -1; policy accept;   # nftables_priority
            ip saddr @vips drop }                                          # + counter
        chain in { type filter hook input priority -1; policy accept;
            ip daddr @vips drop }
    }
    table ip6 keepalived {
        set vips { type ipv6_addr }
        set neighbor-discovery { type icmpv6_type; flags constant; ND solicit, advert }
        set vips_link_local { type ipv6_addr . iface_index }      # made with the first
        set vips_link_local_name { type ipv6_addr . ifname }      # link-local VIP
        chain out { ... icmpv6 type @neighbor-discovery accept
                    ip6 saddr fe80::/10 goto out_link_local; ip6 saddr @vips drop }
        chain in  { ... the same with daddr, to in_link_local }
        chain in_link_local  { ip6 daddr . iif @vips_link_local drop }
        chain out_link_local { ip6 saddr . oif @vips_link_local drop }
    }

What keepalived does, and when (its ``vrrp_nftables.c``, ``vrrp_firewall.c``):

- The filter is wanted by an instance without Accept_Mode (``no_accept``, or strict
  mode without ``accept``; never the address owner).  No ``nftables`` keyword is needed:
  keepalived logs "no firewall configured - using nftables" and uses ``keepalived``.
  ``vrrp_iptables`` on this build means ``nftables`` (table ``keepalived``, priority -1),
  with a warning; ``vrrp_ipsets`` is an unknown keyword there.
- A family's table is made when the first VIP of that family is filtered (an instance
  becomes master), deleting a leftover of that name first; never at start as BACKUP.
- Leaving MASTER takes the instance's VIPs out of the sets; the tables stay.  At stop
  both tables are deleted.
- The VIPs and excluded VIPs of the instance are filtered alike (addresses only, the
  prefix length does not matter).  IPv6 neighbour discovery passes, so the master still
  answers ND for its VIPs.  Traffic *from* a VIP is dropped too (the out chain).
- A reload keeps the tables as made (a new ``nftables`` name waits for a restart).  An
  instance reloaded from no_accept to ``accept`` is where hafast differs on purpose:
  keepalived 2.2.7 keeps its VIPs in the sets until it next leaves MASTER (and leaves
  both tables behind at a stop in between); here the VIPs are unblocked at the reload.
- A link-local VIP is matched with its interface: by index, unless the instance has
  ``dont_track_primary`` and the VIP is on the VRRP interface (or ``no_track``) and
  ``nftables_ifindex`` is not set, then by name (an interface that is recreated keeps
  its name, not its index).

Every change is one libnftables transaction in the calling thread, on the VRRP loop at
a transition, as keepalived sends its batch from its one thread: no child process is
started and waited for.  Measured in a namespace (2 CPUs): 0.1-0.2 ms median for a
block or unblock, 0.7-2.5 ms for the first (the tables), and a few percent take 4-8
ms, waiting in the kernel's nf_tables commit.  Kept on the loop because the order is
the point: the instance blocks before its VIPs go up and unblocks after they went, so
a VIP never answers by accident (keepalived too: firewall first, then the addresses);
a queue to another thread would let the VIP up before its drop rule.  Without
libnftables (which the ``nft`` program needs too) the filter says so once and
no_accept VIPs stay reachable.

Example (root, in a scratch namespace)::

    f = NoAcceptFilter(NftSettings(table="keepalived"))
    f.bind("VI_1", "eth0")
    f.block("VI_1", vips)     # entering MASTER
    f.unblock("VI_1", vips)   # leaving MASTER
    f.close()                 # both tables go
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from hafast.config.model import GlobalDefs, VirtualAddress
from hafast.net.nftables import Nft, NftError

log = logging.getLogger("hafast.vrrp.vip")

DEFAULT_TABLE = "keepalived"  # keepalived's DEFAULT_NFTABLES_TABLE
DEFAULT_PRIORITY = -1  # just before the filter hooks' usual priority 0

# The sets a VIP can land in, by family and kind of address.
_V4, _V6, _LL_INDEX, _LL_NAME = "vips4", "vips6", "vips_link_local", "vips_link_local_name"


@dataclass(frozen=True, slots=True)
class NftSettings:
    """``global_defs``' nftables keywords, as keepalived reads them."""

    table: str = DEFAULT_TABLE
    priority: int = DEFAULT_PRIORITY
    counters: bool = False
    ifindex: bool = False

    @classmethod
    def of(cls, gd: GlobalDefs) -> NftSettings:
        """The settings ``gd`` asks for (``nftables`` / ``vrrp_iptables`` absent: defaults).

        >>> NftSettings.of(GlobalDefs(nftables="vr", nftables_counters=True))
        NftSettings(table='vr', priority=-1, counters=True, ifindex=False)
        """
        # keepalived without iptables: vrrp_iptables names the table keepalived, even
        # over an `nftables NAME` (hafast.config.firewall has the order rules)
        table = DEFAULT_TABLE if gd.vrrp_iptables is not None else gd.nftables
        return cls(table=table or DEFAULT_TABLE, priority=gd.nftables_priority,
                   counters=gd.nftables_counters, ifindex=gd.nftables_ifindex)


@dataclass(frozen=True, slots=True)
class _Binding:
    ifname: str  # the instance's interface (its macvlan with use_vmac)
    by_name: bool  # dont_track_primary without nftables_ifindex


class NoAcceptFilter:
    """Drop packets to and from VIPs held by a master that is not in Accept_Mode."""

    def __init__(self, settings: NftSettings | None = None, nft: Nft | None = None) -> None:
        self.settings = settings or NftSettings()
        self.table = self.settings.table
        self.nft = nft  # libnftables, loaded on first use
        self.failed = False
        self._made: set[str] = set()  # "ip", "ip6", _LL_INDEX, _LL_NAME: what exists
        self._bindings: dict[str, _Binding] = {}
        # (set, element) -> the instances holding it
        self._holders: dict[tuple[str, str], set[str]] = {}

    @property
    def ready(self) -> bool:
        return bool(self._made)

    def bind(self, owner: str, ifname: str, *, dont_track_primary: bool = False) -> None:
        """Where ``owner``'s VIPs without a ``dev`` live, for its link-local ones."""
        self._bindings[owner] = _Binding(ifname, dont_track_primary and not self.settings.ifindex)

    # -- the nft side -------------------------------------------------------------------

    def _binding(self) -> Nft | None:
        if self.nft is None:
            if self.failed:
                return None
            nft = Nft()
            if nft.lib is None:  # Nft would fall back to running the nft program
                log.warning("libnftables did not load; no_accept VIPs stay reachable")
                self.failed = True
                return None
            self.nft = nft
        return self.nft

    def _run(self, script: str) -> bool:
        nft = self._binding()
        if nft is None:
            return False
        try:
            nft.run(script)
        except NftError as exc:
            log.warning("%s", exc)
            return False
        return True

    def _chain(self, family: str, name: str, hook: str) -> str:
        return (f"add chain {family} {self.table} {name} {{ type filter hook {hook} "
                f"priority {self.settings.priority}; policy accept; }}\n")

    def _rule(self, family: str, chain: str, match: str, verdict: str) -> str:
        counter = "counter " if self.settings.counters else ""
        return f"add rule {family} {self.table} {chain} {match} {counter}{verdict}\n"

    def _setup_script(self, what: str) -> str:
        """The objects keepalived makes for ``what``, in its order (handles follow it)."""
        t = self.table
        if what == "ip":
            return (f"add table ip {t}\ndelete table ip {t}\nadd table ip {t}\n"
                    + self._chain("ip", "out", "output") + self._chain("ip", "in", "input")
                    + f"add set ip {t} vips {{ type ipv4_addr; }}\n"
                    + self._rule("ip", "in", "ip daddr @vips", "drop")
                    + self._rule("ip", "out", "ip saddr @vips", "drop"))
        if what == "ip6":
            # keepalived tests the next header itself, as written here (nft would test
            # meta l4proto).  Its fe80::/10 is two comparisons, which nft lists as the
            # prefix; nft's own syntax has no such pair (a range is one nft_range
            # expression, listed as a range), so the prefix: the same packets, the
            # same listing.
            nd = "ip6 nexthdr ipv6-icmp icmpv6 type @neighbor-discovery"
            ll = "fe80::/10"
            return (f"add table ip6 {t}\ndelete table ip6 {t}\nadd table ip6 {t}\n"
                    + self._chain("ip6", "out", "output") + self._chain("ip6", "in", "input")
                    + f"add chain ip6 {t} in_link_local\nadd chain ip6 {t} out_link_local\n"
                    + f"add set ip6 {t} vips {{ type ipv6_addr; }}\n"
                    + f"add set ip6 {t} neighbor-discovery {{ type icmpv6_type; flags constant; "
                    "elements = { nd-neighbor-solicit, nd-neighbor-advert }; }\n"
                    + self._rule("ip6", "in", nd, "accept")
                    + self._rule("ip6", "in", f"ip6 daddr {ll}", "goto in_link_local")
                    + self._rule("ip6", "out", nd, "accept")
                    + self._rule("ip6", "out", f"ip6 saddr {ll}", "goto out_link_local")
                    + self._rule("ip6", "in", "ip6 daddr @vips", "drop")
                    + self._rule("ip6", "out", "ip6 saddr @vips", "drop"))
        key, iif, oif = (("ifname", "iifname", "oifname") if what == _LL_NAME
                         else ("iface_index", "iif", "oif"))
        return (f"add set ip6 {t} {what} {{ type ipv6_addr . {key}; }}\n"
                + self._rule("ip6", "in_link_local", f"ip6 daddr . {iif} @{what}", "drop")
                + self._rule("ip6", "out_link_local", f"ip6 saddr . {oif} @{what}", "drop"))

    # -- the sets -----------------------------------------------------------------------

    def _key(self, owner: str, v: VirtualAddress) -> tuple[str, str]:
        addr = ipaddress.ip_address(v.address)
        if addr.version == 4:
            return _V4, str(addr)
        if not addr.is_link_local:
            return _V6, str(addr)
        b = self._bindings.get(owner, _Binding(v.dev or "", False))
        ifname = v.dev or b.ifname
        on_own = v.dev in (None, b.ifname) or "no_track" in v.options
        return (_LL_NAME if b.by_name and on_own else _LL_INDEX), f'{addr} . "{ifname}"'

    def _elements(self, verb: str, keys: Sequence[tuple[str, str]]) -> str:
        lines = []
        for kind in (_V4, _V6, _LL_INDEX, _LL_NAME):  # keepalived's batch order
            members = [e for k, e in keys if k == kind]
            if members:
                fam, name = ("ip", "vips") if kind == _V4 else (
                    ("ip6", "vips") if kind == _V6 else ("ip6", kind))
                lines.append(f"{verb} element {fam} {self.table} {name} "
                             f"{{ {', '.join(members)} }}\n")
        return "".join(lines)

    def block(self, owner: str, vips: Sequence[VirtualAddress]) -> None:
        """``owner`` became master without Accept_Mode: drop traffic to ``vips``."""
        if not vips or self.failed:
            return
        new = []
        for v in vips:
            key = self._key(owner, v)
            holders = self._holders.setdefault(key, set())
            if not holders:
                new.append(key)
            holders.add(owner)
        if not new:
            return
        # The tables and sets the new members need, made first in the same transaction.
        made = set(self._made)
        script = ""
        for kind, _ in new:
            for what in ((("ip",) if kind == _V4 else ("ip6",))
                         + ((kind,) if kind in (_LL_INDEX, _LL_NAME) else ())):
                if what not in made:
                    script += self._setup_script(what)
                    made.add(what)
        if self._run(script + self._elements("add", new)):
            self._made = made
        else:  # one transaction: nothing of it happened, so nothing is filtered
            for key in new:
                left = self._holders.get(key, set())
                left.discard(owner)
                if not left:
                    self._holders.pop(key, None)

    def unblock(self, owner: str, vips: Sequence[VirtualAddress]) -> None:
        """``owner`` left master: its VIPs are no longer filtered (unless another holds them)."""
        gone = []
        for v in vips:
            key = self._key(owner, v)
            holders = self._holders.get(key)
            if not holders or owner not in holders:
                continue
            holders.discard(owner)
            if not holders:
                del self._holders[key]
                gone.append(key)
        if gone and self._made:
            self._run(self._elements("delete", gone))

    @property
    def blocked(self) -> list[str]:
        """The addresses filtered now."""
        return sorted(e.split(" ")[0] for _k, e in self._holders)

    def close(self) -> None:
        """Delete the tables (stop path), as keepalived does at its end."""
        self._holders.clear()
        script = "".join(f"delete table {fam} {self.table}\n" for fam in ("ip", "ip6")
                         if fam in self._made)
        self._made.clear()
        if script:
            self._run(script)
