"""Dumps, /metrics and `hafast status` over one status dict (the parent's shape)."""

from __future__ import annotations

import io
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hafast.app import status_cli as cli
from hafast.status import dump, metrics
from tests.unit.control_server import serving

COUNTERS = ("advert_rcvd", "advert_sent", "become_master", "release_master", "packet_len_err",
            "advert_interval_err", "ip_ttl_err", "invalid_type_rcvd", "addr_list_err",
            "invalid_authtype", "authtype_mismatch", "auth_failure", "pri_zero_rcvd",
            "pri_zero_sent")


def status() -> dict[str, Any]:
    stats = dict.fromkeys(COUNTERS, 0)
    stats.update(advert_sent=42, become_master=1)
    return {
        "pid": 100, "config": "/etc/k.conf", "uptime": 12.5, "reloads": 2, "reload_errors": 1,
        "workers": [{"name": "vrrp", "pid": 101, "restarts": 0, "heartbeat_kills": 0,
                     "deadline_kills": 1, "answering": True, "last_pong_age": 0.1},
                    {"name": "check0", "pid": 102, "restarts": 1, "heartbeat_kills": 1,
                     "answering": True, "last_pong_age": 0.2}],
        "vrrp": [{"data": {"iname": "VI_1", "ifp_ifname": "eth0", "vrid": 51, "version": 2,
                           "base_priority": 100, "effective_priority": 90, "state": 2,
                           "wantstate": 2, "adver_int": 1.0, "vips": ["10.0.0.100/24",
                                                                       "10.0.0.101/24"],
                           "evips": [], "state_name": "MASTER"},
                  "stats": stats}],
        "checkers": [{"shard": 0, "shards": 1, "checks": 2, "real_servers": 2, "up": 1,
                      "down": 1, "counters": {"attempts": 10, "ok": 7, "fail:refused": 3},
                      "events": 1, "lag": {"last": 0.001, "max": 0.004}, "skipped": 0,
                      "latency": {"buckets": [(0.001, 2), (0.01, 9), (10.0, 10)],
                                  "count": 10, "sum": 0.05}}],
        "pools": {"backend": "memory", "changes": {"add-dest": 2, "del-dest": 1},
                  "errors": 0, "messages": 0,
                  "virtual_servers": [{"name": "[10.0.0.100]:tcp:80", "quorum_up": True,
                                       "suspended": False, "real_servers": [
                                           {"address": "10.1.0.1", "port": 80, "alive": True,
                                            "weight": 2, "pool_weight": 2},
                                           {"address": "10.1.0.2", "port": 80, "alive": False,
                                            "weight": 1, "pool_weight": None}]}]},
    }


def test_paths() -> None:
    assert dump.path_for("/tmp/keepalived", "data", None) == "/tmp/keepalived.data"
    assert dump.path_for("/tmp/keepalived", "stats", None) == "/tmp/keepalived.stats"
    assert dump.path_for("/tmp/keepalived", "json", "ns1") == "/tmp/keepalived_ns1.json"


def test_json_dump_is_keepalived_shaped(tmp_path: Path) -> None:
    path = str(tmp_path / "keepalived.json")
    dump.write_json(path, status())
    data = json.loads(Path(path).read_text())
    assert isinstance(data, list) and len(data) == 1
    assert set(data[0]) == {"data", "stats"}
    assert data[0]["data"]["iname"] == "VI_1" and data[0]["data"]["state"] == 2
    assert "state_name" not in data[0]["data"]
    assert set(data[0]["stats"]) == set(COUNTERS)
    extra = json.loads((tmp_path / "keepalived_check.json").read_text())
    assert extra["pools"]["virtual_servers"][0]["real_servers"][1]["alive"] is False
    assert extra["checkers"][0]["counters"]["fail:refused"] == 3


def test_stats_and_data_text(tmp_path: Path) -> None:
    dump.write_stats(str(tmp_path / "s"), status())
    text = (tmp_path / "s").read_text()
    assert "VRRP Instance: VI_1" in text and "    Sent: 42" in text
    assert "Became master: 1" in text and "fail.refused: 3" in text
    dump.write_data(str(tmp_path / "d"), status())
    text = (tmp_path / "d").read_text()
    assert "VRRP Instance = VI_1" in text and "State = MASTER" in text
    assert "RS [10.1.0.2]:80 dead" in text


