"""run_worker: one loop, the engine of one shard, stopped by duration/event/signal."""

from __future__ import annotations

import os
import signal
import socket
import threading

from hafast.check.worker import run_worker
from hafast.config.loader import load_text
from hafast.lib.events import ServerEvent


def _config(port: int, dead_port: int) -> str:
    return f"""
virtual_server 10.0.0.1 80 {{
  real_server 127.0.0.1 {port} {{
    TCP_CHECK {{
      connect_timeout 0.2
      retry 0
      delay_loop 0.1
      warmup 0
      alpha
    }}
  }}
  real_server 127.0.0.1 {dead_port} {{
    TCP_CHECK {{
      connect_timeout 0.2
      retry 0
      delay_loop 0.1
      warmup 0
    }}
  }}
}}
"""


def _ports() -> tuple[socket.socket, int]:
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(8)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    return lst, dead


def test_run_worker_publishes_events_and_stops() -> None:
    lst, dead = _ports()
    port = lst.getsockname()[1]
    with lst:
        cfg = load_text(_config(port, dead)).config
        events: list[ServerEvent] = []
        engine = run_worker(cfg, 0, 1, events.append, duration=0.6)
    got = sorted((e.real_server[1], e.state) for e in events)
    assert got == sorted([(port, "UP"), (dead, "DOWN")])
    assert engine.runner.counters["attempts"] >= 4
    assert all(c.token == 0 for c in engine.runner.checks)


def test_run_worker_shards_split_the_servers() -> None:
    lst, dead = _ports()
    with lst:
        cfg = load_text(_config(lst.getsockname()[1], dead)).config
        checks = [run_worker(cfg, i, 2, None, duration=0.05).checks for i in range(2)]
    assert sum(checks) == 2


def test_run_worker_stops_on_event_and_on_sigterm() -> None:
    lst, dead = _ports()
    with lst:
        cfg = load_text(_config(lst.getsockname()[1], dead)).config
        before = signal.getsignal(signal.SIGTERM)
        stop = threading.Event()
        threading.Timer(0.2, stop.set).start()
        run_worker(cfg, stop=stop)
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
        run_worker(cfg)  # returns on SIGTERM; the handler is removed afterwards
    assert signal.getsignal(signal.SIGTERM) == before
