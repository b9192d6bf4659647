"""The daemon reads its configuration in a child process (issue 16: memory at scale).

Lexing and loading keepalived.conf builds many short-lived objects: at 10,000 real
servers the load peaks at ~4.6 KiB of Python objects a real server for a model that
keeps 0.3 KiB. CPython's allocator hands memory back only in whole arenas, so a parent
that loads in place keeps most of that peak for good (measured: +3.4 KiB of RSS a
real server after the load, the bulk of the daemon's growth with the farm). So the
parent runs ``python -m hafast.app.loadconf FILE [CONFIG_ID]``, at start and at each
reload, and takes back the :class:`~hafast.config.loader.LoadResult` pickled on its
stdout: it holds the model, never the load's peak, and a reload's parse no longer
shares the parent's interpreter (its loop only waits for a pipe).

The child is this same interpreter and package (as the workers are). One that cannot
be started, dies, or sends back something else is logged and the load is done in
place, as before; nothing is lost but the memory.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import subprocess
import sys

from hafast.config.loader import LoadResult, load_file

log = logging.getLogger("hafast")


def child_argv(path: str, config_id: str | None) -> list[str]:
    return [sys.executable, "-m", "hafast.app.loadconf", path, *([config_id] if config_id else [])]


def _decoded(code: int | None, out: bytes, err: bytes, path: str) -> LoadResult | None:
    """The child's LoadResult; None (said in the log) when the child failed."""
    if code == 0:
        try:
            res = pickle.loads(out)  # our own child's output, as the workers' pipes
        except Exception as exc:  # any undecodable answer: load in place
            why = f"its answer does not decode ({exc})"
        else:
            if isinstance(res, LoadResult):
                return res
            why = f"it answered a {type(res).__name__}"
    else:
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        why = f"it exited {code}: {tail[0]}"
    log.warning("reading %s in a child process failed (%s); reading it here", path, why)
    return None


def load(path: str, config_id: str | None = None) -> LoadResult:
    """``load_file(path)`` run in a child (the daemon's start, before any loop)."""
    try:
        proc = subprocess.run(child_argv(path, config_id), stdin=subprocess.DEVNULL,
                              capture_output=True, check=False)
        res = _decoded(proc.returncode, proc.stdout, proc.stderr, path)
    except OSError as exc:
        res = _decoded(None, b"", str(exc).encode(), path)
    return res if res is not None else load_file(path, config_id=config_id)


async def load_async(path: str, config_id: str | None = None) -> LoadResult:
    """:func:`load` for a running loop (a reload): the loop only waits on the pipes
    (and, should the child fail, on a thread loading in place)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *child_argv(path, config_id), stdin=subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        res = _decoded(proc.returncode, out, err, path)
    except OSError as exc:
        res = _decoded(None, b"", str(exc).encode(), path)
    if res is not None:
        return res
    return await asyncio.get_running_loop().run_in_executor(
        None, lambda: load_file(path, config_id=config_id))


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print("usage: python -m hafast.app.loadconf FILE [CONFIG_ID]", file=sys.stderr)
        return 2
    res = load_file(argv[0], config_id=argv[1] if len(argv) == 2 else None)
    sys.stdout.buffer.write(pickle.dumps(res, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
