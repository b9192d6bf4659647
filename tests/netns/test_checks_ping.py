"""PING_CHECK against the farm: one shared echo engine, drop (timeout), reject
(ICMP unreachable), recovery, many targets in one batch."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hafast.check import icmp
from hafast.lab import Farm
from tests.netns.check_fixtures import (
    CONNECT_TIMEOUT,
    DELAY_BEFORE_RETRY,
    DETECT,
    RECOVER,
    RETRY,
    SLACK,
    apply,
    config_for,
    farm_for,
    recover,
    scenario,
)

pytestmark = [pytest.mark.root, pytest.mark.netns]


@pytest.fixture(scope="module")
def farm() -> Iterator[Farm]:
    with farm_for("p", count=64) as lab:
        yield lab


@pytest.fixture(autouse=True)
def _clean(farm: Farm) -> Iterator[None]:
    yield
    farm.faults.recover()


def test_ping_drop_reject_recover(farm: Farm) -> None:
    ok, dropped, rejected = farm.addresses[:3]
    cfg = config_for([ok, dropped, rejected], None, "PING_CHECK")
    tl = scenario(farm, cfg, [
        (1.0, "fault", lambda: (apply(farm, [dropped], "drop")(),
                                apply(farm, [rejected], "reject")())),
        (4.5, "recover", recover(farm, [dropped, rejected])),
    ], duration=6.5)
    assert tl.states(ok) == []
    assert tl.states(dropped) == ["DOWN", "UP"]
    assert tl.states(rejected) == ["DOWN", "UP"]
    least = CONNECT_TIMEOUT + RETRY * (DELAY_BEFORE_RETRY + CONNECT_TIMEOUT)
    assert least - 0.05 <= tl.first(dropped, "DOWN", after="fault") <= DETECT + SLACK
    assert (RETRY * DELAY_BEFORE_RETRY - 0.05 <= tl.first(rejected, "DOWN", after="fault")
            <= DETECT + SLACK)
    reasons = {e.real_server[0]: e.reason for _, e in tl.events if e.state == "DOWN"}
    assert reasons == {dropped: "PING_CHECK timeout", rejected: "PING_CHECK unreachable"}
    for addr in (dropped, rejected):
        assert tl.first(addr, "UP", after="recover") <= RECOVER + SLACK


def test_every_ping_check_shares_one_engine(farm: Farm) -> None:
    addrs = farm.addresses
    seen: list[int] = []

    def count_pools() -> None:
        seen.append(len(icmp._pools))

    tl = scenario(farm, config_for(addrs, None, "PING_CHECK", alpha=True),
                  [(0.5, "count", count_pools)], duration=1.5)
    assert seen == [1]
    assert all(tl.states(a) == ["UP"] for a in addrs)
    assert not icmp._pools  # released when the engine stopped
    assert tl.counters["ok"] >= len(addrs)


def test_layer7_faults_do_not_move_ping(farm: Farm) -> None:
    addrs = farm.addresses[3:6]
    kinds = ("http500", "body", "slow")
    tl = scenario(farm, config_for(addrs, None, "PING_CHECK"), [
        (0.2, "fault", lambda: [farm.faults.apply([a], k) for a, k in
                                zip(addrs, kinds, strict=True)]),
    ], duration=2.0)
    assert tl.events == []
    assert tl.counters["ok"] == tl.counters["attempts"]
