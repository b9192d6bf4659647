"""The daemon end to end: the seed's MASTER/BACKUP pair on a VIP with real servers
behind it, in namespaces, with the nftables pool backend on the host kernel.

Transitions are counted through the notify FIFO; pool changes through the backend
counters the parent reports (``status()["pools"]["changes"]``).
"""

from __future__ import annotations

import functools
import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hafast.lab.netns import call_in
from tests.conftest import require_root, require_tool
from tests.netns.daemon_fixtures import VIP, PairLab

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[PairLab]:
    require_root()
    require_tool("nginx")
    require_tool("nft")
    lab = PairLab(count=1000, dir=tmp_path)
    try:
        yield lab.build()
    finally:
        lab.close()


def transitions(lines: list[str]) -> list[str]:
    return [x for x in lines if x.startswith("INSTANCE")]


def settled_pool(st: dict[str, Any], count: int) -> bool:
    vs = st["pools"]["virtual_servers"][0]["real_servers"]
    return len(vs) == count and all(r["pool_weight"] == 1 for r in vs)


def test_pair_restarts_metrics_and_stop(lab: PairLab) -> None:
    servers = lab.servers[:40]
    d1 = lab.start("d1", lab.conf("d1", servers, http=20), "--check-workers", "2",
                   "--metrics", "127.0.0.1:19650")
    d2 = lab.start("d2", lab.conf("d2", servers, http=20), "--check-workers", "1")
    d1.wait_ready()
    d2.wait_ready()
    lab.wait(lambda: lab.holders() == ["d1"], 15, "VIP on d1 only")
    st = d1.wait_for(lambda s: settled_pool(s, 40), 20, "40 servers in d1's pool")
    changes = dict(st["pools"]["changes"])
    assert changes == {"add-service": 1, "add-dest": 40}
    assert VIP in lab.nft_services("d1")
    assert lab.fifos is not None
    fifo1, fifo2 = lab.fifos["d1"], lab.fifos["d2"]
    lab.wait(lambda: transitions(fifo1.lines())[-1:] == ['INSTANCE "VI_1" MASTER 100'], 5,
             "d1 MASTER in its FIFO")
    seen1, seen2 = transitions(fifo1.lines()), transitions(fifo2.lines())
    assert seen2 == ['INSTANCE "VI_1" BACKUP 90']
    # the VRRP workers' pongs say when each master last advertised: the VIP guard
    # times a dead worker's release from it (a backup has none to say)
    st = d1.wait_for(lambda s: s["workers"][0]["last_advert_age"], 5, "d1's advert times")
    ages = st["workers"][0]["last_advert_age"]
    assert set(ages) == {"VI_1"} and 0 <= ages["VI_1"] < 3
    assert d2.status()["workers"][0]["last_advert_age"] == {}

    # a real server fails: it leaves the pool, and comes back after recovery
    lab.farm.faults.apply([servers[3]], "reject")
    d1.wait_for(lambda s: s["pools"]["changes"].get("del-dest") == 1, 15, "server out")
    lab.farm.faults.recover([servers[3]])
    st = d1.wait_for(lambda s: settled_pool(s, 40), 15, "server back")
    changes = dict(st["pools"]["changes"])
    assert changes == {"add-service": 1, "add-dest": 41, "del-dest": 1}

    # kill -9 a check worker: restarted from the last health, no pool change
    os.kill(d1.worker_pid("check"), signal.SIGKILL)
    d1.wait_for(lambda s: s["workers"][1]["restarts"] == 1 and s["workers"][1]["answering"],
                15, "check worker back")
    time.sleep(2.5)  # a couple of delay_loops of the new worker
    assert d1.status()["pools"]["changes"] == changes

    # kill -9 the VRRP worker: restarted as MASTER, the VIP never leaves d1
    victim = d1.worker_pid("vrrp")
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 6
    flaps = []
    while time.monotonic() < deadline:
        holders = lab.holders()
        if holders != ["d1"]:
            flaps.append(holders)
        time.sleep(0.02)
    # On a loaded machine the successor may not be advertising in time: the guard then
    # releases the VIP by design (never two masters; tests/netns/test_chaos_workers.py
    # counts such releases), and d1 takes it back as a new MASTER.  In a failed CI
    # run the VIP was off d1 for a few seconds this way.  Anything else is a defect.
    released = "released the VIPs of VI_1" in d1.log_text()
    if flaps and released:
        assert ["d1", "d2"] not in flaps, flaps  # never on both
        lab.wait(lambda: lab.holders() == ["d1"], 30, "the VIP back on d1")
        st = d1.wait_for(lambda s: s["vrrp"][0]["data"]["state_name"] == "MASTER", 30,
                         "d1 MASTER again")
        print(f"\nthe guard released the VIP after the VRRP worker's SIGKILL (loaded "
              f"machine): {len(flaps)} samples without d1 holding it")
    else:
        st = d1.status()
        assert st["workers"][0]["restarts"] == 1
        assert st["vrrp"][0]["data"]["state_name"] == "MASTER"
        assert flaps == [], d1.log_text()[-3000:]
        assert transitions(fifo1.lines()) == seen1 and transitions(fifo2.lines()) == seen2
    assert st["workers"][0]["name"] == "vrrp"
    # the pool's notify lines went to the same FIFO, keepalived's way
    assert "RS [10.201.0.4]:tcp:80 [10.200.0.100]:tcp:80 DOWN" in fifo1.lines()
    assert d1.status()["pools"]["changes"] == changes

    # the metrics endpoint, scraped from d1's namespace and parsed
    def scrape() -> str:
        with urllib.request.urlopen("http://127.0.0.1:19650/metrics", timeout=5) as r:
            return str(r.read().decode())

    fams = {f.name: f for f in text_string_to_metric_families(call_in(lab.ns("d1"), scrape))}
    state = fams["keepalived_vrrp_state"].samples[0]
    assert state.labels["iname"] == "VI_1" and state.labels["vrid"] == "51"
    assert state.value == 2
    assert fams["keepalived_become_master"].samples[0].value >= 1
    assert fams["keepalived_advertisements_sent"].samples[0].value > 0
    ups = [s.value for s in fams["hafast_real_server_up"].samples]
    assert len(ups) == 40 and all(v == 1 for v in ups)
    assert fams["hafast_check_latency_seconds"].samples
    restarts = {s.labels["worker"]: s.value for s in fams["hafast_worker_restarts"].samples}
    assert restarts["check0"] == 1
    assert restarts["vrrp"] == 1 or (released and restarts["vrrp"] >= 1)

    # SIGTERM: priority 0, VIPs and the pool released, d2 takes over at once
    assert d1.stop() == 0
    assert not lab.has_vip("d1")
    lab.wait(lambda: lab.holders() == ["d2"], 3, "d2 holds the VIP after d1's priority 0")
    assert VIP not in lab.nft_services("d1")
    assert transitions(fifo1.lines())[-1] == 'INSTANCE "VI_1" STOP 100'
    assert transitions(fifo2.lines())[-1] == 'INSTANCE "VI_1" MASTER 90'
    assert d2.stop() == 0
    assert lab.holders() == []


