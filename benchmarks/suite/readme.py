"""The README's figure table, written from one suite run and nothing else.

The README keeps one block between :data:`BEGIN` and :data:`END`; this module
rewrites it from a run's sections (``python -m benchmarks.suite --readme``, or later
from the run's results.json: ``python -m benchmarks.suite.readme RESULTS``).  Every
figure in the block comes from that run: the block names the run's command, date,
machine and mode, each row the section to run alone to reproduce it (its sizes are in
the case), and a row with a goal says whether that run met it.  A goal the run missed
is marked **missed**, one it could not measure *not measured*: nothing is carried over
from an earlier run.

The goals are the project's (README, issues 16-18), kept in :data:`GOALS`, one line
each: a figure is either a ratio hafast / anchor (paired per round, as in the report)
or hafast's own value.

Example::

    >>> from benchmarks.suite.model import Section
    >>> sec = Section("config", "Config parse")
    >>> row = sec.row("37k real servers", "lexer + loader (hafast) / config test (keepalived)",
    ...               "s", "lower")
    >>> for i, (h, k) in enumerate([(1.2, 1.0), (1.1, 1.0), (1.3, 1.0)]):
    ...     row.add(i, "hafast", h); row.add(i, "keepalived -t", k)
    >>> print(table([sec]).splitlines()[2])
    | config | 37k real servers | lexer + loader (hafast) / config test (keepalived) (s) ↓ \
| 1.20 (1.10–1.30) | keepalived -t | 1.20 (1.10–1.30)x | <= 1x | **missed** |
"""

from __future__ import annotations

import argparse
import operator
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.suite.model import Row, Section
from benchmarks.suite.report import HEADLINE, _label, load_results, ratio_of
from benchmarks.suite.stats import Summary, fmt_summary, summarize

README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN = "<!-- benchmark-suite:begin (python -m benchmarks.suite --readme writes this block) -->"
END = "<!-- benchmark-suite:end -->"

_OPS: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, ">=": operator.ge,
                                                   "<": operator.lt}


@dataclass(frozen=True)
class Goal:
    """``section``/``metric`` exact (metric "" = a row whose metric is empty), ``case`` a
    regular expression searched in the row's case; ``anchor`` None: hafast's own value."""

    section: str
    metric: str
    case: str
    anchor: str | None
    op: str
    limit: float

    def matches(self, section: str, row: Row, anchor: str | None) -> bool:
        return (section == self.section and row.metric == self.metric
                and anchor == self.anchor and re.search(self.case, row.case) is not None)

    def met(self, value: float) -> bool:
        return _OPS[self.op](value, self.limit)

    def text(self) -> str:
        return f"{self.op} {self.limit:g}{'x' if self.anchor else ''}"


GOALS: tuple[Goal, ...] = (
    # the shipped daemon's CPU per check against the machine's limit (issue 16)
    Goal("checks", "CPU per 1000 checks", r"^TCP_CHECK ", "C paced loop", "<=", 1.2),
    Goal("checks", "CPU per 1000 checks", r"^PING_CHECK ", "C paced loop", "<=", 1.2),
    Goal("checks", "RSS growth per real server", r"^TCP_CHECK ", None, "<=", 2.0),
    # the shipped daemon's whole process tree, 100 -> 10,000 real servers (issue 16)
    Goal("scale", "PSS growth per real server", r"^TCP_CHECK 100 -> 10000$", None, "<=", 2.0),
    # detection within its bound (delay_loop 1 + retry 1 x 0.2 s) + 50 ms at p99, a
    # verdict in the kernel in under 10 ms, status in under 100 ms (issue 16)
    Goal("scale", "fault -> checker DOWN p99", r"rejecting$", None, "<=", 1250.0),
    # (from the check worker's verdict: the parent's DOWN line comes after the hop)
    Goal("scale", "checker verdict -> kernel p99", r"rejecting$", None, "<", 10.0),
    Goal("scale", "hafast status wall (median)", r"^TCP_CHECK 1\d{4}$", None, "<", 100.0),
    Goal("scale", "hafast status --json wall (median)", r"^TCP_CHECK 1\d{4}$", None, "<", 100.0),
    # VRRP takes over within 20 ms of what RFC 5798 allows
    Goal("vrrp", "value", r"excess over RFC$", None, "<=", 20.0),
    Goal("jitter", "p99 deviation from 100 ms", r"checks$", None, "<", 5.0),
    # hafast -t at 37,000 real servers no slower than keepalived -t (issue 16)
    Goal("config", "lexer + loader (hafast) / config test (keepalived)", r"^37k", "keepalived -t",
         "<=", 1.0),
    Goal("hotpaths", "throughput", r"^md5stream", "openssl speed -evp md5", ">=", 0.95),
    Goal("hotpaths", "", r"^vrrp (de|en)code.*compiled vs twin", None, ">=", 20.0),
    # a silent director leaves the routers' next hops within 0.5 s (issue 18)
    Goal("fleet", "p50 latency", r"silent", None, "<", 500.0),
)


