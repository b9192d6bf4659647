"""The reliability section's tables from fixed figures, outcomes and fuzz logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.suite.model import Section
from benchmarks.suite.reliability import (
    Fuzz,
    Outcome,
    read_fuzz,
    read_fuzz_log,
    read_junit,
    read_records,
    render,
)
from benchmarks.suite.report import build_report, load_results, write_report
from tests import figures

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
FUZZ = [Fuzz("vrrp", 67753, 6.0, 6, 48, 1), Fuzz("config", 566, 15.0, 0, 49, 0, True)]

LOG = """INFO: seed corpus: files: 52 min: 1b max: 541b total: 2852b rss: 44Mb
#194678	DONE   cov: 198 ft: 218 corp: 31/1860b lim: 2475 exec/s: 32446 rss: 44Mb
Done 194678 runs in 6 second(s)
stat::number_of_executed_units: 194678
stat::average_exec_per_sec:     32446
stat::new_units_added:          0
stat::slowest_unit_time_sec:    0
stat::peak_rss_mb:              44
"""


def test_render_side_by_side_and_plain_tables() -> None:
    text = render(RECORDS, OUTCOMES, FUZZ, "2026-12-06 09:08 UTC")
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
    assert "### fuzzing (`./dev fuzz`, last run 2026-12-06 09:08 UTC)" in lines
    assert "| vrrp | 67,753 | 6 | 11,292 | 6 | 48 | no | 1 |" in lines
    assert "| config | 566 | 15 | 38 | 0 | 49 | yes | 0 |" in lines
    assert "68,319 inputs in all." in text


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


def test_read_junit_and_fuzz_logs(tmp_path: Path) -> None:
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

    assert read_fuzz_log("icmp", LOG, 0) == Fuzz("icmp", 194678, 6.0, 0, 44, 0)
    assert read_fuzz_log("icmp", "crashed early\n", 0) is None
    crash = "artifact_prefix='x/'; Test unit written to x/crash-0a\n" + LOG
    assert read_fuzz_log("icmp", crash, 1) == Fuzz("icmp", 194678, 6.0, 0, 44, 1, True)
    (tmp_path / "icmp.log").write_text(LOG)
    (tmp_path / "crashes" / "icmp").mkdir(parents=True)
    (tmp_path / "crashes" / "icmp" / "crash-1").write_bytes(b"x")
    found, when = read_fuzz(tmp_path)
    assert found == [Fuzz("icmp", 194678, 6.0, 0, 44, 1)] and when.endswith("UTC")


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
