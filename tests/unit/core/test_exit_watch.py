"""hafast.lib.notify's one way to start a script and reap it (start_script,
ExitWatch), which spawn_reaped and MISC_CHECK share."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from hafast.lib.eventloop import new_loop
from hafast.lib.notify import ExitWatch, spawn_reaped, start_script

T = TypeVar("T")


def _run(body: Callable[[asyncio.AbstractEventLoop], Coroutine[Any, Any, T]]) -> T:
    loop = new_loop()
    try:
        return loop.run_until_complete(body(loop))
    finally:
        loop.close()


def test_exit_code_and_signal_are_reported_and_the_child_reaped() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> list[int]:
        got: list[int] = []
        gone = asyncio.Event()

        def on_exit(code: int) -> None:
            got.append(code)
            if len(got) == 2:
                gone.set()

        a = start_script(["sh", "-c", "exit 3"])
        b = start_script(["sleep", "30"])
        wa, wb = ExitWatch(loop, a, on_exit), ExitWatch(loop, b, on_exit)
        await asyncio.sleep(0.05)
        b.kill()
        await asyncio.wait_for(gone.wait(), 5)
        assert not wa.watching and not wb.watching
        assert (a.returncode, b.returncode) == (3, -signal.SIGKILL)
        return sorted(got)

    assert _run(body) == [-signal.SIGKILL, 3]


def test_kill_group_takes_what_the_script_left_running(tmp_path: Path) -> None:
    pidfile = tmp_path / "child"

    async def body(loop: asyncio.AbstractEventLoop) -> int:
        done: asyncio.Future[int] = loop.create_future()
        proc = start_script(["sh", "-c", f"sleep 30 & echo $! > {pidfile}; exit 0"])
        ExitWatch(loop, proc, done.set_result, kill_group=True)
        return await asyncio.wait_for(done, 5)

    assert _run(body) == 0
    left = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(left, 0)
        except ProcessLookupError:
            break
        # A zombie until init reaps it counts as gone.
        stat = Path(f"/proc/{left}/stat")
        if stat.exists() and stat.read_text().split(") ")[1].startswith("Z"):
            break
        time.sleep(0.02)
    else:
        raise AssertionError(f"the script's child {left} survived")


def test_a_child_its_owner_polled_still_reports_its_code() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> int:
        done: asyncio.Future[int] = loop.create_future()
        proc = start_script(["sh", "-c", "exit 4"])
        ExitWatch(loop, proc, done.set_result)
        proc.wait()  # the owner reaps first (vrrp_script's timeout polls its child)
        return await asyncio.wait_for(done, 5)

    assert _run(body) == 4


def test_spawn_reaped_reports_a_program_that_cannot_start() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> tuple[object, int]:
        done: asyncio.Future[int] = loop.create_future()
        proc = spawn_reaped(loop, ["/nonexistent/hafast-test"], done.set_result)
        return proc, await asyncio.wait_for(done, 5)

    assert _run(body) == (None, 127)
