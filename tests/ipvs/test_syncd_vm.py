"""The IPVS connection sync daemon (lvs_sync_daemon) against the real kernel, run INSIDE
the IPVS VM (tests/netns/test_ipvs_vm_boot.py boots it).

1. The netlink commands: IPVS_CMD_NEW_DAEMON for a master and a backup daemon, read back
   with IPVS_CMD_GET_DAEMON and ``ipvsadm -L --daemon``, EEXIST / ESRCH, stopped.
2. The daemon following its VRRP instance, keepalived 2.2.7 and hafast on the same
   config in the same namespace one after the other: a backup daemon while the instance
   is BACKUP, the master daemon once it is MASTER, nothing left after SIGTERM; the
   ``ipvsadm -L --daemon`` lines (interface, syncid, maxlen, group, port, ttl) the same
   under both.  That also holds the byte order of the port and group hafast sends to
   what keepalived (libipvs) sends.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, require, require_root, require_tool

if os.environ.get("HAFAST_IN_VM") != "1":
    pytest.skip("runs inside the IPVS VM (tests/netns/test_ipvs_vm_boot.py boots it)",
                allow_module_level=True)

from hafast.lab.netns import Registry, call_in
from hafast.lvs.ipvs import BatchLink, SyncDaemon

pytestmark = pytest.mark.ipvs

NS = f"sd{os.getpid() % 100000}"
# The VM runs Python ~20x slower: generous, bounded waits.
WAIT_S = 90.0

CONFIG = """global_defs {
  lvs_sync_daemon sd0 VI_1 id 7 maxlen 1400 port 8849 ttl 2 group 224.0.0.82
}
vrrp_instance VI_1 {
  state BACKUP
  interface sd0
  virtual_router_id 51
  priority 100
  advert_int 1
  virtual_ipaddress {
    10.77.0.100/24
  }
}
"""


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"ip {' '.join(args)}: {proc.stderr.strip()}"


@pytest.fixture
def ns() -> Iterator[str]:
    require_root()
    require(Path("/proc/net/ip_vs").exists(), "ip_vs is not loaded")
    with Registry() as reg:
        reg.add_netns(NS)
        reg.add_veth(NS, "sd0", NS, "sd1")
        _ip("-n", NS, "addr", "add", "10.77.0.1/24", "dev", "sd0")
        _ip("-n", NS, "addr", "add", "10.77.0.2/24", "dev", "sd1")
        yield NS


def daemon_lines(ns: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "exec", ns, require_tool("ipvsadm"), "-L",
                          "--daemon"], capture_output=True, text=True, timeout=60, check=True)
    return sorted(line.strip() for line in out.stdout.splitlines() if "sync daemon" in line)


def test_daemon_commands(ns: str) -> None:
    link = call_in(ns, BatchLink)
    master = SyncDaemon("master", "sd0", 51)
    backup = SyncDaemon("backup", "sd0", 7, 1400, 8849, 2, "224.0.0.82")
    try:
        link.new_daemon(master)
        link.new_daemon(backup)
        got = {d.state: d for d in link.daemons()}
        assert sorted(got) == ["backup", "master"]
        # the kernel's defaults for what was not asked: port 8848, TTL 1, 224.0.0.81
        m = got["master"]
        assert (m.interface, m.syncid, m.port, m.ttl, m.group) == ("sd0", 51, 8848, 1,
                                                                   "224.0.0.81")
        assert m.maxlen > 0
        assert got["backup"] == backup
        lines = daemon_lines(ns)
        assert lines == [
            "backup sync daemon (mcast=sd0, syncid=7, maxlen=1400, group=224.0.0.82, "
            "port=8849, ttl=2)",
            f"master sync daemon (mcast=sd0, syncid=51, maxlen={m.maxlen}, "
            "group=224.0.0.81, port=8848, ttl=1)"], lines
        with pytest.raises(OSError) as exc:
            link.new_daemon(master)
        assert exc.value.errno == errno.EEXIST
        link.del_daemon("master", 51)
        link.del_daemon("backup", 7)
        with pytest.raises(OSError) as exc:
            link.del_daemon("backup")
        assert exc.value.errno == errno.ESRCH
        assert link.daemons() == []
        assert daemon_lines(ns) == []
    finally:
        for state in ("master", "backup"):
            try:
                link.del_daemon(state)
            except OSError:
                pass
        link.close()


def _wait(cond: Callable[[], bool], what: str, log: Path) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < WAIT_S:
        if cond():
            return time.monotonic() - t0
        time.sleep(0.2)
    text = log.read_text(errors="replace") if log.exists() else ""
    raise AssertionError(f"{what} not within {WAIT_S:.0f} s; log:\n{text[-3000:]}")


def _follow(ns: str, argv: list[str], log: Path) -> tuple[list[str], list[str]]:
    """Run ``argv`` in ``ns``; the daemon lines while BACKUP and once MASTER, and
    check that SIGTERM leaves none."""
    with log.open("wb") as out:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        _wait(lambda: any(x.startswith("backup") for x in daemon_lines(ns)),
              "the backup sync daemon", log)
        as_backup = daemon_lines(ns)
        _wait(lambda: any(x.startswith("master") for x in daemon_lines(ns)),
              "the master sync daemon", log)
        as_master = daemon_lines(ns)
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(WAIT_S)
        assert daemon_lines(ns) == [], "a sync daemon left after SIGTERM"
        return as_backup, as_master
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_the_daemon_follows_the_instance_as_keepalived(ns: str, tmp_path: Path) -> None:
    conf = tmp_path / "k.conf"
    conf.write_text(CONFIG)
    ka = require_tool("keepalived")
    ka_lines = _follow(ns, [ka, "-n", "-l", "-D", "--vrrp", "-f", str(conf),
                            "-p", str(tmp_path / "ka.pid"), "-r", str(tmp_path / "ka_vrrp.pid"),
                            "-c", str(tmp_path / "ka_chk.pid")], tmp_path / "ka.log")
    expected = (["backup sync daemon (mcast=sd0, syncid=7, maxlen=1400, group=224.0.0.82, "
                 "port=8849, ttl=2)"],
                ["master sync daemon (mcast=sd0, syncid=7, maxlen=1400, group=224.0.0.82, "
                 "port=8849, ttl=2)"])
    assert ka_lines == expected, ka_lines
    from tests.netns.daemon_fixtures import daemon_argv

    ha_lines = _follow(ns, daemon_argv(tmp_path, "hafast", conf), tmp_path / "hafast.log")
    assert ha_lines == ka_lines
