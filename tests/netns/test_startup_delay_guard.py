"""``vrrp_startup_delay`` under the full daemon: the never-two-masters guard unchanged.

The delay holds the instances' first Master_Down_Timer, not the VRRP worker's start:
the worker says "ready" and answers the heartbeat at once, so the parent's measured
start-up (:mod:`hafast.app.vipguard`) stays the interpreter's and a worker killed
while MASTER is restarted as MASTER, advertising before keepalived's takeover, with
its VIP never released and never on both directors.  Had the delay reached the
worker's start-up, each restart would take 12 s more: the parent would release the
VIP (keepalived takes over) and the restarted worker would start as BACKUP.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from tests.conftest import require_root, require_tool
from tests.netns.daemon_fixtures import PairLab
from tests.netns.test_never_two_masters import (
    HANDOVER_S,
    KEEPALIVED,
    Keepalived,
    Sampler,
    report,
    vrrp_worker,
)

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(180)]

# The parent resumes a killed master only if 1.5 x the worker's measured start-up
# fits in 1.75 advert intervals (hafast.app.vipguard): 17.5 s with 10 s adverts, so
# a start-up of a few seconds on a loaded box fits, and one that waited out a 12 s
# delay would not.  d1 (`state MASTER`) is master after 12 + 10 s, before
# keepalived's 30.6 s Master_Down_Interval runs out.
DELAY_S = 12
ADVERT = "10"


@pytest.fixture
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PairLab]:
    require_root()
    require_tool("nginx")
    require_tool("nft")
    require_tool(KEEPALIVED)
    lab = PairLab(count=4, dir=tmp_path_factory.mktemp("sdg"))
    try:
        yield lab.build()
    finally:
        lab.close()


def test_a_killed_master_worker_resumes_at_once_despite_the_startup_delay(lab: PairLab
                                                                         ) -> None:
    servers = lab.servers
    d1 = lab.start("d1", lab.conf("d1", servers, advert_int=ADVERT,
                                  extra_global=f"  vrrp_startup_delay {DELAY_S}"))
    ka = Keepalived(lab, "d2", lab.conf("d2", [], advert_int=ADVERT))
    sampler = Sampler(lab)
    try:
        d1.wait_ready(30)
        assert vrrp_worker(d1.status())["startup_s"] < DELAY_S
        lab.wait(lambda: lab.holders() == ["d1"], 40, "VIP on d1 only")
        sampler.start()
        for _ in range(2):
            victim = d1.worker_pid("vrrp")
            os.kill(victim, signal.SIGKILL)
            st = d1.wait_for(lambda st, v=victim: vrrp_worker(st)["pid"] != v  # type: ignore[misc]
                             and vrrp_worker(st)["answering"], 20, "the VRRP worker back")
            # The parent's measure of the start-up ends at "ready", not at the delay.
            assert vrrp_worker(st)["startup_s"] < DELAY_S, vrrp_worker(st)
            time.sleep(3)
        sampler.stop()
        assert sampler.longest() < HANDOVER_S, report("SIGKILL", sampler, d1, ka)
        # d1 held the VIP in every sample: resumed as MASTER both times, no flap.
        assert all(a and not b for _, a, b in sampler.samples), report("flap", sampler,
                                                                     d1, ka)
        w = vrrp_worker(d1.status())
        assert w["restarts"] == 2 and w["heartbeat_kills"] == 0
        log = d1.log_text()
        assert "released the VIPs" not in log and "not advertising by" not in log
        assert log.count("resumed as MASTER") == 2
    finally:
        sampler.halt.set()
        ka.close()
        d1.close()
