"""The whole daemon as processes, without privileges: check workers on loopback,
the memory pool backend.  Restarts, heartbeat, reload, dumps and stop.

The pool's operation counters (``status()["pools"]["changes"]``) are the proof that
a restart or a reload removed nothing.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.netns.daemon_fixtures import Daemon, start_daemon


@pytest.fixture
def listeners() -> Iterator[list[int]]:
    """Three TCP ports that accept (the kernel completes the handshake from the
    backlog), and a fourth that refuses."""
    socks = []
    for _ in range(3):
        s = socket.create_server(("127.0.0.1", 0), backlog=1024)
        socks.append(s)
    closed = socket.create_server(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()
    yield [s.getsockname()[1] for s in socks] + [dead_port]
    for s in socks:
        s.close()


def conf(ports: list[int], extra_rs: str = "") -> str:
    rs = "".join(f"""
  real_server 127.0.0.1 {p} {{
    weight 1
    TCP_CHECK {{ connect_timeout 1 }}
  }}""" for p in ports)
    return f"""
global_defs {{
  router_id loopback
}}
virtual_server 10.9.9.9 80 {{
  delay_loop 0.5
  protocol TCP
  lb_algo rr
{rs}{extra_rs}
}}
"""


@pytest.fixture
def daemon_dir(tmp_path: Path) -> Path:
    return tmp_path


def start(dir: Path, ports: list[int], *extra: str) -> Daemon:
    return start_daemon(dir, conf(ports), extra=["--pool-backend", "memory",
                                                 "--check-workers", "2",
                                                 "--heartbeat-interval", "0.2",
                                                 "--heartbeat-timeout", "1.5", *extra])


def pool_of(st: dict[str, Any]) -> dict[str, bool]:
    vs = st["pools"]["virtual_servers"][0]
    return {f"{r['port']}": r["pool_weight"] is not None for r in vs["real_servers"]}


def test_daemon_restarts_heartbeat_reload_dump_stop(daemon_dir: Path, listeners: list[int]
                                                    ) -> None:
    up1, up2, up3, dead = listeners
    d = start(daemon_dir, [up1, up2, dead])
    try:
        d.wait_ready()
        st = d.wait_for(lambda s: s["pools"]["changes"].get("del-dest") == 1, 15,
                        "the dead server leaving the pool")
        assert pool_of(st) == {str(up1): True, str(up2): True, str(dead): False}
        assert [w["name"] for w in st["workers"]] == ["check0", "check1"]
        changes = dict(st["pools"]["changes"])

        # kill -9 a check worker: restarted, seeded, no pool change
        victim = d.worker_pid("check")
        os.kill(victim, signal.SIGKILL)
        st = d.wait_for(lambda s: s["workers"][0]["restarts"] == 1
                        and s["workers"][0]["answering"], 15, "check0 restarted")
        assert st["workers"][0]["pid"] != victim
        time.sleep(1.2)  # two delay_loops of the new worker
        st = d.status()
        assert st["pools"]["changes"] == changes
        assert pool_of(st) == {str(up1): True, str(up2): True, str(dead): False}

        # a frozen worker does not answer the heartbeat: killed and restarted
        frozen = st["workers"][1]["pid"]
        os.kill(frozen, signal.SIGSTOP)
        st = d.wait_for(lambda s: s["workers"][1]["heartbeat_kills"] == 1
                        and s["workers"][1]["answering"], 15, "check1 replaced")
        assert st["workers"][1]["pid"] != frozen
        assert "has not answered the heartbeat" in d.log_text()
        assert st["pools"]["changes"] == changes

        # a broken config is rejected, the running one stays
        conf_path = daemon_dir / "hafast.conf"
        good = conf_path.read_text()
        conf_path.write_text(good + "\nvirtual_server 10.9.9.9 {\n")
        assert d.request("reload") == {"ok": False}
        st = d.status()
        assert st["reload_errors"] == 1 and st["reloads"] == 0
        assert "reload rejected" in d.log_text()

        # a good reload adds a server; nothing healthy leaves
        conf_path.write_text(conf([up1, up2, dead, up3]))
        d.signal(signal.SIGHUP)
        st = d.wait_for(lambda s: s["reloads"] == 1, 10, "reload applied")
        st = d.wait_for(lambda s: pool_of(s).get(str(up3)) is True, 10, "new server in")
        want = dict(changes, **{"add-dest": changes["add-dest"] + 1})
        assert st["pools"]["changes"] == want

        # dumps
        for sig, ext in ((signal.SIGUSR1, "data"), (signal.SIGUSR2, "stats"),
                         (signal.SIGRTMIN + 2, "json")):
            d.signal(sig)
            path = daemon_dir / f"hafast-dump.{ext}"
            deadline = time.monotonic() + 10
            while not path.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert path.exists(), ext
        assert json.loads((daemon_dir / "hafast-dump.json").read_text()) == []
        check = json.loads((daemon_dir / "hafast-dump_check.json").read_text())
        assert len(check["checkers"]) == 2
        assert "RS [127.0.0.1]" in (daemon_dir / "hafast-dump.data").read_text()

        # SIGTERM: clean exit, the pool released, pid files gone
        assert d.stop() == 0
        log = d.log_text()
        assert "del-service" in log and log.rstrip().endswith("stopped")
        assert not d.pid_file().exists()
    finally:
        d.close()


def test_dont_respawn_stops_the_daemon(daemon_dir: Path, listeners: list[int]) -> None:
    d = start(daemon_dir, listeners[:1], "-R")
    try:
        d.wait_ready()
        os.kill(d.worker_pid("check"), signal.SIGKILL)
        assert d.proc.wait(20) == 0
        assert "-R given, stopping" in d.log_text()
    finally:
        d.close()


def test_unusable_config_does_not_start(daemon_dir: Path) -> None:
    d = start_daemon(daemon_dir, "vrrp_instance X {\n virtual_router_id 999\n}\n")
    try:
        assert d.proc.wait(20) == 3
        assert "virtual_router_id" in d.log_text()
    finally:
        d.close()


def test_workers_die_with_the_parent(daemon_dir: Path, listeners: list[int]) -> None:
    from hafast.lab.netns import pid_alive

    d = start(daemon_dir, listeners[:2])
    try:
        st = d.wait_ready()
        pids = [w["pid"] for w in st["workers"]]
        os.kill(d.proc.pid, signal.SIGKILL)
        d.proc.wait(10)
        deadline = time.monotonic() + 15
        while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(pid_alive(p) for p in pids)
    finally:
        d.close()


def test_auto_never_serves_virtual_servers_from_memory(tmp_path: Path,
                                                       listeners: list[int]) -> None:
    """No IPVS here (the host kernel) and, with PATH emptied, no nft: ``auto`` has no
    data path, and the daemon says so in one line and stops rather than keep virtual
    servers no packet follows; asking for memory by name runs."""
    import subprocess

    from tests.netns.daemon_fixtures import daemon_argv

    conf_path = tmp_path / "hafast.conf"
    conf_path.write_text(conf(listeners[:1]))
    if os.path.exists("/proc/net/ip_vs"):
        pytest.skip("this kernel has IPVS: auto has a data path")  # never on the CI host
    env = dict(os.environ, PATH=str(tmp_path / "empty"),
               PYTHONPATH=str(Path(__file__).resolve().parents[3]))
    got = subprocess.run(daemon_argv(tmp_path, "hafast", conf_path), env=env,
                         stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=60, cwd=tmp_path, check=False)
    assert got.returncode == 1, got.stderr[-3000:]
    (line,) = [x for x in got.stderr.splitlines() if "hafast stopped" in x]
    assert line.endswith("hafast stopped: no ipvs or nft pool backend works here, so no "
                         "packet would follow the virtual servers: load ip_vs (or install "
                         "nftables), or run the checks without a data path by asking for "
                         "it: lvs_backend memory in global_defs, or --pool-backend memory")
    assert "Traceback" not in got.stderr
    d = start_daemon(tmp_path / "memory", conf(listeners[:1]),
                     extra=["--pool-backend", "memory", "--check-workers", "1"])
    try:
        d.wait_for(lambda st: bool(st.get("pools")), 20, "pools in memory when asked")
    finally:
        assert d.stop() == 0, d.log_text()[-3000:]
