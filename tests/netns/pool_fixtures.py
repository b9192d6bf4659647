"""The daemon's pools and checks in a director namespace, for the nftables tests:
:func:`~hafast.app.pool_worker.run_pool_worker` on a thread of its own."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from hafast.app.pool_worker import run_pool_worker
from hafast.config import model as m
from hafast.lab.netns import call_in
from hafast.lvs.backend import PoolBackend
from hafast.lvs.manager import PoolManager


@contextlib.contextmanager
def pool_worker_in(namespace: str, config: m.Config, backend: PoolBackend,
                   timeout: float = 20.0) -> Iterator[PoolManager]:
    """Yield the manager once its first pool is in; on leaving, stop the worker and
    fail with what it raised, if anything."""
    stop = threading.Event()
    ready: list[PoolManager] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            call_in(namespace, run_pool_worker, config, backend, stop=stop,
                    on_ready=lambda mgr, _engine: ready.append(mgr))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not ready and not errors and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not errors and ready, errors or f"no pool within {timeout} s"
        yield ready[0]
    finally:
        stop.set()
        thread.join(timeout=timeout)
    assert not errors, errors
