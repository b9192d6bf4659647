"""The README's figure block: written from one run, goals marked met / missed /
not measured, the rest of the README left as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.suite import readme
from benchmarks.suite.model import Section
from benchmarks.suite.report import load_results, write_report


def run_of(cpu_ratio: float, *, vrrp: bool = True) -> list[Section]:
    checks = Section("checks", "Checks")
    cpu = checks.row("TCP_CHECK 10000", "CPU per 1000 checks", "ms", "lower")
    for i in range(3):
        cpu.add(i, "hafast", 40.0 * cpu_ratio)
        cpu.add(i, "C paced loop", 40.0)
        cpu.add(i, "HAProxy", 40.0)
    out = [checks]
    if vrrp:
        v = Section("vrrp", "VRRP")
        v.row("vrrp 1s crash excess over RFC", "value", "ms", "lower").add(0, "hafast", 0.4)
        out.append(v)
    else:
        out.append(Section("vrrp", "VRRP", status="failed"))
    return out


META = {"command": "python -m benchmarks.suite --quick --readme", "started": "2026-12-06 18:00:00",
        "mode": "quick", "machine": "test box", "wall_seconds": 400.0}


def rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]


def test_a_goal_is_met_or_missed_by_this_run_alone() -> None:
    met = readme.block(run_of(1.1), META)
    assert "| checks | TCP_CHECK 10000 | CPU per 1000 checks (ms) ↓ | 44.0 | C paced loop | " \
           "1.10x | <= 1.2x | met |" in met
    assert "Every goal met in this run." in met
    missed = readme.block(run_of(1.3), META)
    assert "| <= 1.2x | **missed** |" in missed
    assert "1 goal(s) missed in this run." in missed
    # an anchor with no goal is still shown (a headline ratio), with no verdict
    assert any("| HAProxy | 1.30x |  |  |" in r for r in rows(missed))
    # the block names the run it came from, and how to run one section again
    assert META["command"] in missed and "2026-12-06 18:00:00" in missed
    assert "python -m benchmarks.suite --quick --section SECTION" in missed


def test_a_section_that_failed_is_said_and_its_goals_not_carried_over() -> None:
    text = readme.block(run_of(1.1, vrrp=False), META)
    assert "| vrrp | | *failed* |" in text
    assert "excess over RFC" not in text
    empty = Section("checks", "Checks")
    row = empty.row("TCP_CHECK 10000", "CPU per 1000 checks", "ms", "lower")
    row.add(0, "hafast", 40.0)
    row.add(0, "C paced loop", None)
    assert "| <= 1.2x | *not measured* |" in readme.block([empty], META)


def test_only_the_block_is_replaced_and_markers_are_required(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text(f"# title\n\nbefore\n\n{readme.BEGIN}\nold figures\n{readme.END}\n\nafter\n")
    readme.write_readme(run_of(1.1), META, path)
    text = path.read_text()
    assert text.startswith("# title\n\nbefore\n\n" + readme.BEGIN)
    assert text.endswith(readme.END + "\n\nafter\n")
    assert "old figures" not in text and "TCP_CHECK 10000" in text
    # a second run replaces the first run's figures, it does not add to them
    readme.write_readme(run_of(1.3), META, path)
    assert path.read_text().count(readme.BEGIN) == 1
    assert "**missed**" in path.read_text()
    path.write_text("no markers\n")
    with pytest.raises(ValueError, match="needs one"):
        readme.write_readme(run_of(1.1), META, path)


def test_the_block_can_be_rebuilt_from_results_json(tmp_path: Path) -> None:
    write_report(tmp_path, run_of(1.3), META, plots=False)
    sections, meta = load_results(tmp_path / "results.json")
    assert readme.block(sections, meta) == readme.block(run_of(1.3), META)
    target = tmp_path / "README.md"
    target.write_text(f"{readme.BEGIN}\n{readme.END}\n")
    assert readme.main([str(tmp_path / "results.json"), "--readme", str(target)]) == 0
    assert "**missed**" in target.read_text()



def test_the_repository_readme_has_the_block() -> None:
    text = readme.README.read_text()
    assert text.count(readme.BEGIN) == 1 and text.count(readme.END) == 1
    assert text.index(readme.BEGIN) < text.index(readme.END)


def test_every_checker_kind_is_counted_on_the_wire_by_a_counter_that_exists() -> None:
    """The shipped daemon's PING_CHECK rows read 0 checks/s: its round counted SYNs
    for every kind, and a ping sends none."""
    from benchmarks.suite import checks

    assert set(checks.WIRE_COUNTER) == set(checks.CHECK_BLOCKS)
    rules = checks.counter_ruleset()
    for comment in set(checks.WIRE_COUNTER.values()):
        assert f'comment "{comment}"' in rules
    assert checks.WIRE_COUNTER["PING_CHECK"] == "echo"
