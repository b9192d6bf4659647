"""UDP_CHECK, DNS_CHECK and SMTP_CHECK against small Python servers in the farm's
server namespace (nginx plays none of these), with the farm's drop/reject faults."""

from __future__ import annotations

import socket
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
    Timeline,
    apply,
    config_for,
    dns_answer,
    farm_for,
    recover,
    scenario,
    serve,
    smtp_session,
    udp_reply,
)

pytestmark = [pytest.mark.root, pytest.mark.netns]

UDP_PORT, DNS_PORT, SMTP_PORT = 5000, 53, 25


def _dns(query: bytes) -> bytes:
    reply = bytearray(dns_answer(query))
    if b"\x07missing" in query:
        reply[3] |= 3  # RFC 1035 §4.1.1: RCODE 3, name error
    return bytes(reply)


@pytest.fixture(scope="module")
def farm() -> Iterator[Farm]:
    with farm_for("u", count=24) as lab, \
            serve(lab, socket.SOCK_DGRAM, UDP_PORT, udp_reply(lambda d: d)), \
            serve(lab, socket.SOCK_DGRAM, DNS_PORT, udp_reply(_dns)), \
            serve(lab, socket.SOCK_STREAM, SMTP_PORT, smtp_session):
        yield lab


@pytest.fixture(autouse=True)
def _clean(farm: Farm) -> Iterator[None]:
    yield
    farm.faults.recover()


def fault_cycle(farm: Farm, addrs: list[str], port: int | None, checker: str, body: str = ""
                ) -> Timeline:
    _ok, dropped, rejected = addrs
    cfg = config_for(addrs, port, checker, body)
    return scenario(farm, cfg, [
        (1.0, "fault", lambda: (apply(farm, [dropped], "drop")(),
                                apply(farm, [rejected], "reject")())),
        (4.5, "recover", recover(farm, [dropped, rejected])),
    ], duration=6.5)


def assert_cycle(tl: Timeline, addrs: list[str], keyword: str, drop_reason: str | None,
                 reject_reason: str = "refused") -> None:
    ok, dropped, rejected = addrs
    assert tl.states(ok) == []
    assert tl.states(rejected) == ["DOWN", "UP"]
    assert (RETRY * DELAY_BEFORE_RETRY - 0.05 <= tl.first(rejected, "DOWN", after="fault")
            <= DETECT + SLACK)
    assert tl.first(rejected, "UP", after="recover") <= RECOVER + SLACK
    reasons = {e.real_server[0]: e.reason for _, e in tl.events if e.state == "DOWN"}
    assert reasons[rejected] == f"{keyword} {reject_reason}"
    if drop_reason is None:
        assert tl.states(dropped) == []  # silence is not a failure for this check
        return
    assert tl.states(dropped) == ["DOWN", "UP"]
    least = CONNECT_TIMEOUT + RETRY * (DELAY_BEFORE_RETRY + CONNECT_TIMEOUT)
    assert least - 0.05 <= tl.first(dropped, "DOWN", after="fault") <= DETECT + SLACK
    assert reasons[dropped] == f"{keyword} {drop_reason}"
    assert tl.first(dropped, "UP", after="recover") <= RECOVER + SLACK


def test_udp_with_required_reply(farm: Farm) -> None:
    addrs = farm.addresses[0:3]
    body = "      payload 68616661737401\n      require_reply 6861XX61737401\n"
    tl = fault_cycle(farm, addrs, UDP_PORT, "UDP_CHECK", body)
    assert_cycle(tl, addrs, "UDP_CHECK", "timeout")


def test_udp_without_required_reply_relies_on_icmp(farm: Farm) -> None:
    addrs = farm.addresses[3:6]
    tl = fault_cycle(farm, addrs, UDP_PORT, "UDP_CHECK", "      payload 00\n")
    assert_cycle(tl, addrs, "UDP_CHECK", None)


def test_udp_reply_mismatch(farm: Farm) -> None:
    a = farm.addresses[6]
    body = "      payload 0102\n      require_reply 0103\n"
    tl = scenario(farm, config_for([a], UDP_PORT, "UDP_CHECK", body), [], duration=1.5)
    assert tl.states(a) == ["DOWN"]
    assert tl.events[0][1].reason == "UDP_CHECK reply"


def test_dns(farm: Farm) -> None:
    addrs = farm.addresses[7:10]
    body = "      type A\n      name www.example.com\n"
    tl = fault_cycle(farm, addrs, DNS_PORT, "DNS_CHECK", body)
    assert_cycle(tl, addrs, "DNS_CHECK", "timeout")


def test_dns_name_error_fails(farm: Farm) -> None:
    a = farm.addresses[10]
    body = "      type SOA\n      name missing.example.\n"
    tl = scenario(farm, config_for([a], DNS_PORT, "DNS_CHECK", body), [], duration=1.5)
    assert tl.states(a) == ["DOWN"]
    assert tl.events[0][1].reason == "DNS_CHECK rcode"


def test_smtp(farm: Farm) -> None:
    addrs = farm.addresses[11:14]
    tl = fault_cycle(farm, addrs, SMTP_PORT, "SMTP_CHECK", "      helo_name lb.test\n")
    assert_cycle(tl, addrs, "SMTP_CHECK", "timeout")


def test_smtp_against_a_web_server_fails(farm: Farm) -> None:
    # nginx on port 80 never greets: the attempt runs into connect_timeout
    a = farm.addresses[14]
    tl = scenario(farm, config_for([a], 80, "SMTP_CHECK"), [], duration=2.0)
    assert tl.states(a) == ["DOWN"]


def test_smtp_hosts_time_out_on_their_own_connect_timeout(farm: Farm) -> None:
    # Two legacy host {} blocks, both at silent (dropped) addresses: each host is its own
    # checker with its own connect_timeout (keepalived 2.2.7 check_smtp.c), while retry
    # and delay_loop written in a host are the whole SMTP_CHECK's.
    a, short, long = farm.addresses[15:18]
    body = (f"      host {{\n        connect_ip {short}\n        connect_timeout 0.5\n"
            "        retry 0\n        delay_loop 10\n      }\n"
            f"      host {{\n        connect_ip {long}\n        connect_timeout 3\n      }}\n")
    cfg = config_for([a], SMTP_PORT, "SMTP_CHECK", body)
    farm.faults.apply([short, long], "drop")
    # by 2 s the short host has failed (the real server is DOWN), the long one is still
    # waiting for its connection: one timeout counted, not two
    tl = scenario(farm, cfg, [], duration=2.0)
    assert tl.states(a) == ["DOWN"]
    assert 0.45 <= tl.first(a, "DOWN") <= 0.5 + SLACK
    assert tl.events[0][1].reason == "SMTP_CHECK timeout"
    assert tl.counters.get("fail:timeout") == 1
    # the long host gives up at 3 s (and the short one does not retry: retry 0)
    tl = scenario(farm, cfg, [], duration=3.0 + SLACK + 0.5)
    assert tl.states(a) == ["DOWN"]
    assert tl.counters.get("fail:timeout") == 2
