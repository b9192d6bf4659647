"""Issue 14: the process options and the startup/shutdown scripts side by side with
Debian's keepalived 2.2.7, read back from /proc of each daemon's processes.

Each test runs the same global_defs under ``hafast -f CONF -n -l`` (its workers found
by their pid files, as tests/netns/test_process_options.py does) and under
``keepalived -n -l -D -f CONF`` (its children found by their parent's PID), in a
namespace of its own (``kp<pid>``, one veth pair for the VRRP instance).

Differences, measured on keepalived 2.2.7 and kept on purpose:

* keepalived's checker child cannot run here: without the ip_vs module its
  ``ipvs_start`` fails ("IPVS: Can't initialize ipvs") and the whole daemon
  terminates, and without a virtual_server it starts no checker at all.  keepalived
  applies the checker_* options with the same functions as the vrrp_* ones
  (``set_process_priorities``, ``set_process_cpu_affinity``, ``set_process_name``
  in lib/), so hafast's check worker under ``checker_X`` is compared with
  keepalived's VRRP child under ``vrrp_X``.  hafast's config carries a
  virtual_server (its check worker needs one); keepalived's does not.
* RLIMIT_RTTIME: the soft limit is keepalived's (half of ``*_rlimit_rttime``); the
  hard one is at least 1 s under hafast where keepalived's is ``*_rlimit_rttime``
  itself (hafast/lib/procopts.py: the kernel kills at the hard limit, and a Python
  worker cannot always handle the soft limit's SIGXCPU within keepalived's margin).

Matching: nice (``*_priority`` is not applied when ``*_rt_priority`` is given),
SCHED_RR | SCHED_RESET_ON_FORK at the rt priority, CPU affinity, locked memory
(``*_no_swap``), comm (``*_process_name``); the parent keeps nice 0 and normal
scheduling.  Scripts: both run the startup script before any child exists and the
shutdown script once the VRRP child has gone, once each, and both end a script
past its timeout (SIGTERM to its process group, which also ends what it started).
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hafast.lab.netns import Registry
from hafast.lab.proctree import children
from tests.conftest import require_root, require_tool
from tests.netns.daemon_fixtures import start_daemon
from tests.netns.vrrp_fixtures import KEEPALIVED

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(180)]

KINDS = ["hafast", "keepalived"]
SCHED_RR_RESET = os.SCHED_RR | os.SCHED_RESET_ON_FORK
RTTIME_US = 50000  # {r}_rlimit_rttime in RT_OPTIONS
HARD_FLOOR_US = 1_000_000  # hafast/lib/procopts.py RT_HARD_FLOOR_US
# The options of one role, keepalived's spelling with {r} for vrrp or checker.
RT_OPTIONS = """
  {r}_priority -5
  {r}_rt_priority 20
  {r}_rlimit_rttime 50000
  {r}_cpu_affinity 0
  {r}_no_swap
  {r}_process_name kp_{r}_rt
"""
NICE_OPTIONS = """
  {r}_priority 3
  {r}_cpu_affinity 1
  {r}_no_swap
  {r}_process_name kp_{r}_nice
"""


@pytest.fixture
def ns() -> Iterator[str]:
    require_root()
    require_tool(KEEPALIVED)
    if len(os.sched_getaffinity(0)) < 2 or not {0, 1} <= os.sched_getaffinity(0):
        pytest.skip("cpu_affinity 0 and 1 need CPUs 0 and 1")
    name = f"kp{os.getpid()}"
    with Registry() as reg:
        reg.add_netns(name)
        reg.add_veth(name, "va", name, "vb")
        reg.add_address(name, "va", "10.98.0.1/24")
        yield name


def conf(extra: str, *, checks: bool) -> str:
    text = f"""global_defs {{
  router_id kpside
  vrrp_garp_master_delay 0
{extra}
}}
vrrp_instance VI_1 {{
  state BACKUP
  interface va
  virtual_router_id 53
  priority 100
  advert_int 1
  virtual_ipaddress {{
    10.98.0.100/24
  }}
}}
"""
    if checks:
        text += """virtual_server 10.98.0.100 80 {
  delay_loop 1
  protocol TCP
  real_server 127.0.0.1 9 {
    TCP_CHECK { connect_timeout 1 }
  }
}
"""
    return text


@dataclass
class Running:
    """One daemon: its parent's Popen and how to find its VRRP / check process."""

    kind: str
    proc: subprocess.Popen[bytes]
    dir: Path
    pid_of: Callable[[str], int]

    def log_text(self) -> str:
        return (self.dir / f"{self.kind}.log").read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: only its group
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def start(kind: str, base: Path, ns: str, text: str) -> Running:
    d = base / kind
    d.mkdir(parents=True, exist_ok=True)
    if kind == "hafast":
        daemon = start_daemon(d, text, name="hafast", ns=ns,
                              extra=["--pool-backend", "memory", "--check-workers", "1"])

        def hafast_pid(role: str) -> int:
            return daemon.worker_pid("vrrp" if role == "vrrp" else "check")

        return Running(kind, daemon.proc, d, hafast_pid)
    (d / "keepalived.conf").write_text(text)
    vrrp_pid = d / "vrrp.pid"
    argv = ["ip", "netns", "exec", ns, KEEPALIVED, "-n", "-l", "-D", "-f",
            str(d / "keepalived.conf"), "-p", str(d / "keepalived.pid"),
            "-r", str(vrrp_pid), "-c", str(d / "check.pid")]
    with (d / "keepalived.log").open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def keepalived_pid(role: str) -> int:
        # keepalived's only child here is its VRRP child (no checker: module docstring);
        # the pid file tells it from a script the parent may be running
        assert role == "vrrp", role
        pid = int(vrrp_pid.read_text().split()[0])
        assert pid in children(proc.pid), (pid, children(proc.pid))
        return pid

    return Running(kind, proc, d, keepalived_pid)


