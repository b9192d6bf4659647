"""Announce/withdraw latency (hafast.fleet.latency): the parser on answers recorded from
FRR 8.4.4 (tests/unit/fleet/data: ``show bgp neighbors json`` with the session up, and
``vtysh -c 'show bgp ipv4 unicast P json'`` three times in one call while P was
announced, then once after it was withdrawn: vtysh's answer to several ``-c`` is the
answers one after the other, split here into the answers bgpd's vty socket gives one
by one), the probe on a fake bgpd, the announcer's use of it,
and the metrics made from its status.
The real FRR is tests/netns/test_fleet_bgp.py's daemon arm."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hafast.config.loader import load_text
from hafast.config.model import BgpSpeaker, Config
from hafast.fleet import latency
from hafast.fleet.latency import LatencyProbe, parse_read, show_commands

DATA = Path(__file__).parent / "data"
VIP = "192.0.2.100/32"
R1, R9 = "10.0.1.1", "10.0.9.1"


def conf(pathspace: str = "") -> Config:
    res = load_text(f"""bgp_speaker {{
  local_as 65001
  router_id 10.255.0.1
  neighbor {R1} {{
    remote_as 65000
  }}
  neighbor {R9} {{
    remote_as 65009
  }}
  {f"frr_pathspace {pathspace}" if pathspace else ""}
}}
virtual_server 192.0.2.100 80 {{
  protocol TCP
  announce {{
    prefix {VIP}
    announce_delay 0
    drain_method med 500
    shutdown_drain_time 5
  }}
  real_server 10.1.0.1 80 {{
    TCP_CHECK {{
      connect_timeout 0.5
    }}
  }}
}}
""")
    assert res.ok, [d.format() for d in res.errors]
    return res.config


def speaker(pathspace: str = "") -> BgpSpeaker:
    sp = conf(pathspace).bgp_speaker
    assert sp is not None
    return sp


def recorded(name: str) -> list[str]:
    """A recording of several commands' answers (vtysh printed them one after the
    other) -> each command's answer."""
    text, at, out = (DATA / name).read_text(), 0, []
    decoder = json.JSONDecoder()
    while text[at:].strip():
        at += len(text[at:]) - len(text[at:].lstrip())
        _doc, end = decoder.raw_decode(text, at)
        out.append(text[at:end])
        at = end
    return out


def test_recorded_answers() -> None:
    up = (DATA / "frr844-bgp-neighbors-up.json").read_text()
    three = recorded("frr844-show-bgp-prefixes.txt")
    assert len(three) == 3
    # 192.0.2.100/32 out to the router; a prefix bgpd does not hold, v4 and v6: {}
    assert parse_read([up, *three]) == ({R1}, [{R1}, set(), set()])
    down = (DATA / "frr844-bgp-neighbors-down.json").read_text()
    withdrawn = recorded("frr844-show-bgp-prefix-withdrawn.txt")
    assert parse_read([down, *withdrawn]) == (set(), [set()])


@pytest.mark.parametrize("answers", [[""], ["{}", ""], ["{}", "[]"], ["[]", "{}"],
                                     ["{}", "% Unknown command"], ["{}", '{"a": 1} x']])
def test_an_answer_that_is_not_the_commands_json_is_refused(answers: list[str]) -> None:
    with pytest.raises(ValueError):
        parse_read(answers)


peers = st.sets(st.ip_addresses(v=4).map(str), max_size=4)


@given(st.lists(peers, min_size=1, max_size=6), st.sampled_from(["", "\n", " \n\t"]))
def test_parse_reads_back_what_was_written(sets: list[set[str]], gap: str) -> None:
    up = {addr: {"bgpState": "Established"} for s in sets for addr in s}
    answers = [gap + json.dumps(doc, indent=1) + gap for doc in [up] + [
        {"prefix": "p", "advertisedTo": {p: {} for p in s}} if s else {} for s in sets]]
    assert parse_read(answers) == (set(up), sets)