def test_metrics_parse_with_exporter_names() -> None:
    from prometheus_client import generate_latest

    server = metrics.MetricsServer("127.0.0.1:0", status)
    text = generate_latest(server.registry).decode()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    state = [(s.labels, s.value) for s in fams["keepalived_vrrp_state"].samples]
    assert ({"iname": "VI_1", "intf": "eth0", "vrid": "51", "ip_address": "10.0.0.100/24"},
            2.0) in state
    assert len(state) == 2  # one per VIP, as keepalived_exporter does
    sent = fams["keepalived_advertisements_sent"].samples[0]
    assert sent.name == "keepalived_advertisements_sent_total" and sent.value == 42
    for name in metrics.VRRP_COUNTERS.values():
        assert name in fams
    assert fams["hafast_vrrp_priority"].samples[0].value == 90
    up = {s.labels["real_server"]: s.value for s in fams["hafast_real_server_up"].samples}
    assert up == {"10.1.0.1:80": 1.0, "10.1.0.2:80": 0.0}
    weight = {s.labels["real_server"]: s.value
              for s in fams["hafast_real_server_weight"].samples}
    assert weight == {"10.1.0.1:80": 2.0, "10.1.0.2:80": 0.0}
    assert fams["hafast_virtual_server_quorum_up"].samples[0].value == 1
    lat = {s.name: s.value for s in fams["hafast_check_latency_seconds"].samples
           if s.labels.get("le") in (None, "+Inf")}
    assert lat["hafast_check_latency_seconds_count"] == 10
    fails = fams["hafast_check_failures"].samples[0]
    assert fails.labels == {"shard": "0", "reason": "refused"} and fails.value == 3
    assert fams["hafast_check_engine_lag_seconds"].samples[0].value == 0.004
    assert fams["keepalived_up"].samples[0].value == 1
    kills = {s.labels["worker"]: s.value for s in fams["hafast_worker_heartbeat_kills"].samples}
    assert kills == {"vrrp": 0, "check0": 1}
    deadline = {s.labels["worker"]: s.value
                for s in fams["hafast_worker_deadline_kills"].samples}
    assert deadline == {"vrrp": 1, "check0": 0}  # a status without the field counts 0


def test_metrics_when_the_daemon_does_not_answer() -> None:
    from prometheus_client import generate_latest

    def broken() -> dict[str, Any]:
        raise TimeoutError("no answer")

    text = generate_latest(metrics.MetricsServer("127.0.0.1:0", broken).registry).decode()
    assert "keepalived_up 0.0" in text


def test_metrics_http_server() -> None:
    server = metrics.MetricsServer("127.0.0.1:0", status)
    server.start()
    try:
        port = server.bound_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            body = r.read().decode()
        assert "keepalived_vrrp_state{" in body
    finally:
        server.stop()


@pytest.mark.parametrize("text", ["9650", "host:", "1.2.3.4:99999", "a:b", "1.2.3.4:-1"])
def test_bad_listen(text: str) -> None:
    with pytest.raises(ValueError):
        metrics.parse_listen(text)


def test_render_table() -> None:
    text = cli.render(status())
    assert "VRRP  VI_1" in text and "MASTER" in text and "prio 90/100" in text
    assert "worker check0" in text
    assert "UP   10.1.0.1:80  weight 2" in text and "DOWN 10.1.0.2:80  weight -" in text
    assert "1/2 alive" in text


def test_render_limits_long_pools() -> None:
    st = status()
    rss = [{"address": f"10.1.1.{i}", "port": 80, "alive": i != 7, "weight": 1,
            "pool_weight": 1} for i in range(100)]
    st["pools"]["virtual_servers"][0]["real_servers"] = rss
    text = cli.render(st, limit=5)
    assert "... 95 more (1 down)" in text and "DOWN 10.1.1.7:80" in text


def test_status_client(tmp_path: Path) -> None:
    path = str(tmp_path / "h.ctl")

    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        return status()

    with serving(path, handler):
        out = io.StringIO()
        assert cli.main(["--socket", path], out=out) == 0
        assert "VRRP  VI_1" in out.getvalue()
        out = io.StringIO()
        assert cli.main(["--socket", path, "--json"], out=out) == 0
        assert json.loads(out.getvalue())["vrrp"][0]["data"]["vrid"] == 51
    assert cli.main(["--socket", str(tmp_path / "nobody.ctl")]) == 1
