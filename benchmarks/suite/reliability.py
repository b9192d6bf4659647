"""The reliability section: the chaos and hostile-input tests, run as they are, and
the last fuzzing run, as tables beside the performance figures.

The scenarios live once, in the netns tests (:data:`FILES`); each hands its figures
to ``tests/figures.py``'s ``record``, which appends them as JSON lines to the file
``HAFAST_FIGURES`` names.  This section runs one pytest session over those files
with that variable set, reads the lines and each test's outcome (JUnit XML), reads
the fuzzers' logs (``./dev fuzz`` writes ``build/fuzz/<target>.log``), and renders
markdown: :func:`render` is pure, tested from fixed JSON.

Example::

    sec = run_reliability(workdir, step, log)      # 4-10 minutes, needs root
    print(render(records, outcomes, fuzz))         # the same tables from saved data
"""

from __future__ import annotations

import contextlib
import json
import os
import re
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

ROOT = Path(__file__).resolve().parents[2]
FILES = ("tests/netns/test_hostile_vrrp.py", "tests/netns/test_hostile_servers.py",
         "tests/netns/test_chaos_reload.py", "tests/netns/test_chaos_workers.py")
FUZZ_TARGETS = ("vrrp", "http", "icmp", "config", "control")  # ./dev fuzz's order
TITLE = "Reliability: chaos, hostile peers and servers, fuzzing"


@dataclass
class Outcome:
    test: str
    outcome: str  # passed, failed, error, skipped
    seconds: float
    message: str = ""


@dataclass
class Fuzz:
    target: str
    inputs: int
    seconds: float
    new_units: int
    peak_rss_mb: int
    crash_files: int  # in build/fuzz/crashes/<target>/, from any run (kept until deleted)
    crashed: bool = False  # the last run stopped on a crash


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


_DONE = re.compile(r"^Done (\d+) runs in (\d+) second")
_STAT = re.compile(r"^stat::(\w+):\s+(\d+)")


def read_fuzz_log(target: str, text: str, crash_files: int) -> Fuzz | None:
    """libFuzzer's final statistics (``-print_final_stats=1``) from one log."""
    stats: dict[str, int] = {}
    seconds = 0.0
    for line in text.splitlines():
        if m := _DONE.match(line):
            seconds = float(m.group(2))
        elif m := _STAT.match(line):
            stats[m.group(1)] = int(m.group(2))
    if "number_of_executed_units" not in stats:
        return None
    # libFuzzer's words when it saves the input that crashed
    crashed = "Test unit written to" in text
    return Fuzz(target, stats["number_of_executed_units"], seconds,
                stats.get("new_units_added", 0), stats.get("peak_rss_mb", 0), crash_files,
                crashed)


def read_fuzz(folder: Path) -> tuple[list[Fuzz], str]:
    """Every target's last run in ``folder`` (build/fuzz) and when the logs were written."""
    found, stamps = [], []
    for t in FUZZ_TARGETS:
        log = folder / f"{t}.log"
        if not log.exists():
            continue
        crashes = folder / "crashes" / t
        n = len([p for p in crashes.iterdir() if p.is_file()]) if crashes.is_dir() else 0
        f = read_fuzz_log(t, log.read_text(errors="replace"), n)
        if f is not None:
            found.append(f)
            stamps.append(log.stat().st_mtime)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(max(stamps))) if stamps else ""
    return found, when


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


def render(records: Sequence[dict[str, Any]], outcomes: Sequence[Outcome],
           fuzz: Sequence[Fuzz] = (), fuzz_when: str = "") -> str:
    """The section's markdown: the tests' outcomes, each scenario's figures grouped
    as the tests recorded them, then the fuzzers' last run."""
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
    if fuzz:
        when = f", last run {fuzz_when}" if fuzz_when else ""
        out += ["", f"### fuzzing (`./dev fuzz`{when})", "",
                "| target | inputs tried | seconds | inputs/s | new corpus inputs | "
                "peak RSS MiB | crashed | crash files kept |", "|---|---|---|---|---|---|---|---|"]
        for f in fuzz:
            rate = f.inputs / f.seconds if f.seconds else 0.0
            out.append(f"| {f.target} | {f.inputs:,} | {f.seconds:.0f} | {rate:,.0f} | "
                       f"{f.new_units} | {f.peak_rss_mb} | {'yes' if f.crashed else 'no'} | "
                       f"{f.crash_files} |")
        out += ["", f"{sum(f.inputs for f in fuzz):,} inputs in all. \"crashed\": that run "
                "stopped on a crash (libFuzzer saved the input). \"crash files kept\": "
                "build/fuzz/crashes/<target>/ holds every run's, fixed or not, until deleted."]
    return "\n".join(out).strip("\n")


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
    """Run ``files`` once and read the last fuzzing logs.  The fuzzers are not run
    here: ``./dev fuzz`` first reinstalls the tree (its setup) and builds the compiled
    twins for libFuzzer, which is not the suite's to do."""
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
    fuzz, when = read_fuzz(ROOT / "build" / "fuzz")
    if not fuzz:
        sec.notes.append("fuzzing: no build/fuzz logs (run ./dev fuzz [SECONDS] first)")
    sec.markdown = render(records, outcomes, fuzz, when)
    if not records and not fuzz:
        sec.status = "not measured"
    sec.seconds = time.monotonic() - t0
    return sec
