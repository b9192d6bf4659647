"""`hafast status --down / --vs / --instance` against a real daemon (issue 16).

A namespace of the test's own: eth0 (a veth, up) holds two real-server addresses, one
with a listener (UP), one refusing (DOWN), under a virtual server by address, one by
fwmark and one by virtual_server_group; VI_UP becomes MASTER on eth0, VI_FAULT tracks
eth1 (down) and stays in FAULT.  The `hafast status` command runs as an
operator runs it; the rows, the exit statuses and the unfiltered --json's shape are
checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_root
from tests.netns.daemon_fixtures import REPO, Daemon, start_daemon

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]

UP, DOWN, PORT = "10.77.0.1", "10.77.0.2", 8080

CONF = """global_defs {
  router_id statusfilters
  vrrp_garp_master_delay 0
}
vrrp_instance VI_UP {
  state MASTER
  interface eth0
  virtual_router_id 51
  priority 100
  advert_int 1
  virtual_ipaddress {
    10.77.0.100/24
  }
}
vrrp_instance VI_FAULT {
  state BACKUP
  interface eth0
  virtual_router_id 52
  priority 90
  advert_int 1
  track_interface {
    eth1
  }
  virtual_ipaddress {
    10.77.0.101/24
  }
}
virtual_server_group web {
  10.77.0.200 80
}
"""
for head in ("virtual_server 10.77.0.100 80", "virtual_server fwmark 7",
             "virtual_server group web"):
    CONF += f"{head} {{\n  delay_loop 0.5\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n"
    for addr in (UP, DOWN):
        CONF += (f"  real_server {addr} {PORT} {{\n    TCP_CHECK {{\n      connect_timeout 1\n"
                 "    }\n  }\n")
    CONF += "}\n"

LISTENER = (f"import socket, time; s = socket.create_server(('{UP}', {PORT}), backlog=64); "
            "time.sleep(3600)")


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    require_root()
    ns = f"hst{os.getpid()}"
    sh("ip", "netns", "add", ns)
    listener: subprocess.Popen[bytes] | None = None
    d: Daemon | None = None
    try:
        for cmd in ("link set lo up", "link add eth0 type veth peer name eth0p",
                    "link set eth0p up", "link set eth0 up",
                    "link add eth1 type veth peer name eth1p", f"addr add {UP}/24 dev eth0",
                    f"addr add {DOWN}/24 dev eth0"):
            sh("ip", "-n", ns, *cmd.split())
        listener = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", LISTENER])
        d = start_daemon(tmp_path / "d", CONF, ns=ns, extra=["--pool-backend", "memory"])

        def settled(st: dict[str, Any]) -> bool:
            states = {i["data"]["iname"]: i["data"]["state_name"] for i in st["vrrp"]}
            pools = st.get("pools") or {"virtual_servers": []}
            alive = [{r["address"]: r["alive"] for r in vs["real_servers"]}
                     for vs in pools["virtual_servers"]]
            return (states == {"VI_UP": "MASTER", "VI_FAULT": "FAULT"} and len(alive) == 3
                    and all(a == {UP: True, DOWN: False} for a in alive))

        d.wait_for(settled, 30, "VI_UP MASTER, VI_FAULT FAULT, one real server up in each VS")
        yield d
    finally:
        if d is not None:
            d.close()
        if listener is not None:
            listener.kill()
            listener.wait(5)
        subprocess.run(["ip", "netns", "del", ns], check=False)


def status(d: Daemon, *args: str) -> tuple[int, str]:
    """`hafast status --socket CTL ARGS` as a command; (exit status, stdout)."""
    p = subprocess.run([sys.executable, "-m", "hafast", "status", "--socket", d.ctl, *args],
                       capture_output=True, text=True, timeout=30, cwd=REPO,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    return p.returncode, p.stdout


def shown(st: dict[str, Any]) -> tuple[dict[str, list[str]], list[str]]:
    return ({vs["name"]: [r["address"] for r in vs["real_servers"]]
             for vs in st["pools"]["virtual_servers"]},
            [i["data"]["iname"] for i in st["vrrp"]])


def test_filters_on_a_running_daemon(daemon: Daemon) -> None:
    rc, text = status(daemon, "--json")
    assert rc == 0
    whole = json.loads(text)
    # the unfiltered answer keeps its shape (no "selected", no "counts")
    assert set(whole) == set(daemon.status())
    assert "selected" not in whole
    vs_names = {"[10.77.0.100]:tcp:80", "FWM 7", "[web]:0"}
    assert shown(whole) == ({n: [UP, DOWN] for n in vs_names}, ["VI_UP", "VI_FAULT"])
    assert all("counts" not in vs for vs in whole["pools"]["virtual_servers"])

    rc, text = status(daemon, "--json", "--down")
    assert rc == 0
    down = json.loads(text)
    assert shown(down) == ({n: [DOWN] for n in vs_names}, ["VI_FAULT"])
    assert all(vs["counts"] == {"real_servers": 2, "alive": 1}
               for vs in down["pools"]["virtual_servers"])

    for spec, name in (("10.77.0.100:80", "[10.77.0.100]:tcp:80"), ("fwmark 7", "FWM 7"),
                       ("web", "[web]:0")):
        rc, text = status(daemon, "--json", "--vs", spec)
        assert rc == 0 and shown(json.loads(text)) == ({name: [UP, DOWN]}, []), spec

    rc, text = status(daemon, "--json", "--instance", "VI_UP")
    assert rc == 0 and shown(json.loads(text)) == ({}, ["VI_UP"])
    rc, text = status(daemon, "--json", "--instance", "VI_UP", "--down")
    assert rc == 3 and shown(json.loads(text)) == ({}, [])

    # the table: the same rows, and 3 when nothing matches
    rc, text = status(daemon, "--down")
    assert rc == 0
    assert f"DOWN {DOWN}:{PORT}" in text and "UP  " not in text and "VI_FAULT" in text
    assert "VI_UP" not in text and "1/2 alive" in text
    for args in (["--vs", "10.77.0.100:81"], ["--vs", "fwmark 8"], ["--instance", "VI_NONE"]):
        rc, text = status(daemon, *args)
        assert rc == 3 and "VS " not in text, args
    rc, text = status(daemon)
    assert rc == 0 and f"UP   {UP}:{PORT}" in text and "VRRP  VI_UP" in text
