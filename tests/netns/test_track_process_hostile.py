"""track_process against a hostile tracked process: it forks a thousand children.

A child of a fork keeps its parent's name, so every child counts: the tracked
process goes from 1 to 1001 in a fraction of a second, then (its children's stdin
closed) back to 1 in a few milliseconds, a burst of starts then a burst of deaths,
four times more processes than the watcher holds pidfds for
(:data:`hafast.vrrp.procwatch.MAX_PIDFDS`).  The full daemon (``-P``) runs in r1 with
two instances: VI_1 tracks the name with quorum 1 (no maximum) and must stay MASTER
throughout; VI_2 tracks it with ``quorum_max 10`` and must go FAULT while the
children run and come back when they are gone.  Meanwhile the daemon answers
``hafast status`` with those states, its VRRP worker holds no more pidfds than the
cap and gives them back, its log does not fill with a line per process, and its
memory does not grow with the storm.  At the end the parent is killed: VI_1 goes
FAULT, so the tracker still follows the process after the storm.

The tracked process is a copy of dash under a name of the test's own; it and its
children are one process group the test created, ended with ``killpg`` on it.
Behaviour only: no assertion on how long anything takes beyond generous waits.  The
instances advertise every second: the parent's heartbeat verdict is then 1 s, where
a 0.1 s advert_int makes it 100 ms, which this shared two-core box's scheduling alone
overruns now and then; that the storm's scan no longer holds the loop for tens of
milliseconds is tests/unit/vrrp/test_procwatch.py's to check.
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

from hafast.vrrp.procwatch import MAX_PIDFDS
from tests.conftest import require_root
from tests.netns.daemon_fixtures import Daemon, start_daemon
from tests.netns.test_vrrp_startup_delay import FifoLines
from tests.netns.vrrp_fixtures import SUBNET4, VIP4, VrrpLab

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(180)]

PREFIX = f"hp{os.getpid() % 100000}"
CHILDREN = 1000
VIP_MAX = f"{SUBNET4}.101"
# The children read a pipe the test holds (an explicit redirection: a background
# job's own stdin is /dev/null); the parent then waits on a FIFO nobody opens.
FORKER = ('exec 3<&0; read go; i=0; while [ "$i" -lt {n} ]; do (read x <&3) & '
          'i=$((i + 1)); done; wait; read y < {never}')


@pytest.fixture
def lab() -> Iterator[VrrpLab]:
    require_root()
    with VrrpLab(PREFIX) as built:
        yield built


class Forker:
    """The tracked process and its children: one process group, ended by its id."""

    def __init__(self, lab: VrrpLab) -> None:
        require_root()
        dash = shutil.which("dash")
        if dash is None:
            pytest.skip("needs dash")
        self.exe = lab.tmp / f"hp{os.getpid() % 100000}"  # comm: its name, < 15 chars
        shutil.copy(dash, self.exe)
        never = lab.tmp / "never.fifo"
        os.mkfifo(never)
        script = FORKER.format(n=CHILDREN, never=never)
        self.proc = subprocess.Popen(["ip", "netns", "exec", lab.ns("r1"), str(self.exe), "-c",
                                      script], stdin=subprocess.PIPE, start_new_session=True)
        assert self.proc.stdin is not None
        self.stdin = self.proc.stdin
        self.pgid = self.proc.pid  # start_new_session: it leads its own group

    @property
    def name(self) -> str:
        return self.exe.name

    def count(self) -> int:
        """Processes of the test's name (``/proc/PID/comm``), the count the trackers see."""
        n = 0
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    with open(f"/proc/{entry.name}/comm") as f:
                        n += f.read().strip() == self.name
                except OSError:
                    pass
        return n

    def fork(self) -> None:
        self.stdin.write(b"go\n")
        self.stdin.flush()

    def end_children(self) -> None:
        self.stdin.close()  # EOF: every child's read returns and it exits

    def kill(self) -> None:
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if not self.stdin.closed:
            self.stdin.close()
        self.proc.wait(10)


@pytest.fixture
def forker(lab: VrrpLab) -> Iterator[Forker]:
    f = Forker(lab)
    try:
        yield f
    finally:
        f.kill()


def _conf(name: str, fifo: Path) -> str:
    def inst(n: int, vrid: int, vip: str, tracker: str) -> str:
        return (f"vrrp_instance VI_{n} {{\n  state BACKUP\n  interface eth0\n"
                f"  virtual_router_id {vrid}\n  priority 100\n  advert_int 1\n"
                f"  track_process {{\n    {tracker}\n  }}\n"
                f"  virtual_ipaddress {{\n    {vip}/24\n  }}\n}}\n")
    return (f"global_defs {{\n  router_id hafast\n  vrrp_garp_master_delay 0\n"
            f"  vrrp_notify_fifo {fifo}\n}}\n"
            f"vrrp_track_process proc {{\n  process {name}\n  weight 0\n}}\n"
            f"vrrp_track_process procmax {{\n  process {name}\n  quorum 1\n"
            f"  quorum_max 10\n  weight 0\n}}\n"
            + inst(1, 51, VIP4, "proc") + inst(2, 52, VIP_MAX, "procmax"))


