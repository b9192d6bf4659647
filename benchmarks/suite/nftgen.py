"""When the kernel committed each nftables transaction: the wall time of every
``NFT_MSG_NEWGEN`` on the ``NFNLGRP_NFTABLES`` multicast group, in the network
namespace this runs in.  The scale section's "checker DOWN -> kernel" figure is the
time from a real server's DOWN line (read from the daemon's notify FIFO) to the first
commit after it: the pool change as the kernel saw it, stamped by the same clock.

It runs at real-time priority when the suite may set one
(:func:`benchmarks.suite.stamps.promptly`), as the FIFO's reader does: a reader
that wakes late on a busy machine moves the figure, not the daemon.

Not ``nft monitor``: it prints every element of every transaction, and a transaction
of 10,000 elements would time the printing, not the kernel.  This reads the raw
netlink messages and looks at their type only.

Run as ``nsenter --net=/run/netns/NS -- python -m benchmarks.suite.nftgen``: prints
``ready`` once subscribed, then ``gen TIME`` per commit (``lost TIME`` if the
socket overran; the figure then skips that stretch).  :class:`Commits` runs it.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

NETLINK_NETFILTER = 12
NFNLGRP_NFTABLES = 7
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
SO_RCVBUFFORCE = 33
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWGEN = 15
NEWGEN = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN


def newgens(data: bytes) -> int:
    """How many NEWGEN messages one datagram holds.

    >>> hdr = struct.pack("=IHHII", 16, NEWGEN, 0, 0, 0)
    >>> other = struct.pack("=IHHII", 20, (10 << 8) | 6, 0, 0, 0) + b"\\0" * 4
    >>> newgens(other + hdr), newgens(b"")
    (1, 0)
    """
    n = off = 0
    while off + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, off)
        if kind == NEWGEN:
            n += 1
        if length < 16:
            break
        off += (length + 3) & ~3
    return n


def main() -> int:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20)
    s.bind((0, 0))
    s.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, NFNLGRP_NFTABLES)
    print("ready", flush=True)
    while True:
        try:
            data = s.recv(1 << 20)
        except OSError as exc:  # ENOBUFS: the socket overran
            print(f"lost {time.time()} {exc.errno}", flush=True)
            continue
        now = time.time()
        for _ in range(newgens(data)):
            print(f"gen {now}", flush=True)


class Commits:
    """:func:`main` in namespace ``ns``, its lines read by a thread."""

    def __init__(self, ns: str) -> None:
        from benchmarks.suite.anchors import nsenter
        from benchmarks.suite.stamps import promptly

        self.proc = subprocess.Popen(
            nsenter(ns, [sys.executable, "-m", "benchmarks.suite.nftgen"]),
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
            cwd=_root(), start_new_session=True)
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


def _root() -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parents[2])


if __name__ == "__main__":
    sys.exit(main())
