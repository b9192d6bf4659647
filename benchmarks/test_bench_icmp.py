"""ICMP echo rate to 4096 addresses in a namespace, side by side in one run.

The farm's server namespace answers for 10.201.16.0/20 with one local route; every
prober runs in the prober namespace against the same 4096 targets:

- the compiled ``IcmpBatch`` (sendmmsg/recvmmsg) and its pure-Python twin, driven
  in rounds (send the whole list, drain and expire until nothing is in flight);
- ``benchmarks/c/icmp_loop.c``: the same rounds in plain C with no bookkeeping,
  the machine's limit for this shape (built with gcc -O2 into a temporary dir);
- ``fping -i0 -c1`` (run with ``ip netns exec``, so process start, reading the
  list and entering the namespace count): one walk of the list per process,
  repeated (what one tick of a health checker costs with fping), and
  ``fping -i0 -c10 -p20``: ten walks in one process, re-walked every 20 ms
  (fping's steady state).  Rate from fping's own
  per-target received counts over wall time.

Each runs in 5 interleaved slices of about half a second (best slice reported: the
machine's 2 cores are shared); rates are echo replies per second.
Figures: echoes/s for each, compiled/C-loop (goal >= 0.9x), compiled/fping -c1
(goal >= 3x), compiled/fping steady state, compiled/twin.  Reported, never asserted.

Run: ``.venv/bin/python -m pytest benchmarks/test_bench_icmp.py -q``
"""

from __future__ import annotations

import os
import re
import resource
import select
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import load_twin, require, require_root, require_tool
from tests.netns.icmp_farm import BENCH4, IcmpFarm, hosts

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(300)]

N_TARGETS = 4096
SECONDS = 0.5  # per slice
SLICES = 5
ROUND_TIMEOUT_NS = 200_000_000
C_SOURCE = Path(__file__).resolve().parent / "c" / "icmp_loop.c"


@pytest.fixture(scope="module")
def farm() -> Iterator[IcmpFarm]:
    require_root()
    require_tool("ip")
    require_tool("nft")
    with IcmpFarm(tag="hfb") as made:
        yield made


@pytest.fixture(scope="module")
def targets_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("icmp") / "targets.txt"
    path.write_text("\n".join(hosts(BENCH4, N_TARGETS, first=0)) + "\n")
    return path


@pytest.fixture(scope="module")
def icmp_loop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc")
    require(gcc, "needs gcc to build benchmarks/c/icmp_loop.c")
    assert gcc is not None
    exe = tmp_path_factory.mktemp("icmp_loop") / "icmp_loop"
    subprocess.run([gcc, "-O2", "-o", str(exe), str(C_SOURCE)], check=True, timeout=60)
    return exe


def _cpu(who: int) -> tuple[float, float]:
    use = resource.getrusage(who)
    return use.ru_utime, use.ru_stime


def _cpu_per_echo(
    before: tuple[float, float], after: tuple[float, float], replies: int
) -> dict[str, float]:
    """User and system CPU microseconds per echo reply.  CPU time is what contention
    on the shared cores does not inflate; system time is mostly the kernel carrying
    the echo both ways through the veth pair (the server side runs in our context)."""
    n = max(replies, 1)
    return {
        "user_us": (after[0] - before[0]) / n * 1e6,
        "sys_us": (after[1] - before[1]) / n * 1e6,
    }


def _one_round(eng: Any, targets: list[str], poller: Any) -> int:
    """Send every target once, drain/expire until none is in flight; return replies."""
    replies = 0
    queue = targets
    now = time.monotonic_ns()
    stop = now + ROUND_TIMEOUT_NS
    while queue:
        taken = eng.send(queue, time.monotonic_ns(), ROUND_TIMEOUT_NS)
        queue = queue[taken:]
        replies += len(eng.drain(time.monotonic_ns()))  # room for the rest of the burst
        if queue and not taken:
            poller.poll(1)
    while eng.pending and time.monotonic_ns() < stop:
        poller.poll(10)
        replies += len(eng.drain(time.monotonic_ns()))
    eng.expire(stop)
    return replies


def _engine_rate(farm: IcmpFarm, mod: ModuleType, targets: list[str]) -> dict[str, float]:
    with farm.in_prober():
        eng = mod.IcmpBatch(mod.AF_INET)
    with eng:
        poller = select.poll()
        poller.register(eng.fileno(), select.POLLIN)
        _one_round(eng, targets, poller)  # warm up: caches, neighbour, allocations
        replies = rounds = 0
        cpu0 = _cpu(resource.RUSAGE_SELF)
        t0 = time.monotonic()
        while time.monotonic() - t0 < SECONDS and rounds < 1000:
            replies += _one_round(eng, targets, poller)
            rounds += 1
        elapsed = time.monotonic() - t0
        cpu1 = _cpu(resource.RUSAGE_SELF)
        return {
            "rate": replies / elapsed,
            **_cpu_per_echo(cpu0, cpu1, replies),
            "rounds": rounds,
            "replies": replies,
            "loss": 1 - replies / (rounds * len(targets)),
        }


