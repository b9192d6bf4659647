"""track_process under ``ip netns exec``: hafast against keepalived 2.2.7 (issue 14).

keepalived learns of processes from the netlink process connector, which the kernel
answers only in the initial network namespace: started with ``ip netns exec`` it logs
"Failed to set/clear process event listen - errno 111" and holds the instance in
FAULT although the process runs.  hafast (pidfds for deaths, a scan of /proc each
second for starts) follows the process in any namespace: its death puts the instance
in FAULT within 2 s, its restart brings it back within 3 s (the kernel refuses hafast
the connector too, with the same errno 111; it only speeds up starts where it works).

The tracked process is a copy of /bin/sleep under a name of the test's own, started
in the router's namespace; states are read from the notify FIFO, as an operator's
script would.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_root, require_tool
from tests.netns.vrrp_fixtures import KEEPALIVED, VIP4, VrrpLab, conf

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(90)]

PREFIX = f"ht{os.getpid() % 100000}"
FAST = {"version": 3, "advert_int": "0.1"}


@pytest.fixture
def lab() -> Iterator[VrrpLab]:
    require_root()
    with VrrpLab(PREFIX) as built:
        yield built


class Tracked:
    """The process the routers track: started and killed by PID, never by name."""

    def __init__(self, lab: VrrpLab, role: str) -> None:
        self.exe = lab.tmp / f"tp{os.getpid() % 100000}"  # comm: its name, < 15 chars
        shutil.copy("/bin/sleep", self.exe)
        self.ns = lab.ns(role)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return self.exe.name

    def start(self) -> None:
        # ip netns exec execs the program: the PID is the tracked process's own
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, str(self.exe), "600"])
        deadline = time.monotonic() + 5
        while Path(f"/proc/{self.proc.pid}/comm").read_text().strip() != self.name:
            assert time.monotonic() < deadline, "the tracked process did not start"
            time.sleep(0.005)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None


def _conf(kind: str, lab: VrrpLab, tracked: Tracked) -> str:
    fifo, reader, out = (lab.tmp / f"{kind}.{n}" for n in ("fifo", "reader.sh", "states"))
    reader.write_text(f'#!/bin/sh\nexec cat "$1" >> {out}\n')
    reader.chmod(0o755)
    text = conf(kind, priority=100, extra_global=f"  vrrp_notify_fifo {fifo}\n"
                f"  vrrp_notify_fifo_script {reader}", **FAST)  # type: ignore[arg-type]
    block = f"vrrp_track_process proc {{\n  process {tracked.name}\n  weight 0\n}}\n"
    return block + text.replace("  virtual_ipaddress {",
                                "  track_process {\n    proc\n  }\n  virtual_ipaddress {")


def _states(lab: VrrpLab, kind: str) -> list[str]:
    path = lab.tmp / f"{kind}.states"
    lines = path.read_text().splitlines() if path.exists() else []
    return [ln.split()[2] for ln in lines if ln.startswith('INSTANCE "VI_1" ')]


def _wait_state(lab: VrrpLab, kind: str, after: int, want: set[str], timeout: float) -> float:
    return lab.wait_for(lambda: bool(want & set(_states(lab, kind)[after:])), timeout,
                        f"{kind}: {' or '.join(sorted(want))} in the notify FIFO")


@pytest.fixture
def tracked(lab: VrrpLab) -> Iterator[Tracked]:
    t = Tracked(lab, "r1")
    try:
        yield t
    finally:
        t.kill()


def test_hafast_follows_the_process_in_a_namespace(lab: VrrpLab, tracked: Tracked) -> None:
    tracked.start()
    lab.start("r1", "hafast", _conf("hafast", lab, tracked))
    _wait_state(lab, "hafast", 0, {"MASTER"}, 8.0)
    assert "FAULT" not in _states(lab, "hafast")  # never a false FAULT
    lab.wait_holder("r1", 3.0)

    for _ in range(2):  # twice: the second death is seen through a fresh pidfd
        n = len(_states(lab, "hafast"))
        tracked.kill()
        took = _wait_state(lab, "hafast", n, {"FAULT"}, 2.0)
        assert took < 2.0
        lab.wait_for(lambda: lab.holders() == [], 2.0, "the VIP released in FAULT")

        n = len(_states(lab, "hafast"))
        tracked.start()
        back = _wait_state(lab, "hafast", n, {"BACKUP", "MASTER"}, 3.0)
        assert back < 3.0
        lab.wait_holder("r1", 3.0)
    log = lab.routers["r1"].log_text()
    # the connector refuses a namespace as it refuses keepalived; hafast carries on
    assert "no process connector (errno 111" in log
    assert "Quorum lost for tracked process proc" in log
    assert "Quorum gained for tracked process proc" in log


def test_keepalived_sits_in_fault_where_hafast_does_not(lab: VrrpLab, tracked: Tracked) -> None:
    """keepalived 2.2.7 under ``ip netns exec``: errno 111 and FAULT, the process up."""
    require_tool("keepalived")
    version = subprocess.run([KEEPALIVED, "--version"], capture_output=True, text=True)
    if "v2.2.7" not in version.stdout + version.stderr:
        pytest.skip("the recorded behaviour is keepalived 2.2.7's")
    tracked.start()
    lab.start("r1", "keepalived", _conf("keepalived", lab, tracked))
    _wait_state(lab, "keepalived", 0, {"FAULT"}, 8.0)
    time.sleep(2.0)  # long enough for a master-down interval and a retry, if any
    ka = lab.routers["r1"]
    assert tracked.proc is not None and tracked.proc.poll() is None  # it runs all along
    assert _states(lab, "keepalived")[-1] == "FAULT" and lab.holders() == []
    assert "Failed to set/clear process event listen - errno 111" in ka.log_text()
    lab.stop(ka)

    # hafast, the same config in the same namespace, the same process running
    lab.start("r1", "hafast", _conf("hafast", lab, tracked))
    _wait_state(lab, "hafast", 0, {"MASTER"}, 8.0)
    assert "FAULT" not in _states(lab, "hafast")
    assert VIP4 and lab.holders() == ["r1"]
