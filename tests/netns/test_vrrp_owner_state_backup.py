"""Issue 14: the address owner (priority 255) with ``state BACKUP``, side by side
with Debian's keepalived 2.2.7.

keepalived 2.2.7 (``vrrp_complete_instance`` in vrrp.c, ``vrrp_init_state`` in
vrrp_scheduler.c) takes its owner shortcut (a backup timer of 1 µs) only when the
wanted state is MASTER, which an unset state derives from the priority.  An owner
that says ``state BACKUP`` enters BACKUP, notifies it, and becomes MASTER when its
Master_Down_Interval (3 adverts plus the skew, (256 - 255) / 256 s) runs out: it
discards a lower-priority master's adverts (``vrrp_state_backup``), so the wait is
the same with one.  hafast used to go MASTER at once.  Each story runs r1 under
hafast's VRRP daemon and under keepalived, with the states read off
``vrrp_notify_fifo`` as they arrive:

* alone, ``state BACKUP``: BACKUP at once, MASTER one Master_Down_Interval later;
* a lower-priority keepalived master (r2, priority 100) already up: the same wait,
  then r1 takes the VIP and r2 steps back;
* no ``state``: MASTER at once (no BACKUP line first);
* no ``state``, a track_file that puts it in FAULT (while MASTER, or from the start)
  then clears: BACKUP, and MASTER a Master_Down_Interval later.  keepalived's
  down_instance (or vrrp_init_state for a fault at start) sets the wanted state to
  FAULT, so try_up_instance leaves the owner a backup; only the start's silent hold
  for a vrrp_script not yet run keeps the shortcut.  hafast went MASTER at once;
* ``state MASTER`` and no ``priority``: keepalived derives the priority from the
  state, 255, so MASTER at once as the owner.  hafast ran it at 100 (MASTER after one
  advert interval).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_root, require_tool
from tests.netns.test_vrrp_startup_delay import FifoLines
from tests.netns.vrrp_fixtures import KEEPALIVED, VrrpLab, conf

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(120)]

PREFIX = f"ob{os.getpid() % 100000}"
KINDS = ["hafast", "keepalived"]
# advert_int 1, priority 255: 3 * 1 + (256 - 255) / 256 (RFC 3768 §6.1)
DOWN_S = 3 + 1 / 256
# Generous: two cores shared with other netns runs; the shortcut this guards
# against takes ~0 s, the bug's opposite (a full v2 skew or an extra interval) >= 4 s.
EARLY_S = 0.3
LATE_S = 0.9


@pytest.fixture
def lab() -> Iterator[VrrpLab]:
    require_root()
    with VrrpLab(PREFIX) as built:
        yield built


def start_r1(lab: VrrpLab, kind: str, state: str | None, track: Path | None = None,
             priority: bool = True) -> FifoLines:
    if kind == "keepalived":
        require_tool(KEEPALIVED)
    fifo = FifoLines(lab.tmp / f"notify-{kind}.fifo")
    text = conf(kind, priority=255, extra_global=f"  vrrp_notify_fifo {fifo.path}")
    text = text.replace("  state BACKUP\n", f"  state {state}\n" if state else "")
    if not priority:
        text = text.replace("  priority 255\n", "")
    if track is not None:
        text = f"vrrp_track_file tf {{\n  file {track}\n  weight 0\n}}\n" + text.replace(
            "  virtual_ipaddress {", "  track_file {\n    tf\n  }\n  virtual_ipaddress {")
    lab.start("r1", kind, text)
    return fifo


def took(fifo: FifoLines) -> float:
    backup, master = fifo.first("BACKUP"), fifo.first("MASTER")
    assert backup is not None and master is not None, fifo.lines
    assert backup < master, fifo.lines
    return master - backup


@pytest.mark.parametrize("kind", KINDS)
def test_alone_waits_its_master_down_interval(lab: VrrpLab, kind: str) -> None:
    fifo = start_r1(lab, kind, "BACKUP")
    try:
        lab.wait_for(lambda: fifo.first("BACKUP") is not None, 5.0, "BACKUP")
        assert not lab.has_vip("r1"), kind
        lab.wait_holder("r1", DOWN_S + 5.0)
        lab.wait_for(lambda: fifo.first("MASTER") is not None, 2.0, "MASTER")
    finally:
        fifo.close()
    t = took(fifo)
    print(f"{kind}: MASTER {t:.3f} s after BACKUP")
    assert DOWN_S - EARLY_S < t < DOWN_S + LATE_S, (kind, t)


@pytest.mark.parametrize("kind", KINDS)
def test_a_lower_master_does_not_hold_it_back(lab: VrrpLab, kind: str) -> None:
    require_tool(KEEPALIVED)
    lab.start("r2", "keepalived", conf("keepalived", priority=100).replace(
        "state BACKUP", "state MASTER"))
    lab.wait_holder("r2", 10.0)
    fifo = start_r1(lab, kind, "BACKUP")
    try:
        lab.wait_for(lambda: fifo.first("BACKUP") is not None, 5.0, "BACKUP")
        lab.wait_holder("r1", DOWN_S + 5.0)
        lab.wait_for(lambda: fifo.first("MASTER") is not None, 2.0, "MASTER")
        lab.wait_for(lambda: lab.holders() == ["r1"], 5.0, "r2 steps back")
    finally:
        fifo.close()
    t = took(fifo)
    print(f"{kind}: MASTER {t:.3f} s after BACKUP, over a priority 100 master")
    assert DOWN_S - EARLY_S < t < DOWN_S + LATE_S, (kind, t)


@pytest.mark.parametrize("kind", KINDS)
def test_without_state_the_owner_is_master_at_once(lab: VrrpLab, kind: str) -> None:
    t0 = time.monotonic()
    fifo = start_r1(lab, kind, None)
    try:
        lab.wait_holder("r1", 5.0)
        lab.wait_for(lambda: fifo.first("MASTER") is not None, 2.0, "MASTER")
    finally:
        fifo.close()
    master = fifo.first("MASTER")
    assert master is not None
    assert fifo.first("BACKUP") is None, (kind, fifo.lines)
    # a daemon's start-up (Python's imports under load) plus nothing to wait for
    assert master - t0 < DOWN_S, (kind, master - t0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("when", ["running", "at start"])
def test_the_owner_leaves_a_fault_as_backup(lab: VrrpLab, kind: str, when: str) -> None:
    track = lab.tmp / "track"
    track.write_text("1\n" if when == "at start" else "0\n")  # weight 0: non-zero is FAULT
    fifo = start_r1(lab, kind, None, track)
    try:
        if when == "running":
            lab.wait_holder("r1", 5.0)
            track.write_text("1\n")
        lab.wait_for(lambda: fifo.first("FAULT") is not None, 5.0, "FAULT")
        lab.wait_for(lambda: lab.holders() == [], 5.0, "the VIP released")
        mark = len(fifo.lines)
        track.write_text("0\n")
        lab.wait_holder("r1", DOWN_S + 5.0)
        lab.wait_for(lambda: any('"VI_1" MASTER' in ln for _, ln in fifo.lines[mark:]), 2.0,
                     "MASTER")
    finally:
        fifo.close()
    after = [(t, ln.split()[2]) for t, ln in fifo.lines[mark:]]
    assert [st for _, st in after] == ["BACKUP", "MASTER"], (kind, after)
    t = after[1][0] - after[0][0]
    print(f"{kind}, fault {when}: MASTER {t:.3f} s after BACKUP")
    assert DOWN_S - EARLY_S < t < DOWN_S + LATE_S, (kind, t)


@pytest.mark.parametrize("kind", KINDS)
def test_state_master_without_priority_is_the_owner(lab: VrrpLab, kind: str) -> None:
    fifo = start_r1(lab, kind, "MASTER", priority=False)
    try:
        lab.wait_holder("r1", 5.0)
        lab.wait_for(lambda: fifo.first("MASTER") is not None, 2.0, "MASTER")
    finally:
        fifo.close()
    assert [ln for _, ln in fifo.lines] == ['INSTANCE "VI_1" MASTER 255'], (kind, fifo.lines)
