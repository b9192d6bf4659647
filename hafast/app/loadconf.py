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

A small configuration is read in place: the child's interpreter and imports cost
0.3-0.4 s here (more on a loaded machine, on the daemon's start-up and every reload),
and what it saves grows with the file: :data:`CHILD_FROM_BYTES` of configuration is
about 2,500 real servers, 8 MB of RSS kept by a load in place.  The size counted is
the main file's plus that of the files its own ``include`` lines name (one level:
``include conf.d/*.conf``, the usual layout).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import subprocess
import sys

from hafast.config.include import find_files, split_include
from hafast.config.loader import LoadResult, load_file, load_file_once
from hafast.lib import oneshot

log = logging.getLogger("hafast")

CHILD_FROM_BYTES = 256 * 1024


def config_bytes(path: str) -> int:
    """The size of ``path`` and of the files its ``include`` lines name (one level;
    a file that cannot be read counts 0: the load itself reports it)."""
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError:
        return 0
    total = len(text)
    folder = os.path.dirname(os.path.abspath(path))
    for line in text.splitlines():
        found = split_include(os.fsdecode(line.strip()))
        # The first word only: the lexer would drop a trailing comment, and an estimate
        # of the size needs no more of its work.
        words = found[1].split() if found else []
        if not words:
            continue
        for name in find_files(words[0], folder).files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(name)
    return total


def worth_a_child(path: str) -> bool:
    return config_bytes(path) >= CHILD_FROM_BYTES


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


def load(path: str, config_id: str | None = None, *, child: bool | None = None) -> LoadResult:
    """``load_file(path)`` run in a child (the daemon's start, before any loop);
    ``child`` None: when :func:`worth_a_child`."""
    if not (worth_a_child(path) if child is None else child):
        return load_file(path, config_id=config_id)
    try:
        proc = subprocess.run(child_argv(path, config_id), stdin=subprocess.DEVNULL,
                              capture_output=True, check=False)
        res = _decoded(proc.returncode, proc.stdout, proc.stderr, path)
    except OSError as exc:
        res = _decoded(None, b"", str(exc).encode(), path)
    return res if res is not None else load_file(path, config_id=config_id)


async def load_async(path: str, config_id: str | None = None, *,
                     child: bool | None = None) -> LoadResult:
    """:func:`load` for a running loop (a reload): the loop only waits on the pipes
    (or, for a small file or should the child fail, on a thread loading in place)."""

    async def in_place() -> LoadResult:
        return await asyncio.get_running_loop().run_in_executor(
            None, lambda: load_file(path, config_id=config_id))

    if not (worth_a_child(path) if child is None else child):
        return await in_place()
    try:
        proc = await asyncio.create_subprocess_exec(
            *child_argv(path, config_id), stdin=subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        res = _decoded(proc.returncode, out, err, path)
    except OSError as exc:
        res = _decoded(None, b"", str(exc).encode(), path)
    return res if res is not None else await in_place()


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print("usage: python -m hafast.app.loadconf FILE [CONFIG_ID]", file=sys.stderr)
        return 2
    res = load_file_once(argv[0], config_id=argv[1] if len(argv) == 2 else None)
    sys.stdout.buffer.write(pickle.dumps(res, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    oneshot.begin()
    oneshot.exit_now(main(sys.argv[1:]))
