"""The whole daemon on loopback (memory pool backend, no privileges): an alpha real
server that never comes up is written ``RS ... DOWN`` to the LVS notify FIFO once,
as keepalived 2.2.7 does (update_svr_checker_state notifies an alpha checker's first
result; tests/ipvs/test_quorum_notify.py compares the two in the IPVS VM), and not
again when a reload or a restarted check worker starts its checks anew.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.netns.daemon_fixtures import FifoReader, start_daemon

pytestmark = [pytest.mark.timeout(120)]

VS = "[10.9.9.9]:tcp:80"


@pytest.fixture
def ports() -> Iterator[tuple[int, int]]:
    """A port that accepts and one that refuses."""
    live = socket.create_server(("127.0.0.1", 0), backlog=64)
    closed = socket.create_server(("127.0.0.1", 0))
    dead = closed.getsockname()[1]
    closed.close()
    yield live.getsockname()[1], dead
    live.close()


def conf(fifo: Path, live: int, dead: int) -> str:
    rs = "".join(f"""
  real_server 127.0.0.1 {p} {{
    TCP_CHECK {{ connect_timeout 1 }}
  }}""" for p in (live, dead))
    return f"""
global_defs {{
  router_id loopback
  lvs_notify_fifo {fifo}
}}
virtual_server 10.9.9.9 80 {{
  alpha
  delay_loop 0.5
  protocol TCP
  lb_algo rr
{rs}
}}
"""


def test_an_alpha_server_that_never_comes_up_is_reported_down_once(
        tmp_path: Path, ports: tuple[int, int]) -> None:
    live, dead = ports
    fifo = FifoReader(tmp_path / "lvs.fifo")
    d = start_daemon(tmp_path, conf(fifo.path, live, dead),
                     extra=["--pool-backend", "memory", "--check-workers", "1"])
    down = f"RS [127.0.0.1]:tcp:{dead} {VS} DOWN"

    def said() -> list[str]:
        return fifo.lines()

    def settled(_: dict[str, Any]) -> bool:
        return down in said() and f"RS [127.0.0.1]:tcp:{live} {VS} UP" in said()

    try:
        st = d.wait_for(settled, 20, "both first results")
        time.sleep(1.5)  # three more delay_loops of failures
        st = d.status()
        changes = dict(st["pools"]["changes"])
        assert sorted(said()) == sorted([down, f"RS [127.0.0.1]:tcp:{live} {VS} UP",
                                         f"VS {VS} UP"])
        # the dead one was never in the pool and nothing took it out
        assert changes == {"add-service": 1, "add-dest": 1}

        # a reload of the same file: the check worker rebuilds its checks, seeded
        d.signal(signal.SIGHUP)
        d.wait_for(lambda s: s["reloads"] == 1, 10, "reload applied")
        time.sleep(1.5)
        # a check worker killed: restarted, seeded with the parent's health
        victim = d.worker_pid("check")
        os.kill(victim, signal.SIGKILL)
        d.wait_for(lambda s: s["workers"][0]["restarts"] == 1
                   and s["workers"][0]["answering"], 15, "check0 restarted")
        time.sleep(1.5)
        assert said().count(down) == 1
        assert d.status()["pools"]["changes"] == changes
        assert d.stop() == 0
    finally:
        d.close()
        fifo.close()
