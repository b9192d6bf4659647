"""The hafast VRRP worker's issue-4 gaps, on a real bridge (and keepalived 2.2.7 as peer):

* no Accept_Mode (``no_accept``, or ``vrrp_strict`` without ``accept``): the master
  holds the VIP and answers ARP for it, but drops traffic to it (RFC 5798 §6.4.3)
  through keepalived's nftables tables, emptied on BACKUP and gone on stop;
* ``notify_priority_changes`` and ``MASTER_RX_LOWER_PRI`` FIFO lines as keepalived
  writes them, and notify scripts run as their configured user / ``script_user``;
* SIGHUP: unchanged instances keep their state (no notify), removed ones stop (and
  say FAULT, as keepalived),
  added ones start, a changed one stays master; a broken file is rejected.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hafast.lab.netns import run_in
from tests.conftest import require_root, require_tool
from tests.netns.vrrp_fixtures import ADDR4, VIP4, VrrpLab, conf

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(90)]

PREFIX = f"hx{os.getpid() % 100000}"
FAST = {"version": 3, "advert_int": "0.1"}
TABLE = "keepalived"  # keepalived's tables (ip and ip6), hafast.net.noaccept


@pytest.fixture
def lab() -> Iterator[VrrpLab]:
    require_root()
    require_tool("keepalived")
    require_tool("fping")
    require_tool("nft")
    with VrrpLab(PREFIX) as built:
        yield built


def _lines(path: Path, n: int, lab: VrrpLab, what: str) -> list[str]:
    lab.wait_for(lambda: path.exists() and len(path.read_text().splitlines()) >= n, 5.0, what)
    return path.read_text().splitlines()


def _filtered(lab: VrrpLab, role: str) -> str | None:
    """The IPv4 table in ``role``'s namespace as text, or None when there is none."""
    res = run_in(lab.ns(role), ["nft", "list", "table", "ip", TABLE], check=False)
    return res.stdout if res.returncode == 0 else None


def _reachable(lab: VrrpLab, addr: str) -> bool:
    # One echo may be lost on a loaded host; three in a row may not.
    return any(lab.client_ping(addr) for _ in range(3))


@pytest.mark.parametrize("mode", ["no_accept", "vrrp_strict"])
def test_master_without_accept_mode_drops_traffic_to_the_vip(lab: VrrpLab, mode: str) -> None:
    text = conf("hafast", priority=100, extra_global="  vrrp_strict" if mode == "vrrp_strict"
                else "", **FAST)  # type: ignore[arg-type]
    if mode == "no_accept":
        text = text.replace("  virtual_ipaddress {", "  no_accept\n  virtual_ipaddress {")
    lab.start("r2", "keepalived", conf("keepalived", priority=90, **FAST))  # type: ignore[arg-type]
    r1 = lab.start("r1", "hafast", text)
    lab.wait_holder("r1", 8.0)
    lab.wait_for(lambda: VIP4 in (_filtered(lab, "r1") or ""), 3.0, "the VIP in r1's table")
    # The VIP is up and announced (ARP still answers), yet traffic to it is dropped,
    # while r1's own address still answers.
    assert _reachable(lab, ADDR4["r1"])
    assert not any(lab.client_ping(VIP4) for _ in range(2)), "no_accept master answered"
    assert lab.client_neigh_mac(VIP4) == lab.mac("r1")

    # keepalived (accept by default) takes over with a higher priority: r1 is
    # BACKUP and no longer filters; the VIP answers from r2.
    lab.stop(lab.routers["r2"])
    lab.start("r2", "keepalived", conf("keepalived", priority=110, **FAST))  # type: ignore[arg-type]
    lab.wait_holder("r2", 8.0)
    lab.wait_for(lambda: VIP4 not in (_filtered(lab, "r1") or ""), 3.0,
                 "the VIP out of r1's table")
    assert _reachable(lab, VIP4)
    lab.stop(r1)
    assert _filtered(lab, "r1") is None, "hafast left its nftables table behind"


def test_accept_mode_master_answers(lab: VrrpLab) -> None:
    # The default (keepalived's): accept; no table is ever made.
    lab.start("r1", "hafast", conf("hafast", priority=100, **FAST))  # type: ignore[arg-type]
    lab.wait_holder("r1", 8.0)
    assert _reachable(lab, VIP4)
    assert _filtered(lab, "r1") is None


