"""A warm spare for the VRRP worker: a worker process started ahead, its imports done,
waiting for the ``init`` a dead worker's successor gets.

Why: a VRRP worker that dies leaves its MASTER instances silent, and the parent's
guard (:mod:`hafast.app.vipguard`) gives the successor until its predecessor's last
advert plus 2.75 advert intervals to advertise, or it releases the VIPs (never two
masters) and the peer takes over for a while.  A fresh interpreter spends much of
its start-up importing (0.23 s to import the VRRP side here; 1.84 s for a whole
start in a loaded CI run, where the guard had to act).  The spare has spent that
time already, before anything died: from the restart to "ready", 0.49-0.56 s from
the spare against 0.46-0.97 s fresh (tests/netns/test_vrrp_spare.py, three runs on
this two-core machine with other work on it).

The spare is started :data:`SPARE_AFTER_S` after the VRRP worker it stands behind
is ready, is taken by the next restart, and is replaced the same way after that one.
Its start is a burst of CPU (the imports) that should not land on a worker that has
just come up and is taking its instances over: with the spare started at once, a
loaded two-core machine saw the successor miss its 0.1 s heartbeat (advert_int 0.1)
and be killed, twice in ten runs (the likely cause; not proven).  So it waits, and it
imports at a lower priority (nice +10, as root; the worker takes the parent's
priority back when it is taken).  It holds no config and no socket but its end of
the parent's socketpair; it dies with the parent (``--parent-pid``, as every
worker).  A spare that dies is forgotten (logged); the next restart then spawns as
before.

Example (in the parent)::

    spare = Spare(lambda fd: [sys.executable, "-m", "hafast.app.worker", "--worker-fd",
                              str(fd), "--parent-pid", str(os.getpid())])
    await spare.make()
    taken = spare.take()   # (WorkerProcess, parent's socket) or None
    await spare.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable

from hafast.app.process import WorkerProcess

log = logging.getLogger("hafast")

PRELOAD = "--preload"  # the worker's flag: import this role's side before init
SPARE_AFTER_S = 2.0  # after the live worker's "ready": its own start settled first


class Spare:
    """At most one spare worker process; ``argv_of(fd)`` is a worker's command line
    for its end ``fd`` of the socketpair."""

    def __init__(self, argv_of: Callable[[int], list[str]], role: str = "vrrp") -> None:
        self.argv_of = argv_of
        self.role = role
        self.proc: WorkerProcess | None = None
        self.sock: socket.socket | None = None
        self.taken = 0  # restarts that found the spare ready
        self._making = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def make(self) -> None:
        """Start a spare unless one is there (or being started)."""
        if self.proc is not None or self._making:
            return
        self._making = True
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            proc = await WorkerProcess.spawn(
                [*self.argv_of(child_sock.fileno()), PRELOAD, self.role], child_sock.fileno())
        except OSError as exc:
            parent_sock.close()
            log.warning("cannot start a spare %s worker: %s", self.role, exc)
            return
        finally:
            child_sock.close()
            self._making = False
        self.proc, self.sock = proc, parent_sock
        asyncio.get_running_loop().create_task(self._watch(proc))

    async def _watch(self, proc: WorkerProcess) -> None:
        code = await proc.wait()
        if self.proc is proc:  # died while waiting, not taken
            log.warning("the spare %s worker (pid %d) exited with %s; the next restart "
                        "starts a fresh one", self.role, proc.pid, code)
            self._drop()

    def take(self) -> tuple[WorkerProcess, socket.socket] | None:
        """The spare, if it is alive, for a restart; the caller owns it from now."""
        proc, sock = self.proc, self.sock
        if proc is None or sock is None or proc.returncode is not None:
            self._drop()
            return None
        self.proc = self.sock = None
        self.taken += 1
        return proc, sock

    def _drop(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.proc = self.sock = None

    async def close(self) -> None:
        """Stop the spare (the daemon is stopping)."""
        proc = self.proc
        self._drop()
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
