"""Run one fuzz harness under atheris in its own process, and read what libFuzzer said.

The one way the project starts a harness outside ``./dev fuzz``: the short CI run
(tests/fuzz/test_fuzz_short.py, a few seconds each) and the reliability report's
fuzzing section (benchmarks/suite/reliability.py, a million inputs each) both call
:func:`run`. New inputs and any crash go to a folder of the caller's (``folder``);
the seed corpus in tests/fuzz/corpus/<target>/ is the second corpus folder, which
libFuzzer only reads, so the repository is never written.

Example::

    got = run("icmp", tmp_path, runs=100_000, max_seconds=60)
    got.status, got.inputs, got.exec_per_s     # ("done", 100000, 31200.0)

``status`` is ``done`` (the ``runs`` goal reached, or the time asked for spent when
no goal was set), ``capped`` (stopped at ``max_seconds`` short of the goal),
``crashed`` (libFuzzer saved the input that raised: ``crash_file``, ``traceback``)
or ``killed`` (it overran ``max_seconds`` by ``GRACE``, e.g. one input that never
ended, and was killed).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.fuzz._common import CORPUS, REPO, SANDBOX_ENV

# The harnesses that compare a compiled twin with its pure one on every input (and
# raise at the first disagreement); the others fuzz pure Python and have no twin.
TWINS = {"vrrp": "vrrp_codec_c / vrrp_codec_py",
         "http": "md5stream_c / md5stream_py",
         "icmp": "icmp_batch_c / icmp_batch_py"}
# what every twin comparison's failure message says (tests/fuzz/fuzz_*.py)
DISAGREE = "twins disagree"
# libFuzzer checks -max_total_time between inputs; past it by this much, the process
# is stuck in one input and is killed
GRACE = 120.0


@dataclass
class Outcome:
    target: str
    status: str  # done, capped, crashed, killed (the module docstring says which)
    inputs: int  # libFuzzer's executed units, the seed corpus's replay included
    seconds: float  # wall time of the process, start-up included
    exec_per_s: float  # inputs / seconds
    new_units: int  # inputs that reached new coverage, added to the work corpus
    peak_rss_mb: int
    slowest_s: int = 0  # the slowest single input, whole seconds
    goal: int = 0  # the -runs asked for (0: none)
    crash_file: str = ""
    traceback: str = ""
    log: str = ""  # the output, less atheris's "Instrumenting" lines

    @property
    def twins(self) -> str:
        """Whether the twins agreed, as far as this run can tell."""
        if self.target not in TWINS:
            return "no twins"
        if self.status == "crashed" and DISAGREE in self.traceback:
            return "DISAGREED"
        if self.status in ("crashed", "killed"):
            return f"agreed until the {self.status.removesuffix('ed')}"
        return f"agreed on all {self.inputs:,}"


def command(target: str, work: Path, crashes: Path, *, runs: int = 0,
            max_seconds: float = 0, seed: int = 0) -> list[str]:
    """The harness's command line: ``work`` gets new inputs, ``crashes`` artifacts."""
    dicts = [d for d in [CORPUS.parent / f"{target}.dict"] if d.is_file()]
    return [
        sys.executable, str(REPO / "tests" / "fuzz" / f"fuzz_{target}.py"),
        *([f"-seed={seed}"] if seed else []),
        *([f"-runs={runs}"] if runs else []),
        *([f"-max_total_time={max(1, int(max_seconds))}"] if max_seconds else []),
        "-print_final_stats=1",
        f"-artifact_prefix={crashes}/",
        *[f"-dict={d}" for d in dicts],
        str(work),
        str(CORPUS / target),
    ]


_STAT = re.compile(r"^stat::(\w+):\s+(\d+)", re.M)
_ARTIFACT = re.compile(r"Test unit written to (\S+)")
_PY_EXC = " === Uncaught Python exception: ==="


def read_log(target: str, stdout: str, stderr: str, seconds: float, returncode: int, *,
             goal: int = 0) -> Outcome:
    """An :class:`Outcome` from the process's output (``-print_final_stats=1``):
    atheris prints a Python exception's traceback on stdout, libFuzzer all the rest
    on stderr."""
    text = stdout + stderr
    stats = {m.group(1): int(m.group(2)) for m in _STAT.finditer(stderr)}
    inputs = stats.get("number_of_executed_units", 0)
    # libFuzzer writes a slow input (-report_slow_units) the same way as a crash:
    # it is worth keeping, but the run goes on, so it is not the crash
    units = [m.group(1) for m in _ARTIFACT.finditer(stderr)
             if not Path(m.group(1)).name.startswith("slow-unit-")]
    crash = units[-1] if units else ""
    traceback = stdout.split(_PY_EXC, 1)[1].strip() if _PY_EXC in stdout else ""
    if returncode < 0:  # a signal: the kill at the deadline, or someone else's
        status = "killed"
    elif crash or returncode != 0:
        status = "crashed"
    elif goal and inputs < goal:
        status = "capped"
    else:
        status = "done"
    return Outcome(target, status, inputs, seconds, inputs / seconds if seconds else 0.0,
                   stats.get("new_units_added", 0), stats.get("peak_rss_mb", 0),
                   stats.get("slowest_unit_time_sec", 0), goal,
                   crash, traceback, text)


