"""LVS-DR on the nftables backend, on the host kernel, in namespaces: one-armed direct
routing as an LVS-DR farm has it, driven by the daemon's own code (check engine +
:class:`PoolManager` + :class:`NftBackend` on one loop in the director namespace).

    client --+
    director-+-- br0 (one LAN, 10.254.0.0/24; the director holds the VIP)
    rs0..rs2-+   (nginx; the VIP on lo, arp_ignore: never answered for by ARP)

The same for an IPv6 virtual server on the same LAN.  The client reaches the VIP at
the director's MAC; the director's ingress hook writes
a real server's MAC into the frame and sends it back out; nginx sees the VIP as its
own address (``$server_addr``) and answers the client straight over the LAN.  The
director forwards nothing at the IP layer (``ip_forward`` 0), so a reply can only
come from the real server itself.  A real server that fails its check leaves the
map of MACs and its traffic goes to the others; it comes back; stop removes both
tables.  Then the same through the shipped daemon, with a reload.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hafast.config.loader import load_text
from hafast.lab.farm import http_get
from hafast.lab.netns import Registry, run_in, socket_in
from hafast.lvs.nft import NftBackend, chain_name
from tests.conftest import require_root, require_tool
from tests.netns.pool_fixtures import pool_worker_in

pytestmark = [pytest.mark.root, pytest.mark.netns]

PFX = f"hdr{os.getpid()}"
VIP = "10.254.0.100"
CLIENT = "10.254.0.2"
DIRECTOR = "10.254.0.1"
REALS = {f"rs{i}": f"10.254.0.1{i}" for i in range(3)}
# the same LAN in IPv6 (no DAD: the addresses are usable at once)
VIP6 = "fd54::100"
ADDR6 = {"cli": "fd54::2", "dir": "fd54::1", **{f"rs{i}": f"fd54::1{i}" for i in range(3)}}
WAIT_S = 20.0

NGINX_CONF = """daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  default_type text/plain;
  server {{
    listen 80;
    listen [::]:80 ipv6only=on;
    location / {{ return 200 "{name} $server_addr\\n"; }}
  }}
}}
"""


def ns(name: str) -> str:
    return f"{PFX}-{name}"


class Lab:
    def __init__(self, reg: Registry, base: Path) -> None:
        self.reg, self.base = reg, base
        self.macs: dict[str, str] = {}

    def build(self) -> None:
        reg = self.reg
        sw = reg.add_netns(ns("sw"))
        reg.add_bridge(sw, "br0")
        members = {"cli": CLIENT, "dir": DIRECTOR, **REALS}
        for name, addr in members.items():
            reg.add_netns(ns(name))
            reg.add_veth(sw, f"p-{name}", ns(name), "eth0")
            reg.set_master(sw, f"p-{name}", "br0")
            reg.add_address(ns(name), "eth0", f"{addr}/24")
            run_in(ns(name), ["ip", "addr", "add", f"{ADDR6[name]}/64", "dev", "eth0",
                              "nodad"])
        reg.add_address(ns("dir"), "eth0", f"{VIP}/32")
        # deprecated at once: never the source of the director's own checks (their
        # answers would go to the real servers' own VIP)
        run_in(ns("dir"), ["ip", "addr", "add", f"{VIP6}/128", "dev", "eth0", "nodad",
                           "preferred_lft", "0"])
        reg.sysctl(ns("dir"), "net.ipv4.ip_forward", "0")
        cli_mac = json.loads(run_in(ns("cli"), ["ip", "-j", "link", "show", "eth0"]).stdout)
        for name in REALS:
            r = ns(name)
            # IPv6 has no arp_announce: a real server's own neighbour solicitation for
            # the client would leave from the VIP, whose answer the director takes.
            # On a farm the reply goes to a router; here the client's MAC is static.
            run_in(r, ["ip", "-6", "neigh", "add", ADDR6["cli"], "lladdr",
                       cli_mac[0]["address"], "dev", "eth0", "nud", "permanent"])
            reg.add_address(r, "lo", f"{VIP}/32")
            run_in(r, ["ip", "addr", "add", f"{VIP6}/128", "dev", "lo"])
            reg.sysctl(r, "net.ipv4.conf.all.arp_ignore", "1")
            reg.sysctl(r, "net.ipv4.conf.all.arp_announce", "2")
            link = json.loads(run_in(r, ["ip", "-j", "link", "show", "eth0"]).stdout)
            self.macs[name] = link[0]["address"]
            d = self.base / name
            d.mkdir()
            (d / "nginx.conf").write_text(NGINX_CONF.format(dir=d, name=name))
            reg.spawn(r, ["nginx", "-p", f"{d}/", "-c", str(d / "nginx.conf"), "-e",
                          str(d / "error.log")], start_new_session=True)
        for name, addr in REALS.items():
            wait(lambda a=addr, n=name: _listening(ns(n), a), f"nginx of {name}")

    def block(self, name: str) -> None:
        """The real server refuses port 80 (its check fails, and so would traffic)."""
        script = ("add table inet hdrf\nadd chain inet hdrf in { type filter hook input "
                  "priority 0; }\nadd rule inet hdrf in tcp dport 80 reject with tcp reset\n")
        run_in(ns(name), ["nft", "-f", "-"], input=script, check=True)

    def unblock(self, name: str) -> None:
        run_in(ns(name), ["nft", "delete", "table", "inet", "hdrf"], check=True)


def _listening(namespace: str, addr: str) -> bool:
    with socket_in(namespace, socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((addr, 80)) == 0


def wait(cond: object, what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    require_root()
    require_tool("nginx")
    require_tool("nft")
    with Registry() as reg:
        lab = Lab(reg, tmp_path)
        lab.build()
        yield lab


def config_text(weight0: int = 1) -> str:
    check = "TCP_CHECK { connect_timeout 0.3\n retry 0\n delay_loop 0.3\n warmup 0 }"
    out = ""
    for vip, addrs in ((VIP, list(REALS.values())), (VIP6, [ADDR6[n] for n in REALS])):
        rss = "".join(f"  real_server {a} 80 {{\n    weight {weight0 if i == 0 else 1}\n"
                      f"    {check}\n  }}\n" for i, a in enumerate(addrs))
        out += (f"virtual_server {vip} 80 {{\n  protocol TCP\n  lvs_sched wrr\n"
                f"  lvs_method DR\n{rss}}}\n")
    return out


def kernel_macs(lab: Lab, backend: NftBackend, key: object) -> dict[str, int]:
    """From ``nft list``: each real server (by its MAC) and its number of slots."""
    text = run_in(ns("dir"), ["nft", "list", "table", "netdev", backend.dr_table]).stdout
    m = re.search(rf"chain {chain_name(key)} {{(.*?)}}\n", text, re.S)  # type: ignore[arg-type]
    if not m:
        return {}
    by_mac = {mac: name for name, mac in lab.macs.items()}
    out: dict[str, int] = {}
    for span, mac in re.findall(r"(\d+(?:-\d+)?) : ([0-9a-f:]{17})", m.group(1)):
        lo, _, hi = span.partition("-")
        out[by_mac.get(mac, mac)] = int(hi or lo) - int(lo) + 1
    return out


def fetch(count: int, vip: str = VIP) -> collections.Counter[str]:
    """``count`` connections from the client (each its own source port): who answered,
    and as which address (the VIP: the request reached it unchanged)."""
    family = socket.AF_INET6 if ":" in vip else socket.AF_INET
    seen: collections.Counter[str] = collections.Counter()
    for _ in range(count):
        reply = http_get(vip, sock=socket_in(ns("cli"), family, socket.SOCK_STREAM))
        seen[reply.body.decode(errors="replace").strip() or f"error:{reply.error}"] += 1
    return seen


def test_nft_direct_routing_sends_each_flow_to_a_real_servers_mac(
        lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
    config = load_text(config_text()).config
    backend = NftBackend()
    caplog.set_level(logging.WARNING, logger="hafast.lvs")
    with pool_worker_in(ns("dir"), config, backend, WAIT_S) as mgr:
        keys = {k.family: k for k in mgr.policy.pool.services}
        key, key6 = keys[4], keys[6]
        every = {name: 1 for name in REALS}
        # The director had never spoken to the real servers: their MACs were
        # resolved after the first pool (nudged, looked up again), not waited for.
        wait(lambda: kernel_macs(lab, backend, key) == every, "all three MACs in the map")
        wait(lambda: kernel_macs(lab, backend, key6) == every, "the IPv6 service's MACs")
        said = [r.getMessage() for r in caplog.records]
        assert any("not resolved yet" in line for line in said), said
        listing = run_in(ns("dir"), ["nft", "list", "table", "netdev", backend.dr_table]).stdout
        assert 'devices = { "eth0" }' in listing or 'device "eth0"' in listing, listing

        seen = fetch(30)
        assert set(seen) == {f"{name} {VIP}" for name in REALS}, seen
        seen6 = fetch(30, VIP6)
        assert set(seen6) == {f"{name} {VIP6}" for name in REALS}, seen6

        lab.block("rs0")
        wait(lambda: kernel_macs(lab, backend, key) == {"rs1": 1, "rs2": 1}, "rs0 out")
        assert set(fetch(12)) == {f"rs1 {VIP}", f"rs2 {VIP}"}
        lab.unblock("rs0")
        wait(lambda: kernel_macs(lab, backend, key) == every, "rs0 back")
        assert set(fetch(30)) == {f"{name} {VIP}" for name in REALS}
    tables = run_in(ns("dir"), ["nft", "list", "tables"]).stdout
    assert backend.table not in tables and backend.dr_table not in tables, tables


def test_the_daemon_direct_routes_on_nftables_and_reloads(lab: Lab, tmp_path: Path) -> None:
    """The same through the shipped daemon (``hafast -n --pool-backend nft``): traffic
    reaches every real server as the VIP; a SIGHUP giving rs0 weight 2 rewrites its
    slots in the MAC map; SIGTERM leaves neither table behind."""
    from hafast.lvs.backend import ServiceKey
    from tests.netns.daemon_fixtures import start_daemon

    daemon = start_daemon(tmp_path / "d", config_text(), ns=ns("dir"),
                          extra=("--pool-backend", "nft"))
    backend = NftBackend()  # for its table names; the daemon's own backend is inside it
    key = ServiceKey(4, "TCP", VIP, 80)
    try:
        daemon.wait_ready(WAIT_S)
        every = {name: 1 for name in REALS}
        wait(lambda: kernel_macs(lab, backend, key) == every, "the daemon's MAC map")
        assert set(fetch(30)) == {f"{name} {VIP}" for name in REALS}
        assert set(fetch(30, VIP6)) == {f"{name} {VIP6}" for name in REALS}
        (tmp_path / "d" / "hafast.conf").write_text(config_text(weight0=2))
        daemon.signal(signal.SIGHUP)
        wait(lambda: kernel_macs(lab, backend, key) == {**every, "rs0": 2}, "rs0 at weight 2")
        assert set(fetch(30)) == {f"{name} {VIP}" for name in REALS}
        assert daemon.stop() == 0
    finally:
        daemon.close()
    tables = run_in(ns("dir"), ["nft", "list", "tables"]).stdout
    assert backend.table not in tables and backend.dr_table not in tables, tables
