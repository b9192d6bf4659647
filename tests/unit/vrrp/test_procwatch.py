"""vrrp_track_process's watcher (hafast.vrrp.procwatch) on real processes: a death is
seen at once through its pidfd, a start within one scan, and a process that forks
hundreds of children costs bounded reads, fds and time per scan."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from hafast.config.model import TrackProcess
from hafast.vrrp import procwatch
from hafast.vrrp.procwatch import MAX_PIDFDS, ProcessWatch


@pytest.fixture
def named_sleep(tmp_path: Path) -> Iterator[Path]:
    """A copy of /bin/sleep under a name no other process has (comm: 15 characters)."""
    exe = tmp_path / f"hs{uuid.uuid4().hex[:10]}"
    shutil.copy("/bin/sleep", exe)
    yield exe


def _kill(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        p.kill()
    p.wait()


def test_death_at_once_start_within_a_scan(named_sleep: Path) -> None:
    async def body() -> list[tuple[float, bool]]:
        loop = asyncio.get_running_loop()
        first = subprocess.Popen([named_sleep, "60"])
        try:
            await asyncio.sleep(0.05)
            w = ProcessWatch(loop, [TrackProcess("s", process=(named_sleep.name,))])
            assert w.up("s") and len(w._pidfds) == 1
            t0 = loop.time()
            seen: list[tuple[float, bool]] = []
            w.subscribe("s", lambda up: seen.append((loop.time() - t0, up)))
            w.start()
            first.send_signal(signal.SIGKILL)
            await asyncio.sleep(0.3)
            second = subprocess.Popen([named_sleep, "60"])
            try:
                await asyncio.sleep(procwatch.SCAN_PERIOD_S + 0.3)
            finally:
                _kill(second)
            assert w.counters["pidfd_exits"] == 1
            w.close()
            return seen
        finally:
            _kill(first)

    seen = asyncio.run(body())
    assert [up for _, up in seen] == [False, True]
    assert seen[0][0] < 0.2  # the pidfd, not a scan
    assert seen[1][0] < 0.3 + procwatch.SCAN_PERIOD_S + 0.2


def test_terminate_delay_absorbs_a_restart_between_scans(named_sleep: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan period is longer than the delay: the expiry scans for itself."""
    monkeypatch.setattr(procwatch, "SCAN_PERIOD_S", 5.0)

    async def body() -> list[bool]:
        loop = asyncio.get_running_loop()
        first = subprocess.Popen([named_sleep, "60"])
        second = None
        try:
            await asyncio.sleep(0.05)
            w = ProcessWatch(loop, [TrackProcess("s", process=(named_sleep.name,),
                                                 terminate_delay_us=400_000)])
            seen: list[bool] = []
            w.subscribe("s", seen.append)
            w.start()
            first.send_signal(signal.SIGKILL)
            await asyncio.sleep(0.1)
            second = subprocess.Popen([named_sleep, "60"])
            await asyncio.sleep(0.6)
            assert w.table.quorums["s"].count == 1 and w.table.quorums["s"].timer is None
            w.close()
            return seen
        finally:
            _kill(first)
            if second is not None:
                _kill(second)

    assert asyncio.run(body()) == []


_FORKER = """
import os, signal, sys, time
n = int(sys.argv[1])
kids = []
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        time.sleep(60)
        os._exit(0)
    kids.append(pid)
print("ready", flush=True)
sys.stdin.readline()          # the test says when: kill every child, reap them
for pid in kids:
    os.kill(pid, signal.SIGKILL)
for pid in kids:
    os.waitpid(pid, 0)
print("reaped", flush=True)
time.sleep(60)
"""


