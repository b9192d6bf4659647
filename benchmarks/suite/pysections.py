"""Sections 3-5: the pytest-benchmark files other parts of hafast ship, run as they
are (one pytest session per round), their figures collected by
:mod:`benchmarks.suite.collect` and paired hafast vs anchor by name.

========== ================================================ ===========================
section    files                                            anchor
========== ================================================ ===========================
vrrp       test_bench_vrrp_failover.py                      keepalived 2.2.7 (same lab)
fleet      test_bench_fleet.py                              a VRRP pair: hafast and
                                                            keepalived 2.2.7
config     test_bench_config.py                             ``keepalived -t``
hotpaths   test_bench_vrrp.py, test_bench_md5.py,           twins, hashlib, the C
           test_bench_icmp.py                               loop, ``openssl speed``
========== ================================================ ===========================
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.suite import anchors
from benchmarks.suite.collect import ENV
from benchmarks.suite.model import Section

ROOT = Path(__file__).resolve().parents[2]
FLEET_FILES = ("benchmarks/test_bench_fleet.py",)

Figures = dict[str, tuple[float, str, str]]  # name -> (value, unit, goal)

# Pairs named outright: (hafast figure, anchor figure, anchor label, case, metric)
CONFIG_PAIRS = (
    ("config: lexer + loader, 37k real servers",
     "config: keepalived 2.2.7 -t, 37k real servers (anchor)", "keepalived -t",
     "37k real servers", "lexer + loader (hafast) / config test (keepalived)"),
)
# The fleet's silent director against a silent VRRP master (benchmarks/test_bench_fleet.py
# names them), one row per statistic: (metric, fleet figure, {anchor label: VRRP figure}).
# The metric and case are what readme.GOALS looks for ("p50 latency", "silent").
FLEET_CASE = ("silent director (fleet, BFD 50 ms x 3) / master (VRRP, advert 1 s): "
              "last word heard -> traffic moved")
FLEET_PAIRS = tuple(
    (metric,
     f"fleet: silent director, last BFD packet -> router next hop gone (BFD 50 ms x 3) ({stat})",
     {f"{who} VRRP pair":
      f"fleet: silent VRRP master, last advert -> VIP on the backup (advert 1 s) ({stat}) {kind}"
      for who, kind in (("hafast", "hafast"), ("keepalived 2.2.7", "keepalived"))})
    for stat, metric in (("median", "p50 latency"), ("max", "max latency")))
_KIND_SUFFIX = re.compile(r"^(.*) (hafast|keepalived)$")


def run_pytest(files: Sequence[str], out: Path, *, keyword: str = "",
               timeout: float = 900.0, env: dict[str, str] | None = None
               ) -> tuple[Figures, int, str]:
    """One pytest session over ``files`` (``env`` added to its environment); its
    figures, exit status and output tail."""
    env = dict(os.environ, **(env or {}), **{ENV: str(out)})
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "benchmarks.suite.collect",
            "-p", "no:cacheprovider", "--benchmark-disable-gc", *files]
    if keyword:
        argv += ["-k", keyword]
    with contextlib.suppress(FileNotFoundError):
        out.unlink()
    try:
        proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        tail = (proc.stdout + proc.stderr)[-1500:]
    except subprocess.TimeoutExpired:
        return {}, -1, f"pytest overran {timeout:.0f} s"
    try:
        data = json.loads(out.read_text())
    except (OSError, ValueError):
        return {}, proc.returncode, tail
    return figures_by_name(data.get("figures", [])), int(data.get("exitstatus", 1)), tail


def figures_by_name(items: Iterable[dict[str, Any]]) -> Figures:
    """``[{"name", "value", "unit", "goal"}, ...]`` -> ``{name: (value, unit, goal)}``;
    a name recorded twice keeps its last value."""
    return {str(f["name"]): (float(f["value"]), str(f.get("unit", "")), str(f.get("goal", "")))
            for f in items}


def add_pairs_by_suffix(sec: Section, figs: Figures, i: int) -> set[str]:
    """``"<x> hafast"`` and ``"<x> keepalived"`` become one row ``<x>`` when BOTH
    were recorded; returns the names used."""
    by_case: dict[str, dict[str, str]] = {}
    for name in figs:
        m = _KIND_SUFFIX.match(name)
        if m and not m.group(1).endswith(" -"):  # "<x> hafast - keepalived" is a difference
            by_case.setdefault(m.group(1), {})[m.group(2)] = name
    used: set[str] = set()
    for case, names in by_case.items():
        if set(names) != {"hafast", "keepalived"}:
            continue
        unit = figs[names["hafast"]][1]
        row = sec.row(case, "value", unit, better_for(unit))
        row.add(i, "hafast", figs[names["hafast"]][0])
        row.add(i, "keepalived", figs[names["keepalived"]][0])
        used |= set(names.values())
    return used


# Units where less is better (times, sizes, counts of failures); anything else (rates,
# speed-ups) is more.
LOWER_UNITS = frozenset({"s", "ms", "us", "ns", "MiB", "KiB", "B", "withdrawals", "sessions"})


def better_for(unit: str) -> str:
    """``"lower"`` for times and sizes, ``"higher"`` for rates and ratios.

    >>> better_for("ms"), better_for("MB/s"), better_for("x")
    ('lower', 'higher', 'higher')
    """
    return "lower" if unit in LOWER_UNITS else "higher"


def add_listed(sec: Section, figs: Figures, i: int, skip: set[str]) -> None:
    """Every other figure as a row of its own (no anchor column): speed-ups measured
    inside the benchmark itself (unit ``x``) keep their goal in the note."""
    for name, (value, unit, goal) in figs.items():
        if name in skip:
            continue
        row = sec.row(name, "", unit, better_for(unit))
        row.add(i, "hafast", value)
        if goal:
            row.note = f"goal {goal}"


def run_file_section(name: str, title: str, files: Sequence[str], rounds: int, workdir: Path,
                     step: Callable[[str], contextlib.AbstractContextManager[None]],
                     log: Callable[[str], None], *, keyword: str = "",
                     extra: Callable[[Section, Figures, int], set[str]] | None = None,
                     timeout: float = 900.0, env: dict[str, str] | None = None) -> Section:
    sec = Section(name, title)
    sec.notes.append("Figures from " + ", ".join(f"benchmarks/{f.split('/')[-1]}" for f in files)
                     + (f" (-k '{keyword}')" if keyword else "")
                     + f", one pytest session per round ({rounds} round(s)).")
    t0 = time.monotonic()
    for i in range(rounds):
        with step(f"{name} round {i + 1}/{rounds}"):
            figs, status, tail = run_pytest(files, workdir / f"{name}-{i}.json", keyword=keyword,
                                            timeout=timeout, env=env)
            if status != 0:
                log(f"{name}: pytest exit {status}: {tail[-600:]}")
                sec.notes.append(f"round {i + 1}: pytest exit status {status} "
                                 "(figures recorded before the failure are kept)")
            used = extra(sec, figs, i) if extra else set()
            used |= add_pairs_by_suffix(sec, figs, i)
            add_listed(sec, figs, i, used)
    if not sec.rows:
        sec.status = "not measured"
    sec.seconds = time.monotonic() - t0
    return sec


def config_pairs(sec: Section, figs: Figures, i: int) -> set[str]:
    used: set[str] = set()
    for ours, theirs, label, case, metric in CONFIG_PAIRS:
        if ours in figs:
            row = sec.row(case, metric, figs[ours][1], better_for(figs[ours][1]))
            row.add(i, "hafast", figs[ours][0])
            used.add(ours)
            if theirs in figs:
                row.add(i, label, figs[theirs][0])
                used.add(theirs)
    return used


def md5_openssl(sec: Section, figs: Figures, i: int) -> set[str]:
    """Pair md5stream's compiled MB/s at 16 KiB with ``openssl speed -evp md5`` run
    right after the session (same round)."""
    name = "md5 stream 16 KiB chunks: compiled MB/s"
    if name in figs:
        row = sec.row("md5stream 16 KiB chunks", "throughput", "MB/s", "higher")
        row.add(i, "hafast", figs[name][0])
        with contextlib.suppress(Exception):
            row.add(i, "openssl speed -evp md5", anchors.openssl_md5_speed(1) / 1e6)
    return set()


def fleet_pairs(sec: Section, figs: Figures, i: int) -> set[str]:
    """The fleet's silent-director figures with the VRRP pair's (hafast, keepalived)
    as anchors: last word heard -> router next hop gone / VIP on the backup.  The
    VRRP figures keep their own hafast-vs-keepalived rows."""
    used: set[str] = set()
    for metric, ours, theirs in FLEET_PAIRS:
        if ours not in figs:
            continue
        row = sec.row(FLEET_CASE, metric, "ms", "lower")
        row.add(i, "hafast", figs[ours][0])
        used.add(ours)
        for label, name in theirs.items():
            if name in figs:
                row.add(i, label, figs[name][0])
    return used


def run_fleet_section(rounds: int, workdir: Path,
                      step: Callable[[str], contextlib.AbstractContextManager[None]],
                      log: Callable[[str], None]) -> Section:
    """benchmarks/test_bench_fleet.py in one pytest session that fails each lab
    ``rounds`` times (its labs take most of a session's time to start)."""
    sec = run_file_section("fleet", "Fleet (BGP + BFD) vs a VRRP pair: a silent director",
                           FLEET_FILES, 1, workdir, step, log, extra=fleet_pairs,
                           timeout=180.0 + 120.0 * rounds,
                           env={"HAFAST_BENCH_FLEET_ROUNDS": str(rounds)})
    sec.notes[0] = (f"Figures from benchmarks/test_bench_fleet.py, one pytest session, "
                    f"{rounds} failure round(s) per lab; each figure is the median or "
                    "the max of those rounds (in its name).")
    return sec