def reloads_reached(n: int, st: dict[str, Any]) -> bool:
    return bool(st["reloads"] == n)


def test_reload_under_load(lab: PairLab) -> None:
    """10 reloads while 1,000 real servers are checked: zero VRRP transitions, zero
    healthy servers removed."""
    servers = lab.servers
    d1 = lab.start("d1", lab.conf("d1", servers), "--check-workers", "2")
    d2 = lab.start("d2", lab.conf("d2", servers), "-P")
    d1.wait_ready(30)
    d2.wait_ready(30)
    lab.wait(lambda: lab.holders() == ["d1"], 15, "VIP on d1 only")
    st = d1.wait_for(lambda s: settled_pool(s, 1000), 30, "1000 servers in the pool")
    time.sleep(2)
    assert lab.fifos is not None
    fifo1, fifo2 = lab.fifos["d1"], lab.fifos["d2"]
    before1, before2 = fifo1.lines(), fifo2.lines()
    changes = dict(d1.status()["pools"]["changes"])
    assert changes == {"add-service": 1, "add-dest": 1000}
    conf_path = d1.dir / "d1.conf"
    for i in range(10):
        # every other reload changes every checker's timers (each is adopted, its
        # health kept); the others change nothing
        conf_path.write_text(lab.conf("d1", servers, delay_loop="1.5" if i % 2 == 0 else "1"))
        d1.signal(signal.SIGHUP)
        d1.wait_for(functools.partial(reloads_reached, i + 1), 20, f"reload {i + 1}")
        assert lab.holders() == ["d1"]
        time.sleep(0.3)
    time.sleep(2)
    st = d1.status()
    assert st["reload_errors"] == 0
    assert st["pools"]["changes"] == changes
    assert settled_pool(st, 1000)
    assert transitions(fifo1.lines()) == transitions(before1)
    assert transitions(fifo2.lines()) == transitions(before2)
    assert fifo1.lines() == before1  # no RS/VS notify either: nothing changed
    assert lab.holders() == ["d1"]
    assert d1.stop() == 0
    assert d2.stop() == 0
