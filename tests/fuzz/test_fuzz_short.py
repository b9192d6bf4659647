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

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz._common import CORPUS, REPO, TARGETS

SECONDS = 10

pytestmark = pytest.mark.compiled


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_briefly(target: str, tmp_path: Path) -> None:
    work, crashes = tmp_path / "corpus", tmp_path / "crashes"
    work.mkdir()
    crashes.mkdir()
    cmd = [
        sys.executable,
        str(REPO / "tests" / "fuzz" / f"fuzz_{target}.py"),
        f"-max_total_time={SECONDS}",
        "-print_final_stats=1",
        f"-artifact_prefix={crashes}/",
        *[f"-dict={d}" for d in [CORPUS.parent / f"{target}.dict"] if d.is_file()],
        str(work),
        str(CORPUS / target),
    ]
    env = {k: v for k, v in os.environ.items() if k != "HAFAST_NO_EXTENSIONS"}
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=SECONDS + 120
    )
    # atheris prints the Python traceback on stdout, libFuzzer its report on stderr
    log = "\n".join(
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if not line.startswith("INFO: Instrumenting")
    )
    assert proc.returncode == 0, f"fuzz_{target} found a crash:\n{log[-4000:]}"
    assert not list(crashes.iterdir()), log[-4000:]
    runs = [line for line in log.splitlines() if line.startswith("stat::number_of_executed_units")]
    assert runs and int(runs[0].split()[1]) > 0, log[-4000:]
