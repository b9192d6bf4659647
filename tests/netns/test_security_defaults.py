"""Security defaults of the whole daemon, tried as an unprivileged user would (issue 17).

- The control socket and the pid files are root's: ``nobody`` cannot connect to the
  socket nor write a pid file (it may read one, as keepalived's 0644 pid files
  allow), even when the daemon was started with a umask of 0.
- ``metrics_listen`` binds only where it says, and without it nothing listens:
  the namespace's /proc/net/tcp and tcp6 show it.

Everything runs in a namespace ``sd<pid>`` (a veth pair for the VRRP instance)
and a folder every user may traverse, so only the files' own modes stand between
``nobody`` and them.  Both are deleted, and the daemon stopped by PID, even on failure.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import stat
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hafast.lab.netns import Registry, run_in
from tests.conftest import require_root, require_tool
from tests.netns.daemon_fixtures import Daemon, start_daemon

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(120)]

PREFIX = f"sd{os.getpid() % 100000}"

CONF = """global_defs {
  router_id security
  vrrp_garp_master_delay 0
%s}
vrrp_instance VI_1 {
  state MASTER
  interface v0
  virtual_router_id 51
  priority 100
  advert_int 1
  virtual_ipaddress {
    192.0.2.100/32
  }
}
virtual_server 192.0.2.100 80 {
  delay_loop 1
  protocol TCP
  lvs_sched rr
  real_server 127.0.0.1 8080 {
    TCP_CHECK {
      connect_timeout 1
    }
  }
}
"""

# Run as nobody by the system's python (the venv may not be readable to it): connect
# to the control socket, open each pid file for writing and for reading.
PROBE = r"""
import json, os, socket, sys
out = {"uid": os.getuid(), "files": {}}
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
    out["connect"] = "connected"
except OSError as e:
    out["connect"] = e.errno
for p in sys.argv[2:]:
    try:
        open(p, "a").close()
        w = "writable"
    except OSError as e:
        w = e.errno
    out["files"][p] = [w, os.access(p, os.R_OK)]
print(json.dumps(out))
"""


@pytest.fixture
def ns() -> Iterator[str]:
    require_root()
    require_tool("setpriv")
    with Registry() as reg:
        name = reg.add_netns(PREFIX)  # loopback up
        reg.add_veth(name, "v0", name, "v1")
        reg.add_address(name, "v0", "192.0.2.1/24")
        yield name


@pytest.fixture
def run_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="hafast-sd-"))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def start(run_dir: Path, ns: str, global_extra: str = "") -> Daemon:
    # A umask of 0 from whoever starts the daemon must not make its files writable
    # by all; the daemon inherits it at the fork in start_daemon.
    old = os.umask(0)
    try:
        d = start_daemon(run_dir, CONF % global_extra, ns=ns,
                         extra=["--pool-backend", "memory", "--check-workers", "1"])
    finally:
        os.umask(old)
    return d


def as_nobody(ctl: str, files: list[Path]) -> dict[str, object]:
    res = subprocess.run(
        ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups",
         "/usr/bin/python3", "-c", PROBE, ctl, *map(str, files)],
        capture_output=True, text=True, timeout=30, check=True)
    out: dict[str, object] = json.loads(res.stdout)
    return out


def test_control_socket_and_pid_files_are_root_only(run_dir: Path, ns: str) -> None:
    d = start(run_dir, ns)
    try:
        d.wait_ready()
        d.wait_for(lambda s: len(s["workers"]) == 2, 20, "both workers")
        pid_files = [d.pid_file(), d.pid_file("_vrrp"), d.pid_file("_check")]
        for p in pid_files:
            d.wait_for(lambda _s, p=p: p.exists(), 10, f"{p.name}")
        assert d.status()["pid"] == d.proc.pid  # root gets in

        got = as_nobody(d.ctl, pid_files)
        assert got["uid"] != 0
        assert got["connect"] == errno.EACCES, got
        # each pid file readable (as keepalived's), none writable
        assert got["files"] == {str(p): [errno.EACCES, True] for p in pid_files}, got
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in pid_files}
        assert modes == {p.name: 0o644 for p in pid_files}
        assert stat.S_IMODE(os.stat(d.ctl).st_mode) == 0o600
        assert d.stop() == 0
    finally:
        d.close()


def listening(ns: str) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN in namespace ``ns``."""
    out = []
    for family, table in ((socket.AF_INET, "/proc/net/tcp"), (socket.AF_INET6, "/proc/net/tcp6")):
        for line in run_in(ns, ["cat", table]).stdout.splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # TCP_LISTEN
                continue
            addr_hex, port_hex = fields[1].split(":")
            # the address is printed as the host-order 32-bit words of the kernel's bytes
            words = [int(addr_hex[i:i + 8], 16) for i in range(0, len(addr_hex), 8)]
            raw = struct.pack(f"<{len(words)}I", *words)
            out.append((socket.inet_ntop(family, raw), int(port_hex, 16)))
    return sorted(out)


def test_metrics_listen_binds_only_where_configured(run_dir: Path, ns: str) -> None:
    d = start(run_dir / "plain", ns)
    try:
        d.wait_ready()
        assert listening(ns) == []
        assert d.stop() == 0
    finally:
        d.close()

    d = start(run_dir / "metrics", ns, "  metrics_listen 127.0.0.2:9650\n")
    try:
        d.wait_ready()
        assert listening(ns) == [("127.0.0.2", 9650)]
        assert d.stop() == 0
    finally:
        d.close()
