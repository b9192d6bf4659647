"""The check engine and a pool manager on one loop, in one thread: the stand-alone
pool worker the IPVS and nftables tests and the VM benchmarks run inside a director
namespace (the daemon runs the same two pieces in its check workers and parent)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from hafast.config import model as m
from hafast.lvs.backend import PoolBackend
from hafast.lvs.manager import PoolManager, Timeouts


def run_pool_worker(
    config: m.Config,
    backend: PoolBackend,
    *,
    stop: threading.Event,
    on_ready: Callable[[PoolManager, Any], object] | None = None,
    keep: bool = False,
    timeouts: Timeouts | None = None,
    engine: bool = True,
) -> PoolManager:
    """Run the check engine and a :class:`PoolManager` on one uvloop loop in this
    thread until ``stop`` is set; returns the stopped manager.

    ``on_ready(manager, engine)`` runs on the loop once the first pool is in the
    kernel.  Tests call this on a thread inside a director namespace.
    """
    from hafast.check.engine import Engine
    from hafast.check.worker import new_loop

    loop = new_loop()
    asyncio.set_event_loop(loop)
    manager = PoolManager(config, backend, keep=keep, timeouts=timeouts)
    try:
        async def main() -> None:
            eng = Engine(config, loop, manager.on_event) if engine else None
            await manager.start(eng.snapshot() if eng else None)
            if eng is not None:
                eng.start()
            if on_ready is not None:
                on_ready(manager, eng)
            try:
                while not stop.is_set():
                    await asyncio.sleep(0.05)
            finally:
                if eng is not None:
                    eng.stop()
                await manager.stop()

        loop.run_until_complete(main())
        return manager
    finally:
        asyncio.set_event_loop(None)
        loop.close()
