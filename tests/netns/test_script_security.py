"""Script security in running daemons (the ``-t`` side is in tests/unit/config/
test_script_security_keepalived.py).

* keepalived 2.2.7's daemon logs, for a VRRP and a checker config, which scripts it
  disables ("Unsafe permissions found for script '...' - disabling.", "Disabling track
  script ...", "Disabling misc script ..."), notify and MISC_CHECK scripts included,
  which ``keepalived -t`` does not show: hafast's load says the same lines.
* A hafast VRRP daemon never starts an unsafe vrrp_script (the marker file it would
  touch stays absent) and, as keepalived does, takes it out of tracking instead of
  putting the instance in FAULT: the instance becomes MASTER although the script
  would fail; a safe script beside it runs.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hafast.config.loader import load_file
from tests.conftest import require_root, require_tool
from tests.netns.vrrp_fixtures import KEEPALIVED, VIP4, VrrpLab

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(90)]

PREFIX = f"hs{os.getpid() % 100000}"


@pytest.fixture
def lab() -> Iterator[VrrpLab]:
    require_root()
    require_tool("keepalived")
    with VrrpLab(PREFIX) as built:
        yield built


def _script(path: Path, body: str, mode: int = 0o755, gid: int = 0) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(mode)
    os.chown(path, 0, gid)
    return path


def _scripts(folder: Path) -> tuple[Path, Path]:
    """(safe, unsafe): the same body, the second group-writable by group 100."""
    return (_script(folder / "safe.sh", "exit 0"),
            _script(folder / "unsafe.sh", "exit 0", 0o775, gid=100))


def _keepalived_log(lab: VrrpLab, conf: Path, flag: str, until: str) -> str:
    """Run keepalived (``flag``: -P VRRP only, -C checker only) in r1 until ``until``
    appears in its log or it exits; stop it by PID; return the log."""
    log = lab.tmp / f"ka{flag}.log"
    pids = [lab.tmp / f"ka{flag}.{n}.pid" for n in ("main", "vrrp", "chk")]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns("r1"), KEEPALIVED, "-n", "-l", "-D", "-G", flag,
             "-f", str(conf), "-p", str(pids[0]), "-r", str(pids[1]), "-c", str(pids[2])],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            if until in log.read_text(errors="replace"):
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        for p in pids:
            p.unlink(missing_ok=True)
    return log.read_text(errors="replace")


_SAID = re.compile(r"(Unsafe permissions found for script '[^']+' - disabling\."
                   r"|Disabling (?:track|misc) script .* due to insecure)")


def _said(text: str) -> list[str]:
    return sorted(m.group(1) for line in text.splitlines() if (m := _SAID.search(line)))


def _ours(conf: Path) -> list[str]:
    return sorted(m.group(1) for d in load_file(str(conf)).warnings
                  if (m := _SAID.match(d.message)))


def test_daemon_logs_match_keepalived(lab: VrrpLab) -> None:
    safe, unsafe = _scripts(lab.tmp)
    vrrp = lab.tmp / "vrrp.conf"
    vrrp.write_text(f"""\
global_defs {{
  enable_script_security
  script_user root
  vrrp_notify_fifo {lab.tmp}/fifo
  vrrp_notify_fifo_script {unsafe}
}}
vrrp_script chk_safe {{
  script {safe}
}}
vrrp_script chk_unsafe {{
  script "{unsafe} x"
}}
vrrp_instance VI_1 {{
  interface eth0
  virtual_router_id 51
  priority 100
  notify_master {unsafe}
  notify_backup {safe}
  notify "{unsafe} n"
  track_script {{
    chk_safe
    chk_unsafe
  }}
  virtual_ipaddress {{
    {VIP4}/24
  }}
}}
""")
    ka = _keepalived_log(lab, vrrp, "-P", "VRRP_Script(chk_safe) succeeded")
    said = _said(ka)
    assert "Disabling track script chk_unsafe due to insecure" in said, ka
    # vrrp_script, notify_master, notify and the FIFO script: once each
    assert said.count(f"Unsafe permissions found for script '{unsafe}' - disabling.") == 4
    assert _ours(vrrp) == said

    chk = lab.tmp / "chk.conf"
    chk.write_text(f"""\
global_defs {{
  enable_script_security
  script_user root
}}
virtual_server 10.0.0.1 80 {{
  protocol TCP
  lvs_sched wlc
  lvs_method NAT
  quorum_down {unsafe}
  real_server 10.0.0.2 80 {{
    notify_down {safe}
    MISC_CHECK {{
      misc_path "{unsafe} x"
    }}
    MISC_CHECK {{
      misc_path {safe}
    }}
  }}
}}
""")
    # the checker logs its verdicts before it sets IPVS up (and, without IPVS, exits)
    ka = _keepalived_log(lab, chk, "-C", "ctivating healthchecker")
    said = _said(ka)
    assert f"Disabling misc script '{unsafe}' 'x' due to insecure" in said, ka
    assert _ours(chk) == said
    rs = load_file(str(chk)).config.virtual_servers[0].real_servers[0]
    assert len(rs.checkers) == 1


def test_unsafe_vrrp_script_never_runs(lab: VrrpLab) -> None:
    ran_unsafe = lab.tmp / "unsafe.ran"
    ran_safe = lab.tmp / "safe.ran"
    safe = _script(lab.tmp / "safe.sh", f"touch {ran_safe}\nexit 0")
    # it would also fail: tracked, it would keep the instance in FAULT
    unsafe = _script(lab.tmp / "unsafe.sh", f"touch {ran_unsafe}\nexit 1", 0o775, gid=100)
    text = f"""\
global_defs {{
  enable_script_security
  script_user root
  vrrp_garp_master_delay 0
}}
vrrp_script chk_safe {{
  script {safe}
  interval 0.2
}}
vrrp_script chk_unsafe {{
  script {unsafe}
  interval 0.2
}}
vrrp_instance VI_1 {{
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority 100
  version 3
  advert_int 0.1
  track_script {{
    chk_safe
    chk_unsafe
  }}
  virtual_ipaddress {{
    {VIP4}/24
  }}
}}
"""
    r1 = lab.start("r1", "hafast", text)
    lab.wait_holder("r1", 8.0)
    lab.wait_for(ran_safe.exists, 5.0, "the safe script ran")
    ran_safe.unlink()
    lab.wait_for(ran_safe.exists, 5.0, "the safe script ran again")  # several intervals
    assert not ran_unsafe.exists(), "hafast ran a script with unsafe permissions"
    assert lab.holders() == ["r1"]
    log = r1.log_text()
    assert f"Unsafe permissions found for script '{unsafe}' - disabling." in log
    assert "Disabling track script chk_unsafe due to insecure" in log
    lab.stop(r1)
    assert not ran_unsafe.exists()