def _goal(section: str, row: Row, anchor: str | None) -> Goal | None:
    return next((g for g in GOALS if g.matches(section, row, anchor)), None)


def _verdict(goal: Goal | None, value: Summary) -> tuple[str, str]:
    if goal is None:
        return "", ""
    if value.n == 0:
        return goal.text(), "*not measured*"
    return goal.text(), "met" if goal.met(value.median) else "**missed**"


def table(sections: Sequence[Section]) -> str:
    """Every headline ratio of the run (as in report.md) and every figure with a goal."""
    out = ["| section | case | figure | hafast | vs | hafast / anchor | goal | |",
           "|---|---|---|---|---|---|---|---|"]
    for sec in sections:
        wanted = HEADLINE.get(sec.name, ("",))
        for r in sec.rows:
            ours = summarize(v for v in r.hafast if v is not None)
            headline = any(w == "" or r.metric == w for w in wanted)
            for anchor in r.anchors:
                goal = _goal(sec.name, r, anchor)
                ratio = ratio_of(r, anchor)
                if not (goal or (headline and ratio.n)):
                    continue
                shown = fmt_summary(ratio) + "x" if ratio.n else "—"
                out.append(f"| {sec.name} | {r.case} | {_label(r)} | {fmt_summary(ours)} | "
                           f"{anchor} | {shown} | " + " | ".join(_verdict(goal, ratio)) + " |")
            goal = _goal(sec.name, r, None)
            if goal is not None:
                out.append(f"| {sec.name} | {r.case} | {_label(r) or r.unit} | "
                           f"{fmt_summary(ours)} | (its own value) | | "
                           + " | ".join(_verdict(goal, ours))
                           + " |")
        if sec.status != "measured":
            out.append(f"| {sec.name} | | *{sec.status}* | | | | | |")
    return "\n".join(out)


def block(sections: Sequence[Section], meta: dict[str, Any]) -> str:
    """The README block, markers included."""
    mode = meta.get("mode", "quick")
    missed = table(sections).count("**missed**")
    lines = [
        BEGIN,
        "",
        f"From one run: `{meta.get('command', '')}`, started {meta.get('started', '')} UTC, "
        f"{meta.get('wall_seconds', 0.0):.0f} s, on {meta.get('machine', '')}. "
        f"Reproduce a row alone with `python -m benchmarks.suite --{mode} --section "
        "SECTION` (the sizes are in the case). Median of the rounds (spread); a ratio is "
        "paired per round. "
        + (f"{missed} goal(s) missed in this run." if missed else "Every goal met in this run."),
        "",
        table(sections),
        "",
        END,
    ]
    return "\n".join(lines)


def replace_block(text: str, new_block: str) -> str:
    """``text`` with its block replaced; ValueError when the markers are not there once
    each, in order (the README is never guessed at)."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start or text.count(BEGIN) != 1 or text.count(END) != 1:
        raise ValueError(f"the README needs one {BEGIN!r} line and one {END!r} line after it")
    return text[:start] + new_block + text[end + len(END):]


def write_readme(sections: Sequence[Section], meta: dict[str, Any],
                 path: Path = README) -> Path:
    path.write_text(replace_block(path.read_text(), block(sections, meta)))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.suite.readme",
                                 description="write the README's figure block from one "
                                             "run's results.json")
    ap.add_argument("results", type=Path, help="results.json of one suite run")
    ap.add_argument("--readme", type=Path, default=README)
    args = ap.parse_args(argv)
    sections, meta = load_results(args.results)
    print(write_readme(sections, meta, args.readme), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
