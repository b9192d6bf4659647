"""The reliability sections: the chaos and hostile-input tests, run as they are, and
a fuzzing run of every harness, as tables beside the performance figures.

The scenarios live once, in the netns tests (:data:`FILES`); each hands its figures
to ``tests/figures.py``'s ``record``, which appends them as JSON lines to the file
``HAFAST_FIGURES`` names.  :func:`run_reliability` runs one pytest session over those
files with that variable set, reads the lines and each test's outcome (JUnit XML),
and renders markdown: :func:`render` is pure, tested from fixed JSON.

The harnesses live once, in tests/fuzz; :func:`run_fuzzing` runs each in its own
process through ``tests/fuzz/runner.py`` (as the short CI run does) until it has
tried ``runs`` inputs or spent ``cap`` seconds, and :func:`render_fuzz` (pure) writes
what each reported.

Example::

    sec = run_reliability(workdir, step, log)      # 4-10 minutes, needs root
    print(render(records, outcomes))               # the same tables from saved data
    sec = run_fuzzing(workdir, step, log, runs=1_000_000, cap=3600, processes=2)  # ~52 min
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.suite.model import Section
from tests.figures import ENV, WHO
from tests.fuzz import runner
from tests.fuzz._common import TARGETS as FUZZ_TARGETS

ROOT = Path(__file__).resolve().parents[2]
FILES = ("tests/netns/test_hostile_vrrp.py", "tests/netns/test_hostile_servers.py",
         "tests/netns/test_chaos_reload.py", "tests/netns/test_chaos_workers.py")
TITLE = "Reliability: chaos, hostile peers and servers"
FUZZ_TITLE = "Reliability: fuzzing every parser that meets the outside world"
FUZZ_RUNS = 1_000_000  # per harness: issue 17's figure
FUZZ_RUNS_QUICK = 20_000
# Per harness; the section's worst case is five of these.  config is the slow one: in
# the report's run of 2026-12-07 (two processes) it needed 2,790 s for its 1,000,000
# inputs (358 inputs/s, falling from 445 as its corpus grew), the others 5 minutes.
FUZZ_CAP = 3600.0
# libFuzzer processes per harness, side by side on one corpus (tests/fuzz/runner.run):
# one per CPU, so a harness's inputs/s scale with the machine (config's above all)
FUZZ_PROCESSES = os.cpu_count() or 1
# inputs/s of each harness per process in a 1,000,000-input run here (half of that
# run's two-process figures), for the plan's estimate only
FUZZ_RATES = {"vrrp": 30000.0, "http": 2300.0, "icmp": 67000.0, "config": 179.0,
              "control": 7400.0}


@dataclass
class Outcome:
    test: str
    outcome: str  # passed, failed, error, skipped
    seconds: float
    message: str = ""


# -- reading -------------------------------------------------------------------------------


def read_records(path: Path) -> list[dict[str, Any]]:
    """The JSON lines ``tests/figures.py`` appended (a torn last line is skipped)."""
    out = []
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out


def read_junit(path: Path) -> list[Outcome]:
    out = []
    with contextlib.suppress(FileNotFoundError, ET.ParseError):
        for case in ET.parse(path).iter("testcase"):
            outcome, message = "passed", ""
            for kind in ("failure", "error", "skipped"):
                el = case.find(kind)
                if el is not None:
                    outcome = {"failure": "failed"}.get(kind, kind)
                    message = (el.get("message") or "").splitlines()[0][:160] if el.get(
                        "message") else ""
                    break
            module = (case.get("classname") or "").rsplit(".", 1)[-1]
            out.append(Outcome(f"{module}::{case.get('name')}", outcome,
                               float(case.get("time") or 0.0), message))
    return out


# -- rendering -----------------------------------------------------------------------------


def _cell(v: Any) -> str:
    if isinstance(v, float):
        text = f"{v:,.2f}".rstrip("0").rstrip(".") if v != int(v) else f"{int(v):,}"
    elif isinstance(v, int):
        text = f"{v:,}"
    else:
        text = str(v)
    return text.replace("|", "\\|").replace("\n", " ")


def scenario_table(figures: dict[str, Any]) -> list[str]:
    """One scenario: ``figure | value``, or ``figure | hafast | keepalived`` when some
    figure was measured on both daemons (a dash where one was not)."""
    who = [w for w in WHO if any(isinstance(v, dict) and w in v for v in figures.values())]
    if who == ["hafast"]:
        who = []  # a dict with hafast alone reads as a plain value
    if not who:
        lines = ["| figure | value |", "|---|---|"]
        for k, v in figures.items():
            shown = v.get("hafast", "") if isinstance(v, dict) else v
            lines.append(f"| {_cell(k)} | {_cell(shown)} |")
        return lines
    lines = ["| figure | " + " | ".join(who) + " |", "|---" * (len(who) + 1) + "|"]
    for k, v in figures.items():
        if isinstance(v, dict):
            cells = [_cell(v[w]) if w in v else "-" for w in who]
        else:  # measured once for the pair (the flood's size, a note)
            cells = [_cell(v)] + [""] * (len(who) - 1)
        lines.append(f"| {_cell(k)} | " + " | ".join(cells) + " |")
    return lines


def render(records: Sequence[dict[str, Any]], outcomes: Sequence[Outcome]) -> str:
    """The section's markdown: the tests' outcomes, then each scenario's figures
    grouped as the tests recorded them."""
    out: list[str] = []
    if outcomes:
        failed = [o for o in outcomes if o.outcome != "passed"]
        out += [f"{len(outcomes) - len(failed)} of {len(outcomes)} tests passed.", "",
                "| test | outcome | seconds |", "|---|---|---|"]
        for o in outcomes:
            note = f": {o.message}" if o.message else ""
            out.append(f"| {o.test} | {_cell(o.outcome + note)} | {o.seconds:.0f} |")
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(str(r.get("group", "")), []).append(r)
    for group, recs in groups.items():
        out += ["", f"### {group}"]
        for r in recs:
            test = f" (`{r['test'].split('::')[-1]}`)" if r.get("test") else ""
            out += ["", f"**{r.get('scenario', '')}**{test}", ""]
            out += scenario_table(dict(r.get("figures", {})))
    return "\n".join(out).strip("\n")


def render_fuzz(got: Sequence[runner.Outcome], goal: int, cap: float) -> str:
    """The fuzzing section's markdown: one row per harness, a verdict line, then
    each crash's input file and traceback and each missed goal."""
    if not got:
        return ""
    out = ["| harness | inputs tried | seconds | inputs/s | crashes | new coverage units | "
           "peak RSS MiB | slowest input s | twins |", "|---|---|---|---|---|---|---|---|---|"]
    for g in got:
        crashes = {"crashed": "1 (stopped)", "killed": "killed"}.get(g.status, "0")
        out.append(f"| {g.target} | {g.inputs:,} | {g.seconds:,.0f} | {g.exec_per_s:,.0f} | "
                   f"{crashes} | {g.new_units:,} | {g.peak_rss_mb} | {g.slowest_s} | "
                   f"{_cell(g.twins)} |")
    met = [g for g in got if g.inputs >= goal and g.status == "done"]
    bad = [g for g in got if g.status in ("crashed", "killed")]
    out += ["", f"{sum(g.inputs for g in got):,} inputs in all; the goal of {goal:,} per "
            f"harness met by {len(met)} of {len(got)}; {len(bad)} crashed or hung; "
            "twins compared on every input where a harness has them."]
    for g in got:
        if g.status == "capped":
            out += ["", f"**{g.target}**: stopped at the {cap:,.0f} s cap after "
                    f"{g.inputs:,} inputs: the {goal:,} goal was missed for it."]
        elif g.status in ("crashed", "killed"):
            what = ("crashed" if g.status == "crashed" else
                    f"killed {runner.GRACE:.0f} s past the cap (one input never ended)")
            out += ["", f"**{g.target}** {what} after {g.inputs:,} inputs"
                    + (f"; input kept as `{g.crash_file}`" if g.crash_file else "") + ":",
                    "", "```", (g.traceback or g.log)[-3000:].strip(), "```"]
    return "\n".join(out)