def test_one_read_asks_about_every_prefix() -> None:
    assert show_commands([VIP, "2001:db8::1/128"]) == [
        "show bgp neighbors json", f"show bgp ipv4 unicast {VIP} json",
        "show bgp ipv6 unicast 2001:db8::1/128 json"]


class FakeBgpd:
    """Answers each call: the ``established`` sessions, then each prefix from a script
    of advertisedTo sets, the last one repeating; records the calls."""

    def __init__(self, established: set[str], **script: list[set[str]]) -> None:
        self.established = established
        self.script = {k.replace("_", "."): v for k, v in script.items()}
        self.calls: list[list[str]] = []
        self.fail = 0  # calls to refuse first

    async def __call__(self, path: Path, commands: list[str]) -> list[str]:
        assert path == Path("/var/run/frr/bgpd.vty")
        self.calls.append(commands)
        await asyncio.sleep(0.005)
        if self.fail:
            self.fail -= 1
            raise OSError("cannot reach bgpd at /var/run/frr/bgpd.vty: No such file")
        out = [json.dumps({n: {"bgpState": "Established" if n in self.established
                               else "Active"} for n in (R1, R9)})]
        for command in commands[1:]:
            prefix = command.split()[4]
            seq = self.script[prefix.split("/")[0]]
            now = seq.pop(0) if len(seq) > 1 else seq[0]
            out.append(json.dumps({"prefix": prefix, "advertisedTo":
                                   {p: {} for p in now}}) if now else "{}")
        return out


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def probe(bgpd: FakeBgpd) -> LatencyProbe:
    return LatencyProbe(asyncio.get_running_loop(), speaker(), read=bgpd)


def measure(bgpd: FakeBgpd, *changes: tuple[str, str]) -> LatencyProbe:
    """A probe on ``bgpd`` told of each (prefix, direction) change, run until none is
    being measured."""
    async def go() -> LatencyProbe:
        p = probe(bgpd)
        for prefix, direction in changes:
            p.begin(prefix, direction)
        await settle(p)
        return p
    return run(go())


async def settle(p: LatencyProbe) -> None:
    for _ in range(500):
        if not p.pending:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"still measuring {p.pending}")


def test_an_announcement_counts_when_every_established_neighbor_has_it() -> None:
    async def go() -> tuple[LatencyProbe, FakeBgpd]:
        # R9's session is not Established: the announcement cannot reach it, and
        # is complete once R1 has it
        bgpd = FakeBgpd({R1}, **{"192_0_2_100": [set(), set(), {R1}]})
        p = probe(bgpd)
        p.begin(VIP, latency.ANNOUNCE)
        assert p.status(VIP)["measuring"] == "announce"
        await settle(p)
        return p, bgpd

    p, bgpd = run(go())
    assert len(bgpd.calls) == 3
    st_ = p.status(VIP)
    assert st_["withdraw"] is None and st_["unseen"] == 0 and st_["measuring"] is None
    assert st_["announce"]["count"] == 1
    # three reads of 5 ms after gaps of one, two and four PROBE_GAP_S
    assert st_["announce"]["last_s"] >= 3 * 0.005 + 7 * latency.PROBE_GAP_S


def test_a_withdrawal_counts_when_no_neighbor_has_it() -> None:
    bgpd = FakeBgpd({R1}, **{"192_0_2_100": [{R1, R9}, {R9}, set()]})
    st_ = measure(bgpd, (VIP, latency.WITHDRAW)).status(VIP)
    assert st_["withdraw"]["count"] == 1 and st_["announce"] is None


def test_a_newer_change_supersedes_the_one_measured() -> None:
    bgpd = FakeBgpd({R1}, **{"192_0_2_100": [set()]})
    # the announcement is never seen (R1 is not in advertisedTo); the withdrawal is
    st_ = measure(bgpd, (VIP, latency.ANNOUNCE), (VIP, latency.WITHDRAW)).status(VIP)
    assert st_["announce"] is None and st_["withdraw"]["count"] == 1
    assert st_["unseen"] == 0