def test_a_process_forking_hundreds_of_children(tmp_path: Path) -> None:
    exe = tmp_path / f"hf{uuid.uuid4().hex[:10]}"
    shutil.copy(sys.executable, exe)
    n = MAX_PIDFDS + 150

    async def body() -> None:
        loop = asyncio.get_running_loop()
        w = ProcessWatch(loop, [TrackProcess("f", process=(exe.name,), quorum_max=1)])
        assert not w.up("f")
        seen: list[bool] = []
        w.subscribe("f", seen.append)
        p = subprocess.Popen([exe, "-c", _FORKER, str(n)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
        assert p.stdin is not None and p.stdout is not None
        try:
            assert await loop.run_in_executor(None, p.stdout.readline) == b"ready\n"
            t0 = time.perf_counter()
            w.scan()
            took = time.perf_counter() - t0
            q = w.table.quorums["f"]
            # nothing ran, then the parent (quorum), then its children (above quorum_max)
            assert q.count == n + 1 and seen == [True, False]
            assert len(w._pidfds) == MAX_PIDFDS  # bounded fds; the rest rely on the scan
            assert took < 0.5, f"one scan over {n} new processes took {took:.3f}s"
            p.stdin.write(b"go\n")
            p.stdin.flush()
            assert await loop.run_in_executor(None, p.stdout.readline) == b"reaped\n"
            await asyncio.sleep(0.1)  # the pidfds' exits
            w.scan()  # the others: gone from /proc
            assert q.count == 1 and seen == [True, False, True]
            assert not w._pidfds.keys() - {p.pid}
        finally:
            _kill(p)
            w.close()

    asyncio.run(body())


def test_the_periodic_scan_gives_the_loop_back_between_slices(tmp_path: Path) -> None:
    """A storm of new processes is read SCAN_SLICE at a time, one slice per loop turn
    (a whole scan's 512 reads held the loop 20-70 ms, more than a 0.1 s advert_int's
    heartbeat allows); the count it ends with is the whole scan's."""
    exe = tmp_path / f"hg{uuid.uuid4().hex[:10]}"
    shutil.copy(sys.executable, exe)
    n = 3 * procwatch.SCAN_SLICE

    async def body() -> None:
        loop = asyncio.get_running_loop()
        w = ProcessWatch(loop, [TrackProcess("f", process=(exe.name,))], connector=False)
        p = subprocess.Popen([exe, "-c", _FORKER, str(n)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
        assert p.stdin is not None and p.stdout is not None
        try:
            assert await loop.run_in_executor(None, p.stdout.readline) == b"ready\n"
            reads = w.counters["reads"]
            w._tick()  # what the scan timer runs
            # (a slice counts the pids gone from /proc too: the box's own come and go)
            assert w.counters["reads"] - reads <= procwatch.SCAN_SLICE
            assert w._scan_handle is not None  # the rest: the next loop turns
            assert not isinstance(w._scan_handle, asyncio.TimerHandle)
            for _ in range(100):
                if isinstance(w._scan_handle, asyncio.TimerHandle):
                    break  # the scan is over; the next one is a period away
                await asyncio.sleep(0)
            assert isinstance(w._scan_handle, asyncio.TimerHandle)
            assert w.table.quorums["f"].count == n + 1
            assert w.counters["scans"] == 1
        finally:
            _kill(p)
            w.close()

    asyncio.run(body())


def test_close_releases_every_pidfd(named_sleep: Path) -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        procs = [subprocess.Popen([named_sleep, "60"]) for _ in range(3)]
        try:
            await asyncio.sleep(0.05)
            before = len(os.listdir("/proc/self/fd"))
            w = ProcessWatch(loop, [TrackProcess("s", process=(named_sleep.name,))])
            assert w.table.quorums["s"].count == 3
            w.close()
            assert len(os.listdir("/proc/self/fd")) == before
        finally:
            for p in procs:
                _kill(p)

    asyncio.run(body())


class _Inst:
    """What Tracking drives: fault reasons and weights by source."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.faults: set[str] = set()
        self.weights: dict[str, int] = {}

    def raise_fault(self, reason: str) -> None:
        self.faults.add(reason)

    def clear_fault(self, reason: str) -> None:
        self.faults.discard(reason)

    def set_weight(self, source: str, weight: int) -> None:
        self.weights[source] = weight


def test_tracking_wires_instances_and_sync_groups(named_sleep: Path) -> None:
    from hafast.config.loader import load_text
    from hafast.vrrp.build import plan_instances
    from hafast.vrrp.tracking import Tracking

    text = f"""
vrrp_track_process down {{ process {named_sleep.name} }}
vrrp_track_process weighted {{ process {named_sleep.name}
  weight 20 reverse }}
vrrp_track_process unused {{ process nothing-tracks-this }}
vrrp_instance A {{ interface lo
  virtual_router_id 1
  no_virtual_ipaddress
  track_process {{ down }} }}
vrrp_instance B {{ interface lo
  virtual_router_id 2
  no_virtual_ipaddress }}
vrrp_sync_group G {{ group {{
    A
    B
  }}
  sync_group_tracking_weight
  track_process {{ weighted }} }}
"""
    loaded = load_text(text)
    assert [d for d in loaded.diagnostics if d.severity == "error"] == []
    cfg = loaded.config
    plans = {p.spec.name: p for p in plan_instances(cfg)}

    async def body() -> None:
        loop = asyncio.get_running_loop()
        tracking = Tracking(loop, cfg, None)  # type: ignore[arg-type]
        a, b = _Inst("A"), _Inst("B")
        tracking.bind(a, replace(plans["A"], track_primary=False))  # type: ignore[arg-type]
        tracking.bind(b, replace(plans["B"], track_primary=False))  # type: ignore[arg-type]
        assert tracking.processes is not None
        assert set(tracking.processes.table.quorums) == {"down", "weighted"}
        # nothing runs: A is in FAULT, reverse weight 20 costs nothing while down
        assert a.faults == {"process:down"} and b.faults == set()
        assert a.weights == {"process:down": 0, "process:weighted": 0}
        tracking.start()
        p = subprocess.Popen([named_sleep, "60"])
        try:
            await asyncio.sleep(procwatch.SCAN_PERIOD_S + 0.3)
            assert a.faults == set() and b.weights == {"process:weighted": -20}
            p.kill()
            await asyncio.sleep(0.1)
            assert a.faults == {"process:down"} and b.weights == {"process:weighted": 0}
        finally:
            _kill(p)
            tracking.close()

    asyncio.run(body())


def test_status_json_says_what_holds_an_instance_in_fault() -> None:
    from types import SimpleNamespace

    from hafast.status import dump
    from hafast.vrrp.fsm import State
    from hafast.vrrp.params import VrrpParams
    from hafast.vrrp.report import instance_json

    st = SimpleNamespace(state=State.FAULT, base_priority=100, priority=100,
                         faults=frozenset({"process:haproxy", "interface:eth1"}))
    inst = SimpleNamespace(
        name="VI_1", counters={}, rejects={}, transitions=[], machine=SimpleNamespace(state=st),
        spec=SimpleNamespace(params=VrrpParams(priority=100), ifname="eth0", vips=(),
                             excluded=()))
    entry = instance_json(inst, None)
    assert entry["faults"] == ["interface:eth1", "process:haproxy"]
    assert entry["data"]["state_name"] == "FAULT"
    # keepalived's JSON dump keeps its own shape
    assert set(dump.vrrp_json({"vrrp": [entry]})[0]) == {"data", "stats"}


# --------------------------------------------------------------------------- connector


def _event(what: int, data: bytes) -> bytes:
    from hafast.lib.netlink import NLMSG_DONE, pack_message
    from hafast.vrrp.procconn import CN_MSG, EVENT

    body = EVENT.pack(what, 0, 0) + data
    return pack_message(NLMSG_DONE, 0, 0, CN_MSG.pack(1, 1, 0, 0, len(body), 0) + body)


def test_connector_events_parse_as_the_kernel_lays_them_out() -> None:
    from hafast.vrrp import procconn as pc

    data = b"".join([
        _event(pc.PROC_EVENT_NONE, bytes(8)),
        _event(pc.PROC_EVENT_FORK, pc.FORK.pack(10, 10, 11, 11)),
        _event(pc.PROC_EVENT_FORK, pc.FORK.pack(10, 10, 12, 11)),  # a thread: skipped
        _event(pc.PROC_EVENT_EXEC, pc.PIDS.pack(11, 11)),
        _event(pc.PROC_EVENT_COMM, pc.PIDS.pack(11, 11) + b"name".ljust(16, b"\0")),
        _event(pc.PROC_EVENT_EXIT, pc.PIDS.pack(13, 11) + bytes(8)),  # a thread's exit
        _event(pc.PROC_EVENT_EXIT, pc.PIDS.pack(11, 11) + bytes(8)),
        _event(pc.PROC_EVENT_FORK, b"\0\0"),  # truncated: skipped
    ])
    assert list(pc.parse_events(data)) == [
        (0, 0, 0), (pc.PROC_EVENT_FORK, 11, 10), (pc.PROC_EVENT_EXEC, 11, 0),
        (pc.PROC_EVENT_COMM, 11, 0), (pc.PROC_EVENT_EXIT, 11, 0)]


def test_connector_hints_make_a_start_seen_at_once(named_sleep: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the kernel sends process events (initial network namespace, root)."""
    monkeypatch.setattr(procwatch, "SCAN_PERIOD_S", 30.0)

    async def body() -> float:
        loop = asyncio.get_running_loop()
        w = ProcessWatch(loop, [TrackProcess("s", process=(named_sleep.name,))])
        if w.connector is None:
            w.close()
            pytest.skip("no process connector here (a network namespace, or not root)")
        seen: list[float] = []
        w.subscribe("s", lambda up: seen.append(loop.time()))
        w.start()
        t0 = loop.time()
        p = subprocess.Popen([named_sleep, "60"])
        try:
            for _ in range(100):
                if seen:
                    break
                await asyncio.sleep(0.01)
        finally:
            _kill(p)
            w.close()
        assert seen, "the start was not seen without a scan"
        assert w.counters["scans"] == 0
        return seen[0] - t0

    assert asyncio.run(body()) < 0.5


def test_without_a_connector_nothing_changes(named_sleep: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from hafast.vrrp import procconn

    def refused(self: procconn.ProcConnector) -> bool:
        self.error = "errno 111 (Connection refused)"
        return False

    monkeypatch.setattr(procconn.ProcConnector, "open", refused)

    async def body() -> list[bool]:
        loop = asyncio.get_running_loop()
        p = subprocess.Popen([named_sleep, "60"])
        try:
            await asyncio.sleep(0.05)
            w = ProcessWatch(loop, [TrackProcess("s", process=(named_sleep.name,))])
            assert w.connector is None and w.up("s")
            seen: list[bool] = []
            w.subscribe("s", seen.append)
            p.kill()
            await asyncio.sleep(0.1)
            w.close()
            return seen
        finally:
            _kill(p)

    assert asyncio.run(body()) == [False]


def test_an_exec_storm_costs_bounded_reads(named_sleep: Path) -> None:
    from hafast.vrrp import procconn

    async def body() -> None:
        loop = asyncio.get_running_loop()
        w = ProcessWatch(loop, [TrackProcess("s", process=(named_sleep.name,))],
                         connector=False)
        reads = w.counters["reads"]
        for pid in range(10_000, 15_000):
            w._event(procconn.PROC_EVENT_EXEC, pid, 0)
        assert len(w._hints) == procwatch.HINT_MAX
        assert w.counters["hints_dropped"] == 5_000 - procwatch.HINT_MAX
        await asyncio.sleep(procwatch.HINT_DELAY_S + 0.05)
        assert w.counters["reads"] - reads <= procwatch.HINT_MAX and not w._hints
        # forks of processes that do not count are not even read
        w._event(procconn.PROC_EVENT_FORK, 20_000, 1)
        assert not w._hints
        w.close()

    asyncio.run(body())


def test_a_reload_that_first_names_a_process_tracks_it(named_sleep: Path) -> None:
    """VrrpWorker.reload: add_scripts() registers the new trackers, then bind() of the
    new instance starts the watcher (the worker's tracking was started already)."""
    from hafast.config.loader import load_text
    from hafast.vrrp.build import plan_instances
    from hafast.vrrp.tracking import Tracking

    before = load_text("vrrp_instance A { interface lo\n virtual_router_id 1\n"
                       " no_virtual_ipaddress\n}\n").config
    after = load_text(f"vrrp_track_process p {{ process {named_sleep.name} }}\n"
                      "vrrp_instance A { interface lo\n virtual_router_id 1\n"
                      " no_virtual_ipaddress\n track_process { p }\n}\n").config

    async def body() -> list[set[str]]:
        loop = asyncio.get_running_loop()
        tracking = Tracking(loop, before, None)  # type: ignore[arg-type]
        tracking.start()
        assert tracking.processes is None  # nothing tracked: /proc is never read
        tracking.add_scripts(after)
        a = _Inst("A")
        tracking.bind(a, replace(plan_instances(after)[0], track_primary=False))  # type: ignore[arg-type]
        faults = [set(a.faults)]
        p = subprocess.Popen([named_sleep, "60"])
        try:
            await asyncio.sleep(procwatch.SCAN_PERIOD_S + 0.3)
            faults.append(set(a.faults))
        finally:
            _kill(p)
            tracking.close()
        return faults

    assert asyncio.run(body()) == [{"process:p"}, set()]
