"""Fuzz the control socket's request reader: ``ControlServer._serve`` and the command
dispatch behind it (``StatusDesk.handle_control``).

The input is what a local client writes before closing its end. ``_serve`` runs on a
real ``asyncio.StreamReader`` (as ``start_unix_server`` gives it), with a writer that
keeps what is written and a desk whose status and dumps are canned (nothing is
written to disk, no worker is asked). The contract:

- exactly one reply line, a JSON object;
- a line that is a JSON object reaches the handler unchanged; anything else is
  answered with ``{"error": ...}`` without reaching it;
- no request takes the "control request failed" path, which logs a traceback:
  every bad request must be a plain error reply.

    python tests/fuzz/fuzz_control.py -atheris_runs=100000 build/fuzz/ctl tests/fuzz/corpus/control
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fuzz import _common

with _common.instrumented(_common.running_as_fuzzer(__name__)):
    from hafast.app import control
    from hafast.app.desk import StatusDesk


class _Writer:
    """The half of asyncio.StreamWriter that ``_serve`` uses."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.data += data

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class _Desk(StatusDesk):
    """The real command dispatch, over a canned status (no workers, no files)."""

    def __init__(self) -> None:
        async def reload() -> bool:
            return True

        super().__init__(SimpleNamespace(reload=reload))  # type: ignore[arg-type]
        self.seen: list[dict[str, Any]] = []

    async def handle_control(self, request: dict[str, Any]) -> dict[str, Any]:
        self.seen.append(request)
        return await super().handle_control(request)

    async def status(self, *, stream: bool = False, down: bool = False,
                     limit: int | None = None) -> dict[str, Any]:
        return _status()  # whole rows: select cuts them (PoolKeeper.status would)

    async def dump(self, what: str, *, clear: bool = False) -> str:
        return f"/tmp/keepalived.{what}"


def _status() -> dict[str, Any]:
    """A small farm in the status dict's shape, for the ``status`` filters to work on."""

    def rss(*alive: bool) -> list[dict[str, Any]]:
        return [{"address": f"10.1.0.{i}", "alive": a} for i, a in enumerate(alive, 1)]

    labels = ("[10.0.0.1]:tcp:80", "[10.0.0.1]:udp:53", "FWM 7", "[web]:0",
              "[2001:db8::1]:tcp:443")
    vss = [{"name": label, "quorum_up": i != 2, "real_servers": rss(True, i % 2 == 0, False)}
           for i, label in enumerate(labels)]
    vrrp = [{"data": {"iname": name, "state_name": state}}
            for name, state in (("VI_1", "MASTER"), ("VI_2", "FAULT"), ("VI_3", "BACKUP"))]
    return {"pid": 1, "workers": [], "vrrp": vrrp, "checkers": [],
            "pools": {"virtual_servers": vss}}


class _Failures(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


_loop: asyncio.AbstractEventLoop | None = None
_failures = _Failures()


def _serve(data: bytes) -> tuple[bytes, list[dict[str, Any]], list[logging.LogRecord]]:
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
    desk = _Desk()
    server = control.ControlServer("/nonexistent/hafast.ctl", desk.handle_control)
    writer = _Writer()

    async def run() -> None:
        reader = asyncio.StreamReader(limit=control.MAX_REQUEST)
        reader.feed_data(data)
        reader.feed_eof()
        await server._serve(reader, writer)  # type: ignore[arg-type]

    log = logging.getLogger("hafast.control")
    log.addHandler(_failures)
    _failures.records = []
    try:
        _loop.run_until_complete(run())
    finally:
        log.removeHandler(_failures)
    assert writer.closed, "the connection was left open"
    return bytes(writer.data), desk.seen, _failures.records


def one_input(data: bytes) -> None:
    written, seen, failures = _serve(data)
    assert not failures, f"a request took the failure path: {failures[0].getMessage()}"
    assert written.endswith(b"\n") and written.count(b"\n") == 1, written
    reply = json.loads(written)
    assert isinstance(reply, dict), reply
    end = data.find(b"\n")
    line = data if end < 0 else data[: end + 1]  # as readline() returns it
    try:
        request = json.loads(line or b"{}")
    except (ValueError, RecursionError):
        request = None
    if isinstance(request, dict) and len(line) < control.MAX_REQUEST:
        # compared as JSON text: NaN is a valid request value and never equals itself
        assert json.dumps(seen) == json.dumps([request]), (seen, request)
    else:
        assert not seen and "error" in reply, (seen, reply)


if __name__ == "__main__":
    _common.fuzz(one_input)
