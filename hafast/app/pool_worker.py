"""The check side and the pools on one loop, in one thread: the stand-alone pool
worker the IPVS and nftables tests and the VM benchmarks run inside a director
namespace.

It runs the pieces the daemon ships, wired as the daemon wires them, minus the
processes: :class:`~hafast.lvs.keeper.PoolKeeper` (the parent's pools) opens
first, then :class:`~hafast.check.side.CheckSide` (a check worker's engine) starts
from the keeper's seed, and each batch the side publishes goes to
``PoolKeeper.on_events`` in order, as the parent's reader hands it over.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from hafast.check.side import CheckSide
from hafast.config import model as m
from hafast.lib.eventloop import new_loop
from hafast.lvs.backend import PoolBackend, Timeouts
from hafast.lvs.keeper import PoolKeeper
from hafast.lvs.manager import PoolManager


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
    """Run the check engine and the pools on one uvloop loop in this thread until
    ``stop`` is set; returns the stopped :class:`PoolManager`.

    ``on_ready(manager, engine)`` runs on the loop once the first pool is in the
    kernel (``engine`` is None with ``engine=False``: the pools alone, every
    server as its configuration starts it).  Tests call this on a thread inside
    a director namespace.
    """
    loop = new_loop()
    asyncio.set_event_loop(loop)
    keeper = PoolKeeper(config, backend, keep=keep, timeouts=timeouts)
    try:
        async def main() -> None:
            batches: asyncio.Queue[list[Any]] = asyncio.Queue()
            await keeper.open()
            side = CheckSide(loop, 0, 1, batches.put_nowait) if engine else None
            if side is not None:
                side.start(config, keeper.seed())

            async def deliver() -> None:
                while True:
                    await keeper.on_events(await batches.get())

            delivering = loop.create_task(deliver())
            try:
                if on_ready is not None:
                    on_ready(keeper.manager, side.engine if side is not None else None)
                while not stop.is_set():
                    await asyncio.sleep(0.05)
            finally:
                if side is not None:
                    side.stop()  # publishes the last batch
                delivering.cancel()
                # The parent handles a stopped worker's last events before it closes
                # the pools; so does this.
                while not batches.empty():
                    await keeper.on_events(batches.get_nowait())
                await keeper.close()

        loop.run_until_complete(main())
        return keeper.manager
    finally:
        asyncio.set_event_loop(None)
        loop.close()
