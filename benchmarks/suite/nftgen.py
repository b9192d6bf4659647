"""When the kernel committed each nftables transaction: the wall time of every
``NFT_MSG_NEWGEN`` on the ``NFNLGRP_NFTABLES`` multicast group, in the network
namespace the watcher runs in.  The scale section's "checker DOWN -> kernel" figure
is the time from a real server's DOWN line (read from the daemon's notify FIFO) to
the first commit after it: the pool change as the kernel saw it, stamped by the same
clock.

The watcher is ``c/probes.c nft``, at real-time priority when the suite may set one
(:func:`benchmarks.suite.stamps.promptly`), as the FIFO's stamper is: a watcher that
wakes late on a busy machine moves the figure, not the daemon; and in C, since at
that priority it runs on the daemon's time right after each commit.

Not ``nft monitor``: it prints every element of every transaction, and a transaction
of 10,000 elements would time the printing, not the kernel.  The watcher reads the
raw netlink messages and looks at their type only.

It prints ``ready`` once subscribed, then ``gen TIME`` per commit (``lost TIME`` if
the socket overran; the figure then skips that stretch).  :class:`Commits` runs it.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Sequence


class Commits:
    """The watcher (``c/probes.c nft``) in namespace ``ns``, its lines read by a
    thread."""

    def __init__(self, ns: str) -> None:
        from benchmarks.suite.anchors import nsenter
        from benchmarks.suite.stamps import PROBES_SOURCE, compiled, promptly

        self.proc = subprocess.Popen(
            nsenter(ns, [str(compiled(PROBES_SOURCE)), "nft"]),
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
            start_new_session=True)
        assert self.proc.stdout is not None
        # stamps the commits as they come, however busy the daemon keeps the CPUs
        self.prompt = promptly(self.proc.pid)
        if self.proc.stdout.readline().strip() != "ready":
            self.stop()
            raise RuntimeError("the nftables commit watcher did not start")
        self.gens: list[float] = []
        self.lost: list[float] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            kind, _, rest = line.partition(" ")
            (self.gens if kind == "gen" else self.lost).append(float(rest.split()[0]))

    def lags(self, downs: Sequence[float], until: float) -> list[float]:
        """For each time in ``downs``, seconds to the first commit at or after it (one
        with none before ``until`` is left out, as is one after a lost stretch)."""
        gens = sorted(self.gens)
        out = []
        for t in downs:
            nxt = next((g for g in gens if g >= t), None)
            if nxt is None or nxt > until or any(t <= x <= nxt for x in self.lost):
                continue
            out.append(nxt - t)
        return out

    def stop(self) -> None:
        from benchmarks.suite.stamps import end

        end(self.proc)

