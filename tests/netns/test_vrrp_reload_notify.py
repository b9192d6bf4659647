"""Issue 14: what a reload (SIGHUP) writes to the notify FIFO, side by side with
Debian's keepalived 2.2.7.

* An instance the new file no longer has (keepalived vrrp.c clear_diff_vrrp): it
  says FAULT (keepalived's old way, kept as the default), or DELETED with
  ``notify_deleted``; one already in FAULT says nothing without ``notify_deleted``.
  A master among them releases its VIPs as at a stop.
* ``fifo_write_vrrp_states_on_reload``: the states of the sync groups and of the
  instances kept (masters aside) are written to the FIFO again, nothing else.

Each case runs r1 alone with VI_1 (kept) and VI_2 (removed by the reload; in FAULT
when it tracks a failing script), VRRPv3 at 0.1 s so masters come quickly; each kind
in a lab of its own, both at once (the waits for what a reload writes serve both).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from tests.conftest import require_root, require_tool
from tests.netns.test_vrrp_startup_delay import FifoLines
from tests.netns.vrrp_fixtures import KEEPALIVED, VrrpLab, labs_per_kind

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(120)]

KINDS = ("keepalived", "hafast")


@pytest.fixture
def labs() -> Iterator[dict[str, VrrpLab]]:
    require_root()
    require_tool(KEEPALIVED)
    with labs_per_kind("rn", KINDS) as made:
        yield made


def config(kind: str, fifo: str, names: tuple[str, ...], *, extra_global: str = "",
           vi2: str = "") -> str:
    insts = []
    for name in names:
        vrid = 70 + int(name[-1])
        insts.append(f"""vrrp_instance {name} {{
  state BACKUP
  interface eth0
  virtual_router_id {vrid}
  priority 100
  version 3
  advert_int 0.1
  virtual_ipaddress {{
    10.77.0.{vrid + 100}/24
  }}
{vi2 if name == "VI_2" else ""}
}}
""")
    return f"""global_defs {{
  router_id {kind}
  vrrp_garp_master_delay 0
  script_user root
  enable_script_security
  vrrp_notify_fifo {fifo}
{extra_global}
}}
vrrp_script bad {{
  script "/bin/false"
  interval 1
}}
{"".join(insts)}"""


def reload_lines(labs: dict[str, VrrpLab], *, vi2: str = "", extra_global: str = "",
                 settle: float = 1.5) -> dict[str, tuple[list[str], list[str]]]:
    """Per kind, (lines before the reload, lines after it) of one run; VI_2 is
    dropped."""
    fifos = {kind: FifoLines(lab.tmp / f"notify-{kind}.fifo") for kind, lab in labs.items()}
    routers = {}
    try:
        for kind, lab in labs.items():
            routers[kind] = lab.start("r1", kind, config(
                kind, str(fifos[kind].path), ("VI_1", "VI_2"), vi2=vi2,
                extra_global=extra_global))
        for kind, lab in labs.items():
            lab.wait_for(lambda f=fifos[kind]: any(  # type: ignore[misc]
                '"VI_1" MASTER' in ln for _, ln in f.lines), 10.0, f"{kind}: VI_1 master")
        time.sleep(0.5)
        cuts = {}
        for kind, lab in labs.items():
            (lab.tmp / "r1.conf").write_text(config(kind, str(fifos[kind].path), ("VI_1",),
                                                    extra_global=extra_global))
            cuts[kind] = len(fifos[kind].lines)
            os.kill(routers[kind].proc.pid, signal.SIGHUP)
        time.sleep(settle)
        lines = {kind: [ln for _, ln in f.lines] for kind, f in fifos.items()}
        for kind, lab in labs.items():
            assert not lab.has_vip("r1", "10.77.0.172"), f"{kind}: VI_2's VIP left behind"
    finally:
        for kind, router in routers.items():
            labs[kind].stop(router)
        for f in fifos.values():
            f.close()
    return {kind: (lines[kind][:cuts[kind]], lines[kind][cuts[kind]:]) for kind in labs}


@pytest.mark.parametrize(("deleted", "faulty", "expect"), [
    (False, False, ['INSTANCE "VI_2" FAULT 100']),
    (True, False, ['INSTANCE "VI_2" DELETED 100']),
    (False, True, []),
    (True, True, ['INSTANCE "VI_2" DELETED 100']),
], ids=["master", "master-notify_deleted", "fault", "fault-notify_deleted"])
def test_an_instance_removed_by_a_reload(labs: dict[str, VrrpLab], deleted: bool,
                                         faulty: bool, expect: list[str]) -> None:
    vi2 = ("  notify_deleted\n" if deleted else "") + \
        ("  track_script {\n    bad\n  }\n" if faulty else "")
    got = {kind: after for kind, (_before, after) in reload_lines(labs, vi2=vi2).items()}
    assert got["keepalived"] == expect
    assert got["hafast"] == got["keepalived"]


@pytest.mark.parametrize("on", [False, True], ids=["default", "fifo_write"])
def test_states_written_again_at_a_reload(labs: dict[str, VrrpLab], on: bool) -> None:
    """``fifo_write_vrrp_states_on_reload`` (keepalived vrrp_scheduler.c
    vrrp_init_state): the group G1 (VI_1, master) and VI_3 (in FAULT) are written
    again, VI_1 itself is not (a master kept by a reload takes keepalived's
    reload_master path, which writes nothing).  The reload drops VI_2 (its FAULT
    line comes first) and keeps the others."""
    extra = "  fifo_write_vrrp_states_on_reload" if on else ""
    group = "vrrp_sync_group G1 {\n  group {\n    VI_1\n  }\n}\n"
    bad = "  track_script {\n    bad\n  }\n"
    got = {}
    fifos = {kind: FifoLines(lab.tmp / f"states-{kind}-{on}.fifo")
             for kind, lab in labs.items()}

    def text(kind: str, names: tuple[str, ...]) -> str:
        body = config(kind, str(fifos[kind].path), names, extra_global=extra)
        # VI_3 tracks the failing script (config() puts vi2's text in VI_2 only)
        return body.replace("virtual_router_id 73\n", "virtual_router_id 73\n" + bad) + group

    def ready(f: FifoLines) -> bool:
        said = [ln for _, ln in f.lines]
        return any('"VI_1" MASTER' in ln for ln in said) and \
            any('"VI_3" FAULT' in ln for ln in said)

    routers = {}
    try:
        for kind, lab in labs.items():
            routers[kind] = lab.start("r1", kind, text(kind, ("VI_1", "VI_2", "VI_3")))
        for kind, lab in labs.items():
            lab.wait_for(lambda f=fifos[kind]: ready(f), 10.0,  # type: ignore[misc]
                         f"{kind}: VI_1 master, VI_3 in FAULT")
        time.sleep(0.5)
        cuts = {}
        for kind, lab in labs.items():
            (lab.tmp / "r1.conf").write_text(text(kind, ("VI_1", "VI_3")))
            cuts[kind] = len(fifos[kind].lines)
            os.kill(routers[kind].proc.pid, signal.SIGHUP)
        time.sleep(1.5)
        for kind, f in fifos.items():
            got[kind] = [ln for _, ln in f.lines][cuts[kind]:]
    finally:
        for kind, router in routers.items():
            labs[kind].stop(router)
        for f in fifos.values():
            f.close()
    expect = ['INSTANCE "VI_2" FAULT 100']
    if on:
        expect += ['GROUP "G1" MASTER 0', 'INSTANCE "VI_3" FAULT 100']
    assert got["keepalived"] == expect
    assert got["hafast"] == got["keepalived"]
