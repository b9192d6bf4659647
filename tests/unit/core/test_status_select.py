"""`hafast status --down/--vs/--instance/--limit`: the parent's selection
(hafast.status.select), the request's checks (desk.status_filters) and the client's
exit statuses, over a fake control server (issue 16)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hafast.app import status_cli as cli
from hafast.app.cmdline import Options
from hafast.app.ctlproto import default_socket
from hafast.app.desk import status_filters
from hafast.status.select import select, vs_matcher
from tests.unit.control_server import serving


def _rs(i: int, alive: bool) -> dict[str, Any]:
    return {"address": f"10.1.0.{i}", "port": 80, "alive": alive, "weight": 1,
            "pool_weight": 1 if alive else None}


def status() -> dict[str, Any]:
    def inst(name: str, state: str) -> dict[str, Any]:
        return {"data": {"iname": name, "state_name": state, "state": 0,
                         "effective_priority": 100, "base_priority": 100, "vrid": 1,
                         "ifp_ifname": "eth0", "vips": []},
                "stats": {"advert_rcvd": 0, "advert_sent": 0}}

    vss = [{"name": "[10.0.0.1]:tcp:80", "quorum_up": True, "suspended": False,
            "real_servers": [_rs(i, i % 10 != 3) for i in range(100)]},
           {"name": "[2001:db8::1]:tcp:443", "quorum_up": True, "suspended": False,
            "real_servers": [_rs(i, True) for i in range(3)]},
           {"name": "FWM 7", "quorum_up": False, "suspended": False,
            "real_servers": [_rs(1, False)]},
           {"name": "[web]:80", "quorum_up": True, "suspended": False,
            "real_servers": [_rs(2, True)]}]
    return {"pid": 1, "config": "k.conf", "uptime": 1.0, "reloads": 0, "reload_errors": 0,
            "workers": [], "checkers": [],
            "vrrp": [inst("VI_1", "MASTER"), inst("VI_2", "FAULT"), inst("VI_3", "BACKUP")],
            "pools": {"backend": "memory", "changes": {}, "virtual_servers": vss}}


def names(st: dict[str, Any]) -> tuple[list[str], list[str]]:
    return ([v["name"] for v in st["pools"]["virtual_servers"]],
            [i["data"]["iname"] for i in st["vrrp"]])


def test_unfiltered_is_the_status_itself() -> None:
    st = status()
    assert select(st) is st


def test_down() -> None:
    out = select(status(), down=True)
    assert names(out) == (["[10.0.0.1]:tcp:80", "FWM 7"], ["VI_2"])
    first = out["pools"]["virtual_servers"][0]
    down = {f"10.1.0.{i}" for i in range(3, 100, 10)}
    assert {r["address"] for r in first["real_servers"]} == down
    assert first["counts"] == {"real_servers": 100, "alive": 90}
    assert out["selected"] == 3


@pytest.mark.parametrize(("spec", "want"), [
    ("10.0.0.1:80", "[10.0.0.1]:tcp:80"), ("10.0.0.1", "[10.0.0.1]:tcp:80"),
    ("[10.0.0.1]:tcp:80", "[10.0.0.1]:tcp:80"), ("[2001:DB8:0::1]:443", "[2001:db8::1]:tcp:443"),
    ("2001:db8::1", "[2001:db8::1]:tcp:443"), ("fwmark 7", "FWM 7"), ("FWM 7", "FWM 7"),
    ("fwmark:7", "FWM 7"), ("web", "[web]:80"), ("web:80", "[web]:80"),
])
def test_vs_spellings(spec: str, want: str) -> None:
    assert names(select(status(), vs=[spec])) == ([want], [])


@pytest.mark.parametrize("spec", ["10.0.0.1:81", "10.0.0.2:80", "fwmark 8", "[10.0.0.1]:udp:80",
                                  "nosuchgroup"])
def test_vs_matches_nothing(spec: str) -> None:
    out = select(status(), vs=[spec])
    assert out["selected"] == 0 and names(out) == ([], [])


def test_instance_and_combinations() -> None:
    assert names(select(status(), instance=["VI_1", "VI_3"])) == ([], ["VI_1", "VI_3"])
    assert names(select(status(), instance=["VI_1"], vs=["fwmark 7"])) == (["FWM 7"], ["VI_1"])
    assert names(select(status(), instance=["VI_1"], down=True)) == ([], [])
    assert select(status(), instance=["VI_1"], down=True)["selected"] == 0
    assert names(select(status(), vs=["10.0.0.1:80", "web"])) == (
        ["[10.0.0.1]:tcp:80", "[web]:80"], [])


def test_limit_keeps_the_down_rows_the_table_shows() -> None:
    out = select(status(), limit=5)
    rows = out["pools"]["virtual_servers"][0]["real_servers"]
    assert [r["address"] for r in rows[:5]] == [f"10.1.0.{i}" for i in range(5)]
    assert [r["address"] for r in rows[5:]] == [f"10.1.0.{i}" for i in (13, 23, 33, 43, 53)]
    text = cli.render(out, limit=5)
    assert text == cli.render(status(), limit=5)  # the same table from fewer rows
    assert "90/100 alive" in text and "... 95 more (9 down)" in text


def test_vs_matcher_is_not_fooled_by_the_protocol() -> None:
    assert vs_matcher("10.0.0.1:80")("[10.0.0.1]:udp:80")
    assert not vs_matcher("10.0.0.1:80")("[10.0.0.10]:tcp:80")


def test_status_filters_checks_the_request() -> None:
    assert status_filters({"cmd": "status"}) == {}
    assert status_filters({"down": False, "vs": [], "instance": None}) == {}
    assert status_filters({"instance": "VI_1", "limit": 0}) == {"instance": ["VI_1"], "limit": 0}
    for bad in ({"vs": 7}, {"instance": [1]}, {"limit": "5"}, {"limit": True}, {"limit": -2}):
        with pytest.raises(ValueError):
            status_filters(bad)


def test_default_socket_is_the_daemons() -> None:
    assert default_socket(None) == Options().control_path
    assert default_socket("blue") == Options(namespace="blue").control_path


@pytest.fixture
def ctl(tmp_path: Path) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A control server answering as the parent does (filters and all)."""
    path = str(tmp_path / "h.ctl")
    seen: list[dict[str, Any]] = []

    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        seen.append(req)
        asked = status_filters(req)
        return select(status(), **asked) if asked else status()

    with serving(path, handler):
        yield path, seen