# -- running -------------------------------------------------------------------------------


def run_tests(files: Iterable[str], workdir: Path, timeout: float
              ) -> tuple[list[dict[str, Any]], list[Outcome], int, str]:
    figures, junit = workdir / "reliability.jsonl", workdir / "reliability.xml"
    for p in (figures, junit):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            f"--junitxml={junit}", *files]
    try:
        proc = subprocess.run(argv, cwd=ROOT, env=dict(os.environ, **{ENV: str(figures)}),
                              capture_output=True, text=True, timeout=timeout, check=False)
        status, tail = proc.returncode, (proc.stdout + proc.stderr)[-1500:]
    except subprocess.TimeoutExpired:
        status, tail = -1, f"pytest overran {timeout:.0f} s"
    return read_records(figures), read_junit(junit), status, tail


def run_reliability(workdir: Path,
                    step: Callable[[str], contextlib.AbstractContextManager[None]],
                    log: Callable[[str], None], *, files: Sequence[str] = FILES,
                    timeout: float = 1800.0) -> Section:
    """Run ``files`` once, in one pytest session, and render what they recorded."""
    sec = Section("reliability", TITLE)
    t0 = time.monotonic()
    with step("reliability tests"):
        records, outcomes, status, tail = run_tests(files, workdir, timeout)
    sec.notes.append("Figures recorded by " + ", ".join(f.split("/")[-1] for f in files)
                     + " (tests/figures.py), one pytest session; they are asserted on "
                     "bounds there, never on these numbers.")
    if status not in (0, 1):
        log(f"reliability: pytest exit {status}: {tail[-600:]}")
        sec.notes.append(f"pytest exit status {status}: {tail.strip().splitlines()[-1:]}")
    sec.markdown = render(records, outcomes)
    if not records:
        sec.status = "not measured"
    sec.seconds = time.monotonic() - t0
    return sec


