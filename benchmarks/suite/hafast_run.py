"""hafast's check engine alone, as the suite measures it: one worker process.

Run inside the director namespace (``nsenter --net=...``) by the checks sections::

    python -m benchmarks.suite.hafast_run CONF --warm 2 --seconds 5

It loads ``CONF``, starts :class:`hafast.check.engine.Engine` on a uvloop loop (one
shard: one worker, one core), lets the checks settle for ``--warm`` seconds (the
first attempts are spread over one delay_loop), then measures ``--seconds``:
attempts and successes from the runner's counters, CPU (user+sys, whole process,
from ``getrusage``) and RSS growth from before the config was loaded.  With
``--events`` every real-server transition is printed as it happens, stamped with
the wall clock, so the parent can time fault -> DOWN; it then runs until SIGTERM.

Output: JSON lines on stdout, ``{"event": ...}`` and one final ``{"result": ...}``.
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds() -> float:
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hafast_run")
    ap.add_argument("conf")
    ap.add_argument("--warm", type=float, default=2.0)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--events", action="store_true")
    args = ap.parse_args(argv)

    from hafast.check.engine import Engine
    from hafast.check.worker import new_loop
    from hafast.config.loader import load
    from hafast.lib.events import ServerEvent

    base_rss = rss_kib()
    config = load(args.conf)
    loop = new_loop()

    def on_event(ev: ServerEvent) -> None:
        if args.events:
            emit({"event": ev.state, "addr": ev.real_server[0], "t": time.time()})

    engine = Engine(config, loop, on_event)
    marks: dict[str, Any] = {}
    stop = loop.create_future()

    def mark(name: str) -> None:
        marks[name] = (dict(engine.runner.counters), cpu_seconds(), time.monotonic(), rss_kib())
        if name == "end" and not stop.done():
            stop.set_result(None)

    loop.add_signal_handler(signal.SIGTERM, mark, "end")
    loop.add_signal_handler(signal.SIGINT, mark, "end")
    loop.call_later(args.warm, mark, "warm")
    if not args.events:
        loop.call_later(args.warm + args.seconds, mark, "end")
    engine.start()
    emit({"ready": True, "checks": engine.checks, "t": time.time()})
    try:
        loop.run_until_complete(stop)
    finally:
        engine.stop()
    (c0, cpu0, t0, _), (c1, cpu1, t1, rss1) = marks.get("warm", marks["end"]), marks["end"]
    attempts = c1.get("attempts", 0) - c0.get("attempts", 0)
    ok = c1.get("ok", 0) - c0.get("ok", 0)
    fails = {k: v - c0.get(k, 0) for k, v in c1.items() if k.startswith("fail:")}
    emit({"result": {
        "checks": engine.checks, "attempts": attempts, "ok": ok, "fails": fails,
        "seconds": t1 - t0, "cpu": cpu1 - cpu0, "rss_kib": rss1, "base_rss_kib": base_rss,
    }})
    loop.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
