"""The suite's plan, its estimate, its command line and the configs it generates."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from contextlib import redirect_stderr
from pathlib import Path

from benchmarks.suite import __main__ as suite
from benchmarks.suite import checks

ROOT = Path(__file__).resolve().parents[3]


def test_quick_plan_fits_ten_minutes() -> None:
    steps = suite.plan(suite.MODES["quick"], suite.SECTIONS, None)
    assert 0 < sum(s for _, s in steps) < 600
    assert steps[0][0] == "checks TCP_CHECK 1000 round 1/3"


def test_full_plan_covers_every_size_and_is_longer() -> None:
    full = suite.plan(suite.MODES["full"], suite.SECTIONS, None)
    labels = " ".join(label for label, _ in full)
    for n in (1000, 4096, 16384):
        assert f"PING_CHECK {n} round 5/5" in labels
    assert "detection drop round 5/5" in labels
    assert sum(s for _, s in full) > sum(s for _, s in suite.plan(
        suite.MODES["quick"], suite.SECTIONS, None))


def test_rounds_and_sections_narrow_the_plan() -> None:
    steps = suite.plan(suite.MODES["quick"], ("config",), 2)
    assert [label for label, _ in steps] == ["config round 1/2", "config round 2/2"]


def test_plan_flag_prints_estimate_only() -> None:
    err = io.StringIO()
    with redirect_stderr(err):
        assert suite.main(["--full", "--plan", "--section", "checks"]) == 0
    assert "full mode" in err.getvalue() and "estimated" in err.getvalue()


def test_module_runs_as_a_program() -> None:
    out = subprocess.run([sys.executable, "-m", "benchmarks.suite", "--plan", "--quick"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert "quick mode" in out.stderr


def test_generated_config_loads_and_builds_an_engine() -> None:
    from hafast.check.engine import Engine
    from hafast.config.loader import load_text
    from hafast.config.model import HttpGetCheck
    from hafast.lab.farm import body_for, md5_hex

    addrs = ["10.201.0.1", "10.201.0.2"]
    loop = asyncio.new_event_loop()
    for kind in checks.CHECK_BLOCKS:
        result = load_text(checks.keepalived_conf(kind, addrs))
        assert result.ok, result.errors
        rss = result.config.virtual_servers[0].real_servers
        assert [rs.address for rs in rss] == addrs
        assert rss[0].checkers[0].kind == kind
        engine = Engine(result.config, loop)  # built, never started: no traffic
        assert engine.checks == 2 and not engine.skipped
    loop.close()
    http = load_text(checks.keepalived_conf("HTTP_GET", addrs)).config
    spec = http.virtual_servers[0].real_servers[1].checkers[0]
    assert isinstance(spec, HttpGetCheck)
    url = spec.urls[0]
    assert url.digest == md5_hex(body_for("10.201.0.2"))


def test_counter_ruleset_names_its_rules() -> None:
    text = checks.counter_ruleset()
    assert 'comment "syn"' in text and 'comment "echo"' in text


def test_collect_plugin_writes_the_session_figures(tmp_path: Path) -> None:
    bench = tmp_path / "test_one.py"
    bench.write_text(
        "def test_fig(figures):\n    figures.add('demo figure', 2.5, 'x', goal='>= 1x')\n")
    out = tmp_path / "figs.json"
    # run from the repository so benchmarks/conftest.py provides the fixture
    target = ROOT / "benchmarks" / f"_suite_probe_{tmp_path.name}.py"
    target.write_text(bench.read_text())
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "benchmarks.suite.collect",
             "-p", "no:cacheprovider", str(target)],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
            env={**__import__("os").environ, "HAFAST_SUITE_FIGURES": str(out)}, check=False)
    finally:
        target.unlink()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    assert data["exitstatus"] == 0
    assert [(f["name"], f["value"]) for f in data["figures"]] == [("demo figure", 2.5)]
