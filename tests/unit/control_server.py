"""A real control socket (hafast.app.control.ControlServer) served from a thread, for
the tests of its clients: ``with serving(path, handler):`` answers until the block
ends."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from hafast.app.control import ControlServer, Handler


@contextlib.contextmanager
def serving(path: str, handler: Handler) -> Iterator[None]:
    ready, done = threading.Event(), threading.Event()

    async def main() -> None:
        server = ControlServer(path, handler)
        await server.start()
        ready.set()
        while not done.is_set():
            await asyncio.sleep(0.02)
        await server.close()

    t = threading.Thread(target=asyncio.run, args=(main(),))
    t.start()
    try:
        assert ready.wait(5)
        yield
    finally:
        done.set()
        t.join(5)