def _c_loop_rate(farm: IcmpFarm, exe: Path, targets_file: Path) -> dict[str, float]:
    cpu0 = _cpu(resource.RUSAGE_CHILDREN)
    with farm.in_prober():  # the child inherits the namespace, no `ip netns exec` cost
        out = subprocess.run(
            [str(exe), str(targets_file), str(SECONDS)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    cpu1 = _cpu(resource.RUSAGE_CHILDREN)
    fields = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", out)}
    return {
        "rate": fields["received"] / (fields["elapsed_ns"] / 1e9),
        **_cpu_per_echo(cpu0, cpu1, fields["received"]),
        "rounds": fields["rounds"],
        "replies": fields["received"],
        "loss": 1 - fields["received"] / max(1, fields["sent"]),
    }


def _fping_rate(farm: IcmpFarm, fping: str, targets_file: Path, count: int) -> dict[str, float]:
    """``count`` 1: one walk of the list per process, repeated for the slice (a tick
    of a health checker); ``count`` 10: ``-p 20``, ten walks in one process."""
    period = ["-p", "20"] if count > 1 else []
    argv = [fping, "-i", "0", "-q", "-c", str(count), *period, "-f", str(targets_file)]
    received = rounds = 0
    cpu0 = _cpu(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    while rounds < 100 and (rounds == 0 or time.monotonic() - t0 < SECONDS):
        done = subprocess.run(
            farm.exec_prober(*argv), capture_output=True, text=True, timeout=120, check=False
        )
        received += sum(int(m) for m in re.findall(r"xmt/rcv/%loss = \d+/(\d+)/", done.stderr))
        rounds += count
    elapsed = time.monotonic() - t0
    cpu1 = _cpu(resource.RUSAGE_CHILDREN)
    return {
        "rate": received / elapsed,
        **_cpu_per_echo(cpu0, cpu1, received),
        "rounds": rounds,
        "replies": received,
        "loss": 1 - received / (rounds * N_TARGETS),
    }


def test_echo_rate_4096_targets(
    farm: IcmpFarm, targets_file: Path, icmp_loop: Path, figures: Any, benchmark: Any
) -> None:
    fping = require_tool("fping")
    compiled = load_twin("icmp_batch", "c")
    twin = load_twin("icmp_batch", "py")
    targets = hosts(BENCH4, N_TARGETS, first=0)

    probers: dict[str, Callable[[], dict[str, float]]] = {
        "C sendmmsg/recvmmsg loop": lambda: _c_loop_rate(farm, icmp_loop, targets_file),
        "compiled IcmpBatch": lambda: _engine_rate(farm, compiled, targets),
        "twin IcmpBatch": lambda: _engine_rate(farm, twin, targets),
        "fping -i0 -c1": lambda: _fping_rate(farm, fping, targets_file, 1),
        "fping -i0 -c10 -p20": lambda: _fping_rate(farm, fping, targets_file, 10),
    }
    # Interleaved slices, best of each: the 2 cores are shared with other work, and
    # the least disturbed slice of each prober is the fairest comparison.
    slices: dict[str, list[dict[str, float]]] = {name: [] for name in probers}
    for _ in range(SLICES):
        for name, measure in probers.items():
            slices[name].append(measure())
    best = {name: max(runs, key=lambda m: m["rate"]) for name, runs in slices.items()}

    # pytest-benchmark's own table: one compiled round of 4096 echoes.
    with farm.in_prober():
        eng = compiled.IcmpBatch(compiled.AF_INET)
    with eng:
        poller = select.poll()
        poller.register(eng.fileno(), select.POLLIN)
        benchmark.pedantic(_one_round, args=(eng, targets, poller), rounds=10, iterations=1)

    cpu_per_echo: dict[str, tuple[float, float]] = {}
    for name, m in best.items():
        figures.add(
            f"icmp echoes/s, 4096 targets: {name}",
            m["rate"],
            "echo/s",
            rounds=m["rounds"],
            replies=m["replies"],
            loss=round(m["loss"], 5),
            slices=[round(r["rate"]) for r in slices[name]],
            loadavg=round(os.getloadavg()[0], 2),
        )
        # CPU per echo over all slices (the user/system split is tick-sampled, so
        # one short slice is too coarse); contention hardly moves this figure.
        runs = slices[name]
        total = sum(r["replies"] for r in runs) or 1
        user = sum(r["user_us"] * r["replies"] for r in runs) / total
        system = sum(r["sys_us"] * r["replies"] for r in runs) / total
        figures.add(f"icmp user CPU per echo: {name}", user, "us", sys_us=round(system, 3))
        cpu_per_echo[name] = (user, system)
    rate = {name: m["rate"] for name, m in best.items()}
    compiled_rate = rate["compiled IcmpBatch"]
    figures.add(
        "icmp compiled / C loop",
        compiled_rate / rate["C sendmmsg/recvmmsg loop"],
        "x",
        goal=">= 0.9x",
    )
    for mode in ("fping -i0 -c1", "fping -i0 -c10 -p20"):
        goal = ">= 3x" if mode == "fping -i0 -c1" else ""
        figures.add(f"icmp compiled / {mode}", compiled_rate / max(rate[mode], 1.0), "x", goal=goal)
    figures.add("icmp compiled / twin", compiled_rate / rate["twin IcmpBatch"], "x")
    # The same ratios on CPU per echo (user + system): steadier than wall-clock rates
    # when other work shares the cores.
    cpu = {name: cpu_per_echo[name][0] + cpu_per_echo[name][1] for name in probers}
    for other, goal in (
        ("C sendmmsg/recvmmsg loop", ">= 0.9x"),
        ("fping -i0 -c1", ">= 3x"),
        ("fping -i0 -c10 -p20", ""),
        ("twin IcmpBatch", ""),
    ):
        figures.add(
            f"icmp compiled / {other}, by CPU per echo",
            cpu[other] / cpu["compiled IcmpBatch"],
            "x",
            goal=goal,
        )
