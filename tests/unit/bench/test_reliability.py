"""The reliability sections' tables from fixed figures, outcomes and fuzzer output."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr
from pathlib import Path

import pytest

from benchmarks.suite import __main__ as suite
from benchmarks.suite.model import Section
from benchmarks.suite.reliability import (
    FUZZ_CAP,
    FUZZ_RUNS,
    FUZZ_RUNS_QUICK,
    FUZZ_TARGETS,
    Outcome,
    read_junit,
    read_records,
    render,
    render_fuzz,
)
from benchmarks.suite.report import build_report, load_results, write_report
from tests import figures
from tests.fuzz.runner import read_log

RECORDS = [
    {"group": "hostile VRRP network", "scenario": "flood to the group",
     "test": "tests/netns/test_hostile_vrrp.py::test_flood",
     "figures": {"packets sent": 112000,
                 "dropped: packet_len_err": {"hafast": 21924, "keepalived": 20100},
                 "dropped: checksum_err": {"hafast": 7000},
                 "RSS KiB before -> after": {"hafast": "40,340 -> 40,348",
                                             "keepalived": "3,244 -> 3,244"}}},
    {"group": "worker and parent kills", "scenario": "SIGSTOP of check0",
     "test": "tests/netns/test_chaos_workers.py::test_stop",
     "figures": {"watchdog replacement s": "3.55", "healthy servers wrongly removed": 0,
                 "respawn s": 0.4321, "restarted": "False"}},
]
OUTCOMES = [Outcome("test_hostile_vrrp::test_flood", "passed", 41.2),
            Outcome("test_chaos_workers::test_stop", "failed", 30.0, "assert 1 == 0")]
LOG = """INFO: seed corpus: files: 52 min: 1b max: 541b total: 2852b rss: 44Mb
#194678	DONE   cov: 198 ft: 218 corp: 31/1860b lim: 2475 exec/s: 32446 rss: 44Mb
Done 194678 runs in 6 second(s)
stat::number_of_executed_units: 194678
stat::average_exec_per_sec:     32446
stat::new_units_added:          3
stat::slowest_unit_time_sec:    1
stat::peak_rss_mb:              44
"""
# what atheris and libFuzzer print when the harness raises (stdout, stderr)
CRASH_OUT = """
 === Uncaught Python exception: ===
AssertionError: the ICMP parse twins disagree on 0102:
  c:  ('reply', 1)
  py: ('error', 1)
Traceback (most recent call last):
  File "tests/fuzz/fuzz_icmp.py", line 66, in one_input
    assert got_c == got_py
