"""The local control socket: one JSON request per connection, one JSON reply.

The parent listens on a Unix stream socket (mode 0600, root only: the state of a
load balancer is not for every local user).  A client writes one line,
``{"cmd": "status"}`` (or ``reload``, ``data``, ``stats``, ``json``), and reads one
JSON document back; the parent gathers each worker's part over its pipe, so the
answer is the state *now*, not a file written at the last signal (keepalived PR #41
asked for exactly this).

Example::

    server = ControlServer("/run/hafast.ctl", handler)   # handler(dict) -> dict
    await server.start()
    reply = query("/run/hafast.ctl", "status")            # from another process
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import stat
from collections.abc import Awaitable, Callable
from typing import Any

from hafast.app.ctlproto import query
from hafast.lib import jsonstream, memtrim

__all__ = ["ControlServer", "query"]

log = logging.getLogger("hafast.control")

MAX_REQUEST = 64 * 1024
TRIM_FROM = 64 * 1024  # a reply this long is followed by hafast.lib.memtrim.trim()
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ControlServer:
    """Serve ``handler`` on the Unix socket ``path`` (a stale socket is replaced)."""

    def __init__(self, path: str, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self.server: asyncio.AbstractServer | None = None
        self.requests = 0

    async def start(self) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(self.path).st_mode):
                os.unlink(self.path)
        old = os.umask(0o177)
        try:
            self.server = await asyncio.start_unix_server(self._serve, path=self.path)
        finally:
            os.umask(old)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.requests += 1
        try:
            line = await asyncio.wait_for(reader.readline(), 5.0)
            if len(line) > MAX_REQUEST:
                raise ValueError("request too long")
            request = json.loads(line or b"{}")
            if not isinstance(request, dict):
                raise ValueError("the request must be a JSON object")
            reply = await self.handler(request)
        except (TimeoutError, ValueError) as exc:
            reply = {"error": str(exc)}
        except RecursionError:
            # json's decoder raises it for arrays/objects nested deeper than the
            # interpreter's recursion limit (found by tests/fuzz/fuzz_control.py): a
            # bad request like any other, not a failure worth a traceback
            reply = {"error": "the request nests too deeply"}
        except Exception as exc:  # a bad request must never take the parent down
            log.exception("control request failed")
            reply = {"error": repr(exc)}
        size = 0
        try:
            # Compact (at 10,000 real servers the default ", "/": " separators are 0.2 MB
            # more to write, send and read), and in pieces: the pools' rows are made
            # and encoded a chunk at a time (hafast.lib.jsonstream), all before the
            # first await, so the reply is one moment's state (issue 16).
            for piece in jsonstream.pieces(reply):
                data = piece.encode()
                size += len(data)
                writer.write(data)
            del reply, data
            writer.write(b"\n")
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
        if size >= TRIM_FROM:
            # a status of 10,000 real servers is megabytes of short-lived dicts and
            # text; without this the parent kept ~4 MB of freed heap from such polls
            memtrim.trim()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
            self.server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