def fuzz_step(target: str, runs: int) -> str:
    return f"fuzz {target} ({runs:,} inputs)"


def run_fuzzing(workdir: Path,
                step: Callable[[str], contextlib.AbstractContextManager[None]],
                log: Callable[[str], None], *, runs: int = FUZZ_RUNS,
                cap: float = FUZZ_CAP, keep: Path | None = None,
                targets: Sequence[str] = FUZZ_TARGETS, processes: int = 1) -> Section:
    """Fuzz each of ``targets`` in turn (one harness at a time, in ``processes``
    libFuzzer processes) until ``runs`` inputs or ``cap`` seconds, and render what each
    reported; crash inputs are copied to ``keep``/<target>/ (``workdir`` is deleted
    when the suite ends)."""
    sec = Section("fuzzing", FUZZ_TITLE)
    t0 = time.monotonic()
    got = []
    for target in targets:
        with step(fuzz_step(target, runs)):
            one = runner.run(target, workdir / "fuzz" / target, runs=runs, max_seconds=cap,
                             keep=keep, processes=processes)
        if one.status != "done":
            log(f"fuzz {target}: {one.status} at {one.inputs:,} inputs {one.crash_file}")
        got.append(one)
    sec.notes.append(
        f"Each harness (tests/fuzz/fuzz_<target>.py, atheris, Python under hafast/ "
        f"instrumented, compiled twins as built) ran in {processes} libFuzzer "
        f"process(es) side by side on one work corpus, each with its own seed and its "
        f"share of the {runs:,} inputs, until those or {cap:,.0f} s, from the seed "
        "corpus (tests/fuzz/corpus, only read) with its dictionary; one harness at a "
        "time. Inputs, new units: summed over the processes; RSS, slowest input: the "
        "largest of any.")
    sec.markdown = render_fuzz(got, runs, cap)
    sec.seconds = time.monotonic() - t0
    return sec
