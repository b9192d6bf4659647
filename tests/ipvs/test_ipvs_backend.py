"""The IPVS backend against the real IPVS kernel, run INSIDE the IPVS VM.

Every service shape keepalived can ask for (TCP/UDP/SCTP, fwmark, IPv4/IPv6, every
scheduler this kernel has, sh/mh flags, persistence with granularity, NAT/DR/TUN,
thresholds, lvs_timeouts) goes in through :class:`IpvsBackend` and reads back from
the raw netlink attributes equal to the model; ipvsadm agrees; the backend is
idempotent; the manager adopts what the kernel has and leaves foreign services.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require, require_root, require_tool

if os.environ.get("HAFAST_IN_VM") != "1":
    pytest.skip("runs inside the IPVS VM (tests/netns/test_ipvs_vm_boot.py boots it)",
                allow_module_level=True)

from hafast.config.loader import load_text
from hafast.lvs.backend import (
    SCHEDULERS,
    SVC_F_PERSISTENT,
    SVC_F_SCHED1,
    SVC_F_SCHED2,
    BackendError,
    Dest,
    Pool,
    Service,
    ServiceKey,
    Timeouts,
    diff,
)
from hafast.lvs.ipvs import IpvsBackend
from hafast.lvs.manager import PoolManager

pytestmark = pytest.mark.ipvs

# ip_vs_twos arrived in Linux 6.2; Debian 12's 6.1 kernel does not have it.
MISSING_SCHEDULERS = {"twos"}


def ipvsadm(*args: str) -> str:
    return subprocess.run([require_tool("ipvsadm"), *args], capture_output=True, text=True,
                          check=True, timeout=60).stdout


@pytest.fixture(params=IpvsBackend.ENGINES)
def backend(request: pytest.FixtureRequest) -> Iterator[IpvsBackend]:
    """The backend on each engine: batched raw netlink, and pyroute2 request by request."""
    require_root()
    require(Path("/proc/net/ip_vs").exists(), "ip_vs is not loaded")
    b = IpvsBackend(engine=request.param)
    asyncio.run(_open_flushed(b))
    try:
        yield b
    finally:
        asyncio.run(_flush_close(b))


async def _open_flushed(b: IpvsBackend) -> None:
    await b.open()
    await b.flush()
    await b.close()


async def _flush_close(b: IpvsBackend) -> None:
    await b.open()
    await b.flush()
    await b.close()


def sample_pool() -> Pool:
    p = Pool()
    p.add(Service(ServiceKey(4, "TCP", "10.0.0.1", 80), "sh",
                  SVC_F_PERSISTENT | SVC_F_SCHED1 | SVC_F_SCHED2, 30, 24),
          [Dest("10.1.0.2", 8080, 3, "NAT", 100, 10), Dest("10.1.0.3", 8080, 0, "NAT")])
    p.add(Service(ServiceKey(6, "UDP", "fd00::1", 443), "mh", SVC_F_SCHED2),
          [Dest("fd01::2", 443, 1, "TUN")])
    p.add(Service(ServiceKey(4, "", None, 0, 7), "wrr"), [Dest("10.1.0.3", 0, 2, "DR")])
    p.add(Service(ServiceKey(6, "", None, 0, 8), "rr"), [Dest("fd01::3", 0, 1, "DR")])
    p.add(Service(ServiceKey(4, "SCTP", "10.0.0.2", 9), "rr"), [Dest("10.1.0.4", 9, 1, "NAT")])
    p.add(Service(ServiceKey(6, "TCP", "fd00::2", 80), "rr", SVC_F_PERSISTENT, 60, 64),
          [Dest("fd01::5", 80, 2, "DR")])
    for i, sched in enumerate(s for s in SCHEDULERS if s not in MISSING_SCHEDULERS):
        p.add(Service(ServiceKey(4, "TCP", "10.2.0.1", 1000 + i), sched),
              [Dest("10.1.0.9", 80, 1, "NAT")])
    return p


def test_every_service_shape_reads_back_equal(backend: IpvsBackend) -> None:
    want = sample_pool()

    async def body() -> tuple[Pool, int, Pool]:
        await backend.open()
        try:
            first = diff(await backend.dump(), want)
            await backend.apply(first)
            have = await backend.dump()
            # Idempotent: replaying every change is harmless.
            await backend.apply(first)
            return have, len(first), await backend.dump()
        finally:
            await backend.close()

    have, n, again = asyncio.run(body())
    assert n == len(want.services) + sum(len(d) for d in want.dests.values())
    assert have == want
    assert again == want
    text = ipvsadm("-Ln")
    assert re.search(r"^TCP\s+10\.0\.0\.1:80 sh \(sh-fallback,sh-port\) persistent 30 "
                     r"mask 255\.255\.255\.0", text, re.M), text
    assert re.search(r"^FWM\s+7 wrr", text, re.M), text
    assert re.search(r"->\s+10\.1\.0\.2:8080\s+Masq\s+3\s", text), text
    assert re.search(r"->\s+\[fd01::2\]:443\s+Tunnel\s+1\s", text), text
    thresholds = ipvsadm("-Ln", "--thresholds")
    assert re.search(r"10\.1\.0\.2:8080\s+100\s+10", thresholds), thresholds


def test_edits_deletes_and_missing_things_are_idempotent(backend: IpvsBackend) -> None:
    svc = Service(ServiceKey(4, "TCP", "10.0.0.1", 80), "rr")

    async def body() -> Pool:
        await backend.open()
        try:
            await backend.ensure_service(svc)
            await backend.ensure_service(svc)  # exists: an edit
            await backend.ensure_service(Service(svc.key, "wlc"))
            await backend.ensure_dest(svc, Dest("10.1.0.2", 80, 1))
            await backend.ensure_dest(svc, Dest("10.1.0.2", 80, 5))  # exists: an edit
            await backend.remove_dest(svc, Dest("10.9.9.9", 80))  # never there
            await backend.remove_service(Service(ServiceKey(4, "TCP", "10.99.0.1", 1)))
            with pytest.raises(BackendError, match="ip_vs_twos"):
                await backend.ensure_service(Service(ServiceKey(4, "TCP", "10.0.0.3", 1), "twos"))
            return await backend.dump()
        finally:
            await backend.close()

    got = asyncio.run(body())
    assert got.services[svc.key].scheduler == "wlc"
    assert got.dests[svc.key] == {("10.1.0.2", 80): Dest("10.1.0.2", 80, 5)}


def test_lvs_timeouts_are_set(backend: IpvsBackend) -> None:
    async def body() -> Timeouts:
        await backend.open()
        try:
            await backend.set_timeouts(Timeouts(901, 121, 301))
            return await backend.get_timeouts()
        finally:
            await backend.close()

    assert asyncio.run(body()) == Timeouts(901, 121, 301)
    assert "901 121 301" in ipvsadm("-Ln", "--timeout")


CONFIG = """
virtual_server 10.0.0.1 80 {
  protocol TCP
  lvs_sched rr
  real_server 10.1.0.2 8080 { weight 2 }
  real_server 10.1.0.3 8080 { weight 3 }
}
"""


def test_manager_adopts_the_kernel_touches_one_entry_on_reload_and_releases(
        backend: IpvsBackend) -> None:
    # The kernel already has our service (right), a stray destination in it, and a
    # service that is not ours (made with ipvsadm, as an admin would).
    ipvsadm("-A", "-t", "10.0.0.1:80", "-s", "rr")
    ipvsadm("-a", "-t", "10.0.0.1:80", "-r", "10.1.0.2:8080", "-m", "-w", "2")
    ipvsadm("-a", "-t", "10.0.0.1:80", "-r", "10.1.0.7:8080", "-m", "-w", "1")
    ipvsadm("-A", "-t", "10.8.8.8:80", "-s", "wlc")
    config = load_text(CONFIG).config

    async def body() -> tuple[int, int, int, int]:
        mgr = PoolManager(config, IpvsBackend(engine=backend.engine), run_scripts=False)
        adopted = await mgr.start()
        same = await mgr.reload(config)
        one = await mgr.reload(load_text(CONFIG.replace("weight 3", "weight 4")).config)
        gone = await mgr.stop()
        return adopted, same, one, gone

    adopted, same, one, gone = asyncio.run(body())
    assert adopted == 2  # add 10.1.0.3, delete the stray 10.1.0.7; 10.1.0.2 untouched
    assert same == 0 and one == 1 and gone == 1
    text = ipvsadm("-Ln")
    assert "10.8.8.8:80" in text and "10.0.0.1:80" not in text  # only ours released


# ------------------------------------------------- a Maglev fleet's destination order

MAGLEV = """
virtual_server {vip} 80 {{
  protocol TCP
  lvs_sched mh
  lvs_method {method}
  announce {{
    prefix {vip}/32
  }}
{reals}}}
"""
FLEET_VIP = "192.0.2.100"


def maglev(*reals: str, vip: str = FLEET_VIP, method: str = "DR", port: int = 80) -> Any:
    text = MAGLEV.format(vip=vip, method=method,
                         reals="".join(f"  real_server {a} {port} {{ }}\n" for a in reals))
    res = load_text(text)
    assert not res.errors, res.errors
    return res.config


def listed(vip: str = FLEET_VIP) -> list[str]:
    """The service's destinations in the kernel's list order, head first, the order
    ip_vs_mh_populate walks (``--nosort``: ipvsadm sorts them by address unless told)."""
    out, inside = [], False
    for line in ipvsadm("-Ln", "--nosort").splitlines():
        if re.match(r"^(TCP|UDP|SCTP|FWM)\s", line):
            inside = line.split()[1] == f"{vip}:80"
        elif inside and (m := re.match(r"\s+->\s+(\S+)\s", line)):
            out.append(m.group(1))
    return out


FLEET = ("10.1.0.21", "10.1.0.10", "10.1.0.9", "10.1.0.23")


def test_a_maglev_fleet_reload_lists_a_new_server_where_a_fresh_start_does(
        backend: IpvsBackend) -> None:
    """10.1.0.15 sorts between .10 and .21: after the reload the kernel lists the
    servers as a director started with the new config does, and a restart that
    adopts the table reads that order back and changes nothing."""
    first, then = maglev(*FLEET), maglev(*FLEET, "10.1.0.15")

    async def body() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        mgr = PoolManager(first, IpvsBackend(engine=backend.engine), keep=True,
                          run_scripts=False)
        await mgr.start()
        seen["started"] = listed()
        seen["reload changes"] = await mgr.reload(then)
        seen["reloaded"] = listed()
        await mgr.stop()  # keep: the table stays
        again = PoolManager(then, IpvsBackend(engine=backend.engine), run_scripts=False)
        seen["adopt changes"] = await again.start()
        await again.stop()
        assert listed() == []
        fresh = PoolManager(then, IpvsBackend(engine=backend.engine), run_scripts=False)
        await fresh.start()
        seen["fresh"] = listed()
        await fresh.stop()
        return seen

    seen = asyncio.run(body())
    assert seen["started"] == ["10.1.0.23:80", "10.1.0.21:80", "10.1.0.10:80", "10.1.0.9:80"]
    assert seen["reloaded"] == seen["fresh"] == [
        "10.1.0.23:80", "10.1.0.21:80", "10.1.0.15:80", "10.1.0.10:80", "10.1.0.9:80"], seen
    # the add, then .21 and .23 deleted and added back behind it
    assert seen["reload changes"] == 5 and seen["adopt changes"] == 0, seen


TRASH_NS = f"hb{os.getpid() % 100000}"
TRASH_VIP, TRASH_CLIENT, TRASH_NEAR = "10.0.9.1", "10.0.9.2", "192.168.79.1"
TRASH_RS = ("192.168.79.3", "192.168.79.4", "192.168.79.5")


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"ip {' '.join(args)}: {proc.stderr.strip()}"


def test_a_connection_outlives_its_servers_delete_and_readd() -> None:
    """The reload re-adds every server (the new one sorts first): a connection that
    was open through one of them still works after, through the same server.  That
    holds only if the kernel took the deleted destination back from its trash
    (ip_vs_trash_get_dest): the connection entry points at that destination, and a
    new one would leave it unavailable (ip_vs_in_hook drops its packets)."""
    require_root()
    require(Path("/proc/net/ip_vs").exists(), "ip_vs is not loaded")
    require_tool("ipvsadm")
    from pyroute2.netns import popns, pushns

    client, servers = f"{TRASH_NS}c", f"{TRASH_NS}r"
    socks: list[socket.socket] = []
    stop = threading.Event()
    try:
        Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
        for ns, near, fars in ((client, TRASH_VIP, (TRASH_CLIENT,)),
                               (servers, TRASH_NEAR, TRASH_RS)):
            _ip("netns", "add", ns)
            _ip("link", "add", f"{ns}d", "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("addr", "add", f"{near}/24", "dev", f"{ns}d")
            _ip("link", "set", f"{ns}d", "up")
            for a in fars:
                _ip("-n", ns, "addr", "add", f"{a}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "route", "add", "default", "via", near)

        def echo(srv: socket.socket, addr: str) -> None:
            srv.settimeout(0.2)
            while not stop.is_set():
                try:
                    conn, _ = srv.accept()
                except (TimeoutError, OSError):
                    continue
                conn.settimeout(0.2)
                with conn:
                    while not stop.is_set():
                        try:
                            data = conn.recv(64)
                        except TimeoutError:
                            continue
                        except OSError:
                            break
                        if not data:
                            break
                        conn.sendall(addr.encode() + b" " + data)

        pushns(servers)
        try:
            for a in TRASH_RS:
                srv = socket.socket()
                srv.bind((a, 8080))
                srv.listen(8)
                socks.append(srv)
                threading.Thread(target=echo, args=(srv, a), daemon=True).start()
        finally:
            popns()
        first = maglev(*TRASH_RS, vip=TRASH_VIP, method="NAT", port=8080)
        then = maglev(*TRASH_RS, "192.168.79.2", vip=TRASH_VIP, method="NAT", port=8080)

        async def body() -> tuple[str, int, str, list[str]]:
            mgr = PoolManager(first, IpvsBackend(), run_scripts=False)
            await mgr.start()
            try:
                pushns(client)
                try:
                    conn = socket.create_connection((TRASH_VIP, 80), timeout=20)
                finally:
                    popns()
                socks.append(conn)
                conn.sendall(b"one")
                before = conn.recv(64).decode()
                n = await mgr.reload(then)
                conn.sendall(b"two")
                after = conn.recv(64).decode()
                return before, n, after, listed(TRASH_VIP)
            finally:
                await mgr.stop()

        before, n, after, order = asyncio.run(body())
        assert n == 1 + 2 * len(TRASH_RS), (n, order)
        assert order == [f"{a}:8080" for a in (*reversed(TRASH_RS), "192.168.79.2")]
        assert before.endswith(" one") and after == before.replace("one", "two"), (before, after)
    finally:
        stop.set()
        for s in socks:
            s.close()
        for ns in (client, servers):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=60)
        subprocess.run(["ip", "link", "del", f"{client}d"], capture_output=True, timeout=60)
        subprocess.run(["ip", "link", "del", f"{servers}d"], capture_output=True, timeout=60)


# -------------------------------- a dead server's Maglev slots, whatever a director saw

SLOT_NS = f"hs{os.getpid() % 100000}"
SLOT_VIP, SLOT_CLIENT = "10.0.8.1", "10.0.8.2"
# on the client's link, where nobody answers: a scheduled SYN goes nowhere, but
# IPVS makes its connection entry first, and the entry names the real server
SLOT_RS = {"10.0.8.10": 1, "10.0.8.11": 3, "10.0.8.12": 2, "10.0.8.13": 2}
SLOT_DEAD = "10.0.8.11"
SLOT_PORTS = range(41000, 41096)
SLOTS = """
virtual_server {vip} {port} {{
  protocol TCP
  lvs_sched mh
  mh-port
  mh-fallback
  lvs_method NAT
  announce {{
    prefix {vip}/32
  }}
{reals}}}
"""


def slot_config(port: int) -> Any:
    reals = "".join(f"  real_server {a} 8080 {{\n    weight {w}\n  }}\n"
                    for a, w in SLOT_RS.items())
    res = load_text(SLOTS.format(vip=SLOT_VIP, port=port, reals=reals))
    assert not res.errors, res.errors
    return res.config


def landed() -> dict[int, dict[int, str]]:
    """Virtual port -> client source port -> the real server IPVS picked for it
    (``ipvsadm -Lnc``: one entry per connection)."""
    out: dict[int, dict[int, str]] = {}
    for line in ipvsadm("-Lnc").splitlines():
        parts = line.split()
        if len(parts) == 6 and parts[0] == "TCP" and parts[4].startswith(f"{SLOT_VIP}:"):
            sport, vport = int(parts[3].rsplit(":", 1)[1]), int(parts[4].rsplit(":", 1)[1])
            out.setdefault(vport, {})[sport] = parts[5].rsplit(":", 1)[0]
    return out


def test_a_director_started_with_a_dead_server_schedules_as_one_that_saw_it_die() -> None:
    """Three services stand for three directors: they hash only the client's address
    and port (``mh-port``; ip_vs_mh's hash keys are constants), so equal Maglev
    tables send a flow to the same real server.  Port 80 saw 10.0.8.11 die (an edit
    to weight 0: it keeps the slots of its last weight, 3); port 81 started while it
    was dead; port 82 is that start done without the fix (added at weight 0, so
    no slots), to show that the flows see the difference.  With ``mh-fallback`` a
    flow whose slot is the dead server's goes on to another one."""
    require_root()
    require(Path("/proc/net/ip_vs").exists(), "ip_vs is not loaded")
    require_tool("ipvsadm")
    from pyroute2.netns import popns, pushns

    from hafast.lib.events import DOWN, ServerEvent
    from hafast.lvs.backend import ADD_DEST, ADD_SERVICE, DEL_SERVICE, Change
    from hafast.lvs.policy import build_service

    ns = SLOT_NS
    try:
        _ip("netns", "add", ns)
        _ip("link", "add", f"{ns}d", "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("addr", "add", f"{SLOT_VIP}/24", "dev", f"{ns}d")
        _ip("link", "set", f"{ns}d", "up")
        _ip("-n", ns, "addr", "add", f"{SLOT_CLIENT}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        saw, then = slot_config(80), slot_config(81)
        old_way = slot_config(82).virtual_servers[0]
        old_svc = build_service(old_way, ServiceKey(4, "TCP", SLOT_VIP, 82), old_way.sched_flags)

        def syns(vport: int) -> None:
            pushns(ns)
            try:
                for sport in SLOT_PORTS:
                    with socket.socket() as s:
                        s.setblocking(False)
                        s.bind((SLOT_CLIENT, sport))
                        s.connect_ex((SLOT_VIP, vport))  # the SYN; closing sends nothing
            finally:
                popns()

        async def body() -> dict[int, dict[int, str]]:
            vs = saw.virtual_servers[0]
            a = PoolManager(saw, IpvsBackend(), run_scripts=False)
            await a.start()
            a.on_event(ServerEvent(vs.key, (SLOT_DEAD, 8080), DOWN, 3, "test", 1.0))
            await a.wait_idle()
            vs = then.virtual_servers[0]
            b = PoolManager(then, IpvsBackend(), run_scripts=False)
            await b.start({(vs.key, rs.key): (rs.address != SLOT_DEAD, rs.weight)
                           for rs in vs.real_servers})
            raw = IpvsBackend()
            await raw.open()
            await raw.apply([Change(ADD_SERVICE, old_svc)] + [
                Change(ADD_DEST, old_svc, Dest(d, 8080, 0 if d == SLOT_DEAD else w, "NAT"))
                for d, w in sorted(SLOT_RS.items())])
            try:
                for vport in (80, 81, 82):
                    syns(vport)
                await asyncio.sleep(0.5)
                return landed()
            finally:
                await raw.apply([Change(DEL_SERVICE, old_svc)])
                await raw.close()
                await a.stop()
                await b.stop()

        seen = asyncio.run(body())
        flows = set(SLOT_PORTS)
        assert {v: set(seen.get(v, {})) for v in (80, 81, 82)} == {
            80: flows, 81: flows, 82: flows}, seen
        assert SLOT_DEAD not in set(seen[80].values()) | set(seen[81].values())
        assert seen[81] == seen[80], {p: (seen[80][p], seen[81][p]) for p in flows
                                      if seen[80][p] != seen[81][p]}
        assert seen[82] != seen[80]  # without the slots: another table
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=60)
        subprocess.run(["ip", "link", "del", f"{ns}d"], capture_output=True, timeout=60)