def test_a_change_bgpd_never_puts_out_is_unseen_and_logged(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(latency, "PROBE_LIMIT_S", 0.1)

    bgpd = FakeBgpd({R1}, **{"192_0_2_100": [set()]})
    with caplog.at_level(logging.WARNING, "hafast.fleet"):
        st_ = measure(bgpd, (VIP, latency.ANNOUNCE)).status(VIP)
    assert st_["unseen"] == 1 and st_["announce"] is None
    assert ("bgpd had not put out the announce 0 s after the route changed (sessions "
            "Established: 10.0.1.1)") in caplog.text


def test_failed_reads_are_logged_once_and_the_probe_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    bgpd = FakeBgpd({R1}, **{"192_0_2_100": [{R1}]})
    bgpd.fail = 3
    with caplog.at_level(logging.WARNING, "hafast.fleet"):
        st_ = measure(bgpd, (VIP, latency.ANNOUNCE)).status(VIP)
    assert st_["announce"]["count"] == 1
    assert caplog.text.count("cannot read bgpd's routes") == 1


def test_changes_at_once_share_one_read() -> None:
    bgpd = FakeBgpd({R1}, **{"192_0_2_100": [set()], "192_0_2_101": [set()]})
    measure(bgpd, (VIP, latency.WITHDRAW), ("192.0.2.101/32", latency.WITHDRAW))
    assert len(bgpd.calls) == 1 and len(bgpd.calls[0]) == 3


# ------------------------------------------------------------------ in the announcer
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, fn: Any, *args: Any) -> Any:
        return None

    def call_soon(self, fn: Any, *args: Any) -> Any:
        return None

    def create_task(self, coro: Any) -> Any:
        coro.close()


class Kernel:
    """Every route change is a change (True), as the first one in a fresh kernel."""

    def ours(self) -> set[str]:
        return set()

    def __getattr__(self, name: str) -> Any:
        return lambda prefix: True


class Probe:
    def __init__(self, loop: Any, speaker: BgpSpeaker) -> None:
        self.calls: list[tuple[str, str]] = []

    def begin(self, prefix: str, direction: str) -> None:
        self.calls.append((direction, prefix))

    def cancel(self, prefix: str) -> None:
        self.calls.append(("cancel", prefix))

    def status(self, prefix: str) -> dict[str, Any]:
        return {"announce": {"last_s": 0.2, "count": 1, "sum_s": 0.2, "max_s": 0.2},
                "withdraw": None, "unseen": 0, "skipped": 0, "measuring": None}

    def reconfigure(self, speaker: BgpSpeaker) -> None: ...

    def stop(self) -> None: ...


class Watch:
    def __init__(self, loop: Any, speaker: BgpSpeaker) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def reconfigure(self, speaker: BgpSpeaker) -> None: ...

    def status(self) -> list[dict[str, Any]]:
        return []


def test_the_announcer_measures_each_route_it_changes() -> None:
    from hafast.fleet.runner import Announcer

    cfg = conf()
    key = cfg.virtual_servers[0].key
    quorum = {key: True}
    a = Announcer(Clock(), Kernel(), watch=Watch, probe=Probe)  # type: ignore[arg-type]
    a.start(cfg, quorum.__getitem__)
    a.rounds_done(0, [key])  # announce_delay 0: announced at once
    p = a.probe
    assert isinstance(p, Probe)
    assert p.calls == [("announce", VIP)]
    quorum[key] = False
    a.sync(quorum.__getitem__)
    assert p.calls[-1] == ("withdraw", VIP)
    quorum[key] = True
    a.sync(quorum.__getitem__)
    a.drain()  # a drain changes attributes, not the Adj-RIB-Out: not measured
    assert p.calls[-2:] == [("announce", VIP), ("cancel", VIP)]
    assert a.status()[0]["latency"]["announce"]["count"] == 1


