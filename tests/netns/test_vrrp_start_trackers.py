"""Issue 14: the start with a vrrp_script, side by side with Debian's keepalived 2.2.7,
as the notify FIFO sees it.

keepalived (vrrp_track.c initialise_track_script_state, vrrp_scheduler.c
vrrp_init_state and vrrp_script_child_thread): a script that has not run yet holds
the instances that track it with weight 0, and their sync group's members, in a
FAULT nobody is told about; its first result decides, whatever ``rise`` and ``fall``:

* failing: the tracking instance and the group say FAULT, nothing else (no BACKUP
  first; the group's other member, already in FAULT, says nothing);
* passing: BACKUP for each, then the group, as a start without a script;
* ``init_fail`` (with ``rise 2``): as passing, BACKUP at the first success.
  keepalived 2.2.7 sets the failed state when it reads ``init_fail`` and each
  ``track_script`` naming the script sets it back to "init" (alloc_track_script),
  so the keyword changes nothing for a tracked script.

Three instances: VI_1 (tracks ``chk``) and VI_2 in group G1, VI_3 (tracks ``chk``)
alone.  The lines of the first 2.5 s (before any Master_Down_Interval ends) and of
the stop must be the same, instance by instance and in order, under both daemons
(on the way out each says STOP and nothing else: VI_2, held in FAULT by the group,
does not pass through BACKUP when VI_1 stops).  The two run at the same time, each
in a lab of its own, each watched for 2.5 s from its own first line.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.conftest import require_root, require_tool
from tests.netns.test_vrrp_startup_delay import FifoLines
from tests.netns.vrrp_fixtures import KEEPALIVED, VrrpLab, labs_per_kind

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(120)]

KINDS = ("keepalived", "hafast")
WATCH_S = 2.5


@pytest.fixture
def labs() -> Iterator[dict[str, VrrpLab]]:
    require_root()
    require_tool(KEEPALIVED)
    with labs_per_kind("st", KINDS) as made:
        yield made


def config(kind: str, fifo: str, program: str, init_fail: bool) -> str:
    insts = []
    for name, vrid, tracks in (("VI_1", 61, True), ("VI_2", 62, False), ("VI_3", 63, True)):
        track = "  track_script {\n    chk\n  }\n" if tracks else ""
        insts.append(f"""vrrp_instance {name} {{
  state BACKUP
  interface eth0
  virtual_router_id {vrid}
  priority 100
  advert_int 1
  virtual_ipaddress {{
    10.77.0.{vrid + 100}/24
  }}
{track}}}
""")
    return f"""global_defs {{
  router_id {kind}
  vrrp_garp_master_delay 0
  script_user root
  enable_script_security
  vrrp_notify_fifo {fifo}
}}
vrrp_script chk {{
  script "{program}"
  interval 1
  rise 2
  fall 2
{"  init_fail" if init_fail else ""}
}}
{"".join(insts)}
vrrp_sync_group G1 {{
  group {{
    VI_1
    VI_2
  }}
}}
"""


def states(labs: dict[str, VrrpLab], program: str, init_fail: bool
           ) -> dict[str, dict[str, list[str]]]:
    """Per kind, the states each name wrote from the start to the stop, WATCH_S after
    that kind's first line."""
    fifos = {kind: FifoLines(lab.tmp / f"notify-{kind}.fifo") for kind, lab in labs.items()}
    routers = {}
    try:
        for kind, lab in labs.items():
            routers[kind] = lab.start("r1", kind, config(kind, str(fifos[kind].path),
                                                         program, init_fail))
        for kind, lab in labs.items():
            lab.wait_for(lambda f=fifos[kind]: bool(f.lines),  # type: ignore[misc]
                         10.0, f"{kind}: a first FIFO line")
        # each stopped WATCH_S after its own first line, the earlier first
        for kind in sorted(labs, key=lambda k: fifos[k].lines[0][0]):
            time.sleep(max(0.0, fifos[kind].lines[0][0] + WATCH_S - time.monotonic()))
            labs[kind].stop(routers.pop(kind))
    finally:
        for kind, router in routers.items():
            labs[kind].stop(router)
        for f in fifos.values():
            f.close()
    got: dict[str, dict[str, list[str]]] = {}
    for kind, fifo in fifos.items():
        seen = got[kind] = {}
        for _, line in fifo.lines:
            _kind, name, state, _prio = line.split()
            seen.setdefault(name.strip('"'), []).append(state)
    return got


@pytest.mark.parametrize(("program", "init_fail", "expect"), [
    ("/bin/false", False, {"VI_1": ["FAULT"], "VI_3": ["FAULT"], "G1": ["FAULT"]}),
    ("/bin/true", False, {"VI_1": ["BACKUP"], "VI_2": ["BACKUP"], "VI_3": ["BACKUP"],
                          "G1": ["BACKUP"]}),
    ("/bin/true", True, {"VI_1": ["BACKUP"], "VI_2": ["BACKUP"], "VI_3": ["BACKUP"],
                         "G1": ["BACKUP"]}),
], ids=["failing", "passing", "init_fail"])
def test_start_with_a_script_as_keepalived(labs: dict[str, VrrpLab], program: str,
                                           init_fail: bool, expect: dict[str, list[str]]
                                           ) -> None:
    expect = {name: [*states, "STOP"] for name, states in expect.items()}
    expect.setdefault("VI_2", ["STOP"])
    got = states(labs, program, init_fail)
    assert got["keepalived"] == expect
    assert got["hafast"] == got["keepalived"]
