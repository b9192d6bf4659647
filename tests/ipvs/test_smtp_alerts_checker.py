"""Checker and quorum email alerts side by side with Debian's keepalived 2.2.7 (issue
14), run INSIDE the IPVS VM: keepalived's checker process refuses to start without
IPVS, which the host kernel lacks.

Everything is on the guest's loopback: a virtual server whose real servers are a
Python TCP listener on 127.0.0.2 and nothing on 127.0.0.3 (TCP_CHECK, quorum 1,
``smtp_alert`` on the virtual server for its quorum mails; the real servers' are on
by default), and an aiosmtpd server on 127.0.0.1 that writes each mail as a JSON line.
keepalived ``-C`` runs first, then hafast ``-C`` on the same file; each sees the dead
server go DOWN, the live one stop (DOWN, quorum lost) and come back (UP, quorum
gained), then a reload (SIGHUP) take the live one away.  Both runs' mails must be
the same (the Date aside).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, require, require_root, require_tool
from tests.ipvs import side_by_side
from tests.ipvs.side_by_side import KEEPALIVED, stop

if os.environ.get("HAFAST_IN_VM") != "1":
    pytest.skip("runs inside the IPVS VM (tests/netns/test_ipvs_vm_boot.py boots it)",
                allow_module_level=True)

from tests.netns.test_smtp_alerts import SERVER, comparable, read_mails

pytestmark = [pytest.mark.ipvs, pytest.mark.timeout(300)]

SMTP_PORT = 2525
LIVE, DEAD, RPORT = "127.0.0.2", "127.0.0.3", 8080

CONF = f"""global_defs {{
  router_id lab-vm
  notification_email {{
    ops@example.com
  }}
  notification_email_from keepalived@lab.example.com
  smtp_server 127.0.0.1 {SMTP_PORT}
  smtp_helo_name vm.lab.example.com
  smtp_connect_timeout 5
}}
virtual_server 10.9.9.9 80 {{
  protocol TCP
  lb_algo rr
  lb_kind NAT
  quorum 1
  smtp_alert
  real_server {LIVE} {RPORT} {{
    TCP_CHECK {{
      connect_timeout 1
      retry 0
      delay_loop 1
      warmup 0
    }}
  }}
  real_server {DEAD} {RPORT} {{
    TCP_CHECK {{
      connect_timeout 1
      retry 0
      delay_loop 1
      warmup 0
    }}
  }}
}}
"""


# The reload takes the live real server away.
_LIVE_AT = CONF.index(f"  real_server {LIVE}")
RELOADED = CONF[:_LIVE_AT] + CONF[CONF.index(f"  real_server {DEAD}"):]


def listen() -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((LIVE, RPORT))
    s.listen(64)
    return s


def wait_for(cond: Any, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")
        time.sleep(0.1)


def start(kind: str, d: Path) -> subprocess.Popen[bytes]:
    conf = d / f"{kind}.conf"
    conf.write_text(CONF)
    return side_by_side.start(kind, d, conf)


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[Path]:
    require_root()
    require_tool(KEEPALIVED)
    require(shutil.which("ipvsadm"), "needs ipvsadm")
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        require(False, "needs aiosmtpd (the test extra has it)")
    for addr in (LIVE, DEAD):
        subprocess.run(["ip", "addr", "add", f"{addr}/8", "dev", "lo"], capture_output=True)
    yield tmp_path
    subprocess.run(["ipvsadm", "-C"], capture_output=True)


def smtp_ready() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", SMTP_PORT), timeout=1):
            return True
    except OSError:
        return False


def one_run(kind: str, d: Path) -> list[tuple[Any, ...]]:
    mails = d / f"mails-{kind}.jsonl"
    server = subprocess.Popen([sys.executable, "-c", SERVER, "127.0.0.1", str(SMTP_PORT),
                               str(mails)], stdin=subprocess.DEVNULL, cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(smtp_ready, 60, "the SMTP server")
    live = listen()
    proc = start(kind, d)
    log = d / f"{kind}.log"
    try:
        # the quorum at start, the dead server DOWN
        wait_for(lambda: len(read_mails(mails)) >= 2, 60, f"{kind}: the first mails", log)
        live.close()
        wait_for(lambda: len(read_mails(mails)) >= 4, 60, f"{kind}: live DOWN + quorum", log)
        live = listen()
        wait_for(lambda: len(read_mails(mails)) >= 6, 60, f"{kind}: live UP + quorum", log)
        time.sleep(2)  # anything more it would send
        (d / f"{kind}.conf").write_text(RELOADED)
        os.kill(proc.pid, signal.SIGHUP)
        wait_for(lambda: len(read_mails(mails)) >= 9, 60, f"{kind}: the reload's mails", log)
        time.sleep(3)
    finally:
        live.close()
        stop(proc)
        server.kill()
        server.wait(5)
        subprocess.run(["ipvsadm", "-C"], capture_output=True)
    return sorted(comparable(m) for m in read_mails(mails))


def test_checker_mails_match_keepalived(smtp: Path) -> None:
    ka = one_run("keepalived", smtp)
    ha = one_run("hafast", smtp)
    rs = f"[lab-vm] Realserver [{{}}]:tcp:{RPORT} of virtual server [10.9.9.9]:tcp:80 - "
    vs = "[lab-vm] Virtualserver [10.9.9.9]:tcp:80 - "
    assert sorted((m[6], m[8].strip()) for m in ka) == sorted([
        (vs + "UP", "=> Starting with quorum up 1+0=1 <= 2 <="),
        (rs.format(DEAD) + "DOWN", "=> TCP CHECK failed on service <="),
        (rs.format(LIVE) + "DOWN", "=> TCP CHECK failed on service <="),
        (vs + "DOWN", "=> Lost quorum 1+0=1 <= 0 <="),
        (rs.format(LIVE) + "UP", "=> TCP CHECK succeed on service <="),
        (vs + "UP", "=> Gained quorum 1+0=1 <= 1 <="),
        # the reload takes the live server away: keepalived mails the old virtual
        # server losing its quorum and the new one starting without it
        (rs.format(LIVE) + "DOWN", "=> Removing <="),
        (vs + "DOWN", "=> Lost quorum 1+0=1 <= 0 <="),
        (vs + "DOWN", "=> Starting with quorum down 1+0=1 <= 0 <="),
    ]), ka
    assert ha == ka
