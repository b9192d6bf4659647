"""Issue 14: ``vrrp_startup_delay`` side by side with Debian's keepalived 2.2.7.

keepalived 2.2.7 (vrrp_daemon.c, vrrp_scheduler.c ``vrrp_init_instance_sands``):
instances enter BACKUP at once and say so, read adverts during the delay, and arm
every backup timer from the end of the delay; the address owner waits silently and
becomes MASTER when it ends.  Each story runs the same config under hafast's VRRP
daemon and keepalived on r1, with the states read off ``vrrp_notify_fifo`` as they
arrive (each line stamped on arrival):

* alone: BACKUP at once, MASTER after delay + Master_Down_Interval (not before);
* an owner (priority 255, ``state MASTER``): no line until MASTER, at the end of
  the delay;
* a lower-priority master (r2, keepalived, priority 50) already up: r1 hears it
  during the delay, and each of its adverts re-arms the remaining time from the
  end of the delay, so r1 preempts well after delay + Master_Down_Interval
  (9.6-12.6 s here instead of 6.6 s).  An implementation that did not read adverts
  during the delay, or re-armed from now, preempts at 6.6 s and fails;
* keepalived 2.3's ``vrrp_delay_after_boot`` long past: no delay.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_root, require_tool
from tests.netns.vrrp_fixtures import KEEPALIVED, VrrpLab, conf

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(180)]

PREFIX = f"sd{os.getpid() % 100000}"
KINDS = ["hafast", "keepalived"]
DELAY_S = 3.0
# advert_int 1, priority 100: 3 * 1 + (256 - 100) / 256 (RFC 3768 §6.1)
DOWN_S = 3 + 156 / 256
SLACK_S = 0.6  # scheduling, notify FIFO write and read


@pytest.fixture
def lab() -> Iterator[VrrpLab]:
    require_root()
    with VrrpLab(PREFIX) as built:
        yield built


class FifoLines(threading.Thread):
    """Lines written to a notify FIFO, each with the monotonic time it arrived."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        os.mkfifo(path)
        self.path = path
        self.lines: list[tuple[float, str]] = []
        # Held open for writing too, so that our read end never sees EOF when a
        # daemon closes its end, and so that close() can wake the reader.
        self._keep = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        self.start()

    def run(self) -> None:
        with open(self.path, "rb", buffering=0) as f:
            buf = b""
            while True:
                chunk = f.read(4096)
                if not chunk or b"\x00" in chunk:
                    return
                buf += chunk
                *done, buf = buf.split(b"\n")
                now = time.monotonic()
                self.lines += [(now, ln.decode()) for ln in done if ln]

    def close(self) -> None:
        os.write(self._keep, b"\x00")
        self.join(5)
        os.close(self._keep)

    def first(self, state: str) -> float | None:
        return next((t for t, ln in self.lines if f'"VI_1" {state} ' in ln), None)


def r1_conf(kind: str, fifo: Path, priority: int = 100, delay: bool = True) -> str:
    extra = f"  vrrp_notify_fifo {fifo}"
    if delay:
        extra += f"\n  vrrp_startup_delay {DELAY_S:g}"
    return conf(kind, priority=priority, extra_global=extra)


def start_r1(lab: VrrpLab, kind: str, priority: int = 100) -> tuple[float, FifoLines]:
    if kind == "keepalived":
        require_tool(KEEPALIVED)
    fifo = FifoLines(lab.tmp / f"notify-{kind}.fifo")
    text = r1_conf(kind, fifo.path, priority)
    if priority == 255:
        # keepalived 2.2.7 takes the owner's path (vrrp_init_state) only when its
        # wanted state is MASTER; an owner with `state BACKUP` waits out a whole
        # Master_Down_Interval as a backup.
        text = text.replace("state BACKUP", "state MASTER")
    t0 = time.monotonic()
    lab.start("r1", kind, text)
    return t0, fifo


@pytest.mark.parametrize("kind", KINDS)
def test_backup_at_once_master_after_the_delay(lab: VrrpLab, kind: str) -> None:
    _, fifo = start_r1(lab, kind)
    try:
        lab.wait_for(lambda: fifo.first("BACKUP") is not None, 5.0, "BACKUP")
        lab.wait_holder("r1", DELAY_S + DOWN_S + 5.0)
        lab.wait_for(lambda: fifo.first("MASTER") is not None, 2.0, "MASTER")
    finally:
        fifo.close()
    backup, master = fifo.first("BACKUP"), fifo.first("MASTER")
    assert backup is not None and master is not None
    took = master - backup
    print(f"{kind}: MASTER {took:.3f} s after BACKUP")
    assert DELAY_S + DOWN_S - 0.1 < took < DELAY_S + DOWN_S + SLACK_S, (kind, took)


