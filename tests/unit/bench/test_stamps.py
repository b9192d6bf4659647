"""The suite's FIFO probe (benchmarks.suite.stamps): every line, in order, stamped
between its write and its delivery."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from benchmarks.suite.stamps import FifoStamps


def test_each_fifo_line_arrives_stamped_when_it_was_read(tmp_path: Path) -> None:
    fifo = tmp_path / "notify.fifo"
    os.mkfifo(fifo, 0o600)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    got: list[tuple[float, str]] = []
    arrived = threading.Event()

    def on_line(t: float, line: str) -> None:
        got.append((t, line))
        if len(got) == 3:
            arrived.set()

    probe = FifoStamps(rfd, on_line)
    try:
        wfd = os.open(fifo, os.O_WRONLY)
        before = time.time()
        os.write(wfd, b"RS [10.1.0.1]:tcp:80 [10.0.0.1]:tcp:80 DOWN\nRS [10.1.0.2]:tcp:80 ")
        os.write(wfd, b"[10.0.0.1]:tcp:80 DOWN\nINSTANCE \"VI_1\" MASTER 100\npartial")
        assert arrived.wait(30), got
        after = time.time()
        os.close(wfd)
    finally:
        probe.stop()
        os.close(rfd)
    assert [line for _t, line in got] == [
        "RS [10.1.0.1]:tcp:80 [10.0.0.1]:tcp:80 DOWN",
        "RS [10.1.0.2]:tcp:80 [10.0.0.1]:tcp:80 DOWN", 'INSTANCE "VI_1" MASTER 100']
    assert all(before <= t <= after for t, _line in got)
