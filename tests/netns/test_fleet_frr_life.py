"""hafast runs the director's FRR, or keeps an operator-run one on its config
(``bgp_speaker { frr_control run | reload }``, hafast/fleet/frrlife.py; issue 18).

The fleet lab (tests/netns/fleet_fixtures.py): a router running FRR (started by the
test) and director d1 running the full hafast daemon (pools in memory: the host
kernel has no IPVS).  The router's kernel table is the judge throughout.

- ``run``: hafast starts zebra, bfdd and bgpd in d1 with its rendered config, and the
  VIP reaches the router.  A reload that adds a VIP is applied to the running bgpd by
  frr-reload.py, and the session stays up (bgpd's pid, the session's drop count).
  A SIGKILLed bgpd is started again and announces again.  A SIGKILL of hafast's whole
  process group leaves FRR up and the VIP at the router; the restarted hafast adopts the
  daemons (same pids).  SIGTERM withdraws and then stops them.
- ``reload``: the test runs d1's FRR with empty configs, as an operator's FRR before
  hafast; hafast puts its rendering in with frr-reload.py, and the VIP reaches the
  router.  A rendering FRR refuses is not the case here (the unit tests check the
  refusal path on a fake vtysh).

The daemons hafast starts are not its children (``-d``): the test ends them by the pids
in their pid files, and removes their run folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hafast.fleet.sessions import POLL_S
from tests.netns.daemon_fixtures import Daemon, start_daemon
from tests.netns.fleet_fixtures import (
    ROUTER_BFDD,
    VIP,
    Lab,
    director_conf,
    gateways,
    holds,
    ns,
    open_lab,
    router_bgpd,
    wait_for,
    wait_gateways,
)

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(300)]

VIP2 = "192.0.2.101"
D1 = "10.0.1.2"  # d1's address on the router's link: the next hop it announces
DAEMONS = ("zebra", "bfdd", "bgpd")


@pytest.fixture
def lab() -> Iterator[Lab]:
    with open_lab((1,)) as built:
        run = Path("/var/run/frr") / ns("d1")

        def end_frr() -> None:
            # the FRR daemons hafast started (-d: not its children, nor ours)
            for daemon in DAEMONS:
                pid = _pid(daemon)
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
            shutil.rmtree(run, ignore_errors=True)
        built.reg.defer("the FRR daemons hafast started", end_frr)
        yield built


def _pid(daemon: str) -> int | None:
    try:
        pid = int((Path("/var/run/frr") / ns("d1") / f"{daemon}.pid").read_text())
        return pid if Path(f"/proc/{pid}/comm").read_text().strip() == daemon else None
    except (OSError, ValueError):
        return None


def _start(lab: Lab, mode: str, vips: tuple[str, ...], run: int = 1) -> Daemon:
    extra = f"frr_control {mode}\n  frr_dir {lab.base / 'd1-frr'}"
    d = start_daemon(lab.base / f"d1-daemon{run}", director_conf(1, vips, speaker_extra=extra),
                     ns=ns("d1"), extra=["--pool-backend", "memory"])
    lab.reg.defer(f"daemon {d.proc.pid}", d.close)
    lab.daemons[1], lab.pids[1], lab.logs[1] = d, d.proc.pid, d.log
    return d


def _killed_and_back(d: Daemon, daemon: str, pid: int | None) -> tuple[float, float]:
    """SIGKILL the FRR daemon hafast runs: (seconds until hafast started another, the
    monotonic time of the kill)."""
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    back = wait_for(lambda: _pid(daemon) not in (None, pid), 15)
    assert back is not None, d.log_text()[-3000:]
    return back, t0


def _router(lab: Lab) -> None:
    lab.start_frr("rtr", {"zebra": "hostname rtr\n", "bfdd": ROUTER_BFDD,
                          "bgpd": router_bgpd((1,))})


def _established(st: dict[str, object]) -> bool:
    rows = st.get("fleet_sessions") or [{}]
    return rows[0].get("bgp") == "Established"  # type: ignore[index,union-attr]


def test_hafast_runs_frr(lab: Lab) -> None:
    router = ns("rtr")
    lab.start_real_server(1)
    _router(lab)
    d = _start(lab, "run", (VIP,))
    took = wait_gateways(router, {D1}, 60)
    assert took is not None, f"{gateways(router)}\n{lab.explain()}\n{d.log_text()[-3000:]}"
    pids = {daemon: _pid(daemon) for daemon in DAEMONS}
    assert None not in pids.values(), pids
    st = d.wait_for(_established, POLL_S + 10, "the session Established in the status")
    frr = st["fleet_frr"]
    assert frr["control"] == "run" and frr["applied"] == 1 and frr["daemons"] == pids, (
        frr, d.log_text()[-3000:])
    assert (lab.base / "d1-frr" / "bgpd.conf").read_text().startswith("ip prefix-list")
    print(f"\n[run] hafast started FRR; {VIP} at the router {took:.2f} s after hafast started")

    # a reload that adds a VIP: frr-reload.py changes the running bgpd, no restart
    drops0 = st["fleet_sessions"][0]["drops"]
    (d.dir / "hafast.conf").write_text(director_conf(
        1, (VIP, VIP2), speaker_extra=f"frr_control run\n  frr_dir {lab.base / 'd1-frr'}"))
    d.signal(signal.SIGHUP)
    took = wait_gateways(router, {D1}, 30, vip=VIP2)
    assert took is not None, f"{VIP2} not announced: {d.log_text()[-3000:]}"
    st = d.wait_for(lambda s: s["fleet_frr"]["applied"] == 2, 30, "the second apply")
    assert {daemon: _pid(daemon) for daemon in DAEMONS} == pids, "a daemon restarted"
    st = d.wait_for(lambda s: s["fleet_sessions"][0]["read_age_s"] is not None
                    and s["fleet_sessions"][0]["read_age_s"] < 1, POLL_S + 10, "a fresh read")
    assert st["fleet_sessions"][0]["drops"] == drops0, st["fleet_sessions"]
    assert D1 in gateways(router), "the reload moved the first VIP"
    print(f"[run] reload adding {VIP2}: applied by frr-reload, at the router in {took:.2f} s")

    # bgpd dies: hafast starts it again and it announces again
    old = pids["bgpd"]
    back, t0 = _killed_and_back(d, "bgpd", old)
    took = wait_gateways(router, {D1}, 60)
    assert took is not None, f"{gateways(router)}\n{lab.explain()}"
    assert f"FRR bgpd (pid {old}) is gone; starting it again" in d.log_text()
    assert d.status()["fleet_frr"]["restarts"] == {"bgpd": 1}, d.status()["fleet_frr"]
    print(f"[run] bgpd SIGKILLed: started again in {back:.2f} s, {VIP} back at the "
          f"router {time.monotonic() - t0:.2f} s after the kill")
    pids = {daemon: _pid(daemon) for daemon in DAEMONS}

    # zebra dies: hafast starts it again, bgpd and bfdd reconnect to it by themselves,
    # and the announce route (still in the kernel) is redistributed again
    old = pids["zebra"]
    back, t0 = _killed_and_back(d, "zebra", old)
    took = wait_for(lambda: D1 in gateways(router) and pids["bgpd"] == _pid("bgpd"), 60)
    assert took is not None, f"{gateways(router)}\n{lab.explain()}\n{d.log_text()[-2000:]}"
    d.wait_for(lambda s: s["fleet_frr"]["restarts"] == {"bgpd": 1, "zebra": 1}, 10,
               "zebra's restart counted")
    print(f"[run] zebra SIGKILLed: started again in {back:.2f} s; {VIP} at the router "
          f"{time.monotonic() - t0:.2f} s after the kill")
    # ... and bgpd follows the new zebra: a withdrawal and an announcement get through
    lab.stop_real_server(1)
    assert wait_for(lambda: D1 not in gateways(router), 30) is not None, gateways(router)
    lab.start_real_server(1)
    assert wait_for(lambda: D1 in gateways(router), 30) is not None, gateways(router)
    pids = {daemon: _pid(daemon) for daemon in DAEMONS}

    # hafast crashes (its whole process group): FRR and the announcement stay
    lab.crash_announcer(1)
    assert holds(lambda: D1 in gateways(router), 2.0), "the crash withdrew"
    assert {daemon: _pid(daemon) for daemon in DAEMONS} == pids, "FRR died with hafast"
    d = _start(lab, "run", (VIP, VIP2), run=2)
    d.wait_for(lambda s: (s.get("fleet_frr") or {}).get("daemons") == pids, 30,
               "the daemons adopted")
    assert holds(lambda: D1 in gateways(router), 3.0), "the restart withdrew"
    assert "FRR bgpd: running (pid" in d.log_text() and "adopted" in d.log_text()
    assert {daemon: _pid(daemon) for daemon in DAEMONS} == pids

    # SIGTERM: withdrawn, then the daemons hafast runs stop
    d.signal(signal.SIGTERM)
    assert wait_for(lambda: D1 not in gateways(router), 10) is not None
    assert d.proc.wait(20) == 0
    assert wait_for(lambda: all(_pid(x) is None for x in DAEMONS), 10) is not None, {
        x: _pid(x) for x in DAEMONS}


def test_hafast_reloads_an_operators_frr(lab: Lab) -> None:
    router = ns("rtr")
    lab.start_real_server(1)
    _router(lab)
    lab.start_frr("d1", {"zebra": "hostname d1\n", "bfdd": "", "bgpd": ""})  # the operator's
    d = _start(lab, "reload", (VIP,))
    took = wait_gateways(router, {D1}, 60)
    assert took is not None, f"{gateways(router)}\n{lab.explain()}\n{d.log_text()[-3000:]}"
    st = d.wait_for(_established, POLL_S + 10, "the session Established in the status")
    frr = st["fleet_frr"]
    assert frr["control"] == "reload" and frr["applied"] == 1 and frr["daemons"] is None, frr
    assert "FRR: running the rendered config" in d.log_text()
    print(f"\n[reload] {VIP} at the router {took:.2f} s after hafast started")


def _shared_conf(lab: Lab, tls_port: int) -> str:
    """VIP:80 announcing VIP and VIP2 (two prefix lines), VIP:443 announcing VIP too;
    443's one real server is checked on ``tls_port`` (81: nothing listens, no quorum)."""
    speaker = director_conf(1, (VIP,), speaker_extra=(
        f"frr_control run\n  frr_dir {lab.base / 'd1-frr'}")).split("virtual_server")[0]

    def vs(port: int, prefixes: tuple[str, ...], check_port: int) -> str:
        lines = "".join(f"    prefix {p}/32\n" for p in prefixes)
        return f"""virtual_server {VIP} {port} {{
  protocol TCP
  lvs_sched wlc
  lvs_method DR
  quorum 1
  announce {{
{lines}    announce_delay 1
  }}
  real_server 10.1.1.2 80 {{
    TCP_CHECK {{
      connect_port {check_port}
      connect_timeout 0.3
      retry 1
      delay_before_retry 0.2
      delay_loop 0.5
      warmup 0
    }}
  }}
}}
"""
    return speaker + vs(80, (VIP, VIP2), 80) + vs(443, (VIP,), tls_port)


