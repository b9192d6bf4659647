"""Timestamps the measured processes cannot move: a probe stamps what it reads from
a process of its own, at real-time priority when the suite may set one.

The scale section times "checker DOWN -> kernel" from the daemon's notify FIFO line
to the next nftables commit.  Both ends were stamped by readers at normal priority on
a machine the checks keep busy, and a reader that woke late moved the figure: the
commit reader late made the lag longer, the FIFO reader late (a thread of the suite,
waiting for the GIL too) could read its line after the commit of its own change, and
then the next commit, tens of milliseconds on, was taken for it (issue 16: the worst
figures of the p99).  A probe that wakes first stamps the moment itself.

:class:`FifoStamps` runs the C stamper (``c/probes.c fifo``) on the FIFO's
descriptor: it prints ``TIME LINE`` per line read.  :func:`promptly` puts a probe at
``SCHED_FIFO`` priority :data:`PRIORITY` (the nftables commit watcher uses it too).
At that priority each line the daemon writes wakes the probe at once, often on the
daemon's own CPU, and the daemon waits until the probe sleeps again: in Python the
probe took ~70 us of the writer per line (six lines: 473 us p50 against 73 us with
a reader at normal priority), which delayed a burst's later lines and its pool
change; in C, the six lines take 40-45 us (``c/probes.c`` says how).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import threading
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


PROBES_SOURCE = Path(__file__).resolve().parent / "c" / "probes.c"
_BUILT: dict[Path, Path] = {}  # C source -> this process's build of it


def compiled(source: Path) -> Path:
    """A probe's C ``source`` compiled, once per process, into a folder that goes
    with the process."""
    exe = _BUILT.get(source)
    if exe is None:
        from benchmarks.suite.anchors import build_c

        folder = Path(tempfile.mkdtemp(prefix="hafast-probe-"))
        atexit.register(shutil.rmtree, folder, True)
        exe = _BUILT[source] = build_c(source, folder)
    return exe


class FifoStamps:
    """:func:`main` on the already open FIFO descriptor ``fd``; ``on_line(t, line)``
    for each line, from a thread of this process."""

    def __init__(self, fd: int, on_line: Callable[[float, str], None]) -> None:
        self.proc = subprocess.Popen(
            [str(compiled(PROBES_SOURCE)), "fifo", str(fd)], pass_fds=(fd,), stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL, text=True)
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

