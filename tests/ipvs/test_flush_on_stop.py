"""global_defs ``lvs_flush_on_stop [VS]`` and ``lvs_flush`` against the real IPVS kernel,
keepalived 2.2.7 and hafast on the same config, run INSIDE the IPVS VM
(tests/netns/test_ipvs_vm_boot.py boots it).

In a namespace of its own (IPVS tables are per network namespace) a virtual server is
made by hand with ipvsadm, one the config does not name; the daemon adds the configured
one, then gets SIGTERM.  What ``ipvsadm -Ln`` holds while it runs and after it exits:

- no keyword: each configured service is deleted (keepalived deletes its real servers
  one by one first), the hand-made one stays;
- ``lvs_flush_on_stop``: IPVS_CMD_FLUSH, the table is empty;
- ``lvs_flush_on_stop VS``: the configured service is deleted, the hand-made one stays;
- ``lvs_flush`` (at start): the hand-made one is gone while the daemon runs.
"""

from __future__ import annotations

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

from hafast.lab.netns import Registry

pytestmark = pytest.mark.ipvs

NS = f"fs{os.getpid() % 100000}"
# The VM runs Python ~20x slower: generous, bounded waits.
WAIT_S = 90.0
OURS = "TCP 10.79.0.100:80"
HAND = "TCP 10.79.0.200:80"

CONFIG = """global_defs {{
{line}
}}
virtual_server 10.79.0.100 80 {{
  protocol TCP
  lvs_sched rr
  lvs_method NAT
  real_server 10.79.0.2 80 {{
    weight 1
  }}
}}
"""


def _run(*argv: str) -> str:
    proc = subprocess.run(["ip", "netns", "exec", NS, *argv], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, f"{' '.join(argv)}: {proc.stderr.strip()}"
    return proc.stdout


def table() -> dict[str, list[str]]:
    """``ipvsadm -Ln``: each service line and the addresses of its real servers."""
    out: dict[str, list[str]] = {}
    svc = None
    for line in _run(require_tool("ipvsadm"), "-Ln").splitlines():
        if line.startswith(("TCP ", "UDP ", "SCTP ", "FWM ")):
            svc = " ".join(line.split()[:2])
            out[svc] = []
        elif svc is not None and line.strip().startswith("->"):
            out[svc].append(line.split()[1])
    return out


@pytest.fixture
def ns() -> Iterator[str]:
    require_root()
    require(Path("/proc/net/ip_vs").exists(), "ip_vs is not loaded")
    ipvsadm = require_tool("ipvsadm")
    with Registry() as reg:
        reg.add_netns(NS)
        _run("ip", "link", "set", "lo", "up")
        _run(ipvsadm, "-A", "-t", "10.79.0.200:80", "-s", "rr")
        _run(ipvsadm, "-a", "-t", "10.79.0.200:80", "-r", "10.79.0.3:80", "-m")
        try:
            yield NS
        finally:
            subprocess.run(["ip", "netns", "exec", NS, ipvsadm, "-C"], capture_output=True,
                           timeout=60)


def _wait(cond: Callable[[], bool], what: str, log: Path) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < WAIT_S:
        if cond():
            return
        time.sleep(0.2)
    text = log.read_text(errors="replace") if log.exists() else ""
    raise AssertionError(f"{what} not within {WAIT_S:.0f} s; log:\n{text[-3000:]}")


def _run_and_stop(argv: list[str], log: Path) -> tuple[dict[str, list[str]],
                                                       dict[str, list[str]]]:
    """Start ``argv`` in the namespace; the table once the configured service is in,
    and after SIGTERM and exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(["ip", "netns", "exec", NS, *argv], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        _wait(lambda: table().get(OURS) == ["10.79.0.2:80"], "the configured service", log)
        running = table()
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(WAIT_S)
        return running, table()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


HAND_TABLE = {HAND: ["10.79.0.3:80"]}
CASES = {
    # line: (the table while running, the table after stop)
    "": ({OURS: ["10.79.0.2:80"], **HAND_TABLE}, HAND_TABLE),
    "lvs_flush_on_stop": ({OURS: ["10.79.0.2:80"], **HAND_TABLE}, {}),
    "lvs_flush_on_stop VS": ({OURS: ["10.79.0.2:80"], **HAND_TABLE}, HAND_TABLE),
    "lvs_flush": ({OURS: ["10.79.0.2:80"]}, {}),
}


@pytest.mark.parametrize("line", list(CASES))
def test_flush_on_stop_as_keepalived(ns: str, tmp_path: Path, line: str) -> None:
    conf = tmp_path / "k.conf"
    conf.write_text(CONFIG.format(line=line))
    ka = require_tool("keepalived")
    ka_seen = _run_and_stop([ka, "-n", "-l", "-D", "--check", "-f", str(conf),
                             "-p", str(tmp_path / "ka.pid"), "-c", str(tmp_path / "ka_chk.pid")],
                            tmp_path / "ka.log")
    assert ka_seen == CASES[line], ka_seen
    # put the hand-made service back for hafast (a flush took it)
    ipvsadm = require_tool("ipvsadm")
    if HAND not in table():
        _run(ipvsadm, "-A", "-t", "10.79.0.200:80", "-s", "rr")
        _run(ipvsadm, "-a", "-t", "10.79.0.200:80", "-r", "10.79.0.3:80", "-m")
    from tests.netns.daemon_fixtures import daemon_argv

    ha_seen = _run_and_stop(daemon_argv(tmp_path, "hafast", conf), tmp_path / "hafast.log")
    assert ha_seen == ka_seen
