"""A check worker: one uvloop event loop running the engine for one shard.

``hafast -C`` and the supervisor start one per core; the wiring comes later.  This
is the entry they will call.

Example::

    run_worker(load("/etc/keepalived/keepalived.conf"), 0, 2, print)
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable

from hafast.check.engine import Engine
from hafast.config import model as m
from hafast.lib.eventloop import new_loop
from hafast.lib.events import ServerEvent


def run_worker(
    config: m.Config,
    shard_index: int = 0,
    shard_count: int = 1,
    on_event: Callable[[ServerEvent], object] | None = None,
    *,
    duration: float | None = None,
    stop: threading.Event | None = None,
    on_ready: Callable[[Engine], object] | None = None,
) -> Engine:
    """Run the checks of shard ``shard_index`` of ``shard_count`` until SIGTERM/SIGINT
    (main thread), ``stop`` is set, or ``duration`` seconds passed; return the
    stopped engine (its runner's counters stay readable)."""
    main = threading.current_thread() is threading.main_thread()
    # uvloop leaves its own handler installed after remove_signal_handler: put back
    # what was there so a worker that returned does not swallow the next SIGTERM.
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    loop = new_loop()
    try:
        engine = Engine(config, loop, on_event, shard_index=shard_index,
                        shard_count=shard_count)
        finished = loop.create_future()

        def finish() -> None:
            if not finished.done():
                finished.set_result(None)

        if main:
            for sig in previous:
                loop.add_signal_handler(sig, finish)
        if duration is not None:
            loop.call_later(duration, finish)
        if stop is not None:
            def poll() -> None:
                if stop.is_set():
                    finish()
                else:
                    loop.call_later(0.05, poll)

            poll()
        engine.start()
        if on_ready is not None:
            on_ready(engine)
        try:
            loop.run_until_complete(finished)
        finally:
            engine.stop()
            if main:
                for sig in previous:
                    with contextlib.suppress(Exception):
                        loop.remove_signal_handler(sig)
        return engine
    finally:
        loop.close()
        if main:
            for sig, handler in previous.items():
                if handler is not None:
                    signal.signal(sig, handler)
