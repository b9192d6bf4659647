"""The hafast VRRP worker on its own: notify scripts and FIFO lines in keepalived's
format, a clean stop on SIGTERM (STOP notified, VIP removed), track_interface,
and a sync group moving together."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from hafast.lab.netns import run_in
from tests.conftest import require_root, require_tool
from tests.netns.vrrp_fixtures import VIP4, VrrpLab, conf

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(60)]

PREFIX = f"hd{os.getpid() % 100000}"


@pytest.fixture
def lab() -> Iterator[VrrpLab]:
    require_root()
    require_tool("keepalived")
    with VrrpLab(PREFIX) as built:
        yield built


def _lines(path: object, n: int, lab: VrrpLab, what: str) -> list[str]:
    from pathlib import Path

    p = Path(str(path))
    lab.wait_for(lambda: p.exists() and len(p.read_text().splitlines()) >= n, 5.0, what)
    return p.read_text().splitlines()


def _tracked_link(ns: str) -> None:
    # A veth pair inside the router's namespace (no dummy module on every kernel);
    # it goes with the namespace.
    run_in(ns, ["ip", "link", "add", "trk0", "type", "veth", "peer", "name", "trk1"])
    for dev in ("trk0", "trk1"):
        run_in(ns, ["ip", "link", "set", dev, "up"])


def test_notify_scripts_fifo_and_clean_stop(lab: VrrpLab) -> None:
    out = lab.tmp / "notify.out"
    fifo = lab.tmp / "notify.fifo"
    fifo_out = lab.tmp / "fifo.out"
    script = lab.tmp / "notify.sh"
    script.write_text(f'#!/bin/sh\necho "$@" >> {out}\n')
    script.chmod(0o755)
    reader = lab.tmp / "reader.sh"
    reader.write_text(f'#!/bin/sh\nexec cat "$1" >> {fifo_out}\n')
    reader.chmod(0o755)
    text = conf("hafast", priority=100, version=3, advert_int="0.1",
                extra_global=f"  vrrp_notify_fifo {fifo}\n  vrrp_notify_fifo_script {reader}")
    text = text.replace("  virtual_ipaddress {", f"  notify {script}\n  virtual_ipaddress {{")
    r1 = lab.start("r1", "hafast", text)
    lab.wait_holder("r1", 6.0, VIP4)
    assert _lines(out, 2, lab, "notify BACKUP then MASTER") == [
        "INSTANCE VI_1 BACKUP 100", "INSTANCE VI_1 MASTER 100"]
    lab.stop(r1)
    assert not lab.has_vip("r1")
    lines = _lines(out, 3, lab, "notify STOP")
    assert lines[2] == "INSTANCE VI_1 STOP 100"
    fifo_lines = _lines(fifo_out, 3, lab, "FIFO lines")
    assert fifo_lines[:3] == ['INSTANCE "VI_1" BACKUP 100', 'INSTANCE "VI_1" MASTER 100',
                              'INSTANCE "VI_1" STOP 100']
    # Every notify child was reaped: no zombie left behind by the worker (it exited).
    assert r1.proc.returncode == 0


def test_track_interface_down_hands_over_to_keepalived(lab: VrrpLab) -> None:
    ns1 = lab.ns("r1")
    _tracked_link(ns1)
    kw = {"version": 3, "advert_int": "0.1"}
    text = conf("hafast", priority=100, **kw)  # type: ignore[arg-type]
    text = text.replace("  virtual_ipaddress {", "  track_interface {\n    trk0\n  }\n"
                        "  virtual_ipaddress {")
    lab.start("r2", "keepalived", conf("keepalived", priority=90, **kw))  # type: ignore[arg-type]
    lab.start("r1", "hafast", text)
    lab.wait_holder("r1", 6.0, VIP4)
    run_in(ns1, ["ip", "link", "set", "trk0", "down"])  # r1 -> FAULT, priority 0 sent
    lab.wait_holder("r2", 2.0, VIP4)
    run_in(ns1, ["ip", "link", "set", "trk0", "up"])
    lab.wait_holder("r1", 3.0, VIP4)


SYNC = """
global_defs {{ vrrp_garp_master_delay 0 }}
vrrp_sync_group G {{ group {{ A
 B }} }}
vrrp_instance A {{ interface eth0
 virtual_router_id 71
 priority {prio}
 version 3
 advert_int 0.1
 {track}
 virtual_ipaddress {{ 10.77.0.111/24 }} }}
vrrp_instance B {{ interface eth0
 virtual_router_id 72
 priority {prio}
 version 3
 advert_int 0.1
 virtual_ipaddress {{ 10.77.0.112/24 }} }}
"""


def test_sync_group_members_move_together(lab: VrrpLab) -> None:
    ns1 = lab.ns("r1")
    _tracked_link(ns1)
    lab.start("r2", "keepalived", SYNC.format(prio=90, track=""))
    lab.start("r1", "hafast", SYNC.format(prio=100, track="track_interface { trk0 }"))
    both = ("10.77.0.111", "10.77.0.112")
    lab.wait_for(lambda: all(lab.has_vip("r1", v) for v in both), 6.0, "r1 holds A and B")
    # Only A tracks trk0; B must follow A into FAULT and hand its VIP over too.
    run_in(ns1, ["ip", "link", "set", "trk0", "down"])
    lab.wait_for(lambda: all(lab.has_vip("r2", v) and not lab.has_vip("r1", v) for v in both),
                 3.0, "r2 holds A and B")
    time.sleep(0.3)
    assert not any(lab.has_vip("r1", v) for v in both)


@pytest.mark.parametrize("pair", [("hafast", "keepalived"), ("keepalived", "hafast")],
                         ids=["hafast-keepalived", "keepalived-hafast"])
def test_unicast_peers(lab: VrrpLab, pair: tuple[str, str]) -> None:
    kw = {"version": 3, "advert_int": "0.1"}

    def unicast(text: str, me: str, peer: str) -> str:
        return text.replace("  virtual_ipaddress {",
                            f"  unicast_src_ip {me}\n  unicast_peer {{\n    {peer}\n  }}\n"
                            "  virtual_ipaddress {")

    k1, k2 = pair
    lab.start("r2", k2, unicast(conf(k2, priority=90, **kw),  # type: ignore[arg-type]
                                "10.77.0.2", "10.77.0.1"))
    r1 = lab.start("r1", k1, unicast(conf(k1, priority=100, **kw),  # type: ignore[arg-type]
                                     "10.77.0.1", "10.77.0.2"))
    lab.wait_holder("r1", 6.0, VIP4)
    # r2 must be running, a BACKUP, before r1 goes: on a loaded CI machine hafast's
    # interpreter was still starting when keepalived's r1 had long been MASTER
    lab.wait_for(lambda: "backup state" in lab.routers["r2"].log_text().lower(), 30.0,
                 "r2 in BACKUP")
    time.sleep(0.5)
    assert lab.holders(VIP4) == ["r1"]
    lab.stop(r1)
    lab.wait_holder("r2", 2.0, VIP4)