def _states(st: dict[str, object]) -> dict[str, str]:
    out = {}
    for inst in st.get("vrrp", ()):  # type: ignore[attr-defined]
        d = inst["data"]
        out[d["iname"]] = d.get("state_name", d["state"])
    return out


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _fifo_states(fifo: FifoLines, inst: str, since: int = 0) -> list[str]:
    return [ln.split()[2] for _, ln in fifo.lines[since:] if ln.startswith(f'INSTANCE "{inst}" ')]


def test_a_thousand_children_leave_the_daemon_standing(lab: VrrpLab, forker: Forker) -> None:
    fifo = FifoLines(lab.tmp / "states.fifo")
    daemon: Daemon | None = None
    try:
        lab.wait_for(lambda: forker.count() == 1, 10.0, "the tracked process")
        daemon = start_daemon(lab.tmp, _conf(forker.name, fifo.path), ns=lab.ns("r1"),
                              extra=["-P"])
        d = daemon
        d.wait_ready(60.0)
        d.wait_for(lambda st: _states(st) == {"VI_1": "MASTER", "VI_2": "MASTER"}, 20.0,
                   "both instances MASTER")
        vrrp = d.worker_pid("vrrp")
        restarts0 = {w["name"]: w["restarts"] for w in d.status()["workers"]}
        fds0, rss0 = _fds(vrrp), _rss_kib(vrrp)
        log0 = len(d.log_text().splitlines())
        # the status can say MASTER before the FIFO's reader has the MASTER lines;
        # the mark goes after them, or VI_2's first line after it is that MASTER
        lab.wait_for(lambda: all("MASTER" in _fifo_states(fifo, i) for i in ("VI_1", "VI_2")),
                     10.0, "both MASTER lines in the notify FIFO")
        mark = len(fifo.lines)

        # the storm: 1001 processes of the name
        forker.fork()
        lab.wait_for(lambda: forker.count() == CHILDREN + 1, 30.0, "the children")
        d.wait_for(lambda st: _states(st) == {"VI_1": "MASTER", "VI_2": "FAULT"}, 20.0,
                   "VI_2 FAULT over quorum_max, VI_1 MASTER")
        peak_fds = 0
        for _ in range(5):  # a few scans' worth, the status asked each time
            assert _states(d.status(timeout=10)) == {"VI_1": "MASTER", "VI_2": "FAULT"}
            peak_fds = max(peak_fds, _fds(vrrp))
            time.sleep(0.5)
        # the pidfd cap holds: the watcher does not take an fd per child
        # (a few more for what the worker opens meanwhile: /proc reads, the status link)
        assert peak_fds <= fds0 + MAX_PIDFDS + 16, (fds0, peak_fds)

        # every child exits at once; the parent stays
        forker.end_children()
        lab.wait_for(lambda: forker.count() == 1, 30.0, "the children gone")
        d.wait_for(lambda st: _states(st) == {"VI_1": "MASTER", "VI_2": "MASTER"}, 20.0,
                   "VI_2 back once the count is within quorum_max again")
        lab.wait_for(lambda: _fds(vrrp) <= fds0 + 2, 10.0, "the pidfds given back")
        rss1 = _rss_kib(vrrp)
        log1 = d.log_text().splitlines()[log0:]
        print(f"vrrp worker: fds {fds0} -> peak {peak_fds} -> {_fds(vrrp)}; "
              f"RSS {rss0} -> {rss1} KiB; {len(log1)} log lines")
        # VI_1 said nothing the whole time; VI_2 went FAULT once and came back once
        assert _fifo_states(fifo, "VI_1", mark) == []
        assert _fifo_states(fifo, "VI_2", mark)[:1] == ["FAULT"]
        assert _fifo_states(fifo, "VI_2", mark).count("FAULT") == 1
        # no line per process (a thousand starts and a thousand deaths)
        assert len(log1) < 100, "\n".join(log1[-50:])
        # the storm's processes are not kept: the table is 1001 small entries at most
        assert rss1 - rss0 < 64 * 1024, (rss0, rss1)

        # the VRRP worker lived through it (a restart would resume the states above)
        assert {w["name"]: w["restarts"] for w in d.status()["workers"]} == restarts0
        assert d.worker_pid("vrrp") == vrrp

        # the parent dies: the tracker still follows it
        mark = len(fifo.lines)
        forker.kill()
        d.wait_for(lambda st: _states(st).get("VI_1") == "FAULT", 10.0, "VI_1 FAULT")
        lab.wait_for(lambda: "FAULT" in _fifo_states(fifo, "VI_1", mark), 5.0,
                     "VI_1 FAULT in the notify FIFO")
        assert d.proc.poll() is None
    finally:
        if daemon is not None:
            daemon.close()
            print(daemon.log_text()[-8000:])  # shown when the test failed
        fifo.close()