def test_without_a_bgp_speaker_there_is_no_latency() -> None:
    from hafast.fleet.runner import Announcer

    res = load_text("""virtual_server 192.0.2.100 80 {
  announce {
    prefix 192.0.2.100/32
  }
  real_server 10.1.0.1 80 { }
}""")
    a = Announcer(Clock(), Kernel(), watch=Watch, probe=Probe)  # type: ignore[arg-type]
    a.start(res.config, lambda key: True)
    assert a.probe is None and a.status()[0]["latency"] is None


def test_metrics_are_one_summary_per_prefix_and_direction() -> None:
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from hafast.status import metrics

    tally = {"last_s": 0.25, "count": 2, "sum_s": 0.4, "max_s": 0.25}
    fleet = [{"prefix": VIP, "state": "ANNOUNCED", "quorum": True, "transitions": {},
              "held_s": None, "own": None,
              "latency": {"announce": tally, "withdraw": None, "unseen": 1, "skipped": 0,
                          "measuring": None}},
             {"prefix": "192.0.2.101/32", "state": "WITHDRAWN", "quorum": False,
              "transitions": {}, "held_s": None, "own": None,
              "latency": {"announce": None, "withdraw": tally, "unseen": 0, "skipped": 0,
                          "measuring": "withdraw"}}]
    server = metrics.MetricsServer("127.0.0.1:0", lambda: {"fleet": fleet})
    text = generate_latest(server.registry).decode()
    assert text.count("# TYPE hafast_announce_latency_seconds summary") == 1
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    got = {(s.name, s.labels["prefix"], s.labels["direction"]): s.value
           for s in fams["hafast_announce_latency_seconds"].samples}
    assert got == {("hafast_announce_latency_seconds_count", VIP, "announce"): 2,
                   ("hafast_announce_latency_seconds_sum", VIP, "announce"): 0.4,
                   ("hafast_announce_latency_seconds_count", "192.0.2.101/32",
                    "withdraw"): 2,
                   ("hafast_announce_latency_seconds_sum", "192.0.2.101/32",
                    "withdraw"): 0.4}
    last = {s.labels["prefix"]: s.value
            for s in fams["hafast_announce_latency_last_seconds"].samples}
    assert last == {VIP: 0.25, "192.0.2.101/32": 0.25}
    unseen = {s.labels["prefix"]: s.value
              for s in fams["hafast_announce_latency_unseen"].samples}
    assert unseen == {VIP: 1, "192.0.2.101/32": 0}
    # no bgp_speaker: no latency series
    for vip in fleet:
        vip["latency"] = None
    assert b"hafast_announce_latency" not in generate_latest(server.registry)


def test_a_change_while_no_session_is_up_is_read_once() -> None:
    """The first read shows no configured neighbor Established (a director starting
    up, its up-link down): nobody to put the change out to; no further read."""
    bgpd = FakeBgpd(set(), **{"192_0_2_100": [set()]})
    p = measure(bgpd, (VIP, latency.WITHDRAW))
    assert len(bgpd.calls) == 1 and p.status(VIP)["skipped"] == 1
    assert p.status(VIP) == {"announce": None, "withdraw": None, "unseen": 0, "skipped": 1,
                             "measuring": None}


def test_a_change_never_agreed_costs_few_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gaps double up to PROBE_GAP_MAX_S: a change bgpd never puts out is read
    about 24 times in its PROBE_LIMIT_S, not every 20 ms."""
    monkeypatch.setattr(latency, "PROBE_LIMIT_S", 1.0)
    monkeypatch.setattr(latency, "PROBE_GAP_MAX_S", 0.1)

    bgpd = FakeBgpd({R1}, **{"192_0_2_100": [set()]})
    measure(bgpd, (VIP, latency.ANNOUNCE))
    # 20, 40, 80 ms, then 100 ms apart until 1 s: about a dozen reads, not fifty
    assert 5 <= len(bgpd.calls) <= 14
