"""The BGP/BFD session reader (hafast.fleet.sessions): the parser on answers recorded
from FRR 8.4.4's ``show bgp neighbors json`` (tests/unit/fleet/data: a director's
session with its router up, then after the director went silent behind nft), the
watch on a fake vtysh, and the metrics made from its status."""

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
from hafast.config.model import BgpSpeaker
from hafast.fleet.bgpdvty import socket_path
from hafast.fleet.sessions import Session, SessionWatch, parse_neighbors
from hafast.status.metrics import session_families

DATA = Path(__file__).parent / "data"


def speaker(pathspace: str = "") -> BgpSpeaker:
    res = load_text(f"""bgp_speaker {{
  local_as 65001
  router_id 10.255.0.1
  neighbor 10.0.1.1 {{
    remote_as 65000
    bfd
  }}
  neighbor 10.0.9.1 {{
    remote_as 65009
  }}
  {f"frr_pathspace {pathspace}" if pathspace else ""}
}}
""")
    assert res.ok, [d.format() for d in res.errors]
    assert res.config.bgp_speaker is not None
    return res.config.bgp_speaker


def test_an_established_session_with_bfd_up() -> None:
    got = parse_neighbors((DATA / "frr844-bgp-neighbors-up.json").read_text())
    assert got == {"10.0.1.1": Session(bgp="Established", up_s=3.0, bfd="up",
                                       last_reset="No AFI/SAFI activated for peer", drops=0)}


def test_a_session_dropped_by_bfd() -> None:
    got = parse_neighbors((DATA / "frr844-bgp-neighbors-down.json").read_text())
    assert got == {"10.0.1.1": Session(bgp="Idle", up_s=None, bfd="down",
                                       last_reset="BGP Notification send", drops=1)}


@pytest.mark.parametrize("text", ["", "not json", "[]", '"Idle"'])
def test_what_is_not_the_commands_answer_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_neighbors(text)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(max_size=8),
                    lambda kids: st.lists(kids, max_size=4)
                    | st.dictionaries(st.sampled_from(
                        ["bgpState", "bgpTimerUpMsec", "peerBfdInfo", "status",
                         "lastResetDueTo", "connectionsDropped", "x"]), kids, max_size=5),
                    max_leaves=20)


@given(st.dictionaries(st.text(max_size=6), JSON, max_size=4))
def test_any_json_object_parses_or_is_a_value_error(doc: dict[str, Any]) -> None:
    # FRR's answer is trusted, but a bgpd of another version must not crash the poller
    try:
        got = parse_neighbors(json.dumps(doc))
    except ValueError:
        return
    for s in got.values():
        assert isinstance(s.bgp, str) and isinstance(s.drops, int)


def test_the_pathspace_names_the_socket_as_vtyshs_minus_n() -> None:
    assert socket_path(speaker("fb1d1")) == Path("/var/run/frr/fb1d1/bgpd.vty")
    assert socket_path(speaker()) == Path("/var/run/frr/bgpd.vty")


class Answers:
    """A fake bgpd: each read returns the next answer (an exception is raised)."""

    def __init__(self, *answers: str | Exception) -> None:
        self.answers = list(answers)
        self.reads: list[tuple[Path, list[str]]] = []

    async def __call__(self, path: Path, commands: list[str]) -> list[str]:
        self.reads.append((path, commands))
        got = self.answers.pop(0)
        if isinstance(got, Exception):
            raise got
        return [got]


def polled(watch: SessionWatch, times: int) -> list[list[dict[str, Any]]]:
    async def go() -> list[list[dict[str, Any]]]:
        out = []
        for _ in range(times):
            await watch.poll()
            out.append(watch.status())
        return out
    return asyncio.run(go())


class Loop:
    def time(self) -> float:
        return 50.0


def test_the_watch_follows_a_session_down_and_logs_it(caplog: pytest.LogCaptureFixture) -> None:
    up = (DATA / "frr844-bgp-neighbors-up.json").read_text()
    down = (DATA / "frr844-bgp-neighbors-down.json").read_text()
    watch = SessionWatch(Loop(), speaker(), Answers(up, up, down))
    with caplog.at_level(logging.INFO, logger="hafast.fleet"):
        rows = polled(watch, 3)
    first = rows[0]
    assert first == [
        {"neighbor": "10.0.1.1", "remote_as": 65000, "bgp": "Established", "up_s": 3.0,
         "bfd_on": True, "bfd": "up", "drops": 0, "read_age_s": 0.0, "error": None},
        # configured, but FRR does not list it: unknown, not "down"
        {"neighbor": "10.0.9.1", "remote_as": 65009, "bgp": None, "up_s": None,
         "bfd_on": False, "bfd": None, "drops": None, "read_age_s": 0.0, "error": None}]
    assert rows[2][0]["bgp"] == "Idle" and rows[2][0]["bfd"] == "down"
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert said == [
        ("INFO", "BGP session 10.0.1.1: Established, BFD up"),  # the first read
        ("WARNING", "BGP session 10.0.1.1: Established -> Idle (BGP Notification send)"),
        ("WARNING", "BFD session 10.0.1.1: up -> down")]


def test_a_failed_read_leaves_nothing_stale_and_is_said_once(
        caplog: pytest.LogCaptureFixture) -> None:
    up = (DATA / "frr844-bgp-neighbors-up.json").read_text()
    dead = OSError("vtysh: Exiting: failed to connect to any daemons.")
    watch = SessionWatch(Loop(), speaker(), Answers(up, dead, dead, up))
    with caplog.at_level(logging.INFO, logger="hafast.fleet"):
        rows = polled(watch, 4)
    assert [r[0]["bgp"] for r in rows] == ["Established", None, None, "Established"]
    assert rows[1][0]["error"] == str(dead) and rows[1][0]["read_age_s"] is None
    assert [r.getMessage() for r in caplog.records].count(
        f"BGP sessions: cannot read them from FRR ({dead})") == 1
    assert "BGP sessions: read from FRR again" in caplog.text


def test_the_metrics_count_an_unknown_session_as_down() -> None:
    up = (DATA / "frr844-bgp-neighbors-up.json").read_text()
    rows = polled(SessionWatch(Loop(), speaker(), Answers(up)), 1)[0]
    got = {(s.name, tuple(s.labels.items()), s.value)
           for f in session_families({"fleet_sessions": rows}) for s in f.samples}
    assert got == {
        ("hafast_bgp_session_established", (("neighbor", "10.0.1.1"),), 1),
        ("hafast_bgp_session_established", (("neighbor", "10.0.9.1"),), 0),
        ("hafast_bfd_session_up", (("neighbor", "10.0.1.1"),), 1),
        ("hafast_bgp_session_drops_total", (("neighbor", "10.0.1.1"),), 0),
        ("hafast_bgp_sessions_read_age_seconds", (), 0.0)}
    assert list(session_families({"fleet_sessions": None})) == []
