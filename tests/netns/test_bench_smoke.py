"""The benchmark suite end to end on its smallest case (about a minute).

``python -m benchmarks.suite --quick`` restricted to TCP_CHECK at 1000 real
servers, one round, with the detection and scale sections: the farm, the hafast daemon
(parent + workers) and its engine alone, the C paced loop, HAProxy, the fault
injection and the report (tables, plots, results.json) all run for real.  Figures
are not asserted, only that every peer produced one and the report shows them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_root, require_tool

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(260)]


def test_quick_smallest_case_end_to_end(tmp_path: Path) -> None:
    require_root()
    for tool in ("nginx", "nft", "nsenter", "gcc", "haproxy"):
        require_tool(tool)
    out = tmp_path / "report"
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.suite", "--quick", "--section", "checks",
         "--section", "detection", "--section", "scale", "--scale-sizes", "100,1000",
         "--kinds", "TCP_CHECK", "--sizes", "1000", "--rounds", "1", "--out", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        _, err = proc.communicate(timeout=230)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the suite unwinds on SIGTERM: namespaces are deleted
        _, err = proc.communicate(timeout=25)
        pytest.fail(f"the suite overran 230 s: {err[-2000:]}")
    assert proc.returncode == 0, err[-3000:]
    assert "not measured this round" not in err, err[-3000:]
    report = (out / "report.md").read_text()
    assert "## 1. Check throughput and cost (delay_loop 1)" in report
    assert "## 2. Failure detection latency (fault -> DOWN)" in report
    for png in ("checks_throughput.png", "checks_cpu.png", "detection_latency.png"):
        assert (out / png).stat().st_size > 1000
    data = json.loads((out / "results.json").read_text())
    by_name = {s["name"]: s for s in data["sections"]}
    rows = {(r["case"], r["metric"]): r for r in by_name["checks"]["rows"]}
    rate = rows[("TCP_CHECK 1000", "checks/s")]
    assert rate["hafast"][0] > 0
    # the hafast column is the shipped daemon (parent + workers, CPU from /proc);
    # the engine alone stays as a named micro peer
    assert rows[("TCP_CHECK 1000", "processes measured")]["hafast"][0] > 1
    assert rows[("TCP_CHECK 1000", "CPU per 1000 checks")]["hafast"][0] > 0
    assert rows[("TCP_CHECK 1000", "whole PSS / real servers")]["hafast"][0] > 0
    assert rate["anchors"]["hafast engine alone (micro)"][0] > 0
    assert "shipped daemon" in report
    assert rate["anchors"]["C paced loop"][0] > 0 and rate["anchors"]["HAProxy"][0] > 0
    # the daemon's memory as the farm grows: PSS at each size, growth between them
    scale = {(r["case"], r["metric"]): r for r in by_name["scale"]["rows"]}
    small = scale[("TCP_CHECK 100", "whole-tree PSS")]["hafast"][0]
    big = scale[("TCP_CHECK 1000", "whole-tree PSS")]["hafast"][0]
    grown = scale[("TCP_CHECK 100 -> 1000", "PSS growth per real server")]["hafast"][0]
    assert 0 < small < big and grown == pytest.approx((big - small) * 1024 / 900)
    assert scale[("TCP_CHECK 1000", "parent PSS")]["hafast"][0] < big
    # at the larger size: 1 % rejecting, each seen DOWN, each DOWN followed by an
    # nftables commit; hafast status timed (issue 16)
    fault = "TCP_CHECK 1000, 10 rejecting"
    assert scale[(fault, "servers seen DOWN")]["hafast"] == [30.0]
    assert 0 < scale[(fault, "fault -> checker DOWN p99")]["hafast"][0] < 5000
    assert 0 <= scale[(fault, "checker DOWN -> kernel p50")]["hafast"][0] < 1000
    # from the worker's own verdict: the same commits, the hop to the parent before
    assert (scale[(fault, "checker verdict -> kernel p50")]["hafast"][0]
            >= scale[(fault, "checker DOWN -> kernel p50")]["hafast"][0] - 0.5)
    assert scale[("TCP_CHECK 1000", "hafast status --json wall (median)")]["hafast"][0] > 0
    assert ("TCP_CHECK 100, 1 rejecting", "servers seen DOWN") not in scale
    seen = {(r["case"], r["metric"]): r for r in by_name["detection"]["rows"]}
    down = seen[("reject (20 of 1000)", "servers seen DOWN")]
    assert down["hafast"] == [20.0] and down["anchors"]["HAProxy"] == [20.0]
    # the suite cleaned up after itself: no namespace of its own is left
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"bs{proc.pid}-" not in left


@pytest.mark.timeout(600)
def test_vm_section_times_ipvs_removal_for_both_peers(tmp_path: Path) -> None:
    """The IPVS VM section on a tiny farm: keepalived -C and hafast's engine + pool
    manager each fill the IPVS table, and each victim's removal is timed."""
    from benchmarks.suite.checks import no_step
    from benchmarks.suite.vm_checkers import run_vm_section
    from hafast.lab.ipvs_vm import IpvsVM, VMSetupError
    from tests.conftest import require

    require_root()
    for tool in ("nginx", "nft", "nsenter", "qemu-system-x86_64"):
        require_tool(tool)
    require(Path("/usr/sbin/keepalived").exists(), "keepalived 2.2.7 is not installed")
    try:
        IpvsVM().setup()
    except VMSetupError as exc:
        require(False, f"IPVS VM set-up failed: {exc}")
    notes: list[str] = []
    sec = run_vm_section(20, 2.0, 1, tmp_path, no_step, notes.append, detect_k=5,
                         detect_rounds=1)
    assert sec.status == "measured", (sec.notes, notes)
    rows = {(r.case, r.metric): r for r in sec.rows}
    removed = rows[("reject (5 of 20, VM, fault -> IPVS removal)", "servers removed")]
    assert removed.hafast == [5.0] and removed.anchors["keepalived"] == [5.0], sec.notes
    p50 = rows[("reject (5 of 20, VM, fault -> IPVS removal)", "p50 latency")]
    assert p50.hafast[0] is not None and p50.anchors["keepalived"][0] is not None
    assert set(sec.samples["fault reject (IPVS VM)"]) == {"hafast", "keepalived"}