def run(path: str, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    return cli.main(["--socket", path, *args], out=out), out.getvalue()


def test_client_json_unfiltered_is_the_whole_status(ctl: tuple[str, list[dict[str, Any]]]
                                                     ) -> None:
    path, seen = ctl
    rc, text = run(path, "--json")
    assert rc == 0 and json.loads(text) == status()
    assert seen[-1] == {"cmd": "status"}
    # one real server a line
    assert text.count("\n") > 100


def test_client_filters(ctl: tuple[str, list[dict[str, Any]]]) -> None:
    path, seen = ctl
    rc, text = run(path, "--down")
    assert rc == 0 and seen[-1] == {"cmd": "status", "down": True, "limit": 50}
    assert "VRRP  VI_2" in text and "VI_1" not in text
    assert "DOWN 10.1.0.3:80" in text and "UP  " not in text and "90/100 alive" in text
    rc, text = run(path, "--json", "--vs", "fwmark 7", "--instance", "VI_3")
    assert rc == 0
    assert seen[-1] == {"cmd": "status", "vs": ["fwmark 7"], "instance": ["VI_3"]}
    assert names(json.loads(text)) == (["FWM 7"], ["VI_3"])
    rc, text = run(path, "--vs", "10.9.9.9:80")
    assert rc == cli.NO_MATCH == 3 and "VS " not in text
    rc, _ = run(path, "--json", "--instance", "VI_9")
    assert rc == 3


def test_client_daemon_refuses(ctl: tuple[str, list[dict[str, Any]]],
                               capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = ctl
    # the parent checks the request: a negative limit never reaches select()
    from hafast.app.ctlproto import query

    assert "error" in query(path, "status", limit=-1)
    with pytest.raises(SystemExit):
        cli.main(["--socket", path, "--limit", "-1"])
    assert "--limit must be >= 0" in capsys.readouterr().err


_WORDS = st.sampled_from(["--json", "--down", "--socket", "-s", "--namespace", "--limit",
                          "--vs", "--instance", "-h", "--js", "--socket=/x", "-sNAME", "--",
                          "10.0.0.1:80", "web", "/run/x.ctl", "3", "007", "-1", "x1", ""])


@settings(max_examples=500, deadline=None)
@given(st.lists(_WORDS, max_size=7))
def test_quick_args_read_what_argparse_reads(words: list[str]) -> None:
    """``hafast status`` reads its plain options without argparse (its start-up,
    issue 16); whatever it reads so must be what argparse reads, and anything else
    goes to argparse (help, errors, abbreviations)."""
    quick = cli.quick_args(words)
    if quick is None:
        return
    ap = cli.parser()
    ap.exit = _no_exit  # type: ignore[method-assign]
    ap.error = _no_exit  # type: ignore[method-assign]
    try:
        want = vars(ap.parse_args(words))
    except _Exited:
        raise AssertionError(f"quick_args read {words} but argparse refuses it") from None
    assert vars(quick) == want


class _Exited(Exception):
    pass


def _no_exit(*_args: object, **_kw: object) -> None:
    raise _Exited


def test_quick_args_leave_help_and_mistakes_to_argparse() -> None:
    for words in (["-h"], ["--js"], ["--limit", "-1"], ["--limit", "x"], ["--vs"],
                  ["--socket=/x"], ["extra"]):
        assert cli.quick_args(words) is None, words
    assert vars(cli.quick_args(["--limit", "5", "-s", "b", "--json"])) == {
        "json": True, "down": False, "socket": None, "namespace": "b", "limit": 5,
        "vs": None, "instance": None}
