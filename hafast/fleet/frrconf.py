"""The director's FRR configuration, rendered from hafast's config; FRR's own check.

One ``frr.conf`` (zebra, bfdd and bgpd parts, each also available alone for daemons
started with ``-f``).  bgpd redistributes the kernel's announce routes
(:mod:`hafast.fleet.kernel`) through the route-map ``hafast-fleet``: a VIP's prefix at
the serving metric is announced plain, at the drain metric it is announced the way its
``drain_method`` says (a MED, an AS path prepended, RFC 8326's GRACEFUL_SHUTDOWN
community), and nothing else the kernel holds is announced.  So bgpd announces a VIP
exactly while its route exists, and every change (announce, drain, withdraw) is a
netlink call instead of a vtysh round trip that rewrites the running config (measured:
the router's table follows in 124-132 ms against 146-165 ms through vtysh).  The first
slice used ``network A/32`` with import-check; a network statement cannot see the
kernel route's metric, so it could not drain.

Example::

    >>> from hafast.config.model import BgpNeighbor, BgpSpeaker
    >>> sp = BgpSpeaker(local_as=65001, router_id="10.255.0.1",
    ...                 neighbors=(BgpNeighbor("10.0.1.1", 65000, bfd=True),))
    >>> print(render(sp, ["192.0.2.100/32"], hostname="d1",
    ...              drains={"192.0.2.100/32": "med 500"}).bgpd)
    ip prefix-list hafast-fleet-4 seq 5 permit 192.0.2.100/32
    ip prefix-list hafast-drain1-4 seq 5 permit 192.0.2.100/32
    route-map hafast-fleet permit 10
     match ip address prefix-list hafast-fleet-4
     match metric 100
     set metric 0
    exit
    route-map hafast-fleet permit 20
     match ip address prefix-list hafast-drain1-4
     match metric 200
     set metric 500
    exit
    router bgp 65001
     bgp router-id 10.255.0.1
     no bgp ebgp-requires-policy
     timers bgp 3 9
     neighbor 10.0.1.1 remote-as 65000
     neighbor 10.0.1.1 timers connect 1
     neighbor 10.0.1.1 advertisement-interval 0
     neighbor 10.0.1.1 bfd
     neighbor 10.0.1.1 bfd profile hafast
     address-family ipv4 unicast
      redistribute kernel route-map hafast-fleet
     exit-address-family
    exit
    <BLANKLINE>
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hafast.config import model as m
from hafast.fleet.kernel import DRAIN_METRIC, SERVE_METRIC

# RFC 5880 §6.8.4: detection time = the remote's multiplier x the agreed interval.
# Measured: 3 x 50 ms took a silently dead director out of the router's multipath in
# 197-229 ms; FRR's default profile (3 x 300 ms) would take about a second.
BFD_PROFILE = "hafast"
BFD_INTERVAL_MS = 50
BFD_MULTIPLIER = 3


@dataclass(frozen=True, slots=True)
class FrrConf:
    zebra: str
    bfdd: str
    bgpd: str

    @property
    def integrated(self) -> str:
        """The single ``frr.conf`` (``vtysh -b`` / frr-reload form)."""
        return "frr defaults traditional\n" + self.zebra + self.bfdd + self.bgpd


ROUTE_MAP = "hafast-fleet"


def _drain_set(method: str, local_as: int) -> list[str]:
    """The route-map ``set`` lines that make a draining path worse."""
    name, _, arg = method.partition(" ")
    if name == "med":
        return [f" set metric {arg}"]
    # the MED stays 0 so that only the chosen method makes the path worse
    if name == "prepend":
        return [" set metric 0", " set as-path prepend " + " ".join([str(local_as)] * int(arg))]
    if name == "graceful_shutdown":
        # RFC 8326 §3: the receiver lowers LOCAL_PREF on 65535:0; FRR routers do that
        # with their own policy or 'bgp graceful-shutdown'
        return [" set metric 0", " set community graceful-shutdown additive"]
    raise ValueError(f"no drain route for drain_method {method}")


Net = ipaddress.IPv4Network | ipaddress.IPv6Network


def _policy(nets: list[Net], drains: Mapping[str, str], local_as: int,
            communities: Mapping[str, tuple[str, ...]] | None = None) -> list[str]:
    """Prefix lists and the route-map bgpd redistributes the kernel's routes through.

    The VIPs are grouped by what their path carries: serving, by their communities
    (``fleet``: none; ``commK``: the K-th set); draining, by drain method and
    communities (``drainK``).  Each group has a prefix list per address family and one
    route-map entry matching it and its metric; anything else is denied."""
    comms = communities or {}

    def comm_of(n: Net) -> tuple[str, ...]:
        return comms.get(str(n), ())

    def sets(n: Net, drain: str | None) -> list[str]:
        # a VIP's communities hold its large ones (RFC 8092: "G:L1:L2") too, which FRR
        # sets with a line of their own
        c = [x for x in comm_of(n) if x.count(":") != 2]
        big = [x for x in comm_of(n) if x.count(":") == 2]
        large = [f" set large-community {' '.join(big)}"] if big else []
        if drain is None:
            return [" set metric 0"] + ([f" set community {' '.join(c)}"] if c else []) + large
        out = _drain_set(drain, local_as)
        if c:
            # one 'set community' an entry (a second replaces the first): the drain's
            # own community (graceful_shutdown) joins the VIP's
            own = [x for x in out if x.startswith(" set community ")]
            extra = own[0].split()[2:-1] if own else []  # without 'additive'
            out = [x for x in out if x not in own]
            out.insert(1, f" set community {' '.join([*c, *extra])}")
        return out + large

    serve_keys = sorted({comm_of(n) for n in nets})
    drain_keys = sorted({(drains[str(n)], comm_of(n)) for n in nets
                         if drains.get(str(n), "withdraw") != "withdraw"})
    groups: list[tuple[str, int, list[Net], str | None]] = []  # name, metric, VIPs, drain
    for k, c in enumerate(serve_keys):
        name = "fleet" if not c else f"comm{k + (0 if () in serve_keys else 1)}"
        groups.append((name, SERVE_METRIC, [n for n in nets if comm_of(n) == c], None))
    for k, (how, c) in enumerate(drain_keys):
        groups.append((f"drain{k + 1}", DRAIN_METRIC,
                       [n for n in nets if drains.get(str(n)) == how and comm_of(n) == c],
                       how))
    lists: list[str] = []
    serve: list[tuple[str, int, list[str]]] = []
    drain: list[tuple[str, int, list[str]]] = []
    for version in (4, 6):
        for name, metric, members, method in groups:
            mine = [n for n in members if n.version == version]
            if not mine:
                continue
            plist = f"hafast-{name}-{version}"
            ip = "ip" if version == 4 else "ipv6"
            lists += [f"{ip} prefix-list {plist} seq {5 * (j + 1)} permit {n}"
                      for j, n in enumerate(mine)]
            (serve if method is None else drain).append(
                (f" match {ip} address prefix-list {plist}", metric, sets(mine[0], method)))
    out = list(lists)
    # serving entries first (from 10), drains after them (from 20, or the next ten)
    drain_from = 10 * (len(serve) // 10 + 2)
    numbered = [(10 + k, e) for k, e in enumerate(serve)]
    numbered += [(drain_from + k, e) for k, e in enumerate(drain)]
    for seq, (match, metric, set_lines) in numbered:
        out += [f"route-map {ROUTE_MAP} permit {seq}", match, f" match metric {metric}",
                *set_lines, "exit"]
    return out


def render(speaker: m.BgpSpeaker, prefixes: Iterable[str], *, hostname: str = "",
           drains: Mapping[str, str] | None = None,
           communities: Mapping[str, tuple[str, ...]] | None = None) -> FrrConf:
    """Render the three daemons' parts for ``speaker`` announcing ``prefixes``, each
    drained on SIGTERM by its ``drains[prefix]`` method (default withdraw) and carrying
    its ``communities[prefix]`` (RFC 1997, and RFC 8092's large ones written
    ``G:L1:L2``; none by default)."""
    nets = sorted({ipaddress.ip_network(p) for p in prefixes},
                  key=lambda n: (n.version, n.network_address))
    zebra = f"hostname {hostname}\n" if hostname else ""
    bfd = any(n.bfd for n in speaker.neighbors)
    bfdd = (
        f"bfd\n profile {BFD_PROFILE}\n  detect-multiplier {BFD_MULTIPLIER}\n"
        f"  receive-interval {BFD_INTERVAL_MS}\n  transmit-interval {BFD_INTERVAL_MS}\n"
        " exit\nexit\n"
    ) if bfd else ""
    lines = [*_policy(nets, drains or {}, speaker.local_as, communities),
             f"router bgp {speaker.local_as}"]
    if speaker.router_id:
        lines.append(f" bgp router-id {speaker.router_id}")
    # RFC 8212 makes eBGP refuse to send or take routes without a policy; the fleet's
    # policy is "this director's VIPs", which the redistribute route-map already is
    lines += [" no bgp ebgp-requires-policy",
              f" timers bgp {speaker.keepalive} {speaker.hold_time}"]
    for n in speaker.neighbors:
        lines += [f" neighbor {n.address} remote-as {n.remote_as}",
                  # a lost session is retried every second, not FRR's 120 s
                  f" neighbor {n.address} timers connect 1",
                  # eBGP's default 0 s in FRR 8 already; written so an upgrade cannot
                  # batch withdrawals behind a MRAI timer (RFC 4271 §9.2.1.1)
                  f" neighbor {n.address} advertisement-interval 0"]
        if n.bfd:
            # both, as bgpd shows them: frr-reload.py (hafast.fleet.frrlife) would
            # otherwise take the missing plain line for one to delete
            lines += [f" neighbor {n.address} bfd",
                      f" neighbor {n.address} bfd profile {BFD_PROFILE}"]
    for version, af in ((4, "ipv4"), (6, "ipv6")):
        mine = [n for n in nets if n.version == version]
        if not mine:
            continue
        lines.append(f" address-family {af} unicast")
        lines.append(f"  redistribute kernel route-map {ROUTE_MAP}")
        if version == 6:
            lines += [f"  neighbor {n.address} activate" for n in speaker.neighbors]
        lines.append(" exit-address-family")
    lines.append("exit")
    return FrrConf(zebra, bfdd, "\n".join(lines) + "\n")


def render_config(config: m.Config, *, hostname: str = "") -> FrrConf | None:
    """The FRR configuration for a whole hafast config: its ``bgp_speaker`` announcing
    every virtual server's ``announce`` prefix (None without a ``bgp_speaker``)."""
    if config.bgp_speaker is None:
        return None
    # each prefix line of each block (a prefix two blocks share has their one set of
    # settings: hafast.config.bgp refuses blocks that differ)
    pairs = [(p, vs.announce) for vs in config.virtual_servers if vs.announce
             for p in vs.announce.prefixes]
    return render(config.bgp_speaker, [p for p, _ in pairs], hostname=hostname,
                  drains={p: a.drain_method for p, a in pairs},
                  communities={p: a.communities + a.large_communities for p, a in pairs})


class FrrConfigError(Exception):
    pass


def vtysh_exe(vtysh: str | None = None) -> str:
    """The vtysh to run: ``vtysh`` if given, else the one on PATH, else Debian's."""
    return vtysh or shutil.which("vtysh") or "/usr/bin/vtysh"


def check_argv(path: str, vtysh: str | None = None) -> list[str]:
    """FRR's own syntax check of an integrated config file (see :func:`check`)."""
    return [vtysh_exe(vtysh), "--dryrun", "-f", path]


def check(path: str, vtysh: str | None = None) -> None:
    """FRR's own syntax check of an integrated config (``vtysh --dryrun -f``).

    vtysh parses every daemon's part against the command tables compiled into it, no
    daemon needed; it exits non-zero and names the line on an unknown or bad command.
    A blocking call: run it before FRR starts, never on the event loop (which runs
    :func:`check_argv` as a child it waits on: :mod:`hafast.fleet.frrlife`).
    """
    proc = subprocess.run(check_argv(path, vtysh), capture_output=True, text=True,
                          timeout=30, check=False)
    if proc.returncode != 0:
        raise FrrConfigError(f"{path}: FRR rejects it: {(proc.stdout + proc.stderr).strip()}")