AssertionError: the ICMP parse twins disagree on 0102:
"""
CRASH_ERR = """#19	REDUCE cov: 8 ft: 8 corp: 4/10b lim: 4 exec/s: 0 rss: 40Mb L: 3/3 MS: 2
==9731== ERROR: libFuzzer: fuzz target exited
SUMMARY: libFuzzer: fuzz target exited
artifact_prefix='/tmp/x/'; Test unit written to /tmp/x/crash-0a1b
Base64: AQI=
stat::number_of_executed_units: 1070
stat::average_exec_per_sec:     0
stat::new_units_added:          4
stat::slowest_unit_time_sec:    0
stat::peak_rss_mb:              40
"""


def test_render_side_by_side_and_plain_tables() -> None:
    text = render(RECORDS, OUTCOMES)
    lines = text.splitlines()
    assert lines[0] == "1 of 2 tests passed."
    assert "| test_chaos_workers::test_stop | failed: assert 1 == 0 | 30 |" in lines
    # both daemons ran: a keepalived column, a dash where it has no counter,
    # a figure of the pair in the first column only
    assert "| figure | hafast | keepalived |" in lines
    assert "| dropped: packet_len_err | 21,924 | 20,100 |" in lines
    assert "| dropped: checksum_err | 7,000 | - |" in lines
    assert "| packets sent | 112,000 |  |" in lines
    assert "| RSS KiB before -> after | 40,340 -> 40,348 | 3,244 -> 3,244 |" in lines
    # hafast alone: one value column
    stop = lines.index("**SIGSTOP of check0** (`test_stop`)")
    assert lines[stop + 2] == "| figure | value |"
    assert "| respawn s | 0.43 |" in lines
    assert "| healthy servers wrongly removed | 0 |" in lines
    assert lines.index("### hostile VRRP network") < lines.index("### worker and parent kills")


def test_render_nothing_measured_is_empty() -> None:
    assert render([], []) == ""


def test_hafast_only_dict_reads_as_a_value() -> None:
    rec = {"group": "g", "scenario": "s", "figures": {"x": {"hafast": 3}}}
    assert "| x | 3 |" in render([rec], []).splitlines()


def test_record_appends_json_lines_that_read_back(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f.jsonl"
    monkeypatch.setenv(figures.ENV, str(path))
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "tests/x.py::test_a (call)")
    figures.record("g", "one", {"n": 1, "pair": {"hafast": 1, "keepalived": 2},
                                "other": {"vrrp": [0.5]}, "flag": True})
    figures.record("g", "two", {"n": 2.5})
    with path.open("a") as f:
        f.write('{"torn')  # a test killed mid-write
    recs = read_records(path)
    assert [r["scenario"] for r in recs] == ["one", "two"]
    assert recs[0]["test"] == "tests/x.py::test_a"
    assert recs[0]["figures"] == {"n": 1, "pair": {"hafast": 1, "keepalived": 2},
                                  "other": "{'vrrp': [0.5]}", "flag": "True"}


def test_read_junit(tmp_path: Path) -> None:
    xml = tmp_path / "r.xml"
    xml.write_text(
        '<testsuites><testsuite>'
        '<testcase classname="tests.netns.test_a" name="test_ok" time="1.5"/>'
        '<testcase classname="tests.netns.test_a" name="test_bad" time="2">'
        '<failure message="AssertionError: 1&#10;more">tb</failure></testcase>'
        '<testcase classname="tests.netns.test_b" name="test_skip" time="0">'
        '<skipped message="needs root"/></testcase>'
        '</testsuite></testsuites>')
    assert read_junit(xml) == [
        Outcome("test_a::test_ok", "passed", 1.5),
        Outcome("test_a::test_bad", "failed", 2.0, "AssertionError: 1"),
        Outcome("test_b::test_skip", "skipped", 0.0, "needs root")]
    assert read_junit(tmp_path / "missing.xml") == []


def test_section_markdown_in_the_report_and_results_json(tmp_path: Path) -> None:
    sec = Section("reliability", "Reliability", notes=["a note"],
                  markdown=render(RECORDS, OUTCOMES))
    meta = {"command": "python -m benchmarks.suite --reliability"}
    text = build_report([sec], meta)
    assert "| dropped: packet_len_err | 21,924 | 20,100 |" in text
    assert "_Not measured._" not in text
    write_report(tmp_path, [sec], meta, plots=False)
    back, _ = load_results(tmp_path / "results.json")
    assert back[0].markdown == sec.markdown
    assert json.loads((tmp_path / "results.json").read_text())["sections"][0]["name"] == (
        "reliability")


def test_fuzzer_output_read_as_an_outcome() -> None:
    done = read_log("icmp", "", LOG, 8.0, 0, goal=194678)
    assert (done.status, done.inputs, done.exec_per_s, done.new_units, done.peak_rss_mb,
            done.slowest_s) == ("done", 194678, 194678 / 8.0, 3, 44, 1)
    assert done.twins == "agreed on all 194,678"
    assert read_log("icmp", "", LOG, 8.0, 0, goal=1_000_000).status == "capped"
    assert read_log("config", "", LOG, 8.0, 0).twins == "no twins"
    crash = read_log("icmp", CRASH_OUT, CRASH_ERR, 2.0, 77, goal=1000)
    assert (crash.status, crash.inputs, crash.crash_file) == ("crashed", 1070,
                                                              "/tmp/x/crash-0a1b")
    assert crash.traceback.startswith("AssertionError: the ICMP parse twins disagree")
    assert crash.traceback.endswith("disagree on 0102:")
    assert crash.twins == "DISAGREED"
    # a slow input saved on the way is neither the crash nor a crash of its own
    slow = ("Slowest unit: 18 s:\nartifact_prefix='/tmp/x/'; Test unit written to "
            "/tmp/x/slow-unit-9f9f\n")
    late = read_log("config", CRASH_OUT, slow + CRASH_ERR, 2.0, 77)
    assert (late.status, late.crash_file) == ("crashed", "/tmp/x/crash-0a1b")
    clean = read_log("config", "", slow + LOG, 8.0, 0)
    assert (clean.status, clean.crash_file) == ("done", "")
    other = read_log("config", CRASH_OUT.replace("twins disagree", "KeyError"), CRASH_ERR,
                     2.0, 77)
    assert other.status == "crashed" and other.twins == "no twins"
    hung = read_log("vrrp", "", "#5 pulse", 1620.0, -9, goal=1000)
    assert (hung.status, hung.inputs, hung.twins) == ("killed", 0, "agreed until the kill")


def test_fuzz_section_renders_goal_cap_and_crash() -> None:
    got = [read_log("vrrp", "", LOG.replace("194678", "1000000"), 90.0, 0, goal=1_000_000),
           read_log("config", "", LOG, 1500.0, 0, goal=1_000_000),
           read_log("icmp", CRASH_OUT, CRASH_ERR, 2.0, 77, goal=1_000_000)]
    text = render_fuzz(got, 1_000_000, 1500.0)
    lines = text.splitlines()
    assert lines[0].startswith("| harness | inputs tried | seconds | inputs/s | crashes |")
    assert ("| vrrp | 1,000,000 | 90 | 11,111 | 0 | 3 | 44 | 1 | agreed on all 1,000,000 |"
            in lines)
    assert "| config | 194,678 | 1,500 | 130 | 0 | 3 | 44 | 1 | no twins |" in lines
    assert "| icmp | 1,070 | 2 | 535 | 1 (stopped) | 4 | 40 | 0 | DISAGREED |" in lines
    assert ("1,195,748 inputs in all; the goal of 1,000,000 per harness met by 1 of 3; "
            "1 crashed or hung;") in text
    assert ("**config**: stopped at the 1,500 s cap after 194,678 inputs: the 1,000,000 "
            "goal was missed for it.") in lines
    assert "**icmp** crashed after 1,070 inputs; input kept as `/tmp/x/crash-0a1b`:" in lines
    assert "AssertionError: the ICMP parse twins disagree on 0102:" in lines
    assert render_fuzz([], 1, 1.0) == ""


def test_fuzz_plan_and_flags() -> None:
    steps = suite.plan(suite.MODES["quick"], ("fuzzing",), None)
    assert [label for label, _ in steps] == [f"fuzz {t} (1,000,000 inputs)"
                                             for t in FUZZ_TARGETS]
    assert all(0 < secs <= FUZZ_CAP for _, secs in steps)
    # the section's bound: one cap per harness
    assert sum(secs for _, secs in steps) <= len(FUZZ_TARGETS) * FUZZ_CAP
    capped = suite.plan(suite.MODES["quick"], ("fuzzing",), None, fuzz_runs=FUZZ_RUNS,
                        fuzz_cap=60.0)
    assert max(secs for _, secs in capped) == 60.0
    # two processes a harness: each step's estimate halves (past the start-up)
    one = dict(suite.plan(suite.MODES["quick"], ("fuzzing",), None, fuzz_processes=1))
    two = dict(suite.plan(suite.MODES["quick"], ("fuzzing",), None, fuzz_processes=2))
    label = "fuzz http (1,000,000 inputs)"
    assert two[label] - 10.0 == pytest.approx((one[label] - 10.0) / 2)
    err = io.StringIO()
    with redirect_stderr(err):
        assert suite.main(["--reliability", "--plan"]) == 0
        assert suite.main(["--quick", "--section", "fuzzing", "--plan"]) == 0
        assert suite.main(["--section", "fuzzing", "--fuzz-processes", "2", "--plan"]) == 0
    text = err.getvalue()
    assert "reliability tests" in text and "fuzz config (1,000,000 inputs)" in text
    assert f"fuzz config ({FUZZ_RUNS_QUICK:,} inputs)" in text
