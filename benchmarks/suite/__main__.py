"""``python -m benchmarks.suite``: hafast against keepalived, HAProxy and the
machine's limit, side by side in one run, written up as report.md with plots.

    python -m benchmarks.suite [--quick|--full] [--section NAME ...] [--rounds N]
                               [--out DIR] [--yes] [--readme]
    python -m benchmarks.suite --reliability [--fuzz-runs N] [--fuzz-cap SECONDS]

``--quick`` (the default) takes the smallest sizes and fewer rounds and finishes in
under 10 minutes on a 2-core machine; ``--full`` prints its estimated duration
first (from the plan) and asks before starting unless ``--yes``.  Sections: checks,
detection, keepalived_vm, vrrp, jitter, config, hotpaths, and three only when asked:
fleet (a silent BGP director against a silent VRRP master, 2-6 minutes),
reliability (the chaos and hostile-input netns tests, 4-10 minutes) and fuzzing
(every fuzz harness, one libFuzzer process per CPU, until 1,000,000 inputs or ``--fuzz-cap``
seconds, 3,600 by default: about 52 minutes here, never over 5 x the cap;
``--quick`` written out, or ``--fuzz-runs``, asks for fewer inputs).
``--reliability`` is ``--section reliability --section fuzzing``.  ``--readme``
rewrites the README's figure block from this run alone (benchmarks/suite/readme.py).
Needs root (namespaces, raw sockets); every load loop is bounded in count and time
and all traffic stays inside the namespaces the suite makes (deleted when it ends, also on Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.suite import (
    anchors,
    checks,
    daemon_run,
    jitter,
    pysections,
    reliability,
    vm_checkers,
)
from benchmarks.suite.model import Section
from benchmarks.suite.progress import Progress, format_seconds
from benchmarks.suite.readme import write_readme
from benchmarks.suite.report import write_report

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "out" / "report"
SECTIONS = ("checks", "detection", "scale", "keepalived_vm", "vrrp", "jitter", "config",
            "hotpaths")
# run only when named: fleet's labs (FRR, hafast daemons, keepalived) take two minutes
# even in quick mode, past the quick run's ten; the others are tests of failure
# behaviour, not performance figures
OPT_IN = ("fleet", "reliability", "fuzzing")
RELIABILITY_SECONDS = 300.0  # the four netns files: 215 s on the 2-core VM, load 2.5


@dataclass
class Mode:
    """What one mode measures; the plan and its estimate are derived from it."""

    name: str
    sizes: tuple[int, ...]
    kinds: tuple[str, ...] = ("TCP_CHECK", "HTTP_GET", "PING_CHECK")
    check_rounds: int = 3
    warm: float = 1.5
    seconds: float = 3.0
    detect_size: int = 1000
    detect_rounds: int = 3
    detect_faults: tuple[str, ...] = ("reject",)
    detect_k: int = 20
    file_rounds: int = 1
    jitter_load: int = 4096
    jitter_rounds: int = 1
    # the daemon's memory: PSS at each size, growth from the smallest (issue 16)
    scale_sizes: tuple[int, ...] = (100, 10000)
    scale_rounds: int = 1
    # keepalived's checkers need IPVS: measured in one boot of the IPVS VM (TCG, slow)
    vm_size: int = 100
    vm_rounds: int = 1
    vm_seconds: float = 5.0
    vm_detect_k: int = 20  # servers faulted per detection round in the VM
    vm_detect_rounds: int = 2
    # failure rounds per lab in the one fleet session (its labs start once)
    fleet_rounds: int = 3
    hotpath_files: tuple[str, ...] = ("benchmarks/test_bench_vrrp.py",
                                      "benchmarks/test_bench_md5.py",
                                      "benchmarks/test_bench_icmp.py")
    # measured wall seconds of one session of each pytest file on the 2-core VM
    file_seconds: dict[str, float] = field(default_factory=lambda: {
        "benchmarks/test_bench_vrrp_failover.py": 130.0,
        "benchmarks/test_bench_config.py": 55.0,
        "benchmarks/test_bench_vrrp.py": 20.0,
        "benchmarks/test_bench_md5.py": 66.0,
        "benchmarks/test_bench_icmp.py": 35.0,
    })


MODES = {
    "quick": Mode("quick", sizes=(1000,)),
    "full": Mode("full", sizes=(1000, 4096, 16384), check_rounds=5, warm=2.5, seconds=5.0,
                 detect_rounds=5, detect_faults=("reject", "drop"), detect_k=50,
                 file_rounds=3, jitter_load=16384, jitter_rounds=3, vm_rounds=3,
                 vm_seconds=10.0, vm_detect_k=30, vm_detect_rounds=5, fleet_rounds=10,
                 scale_sizes=(100, 10000, 16384), scale_rounds=3),
}
VRRP_FILES = ("benchmarks/test_bench_vrrp_failover.py",)
CONFIG_FILES = ("benchmarks/test_bench_config.py",)


def check_round_seconds(mode: Mode, kind: str, n: int) -> float:
    """Estimated wall seconds of one round of one kind at size ``n``: hafast (start,
    warm, measure), the C loop, HAProxy, and wrk or fping."""
    start = 1.5 + n / 6000.0 * (2.0 if kind == "HTTP_GET" else 1.0)
    total = mode.warm + mode.seconds + start  # hafast
    if kind in ("TCP_CHECK", "PING_CHECK"):
        total += mode.seconds  # C loop
    if kind in ("TCP_CHECK", "HTTP_GET"):
        total += mode.warm + mode.seconds + 0.5 + n / 20000.0  # HAProxy
    total += mode.seconds + 0.5  # wrk / fping (TCP_CHECK: none, a margin)
    return total


def plan(mode: Mode, sections: tuple[str, ...], rounds: int | None, *,
         fuzz_runs: int = reliability.FUZZ_RUNS,
         fuzz_cap: float = reliability.FUZZ_CAP,
         fuzz_processes: int = 1) -> list[tuple[str, float]]:
    """Steps with estimated seconds, in the order they run."""
    steps: list[tuple[str, float]] = []
    if "checks" in sections:
        r = rounds or mode.check_rounds
        for n in mode.sizes:
            for kind in mode.kinds:
                for i in range(r):
                    build = 3.0 + n / 8000.0 if kind == mode.kinds[0] and i == 0 else 0.0
                    steps.append((f"checks {kind} {n} round {i + 1}/{r}",
                                  build + check_round_seconds(mode, kind, n)))
    if "detection" in sections:
        r = rounds or mode.detect_rounds
        for fault in mode.detect_faults:
            for i in range(r):
                first = 8.0 if fault == mode.detect_faults[0] and i == 0 else 0.0
                steps.append((f"detection {fault} round {i + 1}/{r}",
                              first + (3.0 if fault == "drop" else 2.0)))
    if "scale" in sections:
        r = rounds or mode.scale_rounds
        for n in mode.scale_sizes:
            for i in range(r):
                # measured: both labs built and both daemons started in 4.3 s (100, 10k)
                steps.append((f"scale {n} round {i + 1}/{r}",
                              1.0 + n / 5000.0 + max(mode.warm + mode.seconds, 5.0)))
    if "keepalived_vm" in sections:
        r = rounds or mode.vm_rounds
        # boot and farm (~20 s under TCG), then per round two peers' start, warm, window;
        # detection: per peer a start that fills the table, then fault/recover rounds
        detect = 2 * (6.0 + mode.vm_detect_rounds * 3.0) if mode.vm_detect_k else 0.0
        steps.append((f"keepalived VM ({r} round(s))",
                      20.0 + r * (2 * mode.vm_seconds + 18.0) + detect))
    if "vrrp" in sections:
        r = rounds or mode.file_rounds
        per = sum(mode.file_seconds.get(f, 60.0) for f in VRRP_FILES) + 5.0
        steps += [(f"vrrp round {i + 1}/{r}", per) for i in range(r)]
    if "fleet" in sections:
        r = rounds or mode.fleet_rounds
        # measured: ~37 s of starts (pytest, FRR to ECMP, four VRRP speakers), then
        # ~13 s (fleet) + 2 x ~7.5 s (VRRP) a round
        steps.append((f"fleet ({r} failure rounds per lab)", 37.0 + 28.0 * r))
    if "jitter" in sections:
        r = rounds or mode.jitter_rounds
        window = max(mode.seconds, 3.0)
        for i in range(r):
            for kind in ("hafast", "keepalived"):
                first = 4.0 + mode.jitter_load / 4000.0 if i == 0 and kind == "hafast" else 0.0
                steps.append((f"jitter {kind} round {i + 1}/{r}", first + 2 * window + 8.0))
    for name, files in (("config", CONFIG_FILES), ("hotpaths", mode.hotpath_files)):
        if name in sections:
            r = rounds or mode.file_rounds
            per = sum(mode.file_seconds.get(f, 60.0) for f in files) + 5.0
            steps += [(f"{name} round {i + 1}/{r}", per) for i in range(r)]
    if "reliability" in sections:
        steps.append(("reliability tests", RELIABILITY_SECONDS))
    if "fuzzing" in sections:
        for t in reliability.FUZZ_TARGETS:
            rate = reliability.FUZZ_RATES.get(t, 500.0) * fuzz_processes
            secs = min(fuzz_cap, 10.0 + fuzz_runs / rate)
            steps.append((reliability.fuzz_step(t, fuzz_runs), secs))
    return steps


def machine() -> str:
    cpus = os.cpu_count() or 0
    return (f"{platform.node()}: {cpus} CPU(s), Linux {platform.release()}, "
            f"Python {platform.python_version()}")


def _root_check() -> str | None:
    if os.geteuid() != 0:
        return "the suite needs root (network namespaces, raw sockets)"
    for tool in ("nginx", "nft", "nsenter", "ip", "gcc"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return f"the suite needs {tool}"
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.suite", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--quick", dest="mode", action="store_const", const="quick")
    group.add_argument("--full", dest="mode", action="store_const", const="full")
    ap.add_argument("--section", action="append", choices=SECTIONS + OPT_IN, default=None,
                    help="run only this section (repeatable)")
    ap.add_argument("--reliability", action="store_true",
                    help="the reliability and fuzzing sections")
    ap.add_argument("--fuzz-runs", type=int, default=None,
                    help=f"inputs per fuzz harness ({reliability.FUZZ_RUNS:,}; "
                         f"{reliability.FUZZ_RUNS_QUICK:,} with --quick written out)")
    ap.add_argument("--fuzz-cap", type=float, default=reliability.FUZZ_CAP,
                    help="wall seconds per fuzz harness before it stops short of its goal")
    ap.add_argument("--fuzz-processes", type=int, default=reliability.FUZZ_PROCESSES,
                    help="libFuzzer processes per harness, side by side on one corpus "
                         f"(default: the CPUs, {reliability.FUZZ_PROCESSES})")
    ap.add_argument("--rounds", type=int, default=None, help="rounds for every section")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--sizes", default=None,
                    help="comma-separated real-server counts for the checks section")
    ap.add_argument("--scale-sizes", default=None,
                    help="comma-separated real-server counts for the scale section (at least "
                         "two: growth is measured from the smallest)")
    ap.add_argument("--kinds", default=None, help="comma-separated checker kinds")
    ap.add_argument("--jitter-servers", type=int, default=None,
                    help="TCP_CHECK load of the jitter section (quick 4096, full 16384)")
    ap.add_argument("--yes", action="store_true", help="do not ask before a long run")
    ap.add_argument("--plan", action="store_true", help="print the plan and its estimate only")
    ap.add_argument("--readme", action="store_true",
                    help="also rewrite the README's figure block from this run (and only it)")
    args = ap.parse_args(argv)
    mode = MODES[args.mode or "quick"]
    if args.sizes:
        mode.sizes = tuple(int(s) for s in args.sizes.split(","))
    if args.scale_sizes:
        mode.scale_sizes = tuple(sorted({int(s) for s in args.scale_sizes.split(",")}))
        if len(mode.scale_sizes) < 2:
            ap.error("--scale-sizes needs two sizes or more")
    if args.jitter_servers:
        mode.jitter_load = args.jitter_servers
    if args.kinds:
        mode.kinds = tuple(k.strip() for k in args.kinds.split(","))
        unknown = set(mode.kinds) - set(checks.CHECK_BLOCKS)
        if unknown:
            ap.error(f"unknown checker kind(s) {', '.join(sorted(unknown))}; known: "
                     + ", ".join(checks.CHECK_BLOCKS))
    if args.rounds is not None and args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.fuzz_runs is not None and args.fuzz_runs < 1:
        ap.error("--fuzz-runs must be at least 1")
    if args.fuzz_cap <= 0:
        ap.error("--fuzz-cap must be positive")
    if args.fuzz_processes < 1:
        ap.error("--fuzz-processes must be at least 1")
    chosen = [*(args.section or []), *(OPT_IN if args.reliability else ())]
    sections = tuple(dict.fromkeys(chosen)) or SECTIONS
    # quick is the mode when none is named; only --quick written out shortens the
    # fuzzing, whose point is the million inputs
    fuzz_runs = args.fuzz_runs or (reliability.FUZZ_RUNS_QUICK if args.mode == "quick"
                                   else reliability.FUZZ_RUNS)
    steps = plan(mode, sections, args.rounds, fuzz_runs=fuzz_runs, fuzz_cap=args.fuzz_cap,
                 fuzz_processes=args.fuzz_processes)
    estimate = sum(s for _, s in steps)
    print(f"hafast benchmark suite, {mode.name} mode: {len(steps)} steps, estimated "
          f"{format_seconds(estimate)}", file=sys.stderr)
    if args.plan:
        for label, secs in steps:
            print(f"  {secs:7.1f} s  {label}", file=sys.stderr)
        return 0
    problem = _root_check()
    if problem:
        print(f"cannot run: {problem}", file=sys.stderr)
        return 2
    if mode.name == "full" and not args.yes and sys.stdin.isatty():
        if input("start? [y/N] ").strip().lower() not in ("y", "yes"):
            return 1
    return run(mode, sections, args.rounds, args.out, steps,
               " ".join(["python -m benchmarks.suite", *(argv or sys.argv[1:])]),
               fuzz_runs=fuzz_runs, fuzz_cap=args.fuzz_cap,
               fuzz_processes=args.fuzz_processes, readme=args.readme)


def run(mode: Mode, sections: tuple[str, ...], rounds: int | None, out: Path,
        steps: list[tuple[str, float]], command: str, *,
        fuzz_runs: int = reliability.FUZZ_RUNS,
        fuzz_cap: float = reliability.FUZZ_CAP, fuzz_processes: int = 1,
        readme: bool = False) -> int:
    # SIGTERM unwinds like Ctrl-C, so every namespace and child is cleaned up.
    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    bar = Progress(steps)
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    t0 = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="hafast-suite-"))
    done: list[Section] = []

    @contextlib.contextmanager
    def step(label: str) -> Iterator[None]:
        bar.start(label)
        try:
            yield
        finally:
            bar.done()

    meta: dict[str, Any] = {"command": command, "started": started, "mode": mode.name,
                            "rounds": rounds or "mode default", "machine": machine(),
                            "estimate_seconds": sum(s for _, s in steps)}
    try:
        # hafast as installed: with its bytecode (daemon_run.compile_bytecode)
        meta["bytecode_seconds"] = round(daemon_run.compile_bytecode(), 2)
        c_exe: Path | None = None
        try:
            c_exe = anchors.build_c(anchors.PACED_SOURCE, workdir)
        except (OSError, subprocess.SubprocessError, anchors.ToolError) as exc:
            # The C anchor is then missing from every row, and the report says why.
            bar.note(f"the C paced loop could not be built: {exc}")
            meta["note"] = f"C paced loop not measured: build failed ({exc})"
        p = checks.Params(sizes=mode.sizes, kinds=mode.kinds,
                          rounds=rounds or mode.check_rounds, warm=mode.warm,
                          seconds=mode.seconds, workdir=workdir, detect_size=mode.detect_size,
                          detect_faults=mode.detect_faults, detect_k=mode.detect_k,
                          c_exe=c_exe, log=bar.note)
        runners: dict[str, Callable[[], Section]] = {
            "checks": lambda: checks.run_checks(p, step),
            "scale": lambda: checks.run_scale(
                checks.Params(**{**p.__dict__, "rounds": rounds or mode.scale_rounds}),
                mode.scale_sizes, step),
            "detection": lambda: checks.run_detection(
                checks.Params(**{**p.__dict__, "rounds": rounds or mode.detect_rounds}), step),
            "keepalived_vm": lambda: vm_checkers.run_vm_section(
                mode.vm_size, mode.vm_seconds, rounds or mode.vm_rounds, workdir, step,
                bar.note, mode.vm_detect_k, rounds or mode.vm_detect_rounds),
            "vrrp": lambda: pysections.run_file_section(
                "vrrp", "VRRP takeover, hafast vs keepalived 2.2.7", VRRP_FILES,
                rounds or mode.file_rounds, workdir, step, bar.note),
            "fleet": lambda: pysections.run_fleet_section(
                rounds or mode.fleet_rounds, workdir, step, bar.note),
            "jitter": lambda: jitter.run_jitter(
                checks.Params(**{**p.__dict__, "rounds": rounds or mode.jitter_rounds}), step,
                mode.jitter_load, bar.note),
            "config": lambda: pysections.run_file_section(
                "config", "Config parse and reload diff (37,000 real servers)", CONFIG_FILES,
                rounds or mode.file_rounds, workdir, step, bar.note,
                extra=pysections.config_pairs),
            "hotpaths": lambda: pysections.run_file_section(
                "hotpaths", "Hot paths (_core micro benchmarks)", mode.hotpath_files,
                rounds or mode.file_rounds, workdir, step, bar.note,
                extra=pysections.md5_openssl),
            "reliability": lambda: reliability.run_reliability(workdir, step, bar.note),
            "fuzzing": lambda: reliability.run_fuzzing(
                workdir, step, bar.note, runs=fuzz_runs, cap=fuzz_cap,
                keep=out / "fuzz-crashes", processes=fuzz_processes),
        }
        for name in SECTIONS + OPT_IN:
            if name not in sections:
                continue
            try:
                sec = runners[name]()
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # one broken section must not lose the rest
                bar.note(f"section {name} failed: {exc}")
                sec = Section(name, name, status="failed", notes=[f"failed: {exc}"])
            done.append(sec)
            meta["wall_seconds"] = time.monotonic() - t0
            write_report(out, done, meta)  # a partial report survives a later failure
    except KeyboardInterrupt:
        bar.note("interrupted: writing what was measured")
        meta["note"] = "interrupted before the end; sections missing were not run"
    finally:
        bar.close()
        shutil.rmtree(workdir, ignore_errors=True)
    meta["wall_seconds"] = time.monotonic() - t0
    path = write_report(out, done, meta)
    print(f"report: {path} ({format_seconds(meta['wall_seconds'])})", file=sys.stderr)
    if readme and "interrupted" not in meta.get("note", ""):
        print(f"figures: {write_readme(done, meta)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