@pytest.mark.parametrize("kind", KINDS)
def test_a_delay_after_boot_already_past_delays_nothing(lab: VrrpLab, kind: str) -> None:
    """keepalived 2.3's ``vrrp_delay_after_boot`` under hafast, 1 s after boot (long
    past), against 2.2.7 (which lacks it) without a delay.  The wait when the boot
    is recent is :func:`hafast.vrrp.from_config.startup_delay_us` plus the
    ``vrrp_startup_delay`` path above (an uptime a few seconds ahead is beyond the
    timer range keepalived reads it with, 4294 s, on a host up for longer)."""
    if kind == "keepalived":
        require_tool(KEEPALIVED)
    extra = "  vrrp_delay_after_boot 1\n" if kind == "hafast" else ""
    fifo = FifoLines(lab.tmp / f"notify-{kind}.fifo")
    try:
        lab.start("r1", kind, conf(kind, priority=100,
                                   extra_global=f"{extra}  vrrp_notify_fifo {fifo.path}"))
        lab.wait_holder("r1", DOWN_S + 5.0)
        lab.wait_for(lambda: fifo.first("MASTER") is not None, 2.0, "MASTER")
    finally:
        fifo.close()
    backup, master = fifo.first("BACKUP"), fifo.first("MASTER")
    assert backup is not None and master is not None
    took = master - backup
    print(f"{kind}: MASTER {took:.3f} s after BACKUP")
    assert DOWN_S - 0.1 < took < DOWN_S + SLACK_S, (kind, took)


@pytest.mark.parametrize("kind", KINDS)
def test_the_owner_is_master_when_the_delay_ends(lab: VrrpLab, kind: str) -> None:
    t0, fifo = start_r1(lab, kind, priority=255)
    try:
        lab.wait_holder("r1", DELAY_S + 5.0)
        lab.wait_for(lambda: fifo.first("MASTER") is not None, 2.0, "MASTER")
    finally:
        fifo.close()
    master = fifo.first("MASTER")
    assert master is not None
    # From the spawn: the interpreter's start-up (hafast) counts on top of the delay;
    # in a loaded CI run (three xdist workers beside the IPVS VM) it took 1.94 s, so
    # the upper bound only says the owner did not wait another delay.  Not before the
    # delay is the behaviour under test.
    assert DELAY_S <= master - t0 < 2 * DELAY_S, (kind, master - t0)
    # keepalived notifies nothing for the owner's wait (vrrp_init_state).
    assert [ln for _, ln in fifo.lines if "VI_1" in ln] == ['INSTANCE "VI_1" MASTER 255']


@pytest.mark.parametrize("kind", KINDS)
def test_lower_adverts_during_the_delay_push_the_preemption_later(lab: VrrpLab,
                                                                  kind: str) -> None:
    require_tool(KEEPALIVED)
    lab.start("r2", "keepalived", conf("keepalived", priority=50))
    lab.wait_holder("r2", 8.0)
    _, fifo = start_r1(lab, kind)
    try:
        lab.wait_for(lambda: fifo.first("BACKUP") is not None, 5.0, "BACKUP")
        lab.wait_holder("r1", 20.0)
        lab.wait_for(lambda: fifo.first("MASTER") is not None, 2.0, "MASTER")
    finally:
        fifo.close()
    backup, master = fifo.first("BACKUP"), fifo.first("MASTER")
    assert backup is not None and master is not None
    took = master - backup
    print(f"{kind}: MASTER {took:.3f} s after BACKUP")
    # Adverts at phase p, p + 1, p + 2 (p in [0, 1)) during the 3 s delay leave the
    # deadline at 3 + 3 * 3 + 0.609 - 3 - 3p = 12.609 - 3p s (see the FSM's
    # _backup_advert); without the re-arm it would be 6.609 s.
    assert DELAY_S + DOWN_S + 2.5 < took < 4 * DELAY_S + DOWN_S - 3 + SLACK_S, (kind, took)