def test_prefix_lines_and_a_prefix_shared_by_two_virtual_servers(lab: Lab) -> None:
    """Against the router's table: an announce block with two prefix lines announces
    both; VIP, which VIP:443's block names too, waits for 443's quorum as well (its
    real server checked on a dead port), comes when a reload mends 443's check, and
    goes with VIP2 when the real server stops (docs/fleet.md)."""
    router = ns("rtr")
    lab.start_real_server(1)
    _router(lab)
    d = start_daemon(lab.base / "d1-shared", _shared_conf(lab, 81), ns=ns("d1"),
                     extra=["--pool-backend", "memory"])
    lab.reg.defer(f"daemon {d.proc.pid}", d.close)
    lab.daemons[1], lab.pids[1], lab.logs[1] = d, d.proc.pid, d.log
    took = wait_gateways(router, {D1}, 60, vip=VIP2)
    assert took is not None, f"{VIP2}: {gateways(router, VIP2)}\n{lab.explain()}"
    st = d.wait_for(lambda s: len(s["fleet"]) == 2, 10, "two prefixes in the status")
    rows = {r["prefix"]: (r["state"], r["quorum"]) for r in st["fleet"]}
    assert rows == {f"{VIP}/32": ("WITHDRAWN", False), f"{VIP2}/32": ("ANNOUNCED", True)}
    assert holds(lambda: gateways(router, VIP) == set(), 1.0), "VIP announced without 443"
    print(f"\n[shared] {VIP2} at the router {took:.2f} s after start; {VIP} held back "
          "by VIP:443's quorum")

    (d.dir / "hafast.conf").write_text(_shared_conf(lab, 80))
    d.signal(signal.SIGHUP)
    took = wait_gateways(router, {D1}, 30)
    assert took is not None, f"{VIP} not announced after 443's check was mended"
    print(f"[shared] reload mending 443's check: {VIP} at the router {took:.2f} s later")

    lab.stop_real_server(1)
    assert wait_for(lambda: gateways(router, VIP) == gateways(router, VIP2) == set(),
                    30) is not None, (gateways(router, VIP), gateways(router, VIP2))
    d.signal(signal.SIGTERM)
    assert d.proc.wait(20) == 0
