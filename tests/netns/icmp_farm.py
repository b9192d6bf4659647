"""A two-namespace ICMP farm for the icmp_batch tests and benchmark.

    prober ns (hfi<pid>p)  vp ==veth== vs  server ns (hfi<pid>s)
    10.201.0.1/30, fd00:201::1/64          10.201.0.2/30, fd00:201::2/64

Both veth ends live in namespaces made here, nothing touches the host namespace.
In the server namespace one local route makes a whole range answer echo requests
(the kernel replies for any address of a ``local`` route):

- LIVE4 10.201.1.0/24 and BENCH4 10.201.16.0/20 (4096 addresses): answer
- DEAD4 10.201.2.0/24: blackholed there, silently dropped, so probes time out
- UNREACH4 10.201.3.0/24: rejected by nftables with ICMP host unreachable
  (ICMP rate limit off in the server namespace)
- LIVE6 fd00:201:1::/120 answers, DEAD6 fd00:201:2::/120 is blackholed,
  UNREACH6 fd00:201:3::/120 is rejected with ICMPv6 address unreachable

Neighbour entries are permanent on both sides so a burst of thousands of probes
never waits in (or overflows) an unresolved neighbour queue.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import subprocess
from collections.abc import Iterator

from pyroute2 import netns as _netns

LIVE4 = "10.201.1.0/24"
DEAD4 = "10.201.2.0/24"
UNREACH4 = "10.201.3.0/24"
BENCH4 = "10.201.16.0/20"
LIVE6 = "fd00:201:1::/120"
DEAD6 = "fd00:201:2::/120"
UNREACH6 = "fd00:201:3::/120"
PROBER4, SERVER4 = "10.201.0.1", "10.201.0.2"
PROBER6, SERVER6 = "fd00:201::1", "fd00:201::2"


def hosts(prefix: str, count: int, first: int = 1) -> list[str]:
    """``count`` addresses of ``prefix`` starting at offset ``first``."""
    net = ipaddress.ip_network(prefix)
    return [str(net[first + i]) for i in range(count)]


def _ip(*args: str, ns: str | None = None) -> str:
    cmd = ["ip", *(["-n", ns] if ns else []), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
    return done.stdout


def _sysctl(ns: str, key: str, value: str) -> None:
    _ip("netns", "exec", ns, "sysctl", "-qw", f"{key}={value}")


def _nft(ns: str, ruleset: str) -> None:
    done = subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "-f", "-"],
        input=ruleset,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"nft in {ns} failed: {done.stderr.strip()}")


def _mac(ns: str, dev: str) -> str:
    for line in _ip("-o", "link", "show", "dev", dev, ns=ns).split("\\"):
        words = line.split()
        if "link/ether" in words:
            return words[words.index("link/ether") + 1]
    raise RuntimeError(f"no MAC address on {dev} in {ns}")


def _reap_orphans(tag: str) -> None:
    """Delete this farm's namespaces left by a run that was killed (its pid is gone)."""
    listing = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, timeout=20, check=False
    ).stdout
    for line in listing.splitlines():
        found = re.fullmatch(rf"{re.escape(tag)}(\d+)[ps]", line.split(" ")[0])
        if found and not os.path.exists(f"/proc/{found.group(1)}"):
            subprocess.run(
                ["ip", "netns", "del", found.group(0)], capture_output=True, timeout=20, check=False
            )


class IcmpFarm:
    """Create with ``IcmpFarm()``; ``close()`` (always) deletes everything made."""

    def __init__(self, tag: str = "hfi") -> None:
        _reap_orphans(tag)
        pid = os.getpid()
        self.prober = f"{tag}{pid}p"
        self.server = f"{tag}{pid}s"
        self._made: list[str] = []
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        p, s = self.prober, self.server
        for ns in (p, s):
            _ip("netns", "add", ns)
            self._made.append(ns)
            _ip("link", "set", "lo", "up", ns=ns)
        # Created inside the prober namespace, the peer end moved straight to the server.
        _ip("link", "add", "vp", "type", "veth", "peer", "name", "vs", "netns", s, ns=p)
        _ip("addr", "add", f"{PROBER4}/30", "dev", "vp", ns=p)
        _ip("addr", "add", f"{SERVER4}/30", "dev", "vs", ns=s)
        _ip("-6", "addr", "add", f"{PROBER6}/64", "dev", "vp", "nodad", ns=p)
        _ip("-6", "addr", "add", f"{SERVER6}/64", "dev", "vs", "nodad", ns=s)
        _ip("link", "set", "vp", "up", ns=p)
        _ip("link", "set", "vs", "up", ns=s)
        mac_p, mac_s = _mac(p, "vp"), _mac(s, "vs")
        _ip("neigh", "replace", SERVER4, "lladdr", mac_s, "dev", "vp", "nud", "permanent", ns=p)
        _ip("neigh", "replace", PROBER4, "lladdr", mac_p, "dev", "vs", "nud", "permanent", ns=s)
        _ip(
            "-6",
            "neigh",
            "replace",
            SERVER6,
            "lladdr",
            mac_s,
            "dev",
            "vp",
            "nud",
            "permanent",
            ns=p,
        )
        _ip(
            "-6",
            "neigh",
            "replace",
            PROBER6,
            "lladdr",
            mac_p,
            "dev",
            "vs",
            "nud",
            "permanent",
            ns=s,
        )
        _ip("route", "add", "10.201.0.0/16", "via", SERVER4, ns=p)
        _ip("-6", "route", "add", "fd00:201::/32", "via", SERVER6, ns=p)
        for prefix in (LIVE4, BENCH4):
            _ip("route", "add", "local", prefix, "dev", "lo", ns=s)
        _ip("route", "add", "blackhole", DEAD4, ns=s)
        # The kernel's own "unreachable" route answers at most one error per second per
        # peer (a global, host-wide limit); an nftables reject obeys the per-namespace
        # ICMP limits, which this namespace switches off.
        _ip("route", "add", "local", UNREACH4, "dev", "lo", ns=s)
        _nft(
            s,
            f"""
            table inet hfi_farm {{
                chain input {{
                    type filter hook input priority 0; policy accept;
                    ip daddr {UNREACH4} reject with icmp type host-unreachable
                    ip6 daddr {UNREACH6} reject with icmpv6 type addr-unreachable
                }}
            }}""",
        )
        _ip("-6", "route", "add", "local", LIVE6, "dev", "lo", ns=s)
        _ip("-6", "route", "add", "blackhole", DEAD6, ns=s)
        _ip("-6", "route", "add", "local", UNREACH6, "dev", "lo", ns=s)
        # No per-peer rate limit, or only the first few unreachables of a burst come back.
        _sysctl(s, "net.ipv4.icmp_ratelimit", "0")
        _sysctl(s, "net.ipv6.icmp.ratelimit", "0")
        _sysctl(s, "net.ipv4.icmp_msgs_per_sec", "100000")
        _sysctl(s, "net.ipv4.icmp_msgs_burst", "100000")

    @contextlib.contextmanager
    def in_prober(self) -> Iterator[None]:
        """Run the body inside the prober namespace (sockets made there stay there)."""
        _netns.pushns(self.prober)
        try:
            yield
        finally:
            _netns.popns()

    def exec_prober(self, *argv: str) -> list[str]:
        """argv prefixed to run inside the prober namespace."""
        return ["ip", "netns", "exec", self.prober, *argv]

    def close(self) -> None:
        while self._made:
            ns = self._made.pop()
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20, check=False)

    def __enter__(self) -> IcmpFarm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
