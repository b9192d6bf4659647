"""report.md and plots from canned sections; results.json round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.suite import pysections
from benchmarks.suite.model import Row, Section
from benchmarks.suite.report import build_report, headline_rows, load_results, write_report


def canned() -> list[Section]:
    checks = Section("checks", "Check throughput and cost (delay_loop 1)", notes=["a note"])
    for n, scale in ((1000, 1.0), (4096, 4.0)):
        rate = checks.row(f"TCP_CHECK {n}", "checks/s", "/s", group="TCP_CHECK", n=n)
        cpu = checks.row(f"TCP_CHECK {n}", "CPU per 1000 checks", "ms", "lower",
                         group="TCP_CHECK", n=n)
        for i, noise in enumerate((1.0, 1.1, 0.9)):
            rate.add(i, "hafast", 1000 * scale * noise)
            rate.add(i, "HAProxy", 990 * scale * noise)
            cpu.add(i, "hafast", 80.0 * noise)
            cpu.add(i, "HAProxy", 50.0 * noise)
            cpu.add(i, "C paced loop", 40.0 * noise)
    det = Section("detection", "Failure detection latency (fault -> DOWN)")
    for i in range(3):
        det.row("reject (20 of 1000)", "p50 latency", "ms", "lower").add(i, "hafast", 500.0)
        det.row("reject (20 of 1000)", "p50 latency", "ms", "lower").add(i, "HAProxy", 450.0)
    det.samples = {"fault reject": {"hafast": [10.0, 500.0, 990.0],
                                    "HAProxy": [20.0, 400.0, 980.0]}}
    hot = Section("hotpaths", "Hot paths")
    hot.rows.append(Row("vrrp decode speed-up", "", "x", hafast=[31.0], note="goal >= 20x"))
    none = Section("vrrp", "VRRP takeover", status="not measured", notes=["no keepalived"])
    return [checks, det, hot, none]


META = {"command": "python -m benchmarks.suite --quick", "started": "2026-11-26 03:00:00",
        "mode": "quick", "rounds": 3, "machine": "test box", "wall_seconds": 42.0}


def test_tables_have_every_anchor_and_paired_ratio() -> None:
    text = build_report(canned(), META)
    assert "# hafast benchmark report" in text
    assert "## 1. Check throughput and cost (delay_loop 1)" in text
    # hafast 1000 vs HAProxy 990 in every round: the paired ratio is exactly 1000/990
    assert "| TCP_CHECK 1000 | checks/s (/s) ↑ | 1000 (900–1100) | HAProxy | 990 (891–1089) " \
           "| 1.01x |" in text
    assert "| TCP_CHECK 4096 | CPU per 1000 checks (ms) ↓ | 80.0 (72.0–88.0) | C paced loop |" \
           in text
    assert "| case | figure | value | note |" in text
    assert "| vrrp decode speed-up | (x) ↑ | 31.0 | goal >= 20x |" in text
    assert "_not measured_" in text and "- no keepalived" in text
    assert "- a note" in text


def test_headline_picks_cpu_and_latency() -> None:
    heads = headline_rows(canned())
    picked = {(r.case, r.metric, anchor) for _, r, anchor, _ in heads}
    assert ("TCP_CHECK 1000", "CPU per 1000 checks", "HAProxy") in picked
    assert ("reject (20 of 1000)", "p50 latency", "HAProxy") in picked
    assert not any(m == "checks/s" for _, m, _ in picked)
    ratio = next(rt for _, r, a, rt in heads if r.case == "TCP_CHECK 1000" and a == "HAProxy")
    assert ratio.median == pytest.approx(1.6)


def test_write_report_with_plots_and_reload(tmp_path: Path) -> None:
    path = write_report(tmp_path, canned(), META)
    text = path.read_text()
    for png in ("checks_throughput.png", "checks_cpu.png", "detection_latency.png"):
        assert (tmp_path / png).stat().st_size > 1000
        assert f"]({png})" in text
    sections, meta = load_results(tmp_path / "results.json")
    assert meta["mode"] == "quick"
    assert [s.name for s in sections] == ["checks", "detection", "hotpaths", "vrrp"]
    assert build_report(sections, meta) == build_report(canned(), META)


def test_missing_rounds_show_fewer_values() -> None:
    sec = Section("checks", "c")
    row = sec.row("PING_CHECK 1000", "checks/s", "/s")
    row.add(0, "hafast", 1000.0)
    row.add(2, "hafast", 1002.0)
    row.add(2, "fping", 1001.0)
    assert row.hafast == [1000.0, None, 1002.0] and row.anchors["fping"] == [None, None, 1001.0]
    text = build_report([sec], META)
    assert "| fping | 1001 | 1.00x |" in text


def test_pytest_figures_pair_by_suffix_and_name() -> None:
    figs = pysections.figures_by_name([
        {"name": "vrrp 1s crash takeover hafast", "value": 3610.0, "unit": "ms", "goal": ""},
        {"name": "vrrp 1s crash takeover keepalived", "value": 3650.0, "unit": "ms"},
        {"name": "vrrp decode speed-up", "value": 30.0, "unit": "x", "goal": ">= 20x"},
        {"name": "vrrp 1s crash excess hafast - keepalived", "value": 0.1, "unit": "ms"},
        {"name": "vrrp 1s graceful takeover hafast", "value": 650.0, "unit": "ms"},
    ])
    sec = Section("vrrp", "v")
    used = pysections.add_pairs_by_suffix(sec, figs, 0)
    pysections.add_listed(sec, figs, 0, used)
    assert sec.rows[0].case == "vrrp 1s crash takeover"
    assert sec.rows[0].hafast == [3610.0] and sec.rows[0].anchors == {"keepalived": [3650.0]}
    assert sec.rows[0].better == "lower"
    # a difference, and a figure with no keepalived twin, stay rows of their own
    assert [r.case for r in sec.rows[1:]] == [
        "vrrp decode speed-up", "vrrp 1s crash excess hafast - keepalived",
        "vrrp 1s graceful takeover hafast"]
    assert sec.rows[1].note == "goal >= 20x" and sec.rows[1].better == "higher"
    assert all(not r.anchors for r in sec.rows[1:])

    cfg = Section("config", "c")
    used = pysections.config_pairs(cfg, pysections.figures_by_name([
        {"name": "config: lexer + loader, 37k real servers", "value": 0.2, "unit": "s"},
        {"name": "config: keepalived 2.2.7 -t, 37k real servers (anchor)", "value": 2.0,
         "unit": "s"},
    ]), 0)
    assert len(used) == 2
    assert cfg.rows[0].anchors == {"keepalived -t": [2.0]}
