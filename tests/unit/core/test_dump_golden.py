"""The dump renderers against keepalived 2.2.7's own files, without keepalived.

tests/data/keepalived-2.2.7-dumps holds what Debian's keepalived 2.2.7 wrote for
tests/netns/test_dump_compat.py's config and states (VI_M MASTER, VI_B a unicast
BACKUP of 10.77.0.2 at priority 250, VI_F FAULT by its failing vrrp_script and
VI_F2 FAULT through sync group G1), normalised by tests/dump_compare.py: the VRRP
sections of keepalived.data, keepalived.stats and keepalived.json.  The status
below is what hafast's VRRP worker reports in those states
(hafast.vrrp.report.instance_json); the renderers must give keepalived's bytes.
The netns test shows the worker really reports this.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hafast.config.loader import load_text
from hafast.status import dump
from hafast.vrrp.timers import master_down_interval_us
from tests import keepalived_exporter as exporter
from tests.dump_compare import CONF, VRRP_SECTIONS, normalise, sections

GOLDEN = Path(__file__).resolve().parents[2] / "data" / "keepalived-2.2.7-dumps"
COUNTERS = ("advert_rcvd", "advert_sent", "become_master", "release_master",
            "packet_len_err", "ip_ttl_err", "invalid_type_rcvd", "advert_interval_err",
            "addr_list_err", "invalid_authtype", "authtype_mismatch", "auth_failure",
            "pri_zero_rcvd", "pri_zero_sent")
KA_STATE = {"INIT": 0, "BACKUP": 1, "MASTER": 2, "FAULT": 3}


def instance(name: str, ifname: str, vrid: int, priority: int, state: str, want: str,
             *, src: str, group: str | None, fd: int, faults: tuple[str, ...] = (),
             master: str | None = None, master_priority: int = 0) -> dict[str, Any]:
    stats = dict.fromkeys(COUNTERS, 0)
    stats.update(advert_sent=3 if state == "MASTER" else 0,
                 advert_rcvd=4 if master else 0, become_master=int(state == "MASTER"))
    return {
        "data": {"iname": name, "ifp_ifname": ifname, "vrid": vrid, "version": 2,
                 "base_priority": priority, "effective_priority": priority,
                 "state": KA_STATE[state], "wantstate": KA_STATE[want],
                 "master_priority": master_priority, "vipset": state == "MASTER",
                 "adver_int": 1.0, "master_adver_int": 1.0, "accept": 1, "nopreempt": 0,
                 "preempt_delay": 0.0, "strict_mode": 0, "garp_delay": 5.0,
                 "lower_prio_no_advert": 0, "higher_prio_send_advert": 0,
                 "last_transition": 1796545862.681238, "vips": [], "evips": [],
                 "state_name": state, "auth_type": 0},
        "stats": stats,
        "ka": {"fd": fd, "master_router": master, "src_ip": src, "group": group,
               "own_faults": sum(1 for f in faults if not f.startswith("sync:")),
               "master_down_us": master_down_interval_us(2, priority, 1_000_000)},
        "faults": list(faults),
    }


def status() -> dict[str, Any]:
    return {"pid": 1, "config": "/etc/keepalived/keepalived.conf", "uptime": 5.0,
            "reloads": 0, "workers": [], "checkers": [], "pools": None, "vrrp": [
                instance("VI_M", "eth0", 51, 200, "MASTER", "MASTER", src="10.77.0.1",
                         group="224.0.0.18", fd=13),
                instance("VI_B", "eth0", 52, 100, "BACKUP", "BACKUP", src="10.77.0.1",
                         group=None, fd=13, master="10.77.0.2", master_priority=250),
                instance("VI_F", "eth1", 53, 100, "FAULT", "FAULT", src="10.78.0.1",
                         group="224.0.0.18", fd=17, faults=("script:chk_fail", "sync:G1")),
                instance("VI_F2", "eth1", 54, 100, "FAULT", "BACKUP", src="10.78.0.1",
                         group="224.0.0.18", fd=17, faults=("sync:G1",)),
            ]}


def config() -> Any:
    res = load_text(CONF)
    assert not res.errors, [d.format() for d in res.errors]
    return res.config


def test_data_file_vrrp_sections(tmp_path: Path) -> None:
    path = tmp_path / "keepalived.data"
    dump.write_data(str(path), status(), config())
    ours = sections(normalise(path.read_text()))
    assert "".join(ours[n] for n in VRRP_SECTIONS) == (GOLDEN / "keepalived.data").read_text()


def test_stats_file(tmp_path: Path) -> None:
    path = tmp_path / "keepalived.stats"
    dump.write_stats(str(path), status(), config())
    assert normalise(path.read_text()) == (GOLDEN / "keepalived.stats").read_text()


def test_json_file(tmp_path: Path) -> None:
    path = tmp_path / "keepalived.json"
    dump.write_json(str(path), status(), config())
    assert normalise(path.read_text()) == (GOLDEN / "keepalived.json").read_text()


def test_exporter_parses_every_file(tmp_path: Path) -> None:
    """keepalived_exporter's parsers take all three (hafast's extra stats blocks too)."""
    st = status()
    st["checkers"] = [{"shard": 0, "shards": 1, "checks": 2, "real_servers": 2, "up": 1,
                       "down": 1, "counters": {"attempts": 10, "fail:refused": 3}}]
    for what in ("data", "stats", "json"):
        dump.WRITERS[what](str(tmp_path / what), st, config())
    assert (tmp_path / "json_check.json").exists()  # beside it, whatever the name
    data = (tmp_path / "data").read_text()
    assert {k: v["state"] for k, v in exporter.parse_vrrp_data(data).items()} == \
        {"VI_M": "MASTER", "VI_B": "BACKUP", "VI_F": "FAULT", "VI_F2": "FAULT"}
    assert exporter.parse_vrrp_scripts(data) == [
        {"name": "chk_fail", "status": "BAD", "state": "idle"}]
    stats = exporter.parse_stats((tmp_path / "stats").read_text())
    assert stats["VI_M"]["become_master"] == 1
    parsed = exporter.parse_json((tmp_path / "json").read_text())
    assert [p["data"]["adver_int"] for p in parsed] == [1, 1, 1, 1]
