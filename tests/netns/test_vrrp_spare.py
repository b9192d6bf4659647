"""The VRRP worker's warm spare (hafast/app/spare.py) in the full daemon, beside
Debian's keepalived 2.2.7 as the backup peer.

r1 (hafast, priority 150, MASTER) and r2 (keepalived, priority 100) share VI_1.  Once
r1's VRRP worker is ready a spare stands behind it (its pid in the status).  SIGKILL
of the worker: the restart takes that very process (its pid, and the log says so), the
VIP stays on r1 and keepalived never becomes MASTER (unless the machine is so loaded
that the guard releases the VIP anyway: then r1 takes it back), and a new spare stands
behind the successor.  A spare killed while it waits is logged and replaced after the next
restart, which then starts a fresh process.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator

import pytest

from hafast.app.spare import SPARE_AFTER_S
from hafast.lab.netns import run_in
from tests.conftest import require_root, require_tool
from tests.netns.daemon_fixtures import start_daemon
from tests.netns.vrrp_fixtures import KEEPALIVED, VIP4, VrrpLab

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(180)]

PREFIX = f"sp{os.getpid() % 100000}"


def conf(priority: int, state: str) -> str:
    return "\n".join([
        "global_defs {", "  vrrp_garp_master_delay 0", "}",
        "vrrp_instance VI_1 {", f"  state {state}", "  interface eth0",
        "  virtual_router_id 52", f"  priority {priority}", "  advert_int 1",
        "  virtual_ipaddress {", f"    {VIP4}/24", "  }", "}", ""])


@pytest.fixture
def lab() -> Iterator[VrrpLab]:
    require_root()
    require_tool(KEEPALIVED)
    with VrrpLab(PREFIX) as built:
        yield built


def holds(lab: VrrpLab, role: str) -> bool:
    out = run_in(lab.ns(role), ["ip", "-o", "addr", "show", "dev", "eth0"]).stdout
    return f" {VIP4}/" in out


def test_a_killed_vrrp_worker_is_succeeded_by_its_spare(lab: VrrpLab) -> None:
    d = start_daemon(lab.tmp / "spare", conf(150, "MASTER"), ns=lab.ns("r1"))
    peer = lab.start("r2", "keepalived", conf(100, "BACKUP"))
    try:
        d.wait_ready()
        lab.wait_for(lambda: holds(lab, "r1"), 15, "r1 MASTER")
        st = d.wait_for(lambda s: s["workers"][0]["spare_pid"] is not None, 15,
                        "a spare behind the VRRP worker")
        spare = st["workers"][0]["spare_pid"]
        assert spare != st["workers"][0]["pid"]
        fresh = st["workers"][0]["startup_s"]

        os.kill(d.worker_pid("vrrp"), signal.SIGKILL)
        st = d.wait_for(lambda s: s["workers"][0]["restarts"] == 1
                        and s["workers"][0]["answering"], 15, "the successor")
        assert st["workers"][0]["pid"] == spare, st["workers"][0]
        assert f"vrrp: the spare worker (pid {spare}) takes over" in d.log_text()
        if "released the VIPs" in d.log_text():
            # a machine loaded enough that even the spare missed its predecessor's
            # deadline: the guard released the VIP (never two masters), r1 takes it
            # back by preemption; the spare was still what the restart took
            lab.wait_for(lambda: holds(lab, "r1") and not holds(lab, "r2"), 20,
                         "the VIP back on r1 only")
        else:
            assert holds(lab, "r1") and not holds(lab, "r2")
            assert "Entering MASTER STATE" not in peer.log_text(), peer.log_text()[-2000:]
        taken = st["workers"][0]["startup_s"]
        print(f"\nVRRP worker start-up: fresh {fresh:.3f} s, from the spare {taken:.3f} s")
        st = d.wait_for(lambda s: s["workers"][0]["spare_pid"] not in (None, spare), 15,
                        "a new spare behind the successor")

        # a spare that dies while it waits: logged; the next restart spawns afresh
        second = st["workers"][0]["spare_pid"]
        os.kill(second, signal.SIGKILL)
        d.wait_for(lambda s: s["workers"][0]["spare_pid"] is None, 10, "the spare forgotten")
        assert f"the spare vrrp worker (pid {second}) exited" in d.log_text()
        os.kill(d.worker_pid("vrrp"), signal.SIGKILL)
        st = d.wait_for(lambda s: s["workers"][0]["restarts"] == 2
                        and s["workers"][0]["answering"], 15, "a fresh successor")
        assert st["workers"][0]["pid"] != second
        assert d.log_text().count("takes over") == 1
        print(f"after the spare was killed: fresh {st['workers'][0]['startup_s']:.3f} s")
        # ... and a spare again once it is ready
        d.wait_for(lambda s: s["workers"][0]["spare_pid"] is not None, 15, "a third spare")
        time.sleep(0.5)
        assert d.stop() == 0
    finally:
        d.close()
        lab.stop(peer)
        shutil.rmtree(lab.tmp / "spare", ignore_errors=True)  # the lab removes files only


def test_no_vrrp_spare_starts_none(lab: VrrpLab) -> None:
    """--no-vrrp-spare: no spare after the worker is ready, and a restart spawns."""
    d = start_daemon(lab.tmp / "nospare", conf(150, "MASTER"), ns=lab.ns("r1"),
                     extra=["--no-vrrp-spare"])
    try:
        d.wait_ready()
        lab.wait_for(lambda: holds(lab, "r1"), 15, "r1 MASTER")
        time.sleep(SPARE_AFTER_S + 1.0)
        assert d.status()["workers"][0]["spare_pid"] is None
        os.kill(d.worker_pid("vrrp"), signal.SIGKILL)
        d.wait_for(lambda s: s["workers"][0]["restarts"] == 1
                   and s["workers"][0]["answering"], 15, "the successor")
        assert "takes over" not in d.log_text()
        assert d.stop() == 0
    finally:
        d.close()
        shutil.rmtree(lab.tmp / "nospare", ignore_errors=True)


def test_a_reload_without_vrrp_instances_stops_the_spare(lab: VrrpLab) -> None:
    d = start_daemon(lab.tmp / "gone", conf(150, "MASTER"), ns=lab.ns("r1"))
    try:
        d.wait_ready()
        st = d.wait_for(lambda s: s["workers"][0]["spare_pid"] is not None, 15, "a spare")
        spare = st["workers"][0]["spare_pid"]
        (d.dir / "hafast.conf").write_text("global_defs {\n  router_id gone\n}\n")
        d.signal(signal.SIGHUP)
        d.wait_for(lambda s: s["workers"] == [], 15, "the VRRP worker retired")
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{spare}") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{spare}"), "the spare outlived its worker"
        assert d.stop() == 0
    finally:
        d.close()
        shutil.rmtree(lab.tmp / "gone", ignore_errors=True)