def run(target: str, folder: Path, *, runs: int = 0, max_seconds: float = 0,
        keep: Path | None = None, processes: int = 1) -> Outcome:
    """Fuzz ``target`` in its own process until ``runs`` inputs or ``max_seconds``.

    ``folder`` (the caller's, e.g. a tmp_path) gets ``corpus/`` and ``crashes/``;
    a crash file is copied to ``keep``/<target>/ when given (``folder`` may be
    temporary) and ``crash_file`` names that copy.

    ``processes`` > 1 runs that many libFuzzer processes side by side, each with its
    own seed and its share of ``runs``, on the same work corpus: libFuzzer reloads
    that folder every second (its ``-reload``), so each one also mutates what the
    others found, as libFuzzer's own ``-jobs`` does.  The outcome adds up their
    inputs; the first crash stops them all.
    """
    work, crashes = folder / "corpus", folder / "crashes"
    work.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    # the compiled twins always: comparing them with the pure ones is the point
    env = {k: v for k, v in os.environ.items() if k != "HAFAST_NO_EXTENSIONS"}
    # a harness's scratch files (the config include sandbox) go with ``folder``
    env[SANDBOX_ENV] = str(folder)
    n = max(1, processes)
    shares = [runs // n + (1 if i < runs % n else 0) for i in range(n)] if runs else [0] * n
    deadline = time.monotonic() + max_seconds + GRACE if max_seconds else None
    t0 = time.monotonic()
    procs: list[tuple[subprocess.Popen[bytes], Path, Path]] = []
    for i, share in enumerate(shares):
        out, err = folder / f"out-{i}.log", folder / f"err-{i}.log"
        # libFuzzer's default seed is the clock: the same in two started at once
        seed = int(t0 * 1000) % 1_000_000_007 + i + 1 if n > 1 else 0
        argv = command(target, work, crashes, runs=share, max_seconds=max_seconds, seed=seed)
        with out.open("wb") as o, err.open("wb") as e:
            procs.append((subprocess.Popen(argv, cwd=folder, env=env, stdout=o, stderr=e),
                          out, err))
    try:
        while any(p.poll() is None for p, _, _ in procs):
            failed = any(p.returncode not in (None, 0) for p, _, _ in procs)
            if failed or (deadline is not None and time.monotonic() > deadline):
                break  # the rest are killed below
            time.sleep(0.2)
    finally:
        for p, _, _ in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    seconds = time.monotonic() - t0
    outcomes = []
    for (p, out, err), share in zip(procs, shares, strict=True):
        stderr = "\n".join(line for line in err.read_text(errors="replace").splitlines()
                           if not line.startswith("INFO: Instrumenting"))
        outcomes.append(read_log(target, out.read_text(errors="replace"), stderr, seconds,
                                 p.returncode, goal=share))
    got = combine(outcomes, runs)
    if got.crash_file and keep is not None and Path(got.crash_file).is_file():
        dest = keep / target
        dest.mkdir(parents=True, exist_ok=True)
        got.crash_file = str(shutil.copy2(got.crash_file, dest))
    return got


# worst first: what one process's status makes of the whole run's
_SEVERITY = ("crashed", "killed", "capped", "done")


def combine(parts: list[Outcome], goal: int) -> Outcome:
    """One :class:`Outcome` of processes run side by side on one harness: inputs and
    new units added up, the worst status (a crash before a kill), the crash's input
    and traceback, the slowest input and the largest RSS of any.

    >>> a = Outcome("config", "done", 600, 10.0, 60.0, 5, 50, 0, 600)
    >>> b = Outcome("config", "done", 500, 10.0, 50.0, 3, 60, 1, 400)
    >>> c = combine([a, b], 1000)
    >>> (c.status, c.inputs, c.exec_per_s, c.new_units, c.peak_rss_mb, c.slowest_s)
    ('done', 1100, 110.0, 8, 60, 1)
    >>> combine([a, Outcome("config", "killed", 10, 10.0, 1.0, 0, 50, 0, 400)], 1000).status
    'killed'
    """
    if len(parts) == 1:
        return parts[0]
    worst = min(parts, key=lambda o: _SEVERITY.index(o.status))
    inputs = sum(o.inputs for o in parts)
    seconds = max(o.seconds for o in parts)
    status = worst.status
    if status not in ("crashed", "killed"):
        status = "capped" if goal and inputs < goal else "done"
    return Outcome(worst.target, status, inputs, seconds, inputs / seconds if seconds else 0.0,
                   sum(o.new_units for o in parts), max(o.peak_rss_mb for o in parts),
                   max(o.slowest_s for o in parts), goal, worst.crash_file, worst.traceback,
                   "\n".join(o.log for o in parts))