def test_priority_fifo_lines_rx_lower_and_script_users(lab: VrrpLab) -> None:
    lab.tmp.chmod(0o755)  # the unprivileged notify scripts write their files here
    flag = lab.tmp / "healthy"
    flag.write_text("ok\n")
    fifo = lab.tmp / "notify.fifo"
    fifo_out = lab.tmp / "fifo.out"
    reader = lab.tmp / "reader.sh"
    reader.write_text(f'#!/bin/sh\nexec cat "$1" >> {fifo_out}\n')
    reader.chmod(0o755)
    who = lab.tmp / "who.out"
    who.touch(0o666)
    who.chmod(0o666)
    whoami = lab.tmp / "whoami.sh"
    whoami.write_text(f'#!/bin/sh\necho "$1 $(id -un)" >> {who}\n')
    whoami.chmod(0o755)
    text = conf("hafast", priority=100, script=(f"/usr/bin/test -e {flag}", -20),
                extra_global=f"  vrrp_notify_fifo {fifo}\n  vrrp_notify_fifo_script {reader}\n"
                "  script_user daemon", **FAST)  # type: ignore[arg-type]
    text = text.replace("  virtual_ipaddress {",
                        f'  notify_priority_changes\n  notify_master "{whoami} master" nobody\n'
                        f'  notify_backup "{whoami} backup"\n  virtual_ipaddress {{')
    lab.start("r1", "hafast", text)
    lab.wait_holder("r1", 8.0)
    # Split brain on purpose: r2 (keepalived) cannot hear r1, becomes master too and
    # adverts priority 90; r1, the master, hears that (MASTER_RX_LOWER_PRI).  When
    # r2 hears again, it yields to r1.
    lab.start("r2", "keepalived", conf("keepalived", priority=90, **FAST))  # type: ignore[arg-type]
    deaf = lab.ns("r2")
    run_in(deaf, ["nft", "add table inet deaf; add chain inet deaf in "
                  "{ type filter hook input priority 0; }; add rule inet deaf in "
                  "ip protocol vrrp drop"])
    try:
        lab.wait_for(lambda: fifo_out.exists() and "MASTER_RX_LOWER_PRI" in fifo_out.read_text(),
                     8.0, "MASTER_RX_LOWER_PRI")
    finally:
        run_in(deaf, ["nft", "delete", "table", "inet", "deaf"], check=False)
    lab.wait_holder("r1", 5.0)
    flag.unlink()  # 100 - 20 = 80 < 90: r2 preempts
    lab.wait_holder("r2", 5.0)
    flag.write_text("ok\n")  # 100 again: r1 preempts back
    lab.wait_holder("r1", 5.0)
    # r1 holds the VIP a moment before its FIFO says MASTER: the line is the last of
    # seven or more, and a CI run read six, the last one still to come
    lab.wait_for(lambda: fifo_out.read_text().splitlines()[-1:] == ['INSTANCE "VI_1" MASTER 100']
                 and "BACKUP_PRIORITY" in fifo_out.read_text(), 5.0, "the FIFO's last MASTER")
    lines = _lines(fifo_out, 7, lab, "FIFO lines")
    assert lines[:2] == ['INSTANCE "VI_1" BACKUP 100', 'INSTANCE "VI_1" MASTER 100']
    assert 'INSTANCE "VI_1" MASTER_RX_LOWER_PRI 100' in lines
    rest = [ln for ln in lines[2:] if "RX_LOWER" not in ln]
    assert rest[:4] == ['INSTANCE "VI_1" MASTER_PRIORITY 80', 'INSTANCE "VI_1" BACKUP 80',
                        'INSTANCE "VI_1" BACKUP_PRIORITY 100', 'INSTANCE "VI_1" MASTER 100']
    # notify_master names its user; notify_backup falls back to script_user.
    seen = set(_lines(who, 3, lab, "notify scripts ran"))
    assert {"master nobody", "backup daemon"} <= seen


RELOAD = """
global_defs {{ vrrp_garp_master_delay 0
  vrrp_notify_fifo {fifo}
  vrrp_notify_fifo_script {reader} }}
{instances}
"""
INSTANCE = """vrrp_instance {name} {{ interface eth0
  virtual_router_id {vrid}
  priority {prio}
  version 3
  advert_int 0.1
  virtual_ipaddress {{ 10.77.0.{host}/24 }} }}
"""


