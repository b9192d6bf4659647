"""Fault injection for the farm, per address, without touching nginx.

One nftables table of the lab's own lives in the server namespace. Each fault kind
is a named set of addresses, so putting a fault on an address (or taking it off) is
one set-element change in one atomic nft transaction, whether the farm has a
thousand servers or sixty thousand.

==========  ==================================================================
kind        what a client of that address sees (new connections, at once)
==========  ==================================================================
drop        nothing: every packet to the address is dropped (checks time out)
reject      TCP RST for TCP, ICMP port unreachable for anything else
http500     ``500`` on every path (port 80 is DNAT-ed to nginx's 500 server)
body        200 with a different body, so an MD5 digest no longer matches
slow        the normal body, trickled by nginx ``limit_rate`` (headers late)
==========  ==================================================================

An address holds at most one fault; applying another kind replaces it.

Changes go through libnftables (ctypes, on a thread inside the server namespace:
about 0.2 ms a change) when it loads, else through the ``nft`` program (about
4 ms, most of it starting the process).

Connection tracking is switched off (``notrack``) for every address that has no
redirecting fault: a health checker opening tens of thousands of short
connections a second would otherwise fill the conntrack table with TIME_WAIT
entries and the kernel would start dropping SYNs the lab never meant to drop.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from hafast.lab.netns import NetnsError, call_in, run_in
from hafast.net.nftables import Nft, NftError

TABLE = "hafast_lab"
KINDS = ("drop", "reject", "http500", "body", "slow")
# The nginx server block that plays each redirecting fault (see farm.nginx_config).
FAULT_PORTS: Mapping[str, int] = {"http500": 8500, "body": 8501, "slow": 8502}
# The same three over TLS, for a farm built with tls=True (SSL_GET checks).
TLS_FAULT_PORTS: Mapping[str, int] = {"http500": 8540, "body": 8541, "slow": 8542}
SERVICE_PORT = 80
TLS_PORT = 443


def _set(kind: str) -> str:
    return f"f_{kind}"


def ruleset(
    table: str = TABLE, service_port: int = SERVICE_PORT, tls_port: int | None = None
) -> str:
    """The nft script that (re)creates the lab's table with empty fault sets."""
    sets = "\n".join(f"  set {_set(k)} {{ type ipv4_addr; }}" for k in KINDS)
    redirecting = " ".join(f"ip daddr != @{_set(k)}" for k in FAULT_PORTS)
    pairs = [(service_port, FAULT_PORTS)]
    if tls_port is not None:
        pairs.append((tls_port, TLS_FAULT_PORTS))
    # DNAT to the *same* address keeps nginx's $server_addr right on the fault port.
    dnat = "\n".join(
        f"    ip daddr @{_set(k)} tcp dport {sport} dnat ip to ip daddr:{port}"
        for sport, ports in pairs
        for k, port in ports.items()
    )
    return f"""\
table inet {table}
delete table inet {table}
table inet {table} {{
{sets}
  chain raw_pre {{
    type filter hook prerouting priority raw; policy accept;
    {redirecting} notrack
  }}
  chain raw_out {{
    type filter hook output priority raw; policy accept;
    {redirecting.replace("daddr", "saddr")} notrack
  }}
  chain nat_pre {{
    type nat hook prerouting priority dstnat; policy accept;
{dnat}
  }}
  chain filter_in {{
    type filter hook input priority filter; policy accept;
    ip daddr @{_set("drop")} drop
    ip daddr @{_set("reject")} meta l4proto tcp reject with tcp reset
    ip daddr @{_set("reject")} reject with icmp type port-unreachable
  }}
}}
"""


class FaultError(ValueError):
    """An unknown fault kind or a malformed address."""


