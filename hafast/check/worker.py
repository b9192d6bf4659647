"""A check worker stand-alone: :class:`~hafast.check.side.CheckSide`, the class the
daemon's check worker processes run, on a loop of its own in this thread.

Tests and benchmarks call this to exercise the shipped engine (its runner timed
into the latency histogram, the loop-lag meter, events published in batches)
without the parent and its IPC.

Example::

    run_worker(load("/etc/keepalived/keepalived.conf"), 0, 2, print)
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable
from typing import Any

from hafast.check.engine import Engine
from hafast.check.side import CheckSide
from hafast.config import model as m
from hafast.lib.eventloop import new_loop
from hafast.lib.events import ServerEvent

# Tests and benchmarks take the loop from here.
__all__ = ["new_loop", "run_worker"]


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
    stopped engine (its runner's counters stay readable).

    ``on_event`` gets each event of the batches the daemon's worker would send
    to its parent, in order; the last batch is delivered at stop.
    """
    main = threading.current_thread() is threading.main_thread()
    # uvloop leaves its own handler installed after remove_signal_handler: put back
    # what was there so a worker that returned does not swallow the next SIGTERM.
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    loop = new_loop()

    def publish(batch: list[Any]) -> None:
        if on_event is not None:
            for ev in batch:
                on_event(ev)

    try:
        side = CheckSide(loop, shard_index, shard_count, publish)
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
        # No parent to seed from: every check starts as its configuration says.
        side.start(config, {})
        engine: Engine = side.engine
        if on_ready is not None:
            on_ready(engine)
        try:
            loop.run_until_complete(finished)
        finally:
            side.stop()
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