def _reload_conf(lab: VrrpLab, fifo: Path, reader: Path, *insts: tuple[str, int, int]) -> str:
    body = "".join(INSTANCE.format(name=n, vrid=v, prio=p, host=100 + v - 60)
                   for n, v, p in insts)
    return RELOAD.format(fifo=fifo, reader=reader, instances=body)


def test_sighup_reload_applies_the_diff(lab: VrrpLab) -> None:
    fifo = lab.tmp / "notify.fifo"
    fifo_out = lab.tmp / "fifo.out"
    reader = lab.tmp / "reader.sh"
    reader.write_text(f'#!/bin/sh\nexec cat "$1" >> {fifo_out}\n')
    reader.chmod(0o755)
    conf_path = lab.tmp / "r1.conf"
    r1 = lab.start("r1", "hafast", _reload_conf(lab, fifo, reader, ("A", 81, 100),
                                                ("B", 82, 100), ("C", 83, 100)))
    vip = {"A": "10.77.0.121", "B": "10.77.0.122", "C": "10.77.0.123", "D": "10.77.0.124"}
    lab.wait_for(lambda: all(lab.has_vip("r1", vip[n]) for n in "ABC"), 8.0, "A, B, C master")
    before = _lines(fifo_out, 6, lab, "start-up lines")

    # A unchanged, B removed, C changed (priority), D added.
    conf_path.write_text(_reload_conf(lab, fifo, reader, ("A", 81, 100), ("C", 83, 110),
                                      ("D", 84, 100)))
    os.kill(r1.proc.pid, signal.SIGHUP)
    lab.wait_for(lambda: lab.has_vip("r1", vip["D"]) and not lab.has_vip("r1", vip["B"]),
                 8.0, "D up and B gone after SIGHUP")
    lines = _lines(fifo_out, len(before) + 3, lab, "reload lines")
    new = lines[len(before):]
    assert 'INSTANCE "B" FAULT 100' in new  # keepalived clear_diff_vrrp's default
    assert new[-2:] == ['INSTANCE "D" BACKUP 100', 'INSTANCE "D" MASTER 100'] or \
        {'INSTANCE "D" BACKUP 100', 'INSTANCE "D" MASTER 100'} <= set(new)
    assert not [ln for ln in new if '"A"' in ln or '"C"' in ln], new  # no transition
    assert lab.has_vip("r1", vip["A"]) and lab.has_vip("r1", vip["C"])

    # A broken file is rejected: nothing changes, the worker keeps running.
    conf_path.write_text("vrrp_instance A { interface eth0\n virtual_router_id 999\n }\n")
    os.kill(r1.proc.pid, signal.SIGHUP)
    lab.wait_for(lambda: "keeping the running configuration" in r1.log_text(), 5.0,
                 "the broken config rejected")
    time.sleep(0.3)
    assert r1.proc.poll() is None
    assert all(lab.has_vip("r1", vip[n]) for n in "ACD")
    assert len(fifo_out.read_text().splitlines()) == len(lines)


@pytest.mark.parametrize("pair", [("hafast", "keepalived"), ("keepalived", "hafast")],
                         ids=["hafast-keepalived", "keepalived-hafast"])
def test_ah_authentication_with_keepalived(lab: VrrpLab, pair: tuple[str, str]) -> None:
    # keepalived's auth_type AH (VRRPv2 in an IPsec AH header, HMAC-MD5-96 keyed
    # with auth_pass): each side must accept the other's adverts, or the backup
    # would take the VIP too after Master_Down_Interval (~3.6 s).
    k1, k2 = pair

    def ah(kind: str, priority: int) -> str:
        return conf(kind, priority=priority, auth_pass="s3cr3t").replace(
            "auth_type PASS", "auth_type AH")

    lab.start("r2", k2, ah(k2, 90))
    r1 = lab.start("r1", k1, ah(k1, 100))
    # r2 started first: had it been deaf to r1's adverts it would hold the VIP by now.
    lab.wait_holder("r1", 12.0)
    time.sleep(2.0)
    assert lab.holders(VIP4) == ["r1"], "the backup did not accept the master's AH adverts"
    lab.stop(r1)  # priority 0, AH-wrapped: r2 takes over at once (skew time)
    lab.wait_holder("r2", 4.0)
