"""The daemon's pool side end to end, in namespaces: ha_suspend against a keepalived
peer, a reload that starts and stops the VRRP worker, pool scripts as their user.

The VRRP lab (``pg<pid>sw`` bridge, ``r1``/``r2``/``cl`` namespaces, both ends of
every veth inside them) comes from tests/netns/vrrp_fixtures.py; hafast runs in r1
as the whole daemon (parent, VRRP worker, check workers) with the nftables pool
backend, keepalived in r2.  Real servers are TCP listeners opened inside r1.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hafast.lab.netns import run_in, socket_in
from tests.conftest import require_root, require_tool
from tests.netns.daemon_fixtures import Daemon, FifoReader, start_daemon
from tests.netns.vrrp_fixtures import VIP4, VrrpLab
from tests.netns.vrrp_fixtures import conf as peer_conf

pytestmark = [pytest.mark.timeout(180)]

PREFIX = f"pg{os.getpid() % 100000}"


@pytest.fixture
def lab() -> Iterator[VrrpLab]:
    require_root()
    require_tool("keepalived")
    require_tool("nft")
    with VrrpLab(PREFIX) as built:
        yield built


@pytest.fixture
def servers(lab: VrrpLab) -> Iterator[list[int]]:
    """Two listening ports in r1 and a third that refuses."""
    socks = []
    for _ in range(2):
        s = socket_in(lab.ns("r1"))
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        socks.append(s)
    closed = socket_in(lab.ns("r1"))
    closed.bind(("127.0.0.1", 0))
    dead = closed.getsockname()[1]
    closed.close()
    yield [s.getsockname()[1] for s in socks] + [dead]
    for s in socks:
        s.close()


@pytest.fixture
def script_dir() -> Iterator[Path]:
    """A folder the ``nobody`` user can run a script from and write into."""
    path = Path(tempfile.mkdtemp(prefix="hafast-pg-"))
    try:
        path.chmod(0o777)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def instance(priority: int) -> str:
    return f"""vrrp_instance VI_1 {{
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority {priority}
  advert_int 1
  virtual_ipaddress {{
    {VIP4}/24
  }}
}}
"""


def daemon_conf(ports: list[int], *, vrrp: bool, ha_suspend: bool = False,
                fifo: Path | None = None, rs_extra: str = "") -> str:
    rss = "".join(f"""
  real_server 127.0.0.1 {p} {{
{rs_extra}
    TCP_CHECK {{ connect_timeout 1 }}
  }}""" for p in ports)
    head = "global_defs {\n  router_id pool-gaps\n  vrrp_garp_master_delay 0\n"
    if fifo is not None:
        head += f"  notify_fifo {fifo}\n"
    head += "}\n"
    return head + (instance(100) if vrrp else "") + f"""virtual_server {VIP4} 80 {{
  delay_loop 0.5
  protocol TCP
  lvs_sched rr
{"  ha_suspend" if ha_suspend else ""}
{rss}
}}
"""


def start(lab: VrrpLab, dir: Path, text: str) -> Daemon:
    return start_daemon(dir, text, ns=lab.ns("r1"),
                        extra=["--pool-backend", "nft", "--check-workers", "1"])


def nft_services(lab: VrrpLab) -> str:
    return run_in(lab.ns("r1"), ["nft", "list", "table", "inet", "hafast_lvs"],
                  check=False).stdout


def vs_status(st: dict[str, Any]) -> dict[str, Any]:
    return dict(st["pools"]["virtual_servers"][0])


def in_pool(st: dict[str, Any]) -> bool:
    vs = vs_status(st)
    return not vs["suspended"] and all(r["pool_weight"] == 1 for r in vs["real_servers"])


def withdrawn(st: dict[str, Any]) -> bool:
    vs = vs_status(st)
    return bool(vs["suspended"]) and all(r["pool_weight"] is None for r in vs["real_servers"])


def state_of(st: dict[str, Any]) -> str:
    return str(st["vrrp"][0]["data"]["state_name"]) if st["vrrp"] else ""


def test_ha_suspend_pool_follows_the_vip(tmp_path: Path, lab: VrrpLab,
                                         servers: list[int]) -> None:
    """BACKUP: no pool entries; MASTER (the VIP arrives): the pool appears; BACKUP
    again (keepalived preempts): the pool is withdrawn."""
    peer = lab.start("r2", "keepalived", peer_conf("keepalived", priority=150))
    lab.wait_holder("r2", 15)
    d = start(lab, tmp_path / "d", daemon_conf(servers[:2], vrrp=True, ha_suspend=True))
    try:
        d.wait_ready()
        st = d.wait_for(lambda s: state_of(s) == "BACKUP", 15, "hafast BACKUP")
        assert withdrawn(st) and st["pools"]["changes"] == {}
        assert VIP4 not in nft_services(lab)

        # the peer stops (priority 0): hafast is MASTER, its VIP arrives, so does the pool
        lab.stop(peer)
        lab.wait_holder("r1", 10)
        st = d.wait_for(in_pool, 15, "the pool after the VIP arrived")
        assert state_of(st) == "MASTER"
        assert st["pools"]["changes"] == {"add-service": 1, "add-dest": 2}
        assert VIP4 in nft_services(lab)

        # the peer is back with its higher priority: hafast BACKUP, the pool withdrawn
        lab.start("r2", "keepalived", peer_conf("keepalived", priority=150))
        lab.wait_holder("r2", 15)
        st = d.wait_for(withdrawn, 15, "the pool withdrawn after the VIP left")
        assert state_of(st) == "BACKUP"
        assert st["pools"]["changes"] == {"add-service": 1, "add-dest": 2, "del-service": 1}
        assert VIP4 not in nft_services(lab)
        assert d.stop() == 0
    finally:
        d.close()


def test_reload_starts_and_stops_the_vrrp_worker_scripts_as_user(
        tmp_path: Path, lab: VrrpLab, servers: list[int], script_dir: Path) -> None:
    """No vrrp_instance at first; a reload brings one (the VRRP worker starts and takes
    the VIP, the pool untouched); another takes it away (the worker stops as on
    SIGTERM: the VIP released, notify STOP).  The dead server's notify_down runs as
    the user its line names."""
    script = script_dir / "who.sh"
    script.write_text(f"#!/bin/sh\nid -un > {script_dir}/who.$1\nid -gn >> {script_dir}/who.$1\n")
    script.chmod(0o755)
    rs_extra = f'    notify_down "{script} down" nobody'
    fifo = FifoReader(tmp_path / "notify.fifo")
    conf_path = tmp_path / "d" / "hafast.conf"
    d = start(lab, tmp_path / "d", daemon_conf(servers, vrrp=False, fifo=fifo.path,
                                               rs_extra=rs_extra))
    try:
        st = d.wait_ready()
        assert [w["name"] for w in st["workers"]] == ["check0"]
        st = d.wait_for(lambda s: s["pools"]["changes"].get("del-dest") == 1, 15,
                        "the dead server out")
        changes = dict(st["pools"]["changes"])
        who = script_dir / "who.down"
        lab.wait_for(lambda: who.exists() and len(who.read_text().split()) == 2, 10,
                     "notify_down ran")
        user, group = who.read_text().split()
        assert user == "nobody" and group != "root"

        conf_path.write_text(daemon_conf(servers, vrrp=True, fifo=fifo.path, rs_extra=rs_extra))
        d.signal(signal.SIGHUP)
        st = d.wait_for(lambda s: s["reloads"] == 1 and state_of(s) == "MASTER", 20,
                        "the VRRP worker started by the reload, MASTER")
        assert [w["name"] for w in st["workers"]] == ["vrrp", "check0"]
        lab.wait_holder("r1", 5)
        assert d.pid_file("_vrrp").exists()
        vrrp_pid = st["workers"][0]["pid"]

        conf_path.write_text(daemon_conf(servers, vrrp=False, fifo=fifo.path,
                                         rs_extra=rs_extra))
        d.signal(signal.SIGHUP)
        st = d.wait_for(lambda s: s["reloads"] == 2 and not s["vrrp"], 20,
                        "the VRRP worker stopped by the reload")
        assert [w["name"] for w in st["workers"]] == ["check0"]
        assert not lab.has_vip("r1")
        assert not os.path.exists(f"/proc/{vrrp_pid}")
        assert not d.pid_file("_vrrp").exists()
        lines = [x for x in fifo.lines() if x.startswith("INSTANCE")]
        assert lines[-1] == 'INSTANCE "VI_1" STOP 100' and 'INSTANCE "VI_1" MASTER 100' in lines
        assert st["pools"]["changes"] == changes  # the pool never moved
        assert "restarting" not in d.log_text()
        assert d.stop() == 0
    finally:
        d.close()
        fifo.close()

