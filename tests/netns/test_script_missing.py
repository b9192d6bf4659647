"""A tracked vrrp_script whose program is missing, in running daemons, hafast and Debian's
keepalived 2.2.7 alike (the ``-t`` side is tests/unit/config/test_script_missing_keepalived.py).

keepalived drops a missing or non-executable program at load whether or not
``enable_script_security`` is set (``check_track_script_secure``): the instance does not
track it and becomes MASTER.  The same config with the program present and failing puts
the instance in FAULT, in both: so the first half is about the program being missing,
not about the script being ignored.  Both daemons log the same lines about the scripts.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator

import pytest

from tests.conftest import require_root, require_tool
from tests.netns.vrrp_fixtures import VIP4, Router, VrrpLab

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(120)]

PREFIX = f"hm{os.getpid() % 100000}"


@pytest.fixture
def lab() -> Iterator[VrrpLab]:
    require_root()
    require_tool("keepalived")
    with VrrpLab(PREFIX) as built:
        yield built


def _conf(lab: VrrpLab) -> str:
    # no enable_script_security: keepalived drops missing programs without it too
    return f"""\
global_defs {{
  script_user root
  vrrp_garp_master_delay 0
}}
vrrp_script chk {{
  script "{lab.tmp}/chk.sh arg"
  interval 1
  fall 1
  rise 1
}}
vrrp_script chk_noexec {{
  script {lab.tmp}/noexec.sh
  interval 1
}}
vrrp_instance VI_1 {{
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority 100
  version 3
  advert_int 0.1
  notify_master "{lab.tmp}/notify.sh master"
  track_script {{
    chk
    chk_noexec
  }}
  virtual_ipaddress {{
    {VIP4}/24
  }}
}}
"""


def _state(r: Router) -> str:
    """The instance's last state in the log: keepalived's '(VI_1) Entering X STATE' (or
    'entering FAULT state (tracked ...)'), hafast's 'VI_1: entering X state'."""
    states = re.findall(r"VI_1\)?:? entering (\w+) state", r.log_text(), re.I)
    return states[-1].upper() if states else ""


_SAID = re.compile(r"(Script \S+ cannot be accessed - [^\n]*"
                   r"|WARNING - script '\S+' is not executable for uid:gid \d+:\d+ - disabling\."
                   r"|Disabling track script \S+ since not found/accessible)")


def _said(text: str) -> list[str]:
    return sorted(m.group(1) for line in text.splitlines() if (m := _SAID.search(line)))


@pytest.mark.parametrize("kind", ["hafast", "keepalived"])
def test_missing_tracked_script_is_dropped_not_fault(lab: VrrpLab, kind: str) -> None:
    noexec = lab.tmp / "noexec.sh"
    noexec.write_text("#!/bin/sh\nexit 1\n")
    noexec.chmod(0o644)
    conf = _conf(lab)
    r1 = lab.start("r1", kind, conf)
    lab.wait_holder("r1", 10.0)
    assert _state(r1) == "MASTER"
    lab.stop(r1)
    said = _said(r1.log_text())
    assert said == sorted([
        f"Script {lab.tmp}/chk.sh cannot be accessed - No such file or directory",
        "Disabling track script chk since not found/accessible",
        f"WARNING - script '{noexec}' is not executable for uid:gid 0:0 - disabling.",
        f"Script {lab.tmp}/notify.sh cannot be accessed - No such file or directory",
    ]), r1.log_text()

    # the program present and failing: tracked, so FAULT and no VIP
    chk = lab.tmp / "chk.sh"
    chk.write_text("#!/bin/sh\nexit 1\n")
    chk.chmod(0o755)
    r1 = lab.start("r1", kind, conf)
    if kind == "hafast":
        lab.wait_for(lambda: _state(r1) == "FAULT", 10.0, "FAULT")
    else:
        # keepalived 2.2.7 goes from INIT to FAULT without a line for it
        lab.wait_for(lambda: "VRRP_Script(chk) failed" in r1.log_text(), 10.0,
                     "the script failed")
    # alone on the link, a BACKUP would be MASTER in ~0.4 s (advert_int 0.1)
    time.sleep(2.0)
    assert lab.holders() == []
    assert _state(r1) in ("FAULT", "")
    lab.stop(r1)
    assert "Disabling track script chk " not in r1.log_text()


def test_both_daemons_log_the_same_lines(lab: VrrpLab) -> None:
    """The same config, run by each in turn: the same lines about the scripts."""
    (lab.tmp / "noexec.sh").write_text("#!/bin/sh\nexit 1\n")
    conf = _conf(lab)
    logs = {}
    for kind in ("keepalived", "hafast"):
        r1 = lab.start("r1", kind, conf)
        lab.wait_holder("r1", 10.0)
        lab.stop(r1)
        logs[kind] = _said(r1.log_text())
    assert logs["hafast"] == logs["keepalived"] != []