def wait_until(cond: Callable[[], object], timeout: float, what: str,
               log: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if cond():
                return
        except (OSError, ValueError, IndexError, AssertionError):
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{log()[-3000:]}"
        time.sleep(0.05)


def comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def snapshot(pid: int) -> dict[str, object]:
    """What /proc says of one process (its main thread)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()  # from field 3 (state) on
    status = dict(line.partition(":")[::2] for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines())
    limits = next(line for line in Path(f"/proc/{pid}/limits").read_text().splitlines()
                  if line.startswith("Max realtime timeout"))
    soft, hard = limits.split()[3:5]
    assert (soft, hard) == tuple(str(v) if v != resource.RLIM_INFINITY else "unlimited"
                                 for v in resource.prlimit(pid, resource.RLIMIT_RTTIME))
    return {"nice": int(fields[19 - 3]), "policy": os.sched_getscheduler(pid),
            "rt_priority": os.sched_getparam(pid).sched_priority,
            "cpus": os.sched_getaffinity(pid),
            "locked": int(status["VmLck"].split()[0]) > 0,
            "rttime": resource.prlimit(pid, resource.RLIMIT_RTTIME), "comm": comm(pid)}


def settled(run: Running, role: str, name: str) -> dict[str, object]:
    """The process of ``role`` once it has named itself ``name`` (its options are set
    together with the name; a second read makes sure they stay)."""
    wait_until(lambda: comm(run.pid_of(role)) == name, 30, f"{run.kind} {role} as {name}",
               run.log_text)
    pid = run.pid_of(role)
    time.sleep(0.5)
    return snapshot(pid) | {"parent": snapshot(run.proc.pid)}


def test_process_options_match_keepalived(tmp_path: Path, ns: str) -> None:
    rt_vrrp, nice_check = RT_OPTIONS.format(r="vrrp"), NICE_OPTIONS.format(r="checker")
    got: dict[str, dict[str, object]] = {}
    h = start("hafast", tmp_path, ns, conf(rt_vrrp + nice_check, checks=True))
    try:
        got["hafast vrrp"] = settled(h, "vrrp", "kp_vrrp_rt")
        got["hafast checker"] = settled(h, "checker", "kp_checker_nice")
        assert h.proc.poll() is None
    finally:
        h.close()
    # keepalived twice: the same options, then the checker's as its VRRP child's
    # (module docstring)
    for key, text, name in (("keepalived vrrp", rt_vrrp + nice_check, "kp_vrrp_rt"),
                            ("keepalived checker", NICE_OPTIONS.format(r="vrrp"),
                             "kp_vrrp_nice")):
        k = start("keepalived", tmp_path / key.split()[1], ns, conf(text, checks=False))
        try:
            got[key] = settled(k, "vrrp", name)
            assert k.proc.poll() is None
        finally:
            k.close()
    for line in got.items():
        print(*line)

    kv, hv = got["keepalived vrrp"], got["hafast vrrp"]
    assert kv["policy"] == hv["policy"] == SCHED_RR_RESET
    assert kv["rt_priority"] == hv["rt_priority"] == 20
    assert kv["nice"] == hv["nice"] == 0  # vrrp_priority is not applied with rt
    assert kv["cpus"] == hv["cpus"] == {0}
    assert kv["locked"] is hv["locked"] is True
    assert kv["rttime"] == (RTTIME_US // 2, RTTIME_US)
    assert hv["rttime"] == (RTTIME_US // 2, max(RTTIME_US, HARD_FLOOR_US))
    assert kv["comm"] == hv["comm"] == "kp_vrrp_rt"

    kc, hc = got["keepalived checker"], got["hafast checker"]
    assert kc["policy"] == hc["policy"] == os.SCHED_OTHER
    assert kc["rt_priority"] == hc["rt_priority"] == 0
    assert kc["nice"] == hc["nice"] == 3
    assert kc["cpus"] == hc["cpus"] == {1}
    assert kc["locked"] is hc["locked"] is True
    assert kc["rttime"] == hc["rttime"]  # untouched without rt_priority
    assert (kc["comm"], hc["comm"]) == ("kp_vrrp_nice", "kp_checker_nice")

    for key, seen in got.items():
        parent = seen["parent"]
        assert isinstance(parent, dict)
        # hafast's parent asks for a short time slice (procopts.short_slice), not passed
        # on to its children: SCHED_RESET_ON_FORK shows in its policy, nothing else
        policy = parent["policy"] & ~os.SCHED_RESET_ON_FORK if key.startswith("hafast") \
            else parent["policy"]
        assert (parent["nice"], policy, parent["locked"]) == (0, 0, False), key


# ------------------------------------------------------------------ startup/shutdown

# Appends "<what> children=<number of the daemon's other children> vrrp=<alive|gone|->"
# (the daemon is the script's parent; "vrrp" reads the PID the test saved).
SCRIPT = """#!/bin/sh
n=$(ps -o pid= --ppid "$PPID" | grep -cvw "$$")
v=-
if [ -s {dir}/vrrp.saved ]; then
  kill -0 "$(cat {dir}/vrrp.saved)" 2>/dev/null && v=alive || v=gone
fi
echo "$1 children=$n vrrp=$v" >> {dir}/order
"""


@pytest.mark.parametrize("kind", KINDS)
def test_startup_and_shutdown_scripts_around_the_vrrp_child(tmp_path: Path, ns: str,
                                                            kind: str) -> None:
    tmp_path.chmod(0o755)
    script = tmp_path / "mark.sh"
    script.write_text(SCRIPT.format(dir=tmp_path))
    script.chmod(0o755)
    run = start(kind, tmp_path, ns, conf(f"""  startup_script "{script} startup"
  startup_script_timeout 5
  shutdown_script "{script} shutdown"
  shutdown_script_timeout 5
  vrrp_process_name kp_vrrp_ss""", checks=False))
    try:
        wait_until(lambda: comm(run.pid_of("vrrp")) == "kp_vrrp_ss", 30, "the VRRP child",
                   run.log_text)
        vrrp = run.pid_of("vrrp")
        (tmp_path / "vrrp.saved").write_text(str(vrrp))
        assert run.stop() == 0
        lines = (tmp_path / "order").read_text().splitlines()
        print(kind, lines)
        assert lines == ["startup children=0 vrrp=-", "shutdown children=0 vrrp=gone"], \
            run.log_text()[-3000:]
    finally:
        run.close()


@pytest.mark.parametrize("kind", KINDS)
def test_scripts_past_their_timeout_are_killed(tmp_path: Path, ns: str, kind: str) -> None:
    tmp_path.chmod(0o755)
    slow = tmp_path / "slow.sh"
    # what the script starts must go too: it is in the script's process group
    slow.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {tmp_path}/$1.child\nsleep 300\n")
    slow.chmod(0o755)
    t0 = time.monotonic()
    run = start(kind, tmp_path, ns, conf(f"""  startup_script "{slow} startup"
  startup_script_timeout 1
  shutdown_script "{slow} shutdown"
  shutdown_script_timeout 1""", checks=False))
    try:
        wait_until(lambda: run.pid_of("vrrp") in children(run.proc.pid), 30,
                   "the VRRP child", run.log_text)
        started = time.monotonic() - t0
        # the VRRP child waits for the timeout, and not for the script's 300 s
        assert 1.0 <= started < 20.0, started
        t1 = time.monotonic()
        assert run.stop(60) == 0
        stopped = time.monotonic() - t1
        assert stopped < 30.0, stopped
        print(f"{kind}: VRRP child {started:.2f} s after start, exit {stopped:.2f} s "
              "after SIGTERM")
        for which in ("startup", "shutdown"):
            pid = int((tmp_path / f"{which}.child").read_text())
            wait_until(lambda pid=pid: not Path(f"/proc/{pid}").exists()  # type: ignore[misc]
                       or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z",
                       10, f"the {which} script's child to end", run.log_text)
        text = run.log_text()
        assert "startup script timed out" in text, text[-3000:]
        assert "shutdown script timed out" in text, text[-3000:]
    finally:
        run.close()
