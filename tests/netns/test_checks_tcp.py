"""TCP_CHECK against the farm: healthy, drop, reject, recovery, alpha, a server that
accepts and never answers, bindto/fwmark/bind_if; exact retry semantics."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
    silent_listener,
)

pytestmark = [pytest.mark.root, pytest.mark.netns]


@pytest.fixture(scope="module")
def farm() -> Iterator[Farm]:
    with farm_for("t") as lab:
        yield lab


@pytest.fixture(autouse=True)
def _clean(farm: Farm) -> Iterator[None]:
    yield
    farm.faults.recover()


def test_drop_and_reject_go_down_with_retries_and_come_back(farm: Farm) -> None:
    ok, dropped, rejected = farm.addresses[:3]
    cfg = config_for([ok, dropped, rejected], 80, "TCP_CHECK")
    tl = scenario(farm, cfg, [
        (1.0, "fault", lambda: (apply(farm, [dropped], "drop")(),
                                apply(farm, [rejected], "reject")())),
        (4.5, "recover", recover(farm, [dropped, rejected])),
    ], duration=6.5)
    assert tl.states(ok) == []
    assert tl.states(dropped) == ["DOWN", "UP"]
    assert tl.states(rejected) == ["DOWN", "UP"]

    # Dropped: 1 + retry attempts, each running into connect_timeout, spaced by
    # delay_before_retry: never sooner than that, and within one delay_loop more.
    down = tl.first(dropped, "DOWN", after="fault")
    least = CONNECT_TIMEOUT + RETRY * (DELAY_BEFORE_RETRY + CONNECT_TIMEOUT)
    assert least - 0.05 <= down <= DETECT + SLACK
    # Rejected: refusals are immediate, so only the retry spacing counts.
    down = tl.first(rejected, "DOWN", after="fault")
    assert RETRY * DELAY_BEFORE_RETRY - 0.05 <= down <= DETECT + SLACK
    reasons = {e.real_server[0]: e.reason for _, e in tl.events if e.state == "DOWN"}
    assert reasons == {dropped: "TCP_CHECK timeout", rejected: "TCP_CHECK refused"}

    for addr in (dropped, rejected):
        assert tl.first(addr, "UP", after="recover") <= RECOVER + SLACK
    assert tl.counters["fail:timeout"] >= RETRY + 1
    assert tl.counters["fail:refused"] >= RETRY + 1


def test_alpha_starts_down_and_goes_up_on_first_success(farm: Farm) -> None:
    addrs = farm.addresses[3:8]
    tl = scenario(farm, config_for(addrs, 80, "TCP_CHECK", alpha=True), [], duration=1.5)
    for a in addrs:
        assert tl.states(a) == ["UP"]
        assert tl.first(a, "UP") < 1.0


def test_alpha_on_a_dead_server_stays_down_its_first_result_said_once(farm: Farm) -> None:
    a = farm.addresses[8]
    farm.faults.apply([a], "reject")
    tl = scenario(farm, config_for([a], 80, "TCP_CHECK", alpha=True), [], duration=1.5)
    # keepalived notifies an alpha checker's first result though it changes nothing
    assert tl.states(a) == ["DOWN"]
    assert tl.counters["fail:refused"] >= 2


def test_a_server_that_accepts_and_never_answers_is_up(farm: Farm) -> None:
    listener = silent_listener(farm, 9000)
    try:
        addrs = farm.addresses[9:11]
        tl = scenario(farm, config_for(addrs, 9000, "TCP_CHECK", alpha=True), [],
                      duration=1.5)
    finally:
        listener.close()
    assert [tl.states(a) for a in addrs] == [["UP"], ["UP"]]


def test_closed_port_is_refused(farm: Farm) -> None:
    a = farm.addresses[11]
    tl = scenario(farm, config_for([a], 9001, "TCP_CHECK"), [], duration=1.5)
    assert tl.states(a) == ["DOWN"]
    # three refusals delay_before_retry apart, then one attempt per delay_loop
    assert RETRY * DELAY_BEFORE_RETRY - 0.05 <= tl.first(a, "DOWN") <= DETECT + SLACK
    assert tl.counters["fail:refused"] == tl.counters["attempts"] >= RETRY + 1


def test_bind_options(farm: Farm) -> None:
    director = farm.directors[0]
    a, b, c = farm.addresses[12:15]
    opts = {
        a: f"      bindto {director.address}\n      bind_port 40123\n",
        b: "      fwmark 7\n",
        c: f"      bind_if {director.dev}\n",
    }
    cfgs = [config_for([addr], 80, "TCP_CHECK", body, alpha=True) for addr, body in opts.items()]
    vss = tuple(vs for cfg in cfgs for vs in cfg.virtual_servers)
    from dataclasses import replace

    cfg = replace(cfgs[0], virtual_servers=(
        replace(vss[0], real_servers=tuple(rs for vs in vss for rs in vs.real_servers)),))
    tl = scenario(farm, cfg, [], duration=1.5)
    assert [tl.states(x) for x in (a, b, c)] == [["UP"], ["UP"], ["UP"]]
    spec = cfg.virtual_servers[0].real_servers[0].checkers[0]
    assert (spec.bindto, spec.bind_port) == (director.address, 40123)  # type: ignore[attr-defined]


def test_a_bind_to_an_address_we_do_not_have_fails(farm: Farm) -> None:
    a = farm.addresses[15]
    cfg = config_for([a], 80, "TCP_CHECK", "      bindto 192.0.2.55\n", alpha=True)
    tl = scenario(farm, cfg, [], duration=1.0)
    assert tl.states(a) == ["DOWN"]  # alpha: its first result, then nothing
    assert tl.counters.get("fail:bind", 0) >= 1


def test_layer7_faults_do_not_move_a_layer4_check(farm: Farm) -> None:
    # http500, body and slow break HTTP, not the handshake: TCP_CHECK stays UP
    addrs = farm.addresses[:3]
    kinds = ("http500", "body", "slow")
    tl = scenario(farm, config_for(addrs, 80, "TCP_CHECK"), [
        (0.2, "fault", lambda: [farm.faults.apply([a], k) for a, k in
                                zip(addrs, kinds, strict=True)]),
    ], duration=2.5)
    assert tl.events == []
    assert tl.counters["ok"] == tl.counters["attempts"] >= 3 * 3