@dataclass
class Faults:
    """The fault sets of one farm's server namespace.

    ``active`` maps address -> kind and mirrors the kernel's sets (nft refuses to
    delete an element that is absent, so we delete only what we know is there).

    Example::

        faults = Faults("lab-srv")
        faults.install()
        faults.apply(["10.201.0.7"], "http500")   # returns seconds it took
        faults.recover(["10.201.0.7"])
    """

    ns: str
    table: str = TABLE
    service_port: int = SERVICE_PORT
    tls_port: int | None = None
    active: dict[str, str] = field(default_factory=dict)
    last_apply_seconds: float = 0.0
    backend: str = "auto"  # "library" (libnftables), "program" (nft), or "auto"

    def install(self) -> None:
        """Create (or reset to empty) the lab's table in the server namespace."""
        self._nft(ruleset(self.table, self.service_port, self.tls_port))
        self.active.clear()

    def apply(self, addrs: Iterable[str], kind: str) -> float:
        """Give every address in ``addrs`` fault ``kind``; seconds the kernel took."""
        if kind not in KINDS:
            raise FaultError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")
        wanted = _normalise(addrs)
        lines = self._removals(a for a in wanted if self.active.get(a) not in (None, kind))
        new = [a for a in wanted if self.active.get(a) != kind]
        if new:
            lines.append(self._element("add", kind, new))
        seconds = self._commit(lines)
        for a in wanted:
            self.active[a] = kind
        return seconds

    def recover(self, addrs: Iterable[str] | None = None) -> float:
        """Take the faults off ``addrs`` (all faulted addresses when None)."""
        wanted = list(self.active) if addrs is None else _normalise(addrs)
        seconds = self._commit(self._removals(wanted))
        for a in wanted:
            self.active.pop(a, None)
        return seconds

    def kernel_sets(self) -> dict[str, list[str]]:
        """What the kernel's sets hold now, per kind (for checks and status)."""
        out = run_in(self.ns, ["nft", "-j", "list", "table", "inet", self.table]).stdout
        result: dict[str, list[str]] = {k: [] for k in KINDS}
        for item in json.loads(out).get("nftables", []):
            s = item.get("set")
            if s and s["name"].startswith("f_"):
                elems = s.get("elem", [])
                result[s["name"][2:]] = sorted(str(e) for e in elems)
        return result

    # -- internals ----------------------------------------------------------------

    def _removals(self, addrs: Iterable[str]) -> list[str]:
        by_kind: dict[str, list[str]] = {}
        for a in addrs:
            kind = self.active.get(a)
            if kind is not None:
                by_kind.setdefault(kind, []).append(a)
        return [self._element("delete", k, v) for k, v in by_kind.items()]

    def _element(self, verb: str, kind: str, addrs: list[str]) -> str:
        return f"{verb} element inet {self.table} {_set(kind)} {{ {', '.join(addrs)} }}"

    def _commit(self, lines: list[str]) -> float:
        if not lines:
            self.last_apply_seconds = 0.0
            return 0.0
        start = time.perf_counter()
        # One `nft -f` input is one netlink batch: all of it applies, or none.
        self._nft("\n".join(lines) + "\n")
        self.last_apply_seconds = time.perf_counter() - start
        return self.last_apply_seconds

    def _nft(self, script: str) -> None:
        nft = Nft(use_lib=self.backend in ("auto", "library"))
        if nft.lib is not None:
            # A libnftables context opens its netlink socket in the calling thread,
            # so the script runs on a thread inside the server namespace.
            try:
                call_in(self.ns, nft.run, script)
            except NftError as exc:
                raise NetnsError(str(exc)) from exc
        elif self.backend == "library":
            raise NetnsError("libnftables.so.1 did not load")
        else:
            run_in(self.ns, ["nft", "-f", "-"], input=script)


def _normalise(addrs: Iterable[str]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for a in addrs:
        try:
            text = str(ipaddress.IPv4Address(a.strip()))
        except ValueError as exc:
            raise FaultError(f"not an IPv4 address: {a!r}") from exc
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out
