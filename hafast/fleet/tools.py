"""FRR's command-line tools (vtysh, frr-reload.py, the daemons) run from the event loop.

Each is a child process the loop waits on, never a blocking call: a bgpd that hangs
makes vtysh hang, and the daemon's loop must go on checking and announcing.  A tool
that outlives its time is killed.
"""

from __future__ import annotations

import asyncio
import tempfile


async def run_tool(argv: list[str], timeout: float) -> tuple[int, str, str]:
    """Run ``argv``; its exit code, its stdout and its stderr.  Raises
    OSError when it cannot be started or is killed for taking over ``timeout``."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (TimeoutError, asyncio.CancelledError) as exc:
        proc.kill()
        await asyncio.shield(proc.wait())
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise OSError(f"{argv[0]} gave no answer in {timeout:.0f} s") from None
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


async def start_detached(argv: list[str], timeout: float) -> tuple[int, str]:
    """Start a daemon that detaches itself (``-d``): wait for the process we started to
    exit, not for its pipes, which the detached child may hold for ever; its exit code
    and what it said on stderr (through a file, which the child may keep open)."""
    with tempfile.TemporaryFile() as err:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=err, start_new_session=True)
        try:
            code = await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise OSError(f"{argv[0]} did not detach in {timeout:.0f} s") from None
        err.seek(0)
        return code, err.read(4096).decode(errors="replace")
