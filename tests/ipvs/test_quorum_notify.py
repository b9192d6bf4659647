"""Quorum notify scripts and the LVS notify FIFO at start and at a reload, side by side
with Debian's keepalived 2.2.7 (issue 14), run INSIDE the IPVS VM: keepalived's
checker process refuses to start without IPVS, which the host kernel lacks.

keepalived 2.2.7 (check/ipwrapper.c): set_quorum_states() weighs the real servers
before init_service_rs() has made any alive, so every virtual server starts with its
quorum down and update_quorum_state(init) then runs ``quorum_up`` and writes
``VS ... UP`` for each whose quorum is met; one whose quorum is not met says nothing,
unless it has a sorry server (``quorum_down``, ``VS ... DOWN``).  A reload
(clear_diff_services, then init_services): each live real server it takes away goes
DOWN, the old virtual server may lose its quorum with its old settings and scripts,
and the new one, starting from the state before the reload, loses it again (so two
``VS ... DOWN``); a virtual server it removes loses everything; one it adds starts as
at start; a new sorry server on a virtual server whose quorum is down reports DOWN
again.

Everything is on the guest's loopback: a Python TCP listener on 127.0.0.2 (LIVE) and
nothing on 127.0.0.3 (DEAD).  keepalived ``-C`` runs first, then hafast ``-C`` on the
same files; the FIFO lines and the scripts' invocations of the start and of the
reload (each phase sorted: the checkers' order is theirs) must be the same.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import require, require_root, require_tool
from tests.ipvs.side_by_side import KEEPALIVED, start, stop

if os.environ.get("HAFAST_IN_VM") != "1":
    pytest.skip("runs inside the IPVS VM (tests/netns/test_ipvs_vm_boot.py boots it)",
                allow_module_level=True)

from tests.netns.test_vrrp_startup_delay import FifoLines

pytestmark = [pytest.mark.ipvs, pytest.mark.timeout(400)]

LIVE, DEAD, RPORT = "127.0.0.2", "127.0.0.3", 8080
CHECK = "TCP_CHECK {\n      connect_timeout 1\n      retry 0\n      delay_loop 1\n    }"


def rs(addr: str) -> str:
    return f"  real_server {addr} {RPORT} {{\n    {CHECK}\n  }}\n"


def vs(n: int, body: str, *servers: str, tag: str = "") -> str:
    tag = tag or f"VS{n}"
    return (f"virtual_server 10.9.9.{n} 80 {{\n  protocol TCP\n  lb_algo rr\n  lb_kind NAT\n"
            f'  quorum_up "REC up {tag}"\n  quorum_down "REC down {tag}"\n{body}'
            + "".join(rs(a) for a in servers) + "}\n")


def configs(rec: Path, fifo: Path) -> tuple[str, str]:
    head = f"global_defs {{\n  router_id lab-vm\n  script_user root\n  lvs_notify_fifo {fifo}\n}}\n"
    # 1: met at start (quorum_up), DEAD goes down later, still met
    # 2: alpha, DEAD only, a sorry server: down at start (quorum_down)
    # 3: alpha, LIVE only, no sorry server: nothing at start, UP when LIVE passes
    # 4: quorum 2, met at start by both, lost when DEAD fails
    start = head + (vs(1, "  quorum 1\n", LIVE, DEAD)
                    + vs(2, "  alpha\n  sorry_server 127.0.0.4 8080\n", DEAD)
                    + vs(3, "  alpha\n", LIVE)
                    + vs(4, "  quorum 2\n", LIVE, DEAD))
    # The reload: 1 loses LIVE (new scripts, to tell the old ones' from them), 2 gets
    # another sorry server, 3 goes, 4 stays as it was, 5 is new (met at once).
    reloaded = head + (vs(1, "  quorum 1\n", DEAD, tag="VS1-new")
                       + vs(2, "  alpha\n  sorry_server 127.0.0.5 8080\n", DEAD)
                       + vs(4, "  quorum 2\n", LIVE, DEAD)
                       + vs(5, "  quorum 1\n", LIVE))
    return start.replace("REC", str(rec)), reloaded.replace("REC", str(rec))


def listen() -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((LIVE, RPORT))
    s.listen(64)
    return s


def settle(count: Callable[[], int], at_least: int, quiet_s: float = 4.0,
           limit_s: float = 90.0) -> None:
    """Until ``count()`` reached ``at_least`` and then stayed put for ``quiet_s``, or
    ``limit_s`` passed (the comparison below then shows what is missing)."""
    deadline = time.monotonic() + limit_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        n = count()
        if n != last:
            last, since = n, time.monotonic()
        elif n >= at_least and time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.2)


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[Path]:
    require_root()
    require_tool(KEEPALIVED)
    require(os.path.exists("/proc/net/ip_vs"), "needs IPVS")
    for addr in (LIVE, DEAD):
        subprocess.run(["ip", "addr", "add", f"{addr}/8", "dev", "lo"], capture_output=True)
    rec = tmp_path / "rec.sh"
    rec.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/scripts.log\n')
    rec.chmod(0o755)
    yield tmp_path
    subprocess.run(["ipvsadm", "-C"], capture_output=True)


Phase = tuple[list[str], list[str]]


def one_run(kind: str, d: Path) -> tuple[Phase, Phase]:
    log = d / "scripts.log"
    log.unlink(missing_ok=True)
    fifo = FifoLines(d / f"{kind}.fifo")
    first, reloaded = configs(d / "rec.sh", fifo.path)
    conf = d / f"{kind}.conf"
    conf.write_text(first)

    def scripts() -> list[str]:
        return log.read_text().splitlines() if log.exists() else []

    def count() -> int:
        return len(fifo.lines) + len(scripts())

    live = listen()
    proc = start(kind, d, conf)
    try:
        settle(count, 8 + 5)
        start_lines, start_scripts = [ln for _, ln in fifo.lines], scripts()
        n_lines, n_scripts = len(start_lines), len(start_scripts)
        conf.write_text(reloaded)
        os.kill(proc.pid, signal.SIGHUP)
        settle(count, n_lines + n_scripts + 7 + 5)
        reload_lines = [ln for _, ln in fifo.lines][n_lines:]
        reload_scripts = scripts()[n_scripts:]
    finally:
        live.close()
        stop(proc)
        fifo.close()
        subprocess.run(["ipvsadm", "-C"], capture_output=True)
    print(f"--- {kind}\n" + (d / f"{kind}.log").read_text(errors="replace")[-4000:])
    return ((sorted(start_lines), sorted(start_scripts)),
            (sorted(reload_lines), sorted(reload_scripts)))


def test_quorum_scripts_and_fifo_match_keepalived(vm: Path) -> None:
    ka = one_run("keepalived", vm)
    ha = one_run("hafast", vm)
    print(f"keepalived: {ka}\nhafast: {ha}")
    v = "VS [10.9.9.{}]:tcp:80 {}".format
    r = "RS [{}]:tcp:8080 [10.9.9.{}]:tcp:80 {}".format
    # keepalived 2.2.7 as it ran here (2026-12-06)
    assert ka[0] == (sorted([
        v(1, "UP"), r(DEAD, 1, "DOWN"),
        v(2, "DOWN"), r(DEAD, 2, "DOWN"),
        r(LIVE, 3, "UP"), v(3, "UP"),
        v(4, "UP"), r(DEAD, 4, "DOWN"), v(4, "DOWN"),
    ]), sorted(["up VS1", "down VS2", "up VS3", "up VS4", "down VS4"])), ka[0]
    assert ka[1] == (sorted([
        r(LIVE, 1, "DOWN"), v(1, "DOWN"), v(1, "DOWN"),
        v(2, "DOWN"),
        r(LIVE, 3, "DOWN"), v(3, "DOWN"),
        v(5, "UP"),
    ]), sorted(["down VS1", "down VS1-new", "down VS2", "down VS3", "up VS5"])), ka[1]
    assert ha[1] == ka[1]
    # keepalived (update_svr_checker_state) notifies an alpha checker's first result
    # even when it changes nothing: the alpha real server of 2 that never came up is
    # written DOWN once (issue 15); so does hafast.
    assert ha[0] == ka[0]
