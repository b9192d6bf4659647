"""A short coverage-guided run of every fuzz harness (about a minute in all).

Each harness runs under atheris in its own process for SECONDS, starting from the
seed corpus; new inputs and any crash go to a temporary folder, so the repository
is never written. A crash fails the test with the harness's traceback and the input
(add it to tests/fuzz/corpus/<target>/ as ``regress-<what>`` with the fix).
``./dev fuzz [SECONDS]`` is the longer run.

Compiled-only: the harnesses compare the compiled twins with the pure ones, so the
pure-twin pass of ./dev test has nothing to add here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz import runner
from tests.fuzz._common import TARGETS

SECONDS = 10

pytestmark = pytest.mark.compiled


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_briefly(target: str, tmp_path: Path) -> None:
    got = runner.run(target, tmp_path, max_seconds=SECONDS)
    tail = got.log[-4000:]
    assert got.status == "done", (
        f"fuzz_{target} {got.status}: {got.crash_file}\n{got.traceback}\n{tail}")
    assert not list((tmp_path / "crashes").iterdir()), tail
    assert got.inputs > 0, tail
    if target == "config":  # its include sandbox is made in the run's folder, not /tmp
        assert list(tmp_path.glob("hafast-fuzz-config-*")), tail


def test_two_processes_share_one_goal(tmp_path: Path) -> None:
    """The reliability report's runs: two libFuzzer processes on one work corpus, each
    with its share of the inputs, added up (runner.combine)."""
    got = runner.run("icmp", tmp_path, runs=3001, max_seconds=120, processes=2)
    assert got.status == "done" and got.inputs == 3001, got.log[-4000:]
    assert not list((tmp_path / "crashes").iterdir())
    # each process said what it did, under its own seed
    assert sorted(p.name for p in tmp_path.glob("err-*.log")) == ["err-0.log", "err-1.log"]
    seeds = {line for p in tmp_path.glob("err-*.log") for line in p.read_text().splitlines()
             if "Seed:" in line}
    assert len(seeds) == 2, seeds
