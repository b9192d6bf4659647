"""Timestamps the measured processes cannot move: a probe stamps what it reads from
a process of its own, at real-time priority when the suite may set one.

The scale section times "checker DOWN -> kernel" from the daemon's notify FIFO line
to the next nftables commit.  Both ends were stamped by readers at normal priority on
a machine the checks keep busy, and a reader that woke late moved the figure: the
commit reader late made the lag longer, the FIFO reader late (a thread of the suite,
waiting for the GIL too) could read its line after the commit of its own change, and
then the next commit, tens of milliseconds on, was taken for it (issue 16: the worst
figures of the p99).  A probe that wakes first stamps the moment itself.

:class:`FifoStamps` runs ``python -m benchmarks.suite.stamps FD`` on the FIFO's
descriptor: it prints ``TIME LINE`` per line read.  :func:`promptly` puts a probe at
``SCHED_FIFO`` priority :data:`PRIORITY` (the nftables commit watcher uses it too).
A probe is awake for microseconds per line; its priority takes no CPU from the
measured daemon that the daemon would otherwise have.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

PRIORITY = 10  # SCHED_FIFO, below the kernel's own threads (50) and any VRRP rt_priority


def promptly(pid: int) -> bool:
    """``pid`` at SCHED_FIFO :data:`PRIORITY`; False when the suite may not (not root)."""
    try:
        os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(PRIORITY))
    except OSError:  # PermissionError among them
        return False
    return True


def end(proc: subprocess.Popen[str]) -> None:
    """Stop a probe: our own child, by PID (terminate, then kill after 5 s)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def main(fd: int) -> int:
    """Print ``TIME LINE`` for every line read from ``fd`` (a FIFO opened O_NONBLOCK)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    buf = b""
    out = sys.stdout
    while True:
        poller.poll(100)
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
        if not chunk:
            time.sleep(0.01)  # no writer yet (or between writers): poll says readable
            continue
        now = time.time()
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for raw in lines:
            out.write(f"{now!r} {raw.decode(errors='replace')}\n")
        out.flush()


class FifoStamps:
    """:func:`main` on the already open FIFO descriptor ``fd``; ``on_line(t, line)``
    for each line, from a thread of this process."""

    def __init__(self, fd: int, on_line: Callable[[float, str], None]) -> None:
        root = Path(__file__).resolve().parents[2]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.suite.stamps", str(fd)], pass_fds=(fd,),
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd=root,
            env=dict(os.environ, PYTHONPATH=str(root)))
        self.prompt = promptly(self.proc.pid)
        self._on_line = on_line
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            stamp, _, text = line.rstrip("\n").partition(" ")
            self._on_line(float(stamp), text)

    def stop(self) -> None:
        end(self.proc)
        self._thread.join(2)


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
