"""Issue 14: interface_up_down_delays, hafast against keepalived 2.2.7, side by side.

Each kind runs alone in a lab of its own: r1's VI_1 (eth0, advert_int 1, MASTER by
itself) tracks trk0 and trk2 (veth pairs whose peers trk1/trk3 the test sets down to
take their carrier away).  The config and what keepalived 2.2.7 does with it
(keepalived_netlink.c update_interface_flags, vrrp_parser.c alloc_if_up_down_delay,
vrrp.c check_debounce_timers), and so what both must do:

- ``trk0 3 2``: down, the instance stays MASTER for 3 s, then FAULT; up, it stays in
  FAULT for 2 s, then BACKUP and MASTER; down and up again within a second: nothing;
- ``trk2 3``: no up delay means 0 (the parser's, not the man page's "same as down");
- ``eth0 5`` on the instance's own interface: shortened to just under
  (down_timer_adverts - 1) * advert_int = 2 s, so FAULT comes after ~2 s, not 5.

States come from a notify FIFO; the margins are seconds (the delays are lower bounds,
the upper bounds only tell the delays apart), for a machine shared with other runs.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator

import pytest

from hafast.lab.netns import run_in
from tests.conftest import require_root, require_tool
from tests.netns.test_vrrp_startup_delay import FifoLines
from tests.netns.vrrp_fixtures import KEEPALIVED, VIP4, VrrpLab, labs_per_kind

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(240)]

KINDS = ("hafast", "keepalived")
SLACK_S = 0.5  # the FIFO line's way to the reader; never to excuse an early change


def conf(fifo: str) -> str:
    return f"""global_defs {{
  router_id r1
  vrrp_garp_master_delay 0
  notify_fifo {fifo}
}}
interface_up_down_delays {{
  trk0 3 2
  trk2 3
  eth0 5
}}
vrrp_instance VI_1 {{
  state MASTER
  interface eth0
  virtual_router_id 61
  priority 150
  advert_int 1
  track_interface {{
    trk0
    trk2
  }}
  virtual_ipaddress {{
    {VIP4}/24
  }}
}}
"""


@pytest.fixture
def labs() -> Iterator[dict[str, VrrpLab]]:
    require_root()
    require_tool(KEEPALIVED)
    with labs_per_kind("ud", KINDS, [("trk0", "trk1"), ("trk2", "trk3")]) as made:
        yield made


class Run:
    """Both kinds, one notify FIFO each; every step is done to both at once."""

    def __init__(self, labs: dict[str, VrrpLab]) -> None:
        self.labs = labs
        self.fifos = {k: FifoLines(labs[k].tmp / f"notify-{k}.fifo") for k in KINDS}

    def states(self, kind: str, since: float = 0.0) -> list[tuple[float, str]]:
        return [(t - since, ln.split()[2]) for t, ln in self.fifos[kind].lines
                if ln.startswith('INSTANCE "VI_1"') and t >= since]

    def link(self, ns_role: str, dev: str, updown: str) -> float:
        t = time.monotonic()
        for lab in self.labs.values():
            run_in(lab.ns(ns_role), ["ip", "link", "set", dev, updown])
        return t

    def wait(self, since: float, want: list[str], timeout: float) -> dict[str, list[float]]:
        """Until each kind has written ``want`` since ``since``; their times."""
        def done(kind: str) -> bool:
            return [s for _t, s in self.states(kind, since)] == want

        for kind, lab in self.labs.items():
            lab.wait_for(functools.partial(done, kind), timeout, f"{kind}: {want}")
        return {k: [t for t, _s in self.states(k, since)] for k in KINDS}

    def wait_master(self, timeout: float) -> None:
        def master(kind: str) -> bool:
            return [s for _t, s in self.states(kind)][-1:] == ["MASTER"]

        for kind, lab in self.labs.items():
            lab.wait_for(functools.partial(master, kind), timeout, f"{kind}: MASTER")

    def quiet(self, since: float, seconds: float) -> None:
        time.sleep(seconds)
        for kind in KINDS:
            assert self.states(kind, since) == [], (kind, self.fifos[kind].lines)

    def close(self) -> None:
        for f in self.fifos.values():
            f.close()


def test_up_down_delays_as_keepalived(labs: dict[str, VrrpLab]) -> None:
    run = Run(labs)
    try:
        for kind in KINDS:
            labs[kind].start("r1", kind, conf(str(run.fifos[kind].path)))
        run.wait_master(15.0)

        # trk0: 3 s down delay -> MASTER meanwhile (VIP held), then FAULT
        t = run.link("r1", "trk1", "down")
        run.quiet(t, 1.5)
        for kind, lab in labs.items():
            assert lab.has_vip("r1"), kind
        got = run.wait(t, ["FAULT"], 10.0)
        for kind in KINDS:
            assert got[kind][0] >= 3.0 - 0.05, (kind, got)
        # 2 s up delay -> FAULT meanwhile, then BACKUP and MASTER
        t = run.link("r1", "trk1", "up")
        run.quiet(t, 1.0)
        got = run.wait(t, ["BACKUP", "MASTER"], 15.0)
        for kind in KINDS:
            assert got[kind][0] >= 2.0 - 0.05, (kind, got)

        # down and up again within the delay: no change at all
        t = run.link("r1", "trk1", "down")
        time.sleep(0.5)
        run.link("r1", "trk1", "up")
        run.quiet(t, 5.0)

        # trk2 has no up delay: 0, as keepalived 2.2.7's parser sets it
        t = run.link("r1", "trk3", "down")
        got = run.wait(t, ["FAULT"], 10.0)
        for kind in KINDS:
            assert got[kind][0] >= 3.0 - 0.05, (kind, got)
        t = run.link("r1", "trk3", "up")
        got = run.wait(t, ["BACKUP", "MASTER"], 15.0)
        for kind in KINDS:
            assert got[kind][0] < 2.0, (kind, got)  # a 3 s up delay would show

        # eth0's 5 s, on the instance's own link, is cut to just under 2 s
        t = run.link("sw", "pr1", "down")
        got = run.wait(t, ["FAULT"], 10.0)
        for kind in KINDS:
            assert 2.0 - 0.1 <= got[kind][0] < 4.0 + SLACK_S, (kind, got)
        run.link("sw", "pr1", "up")
    finally:
        run.close()
