"""keepalived's daemon flags in a namespace: -s, -P, -C, -V, -I, and a VRRP reload
that changes an instance (adopted in place: no transition, the VIP stays).

One namespace per test (``hf<pid>``) with a veth pair whose both ends live in it;
real servers are TCP listeners opened inside it by the test.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hafast.lab.netns import Registry, run_in, socket_in
from tests.conftest import require_root, require_tool
from tests.netns.daemon_fixtures import FifoReader, start_daemon

pytestmark = pytest.mark.timeout(120)
VIP = "10.98.0.100"


@pytest.fixture
def ns() -> Iterator[str]:
    require_root()
    name = f"hf{os.getpid()}"
    with Registry() as reg:
        reg.add_netns(name)
        reg.add_veth(name, "va", name, "vb")
        reg.add_address(name, "va", "10.98.0.1/24")
        yield name


@pytest.fixture
def servers(ns: str) -> Iterator[list[int]]:
    socks = []
    for _ in range(2):
        s = socket_in(ns)
        s.bind(("127.0.0.1", 0))
        s.listen(128)
        socks.append(s)
    yield [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()


def conf(ports: list[int], *, priority: int = 100, vips: tuple[str, ...] = (VIP,),
         fifo: Path | None = None) -> str:
    rs = "".join(f"""
  real_server 127.0.0.1 {p} {{
    TCP_CHECK {{ connect_timeout 1 }}
  }}""" for p in ports)
    fifo_line = f"  notify_fifo {fifo}\n" if fifo else ""
    addrs = "\n".join(f"    {v}/24" for v in vips)
    return f"""global_defs {{
  router_id flags
  vrrp_garp_master_delay 0
{fifo_line}}}
vrrp_instance VI_1 {{
  state MASTER
  interface va
  virtual_router_id 51
  priority {priority}
  advert_int 1
  virtual_ipaddress {{
{addrs}
  }}
}}
virtual_server {VIP} 80 {{
  delay_loop 0.5
  protocol TCP
{rs}
}}
"""


def addresses(ns: str) -> str:
    return run_in(ns, ["ip", "-o", "addr", "show", "dev", "va"]).stdout


def nft_dests(ns: str) -> str:
    return run_in(ns, ["nft", "list", "table", "inet", "hafast_lvs"], check=False).stdout


def test_s_namespace_vrrp_only_and_dont_release_vrrp(tmp_path: Path, ns: str,
                                                       servers: list[int]) -> None:
    # -s: the daemon enters the namespace itself (started from the host namespace)
    d = start_daemon(tmp_path, conf(servers), extra=["-s", ns, "-P", "-V"])
    try:
        st = d.wait_ready()
        assert [w["name"] for w in st["workers"]] == ["vrrp"]
        assert st["pools"] is None
        d.wait_for(lambda s: s["vrrp"][0]["data"]["state_name"] == "MASTER", 10, "MASTER")
        assert f" {VIP}/24" in addresses(ns)
        # SIGRTMIN+2: keepalived's JSON (with -s NAME the file carries the name)
        path = tmp_path / f"hafast-dump_{ns}.json"
        d.signal(signal.SIGRTMIN + 2)
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        data = json.loads(path.read_text())
        assert data[0]["data"]["iname"] == "VI_1" and data[0]["data"]["vrid"] == 51
        assert data[0]["data"]["state"] == 2 and data[0]["data"]["ifp_ifname"] == "va"
        # keepalived 2.2.7 format_ipaddress, "set" while the VIP is up
        assert data[0]["data"]["vips"] == [f"{VIP}/24 dev va scope global set"]
        assert data[0]["stats"]["become_master"] == 1 and data[0]["stats"]["advert_sent"] > 0
        # SIGRTMAX-1 (STATS_CLEAR): the stats file, then the counters start again
        d.signal(signal.SIGRTMAX - 1)
        d.wait_for(lambda s: s["vrrp"][0]["stats"]["become_master"] == 0, 10, "cleared")
        assert "Became master: 1" in (tmp_path / f"hafast-dump_{ns}.stats").read_text()
        assert d.stop() == 0
        # -V: the VIP stays after the stop
        assert f" {VIP}/24" in addresses(ns)
    finally:
        d.close()
        run_in(ns, ["ip", "addr", "del", f"{VIP}/24", "dev", "va"], check=False)


def test_check_only_and_dont_release_ipvs(tmp_path: Path, ns: str, servers: list[int]) -> None:
    require_tool("nft")
    d = start_daemon(tmp_path, conf(servers), ns=ns,
                     extra=["-C", "-I", "--pool-backend", "nft"])
    try:
        st = d.wait_ready()
        assert all(w["name"].startswith("check") for w in st["workers"])
        assert st["vrrp"] == []
        assert f" {VIP}/" not in addresses(ns)
        assert all(r["pool_weight"] == 1
                   for r in st["pools"]["virtual_servers"][0]["real_servers"])
        assert d.stop() == 0
        # -I: the pool stays in the kernel after the stop
        assert all(f"127.0.0.1 . {p}" in nft_dests(ns) for p in servers)
    finally:
        d.close()
        run_in(ns, ["nft", "delete", "table", "inet", "hafast_lvs"], check=False)


def test_vrrp_reload_adopts_a_changed_instance(tmp_path: Path, ns: str,
                                               servers: list[int]) -> None:
    fifo = FifoReader(tmp_path / "notify.fifo")
    d = start_daemon(tmp_path / "d", conf(servers, fifo=fifo.path), ns=ns,
                     extra=["--pool-backend", "memory", "--check-workers", "1"])
    try:
        d.wait_ready()
        d.wait_for(lambda s: s["vrrp"][0]["data"]["state_name"] == "MASTER", 10, "MASTER")
        seen = fifo.lines()
        assert seen[-1] == 'INSTANCE "VI_1" MASTER 100'
        # a new priority and one more VIP: the instance is adopted, still MASTER
        second = "10.98.0.101"
        (tmp_path / "d" / "hafast.conf").write_text(
            conf(servers, priority=110, vips=(VIP, second), fifo=fifo.path))
        d.signal(signal.SIGHUP)
        st = d.wait_for(lambda s: s["reloads"] == 1 and s["vrrp"]
                        and s["vrrp"][0]["data"]["base_priority"] == 110, 10, "prio 110")
        assert st["vrrp"][0]["data"]["state_name"] == "MASTER"
        out = addresses(ns)
        assert f" {VIP}/24" in out and f" {second}/24" in out
        # back: the second VIP goes, the first never left
        (tmp_path / "d" / "hafast.conf").write_text(conf(servers, fifo=fifo.path))
        d.signal(signal.SIGHUP)
        d.wait_for(lambda s: s["reloads"] == 2, 10, "second reload")
        out = addresses(ns)
        assert f" {VIP}/24" in out and f" {second}/" not in out
        assert [x for x in fifo.lines() if x.startswith("INSTANCE")] == \
            [x for x in seen if x.startswith("INSTANCE")]
        assert d.stop() == 0
        assert f" {VIP}/" not in addresses(ns)
        assert fifo.lines()[-1] == 'INSTANCE "VI_1" STOP 100'
    finally:
        d.close()
        fifo.close()

