"""run_pool_worker: the shipped CheckSide and PoolKeeper on one loop (loopback,
the memory backend, no privileges)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from hafast.app.pool_worker import run_pool_worker
from hafast.check.side import CheckSide
from hafast.config.loader import load_text
from hafast.lvs.keeper import PoolKeeper
from hafast.lvs.manager import PoolManager
from hafast.lvs.memory import MemoryBackend


def _config(port: int, dead_port: int) -> Any:
    text = f"""
virtual_server 10.0.0.1 80 {{
  lb_algo rr
  protocol TCP
  real_server 127.0.0.1 {port} {{
    TCP_CHECK {{ connect_timeout 0.2
      retry 0
      delay_loop 0.1
      warmup 0 }}
  }}
  real_server 127.0.0.1 {dead_port} {{
    TCP_CHECK {{ connect_timeout 0.2
      retry 0
      delay_loop 0.1
      warmup 0 }}
  }}
}}
"""
    res = load_text(text)
    assert not res.errors, res.errors
    return res.config


def _pool(mgr: PoolManager) -> dict[int, int]:
    key = next(iter(mgr.policy.pool.services))
    return {port: d.weight for (_, port), d in mgr.policy.pool.dests[key].items()}


def test_pool_worker_runs_the_daemons_pieces_and_the_pool_follows_the_checks(
        monkeypatch: Any) -> None:
    sides: list[CheckSide] = []
    keepers: list[PoolKeeper] = []
    real_start, real_open = CheckSide.start, PoolKeeper.open

    def side_start(self: CheckSide, config: Any, seed: Any) -> None:
        sides.append(self)
        real_start(self, config, seed)

    async def keeper_open(self: PoolKeeper) -> None:
        keepers.append(self)
        await real_open(self)

    monkeypatch.setattr(CheckSide, "start", side_start)
    monkeypatch.setattr(PoolKeeper, "open", keeper_open)
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(8)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    port = lst.getsockname()[1]
    backend = MemoryBackend()
    stop = threading.Event()
    ready: list[tuple[PoolManager, Any]] = []
    seen: list[dict[int, int]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            run_pool_worker(_config(port, dead), backend, stop=stop,
                            on_ready=lambda mgr, eng: ready.append((mgr, eng)))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=worker, daemon=True)
    with lst:
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not errors:
                if ready and _pool(ready[0][0]) == {port: 1}:
                    break
                time.sleep(0.02)
            assert not errors, errors
            mgr, eng = ready[0]
            seen.append(_pool(mgr))
        finally:
            stop.set()
            thread.join(timeout=10)
    assert not thread.is_alive() and not errors, errors
    assert seen == [{port: 1}]
    # The shipped pieces ran: the engine is the side's, the manager the keeper's.
    assert [s.engine for s in sides] == [eng] and [k.manager for k in keepers] == [mgr]
    assert keepers[0].backend.changes["add-dest"] >= 1
    assert eng.runner.counters["attempts"] >= 2
    assert backend.pool.services == {}  # stopped without keep: removed


def test_pool_worker_without_engine_keeps_the_configured_pool() -> None:
    backend = MemoryBackend()
    stop = threading.Event()
    got: list[tuple[dict[int, int], Any]] = []

    def on_ready(mgr: PoolManager, eng: Any) -> None:
        got.append((_pool(mgr), eng))
        stop.set()

    mgr = run_pool_worker(_config(1, 2), backend, stop=stop, on_ready=on_ready, keep=True,
                          engine=False)
    # No alpha: both servers start in the pool and nothing checks them.
    assert got == [({1: 1, 2: 1}, None)]
    assert _pool(mgr) == {1: 1, 2: 1} and backend.pool.services
