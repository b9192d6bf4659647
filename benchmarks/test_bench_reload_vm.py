"""Reload at scale (issue 16): SIGHUP with one real server changed, keepalived 2.2.7 and
hafast's shipped daemon side by side, each on the same 37,000-real-server file, in ONE
boot of the IPVS VM (hafast/lab/ipvs_vm.py; Debian's stock kernel under qemu TCG, so
both daemons are slow there alike).

test_bench_ipvs.py times :meth:`PoolManager.reload` alone (the apply).  Here the
whole reload is timed from the outside, the same way for both daemons: the file is
replaced (rename), SIGHUP goes to the daemon's parent, and ``ipvsadm -Ln -t VS``
is polled (every ``POLL_S``) until the one destination shows its new weight.  That
wall time covers read, parse, diff and apply.  Then:

- kernel changes: ``ipvsadm -Ln`` before the SIGHUP and ``AFTER_S`` after the
  change showed, compared line by line (a destination whose weight changed is one
  line out, one line in: one change); for hafast also its ``pools.changes``
  counters (``hafast status --json``);
- checks restarted: the probes the real servers saw in that window (below), and the
  daemon's log lines after the SIGHUP (hafast: its per-shard rebuild lines).

The file is benchmarks/test_bench_config.py's #2318 shape (2,300 VS, 37,000 RS, one
TCP_CHECK each) with ``delay_loop DELAY_LOOP_S``.  Why that and not MISC_CHECK or no
checker: both daemons then build, carry over and reload 37,000 real checkers, which
is a good part of a real reload's work (no checker would leave it out; MISC_CHECK
would fork 37,000 processes), and neither spawns anything.  Neither daemon has a
``warmup`` here, so each first probe comes at a random point of the delay_loop
(keepalived and hafast alike, check/runner.py), about one probe every 3 s from each
daemon.  The probes stay in the VM: 172.16.0.0/16 (every real server) is made a
local route on ``lo`` and one listener on port 80 accepts and counts them, so a
probe succeeds (no real server ever goes down, the table stays whole) and a check
that restarted at once would show as a burst of accepts.  The VM has no network
device at all, so no packet could leave it anyway.

keepalived runs with ``-C`` (the checker process alone: this file has no VRRP, and
its VRRP process would parse the whole file again on each reload on the VM's one
CPU); both run with ``-I`` (keep the table on stop) so that stopping is one
``ipvsadm -C`` instead of 37,000 deletions.  keepalived runs without ``-D``: with it,
it logs one "Activating healthchecker" line per real server on every reload (37,000
lines: work hafast's ``-l`` does not do); a small run with ``-D`` showed that line for
every checker after each SIGHUP.  The daemons alternate, ``ROUNDS``
starts each, ``RELOADS`` reloads a start (the weight goes 1 -> 2 -> 1 ...), bounded
by ``BUDGET_S``, which each start shares with the ones after it; partial figures are
written after each start.  A reload the kernel has not shown by the end of its start's
share counts as the time waited, a lower bound (``not_seen`` in the figure): keepalived
2.2.7 did not finish one within 561 s at this size (docs/benchmarks.md).

Only hafast's behaviour is asserted (one kernel change, one ``pools.changes``);
timings are figures.

Run::

    .venv/bin/python -m pytest benchmarks/test_bench_reload_vm.py -s

Knobs: ``HAFAST_BENCH_RELOAD_VS``, ``HAFAST_BENCH_RELOAD_RS`` (size),
``HAFAST_BENCH_RELOAD_ROUNDS``, ``HAFAST_BENCH_RELOAD_RELOADS``,
``HAFAST_BENCH_RELOAD_BUDGET_S``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from benchmarks.test_bench_config import N_RS, N_VS, make_big_config

VS_COUNT = int(os.environ.get("HAFAST_BENCH_RELOAD_VS", str(N_VS)))
RS_COUNT = int(os.environ.get("HAFAST_BENCH_RELOAD_RS", str(N_RS)))
ROUNDS = int(os.environ.get("HAFAST_BENCH_RELOAD_ROUNDS", "2"))
RELOADS = int(os.environ.get("HAFAST_BENCH_RELOAD_RELOADS", "2"))
BUDGET_S = float(os.environ.get("HAFAST_BENCH_RELOAD_BUDGET_S", "1200"))
VM_MEMORY_MB = 2048
DELAY_LOOP_S = 86_400  # hafast's upper bound (keepalived takes more)
RS_NET = "172.16.0.0/16"  # every real server of make_big_config up to 62,500
POLL_S = 0.02
AFTER_S = 3.0
KEEPALIVED = "/usr/sbin/keepalived"
DAEMONS = ("keepalived", "hafast")
# Log lines after a SIGHUP worth counting (keepalived 2.2.7's and hafast's wording).
LOG_PATTERNS = {
    "checks_activated": re.compile(r"Activating healthchecker"),
    "rs_removed": re.compile(r"Removing service|Disabling service|\bDOWN\b"),
    "rs_added": re.compile(r"Adding service|Enabling service|\bUP\b"),
    "shard_rebuilt": re.compile(r"shard \d+/\d+: \d+ checks .* seeded"),
}

pytestmark = [pytest.mark.root, pytest.mark.timeout(BUDGET_S + 700)]


def config_text(n_vs: int, n_rs: int, bump: int | None = None) -> str:
    return make_big_config(n_vs, n_rs, bump=bump).replace(
        "delay_loop 10", f"delay_loop {DELAY_LOOP_S}")


def bumped_destination(text: str) -> tuple[str, str]:
    """(``VS:port``, ``RS:port``) of the one real server with weight 2."""
    vs = rs = ""
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["virtual_server"]:
            vs = f"{words[1]}:{words[2]}"
        elif words[:1] == ["real_server"]:
            rs = f"{words[1]}:{words[2]}"
        elif words == ["weight", "2"]:
            return vs, rs
    raise ValueError("no real server has weight 2")


# --------------------------------------------------------------------------- guest


class Acceptor:
    """One listener on port 80 for every real server (a local route): counts probes."""

    def __init__(self) -> None:
        Path("/proc/sys/net/core/somaxconn").write_text("65535\n")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", 80))
        self.sock.listen(65535)
        self.count = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.count += 1
            conn.close()


def _ipvsadm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ipvsadm", *args], text=True, capture_output=True, timeout=600,
                          check=False)


def _table_counts() -> tuple[int, int]:
    out = _ipvsadm("-Ln").stdout.splitlines()
    return (sum(1 for x in out if x.startswith(("TCP", "UDP"))),
            sum(1 for x in out if x.startswith("  ->") and "RemoteAddress" not in x))


def _dest_weight(vs: str, rs: str) -> int | None:
    for line in _ipvsadm("-Ln", "-t", vs).stdout.splitlines():
        words = line.split()
        if len(words) >= 4 and words[0] == "->" and words[1] == rs:
            return int(words[3])
    return None


def _kernel_changes(before: str, after: str) -> int:
    a, b = collections.Counter(before.splitlines()), collections.Counter(after.splitlines())
    return max(sum((a - b).values()), sum((b - a).values()))


def _start(kind: str, d: Path, conf: Path, log: Path) -> subprocess.Popen[bytes]:
    if kind == "keepalived":
        argv = [KEEPALIVED, "-f", str(conf), "-n", "-l", "-C", "-I",
                "-p", str(d / "ka.pid"), "-c", str(d / "ka_chk.pid"),
                "-r", str(d / "ka_vrrp.pid")]
    else:
        argv = ["hafast", "-f", str(conf), "-n", "-l", "-I", "--pool-backend", "ipvs",
                "-p", str(d / "ha.pid"), "-c", str(d / "ha_chk.pid"),
                "-r", str(d / "ha_vrrp.pid"), "--control-socket", str(d / "ha.ctl"),
                "--dump-prefix", str(d / "ha-dump")]
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to its own process group (started with a new session), SIGKILL after 120 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _hafast_status(d: Path) -> dict[str, Any] | None:
    p = subprocess.run(["hafast", "status", "--json", "--limit", "0", "--socket",
                        str(d / "ha.ctl")], text=True, capture_output=True, timeout=300,
                       check=False)
    if p.returncode != 0:
        return None
    try:
        st: dict[str, Any] = json.loads(p.stdout)
    except ValueError:
        return None
    return st


def _pool_changes(st: dict[str, Any] | None) -> dict[str, int]:
    return dict(((st or {}).get("pools") or {}).get("changes") or {})


def _shards(st: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [{k: c.get(k) for k in ("shard", "checks", "up", "down", "events")}
            for c in (st or {}).get("checkers", ())]


def _log_counts(text: str) -> dict[str, int]:
    return {name: len(rx.findall(text)) for name, rx in LOG_PATTERNS.items()}


def _one_start(kind: str, d: Path, texts: dict[int, str], dest: tuple[str, str],
               n_vs: int, n_rs: int, reloads: int, acceptor: Acceptor,
               deadline: float) -> dict[str, Any]:
    _ipvsadm("-C")
    conf = d / f"{kind}.conf"
    conf.write_text(texts[1])
    log = d / f"{kind}.log"
    out: dict[str, Any] = {"reloads": []}
    t0 = time.monotonic()
    proc = _start(kind, d, conf, log)
    out["pid"] = proc.pid
    try:
        while _table_counts() != (n_vs, n_rs):
            if proc.poll() is not None or time.monotonic() > deadline:
                out["error"] = f"table never complete: {_table_counts()}, exit {proc.poll()}"
                return out
            time.sleep(2)
        out["converge_s"] = time.monotonic() - t0
        print(f"{kind}: table complete in {out['converge_s']:.1f} s", flush=True)
        # hafast: its control socket answers once the start-up is over
        while kind == "hafast" and _hafast_status(d) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                out["error"] = "no status answer"
                return out
            time.sleep(2)
        time.sleep(5)  # whatever the start-up still logs or probes settles
        for i in range(reloads):
            if time.monotonic() > deadline:
                out["cut"] = True
                break
            weight = 2 if i % 2 == 0 else 1
            before = _ipvsadm("-Ln").stdout
            st_before = _hafast_status(d) if kind == "hafast" else None
            log_at = log.stat().st_size
            tmp = conf.with_suffix(".new")
            tmp.write_text(texts[weight])
            tmp.rename(conf)
            probes = acceptor.count
            t_sig = time.monotonic()
            os.kill(proc.pid, signal.SIGHUP)
            seen = None
            # past the start's deadline "s" stays None: slower than the wait
            while time.monotonic() < max(deadline, t_sig + 30):
                if _dest_weight(*dest) == weight:
                    seen = time.monotonic() - t_sig
                    break
                time.sleep(POLL_S)
            waited = time.monotonic() - t_sig
            time.sleep(AFTER_S)
            probes = acceptor.count - probes
            after = _ipvsadm("-Ln").stdout
            st_after = _hafast_status(d) if kind == "hafast" else None
            with log.open("rb") as f:
                f.seek(log_at)
                tail = f.read().decode(errors="replace")
            r: dict[str, Any] = {
                "weight": weight, "s": seen, "kernel_changes": _kernel_changes(before, after),
                "probes_in_window": probes, "window_s": waited + AFTER_S,
                "waited_s": waited,
                "log": _log_counts(tail), "log_lines": len(tail.splitlines()),
                "log_head": tail.splitlines()[:12]}
            if kind == "hafast":
                a, b = _pool_changes(st_before), _pool_changes(st_after)
                r["pool_changes"] = {k: b.get(k, 0) - a.get(k, 0) for k in b
                                     if b.get(k, 0) != a.get(k, 0)}
                r["shards_before"], r["shards_after"] = _shards(st_before), _shards(st_after)
                r["reloads_counter"] = (st_after or {}).get("reloads")
            out["reloads"].append(r)
            print(f"{kind}: reload {i}: {seen} s, {r['kernel_changes']} kernel change(s)",
                  flush=True)
    finally:
        _stop(proc)
        out["exit"] = proc.returncode
        _ipvsadm("-C")
    return out


def guest_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--vs", type=int, default=VS_COUNT)
    ap.add_argument("--rs", type=int, default=RS_COUNT)
    ap.add_argument("--rounds", type=int, default=ROUNDS)
    ap.add_argument("--reloads", type=int, default=RELOADS)
    ap.add_argument("--budget", type=float, default=BUDGET_S)
    args = ap.parse_args(argv)
    deadline = time.monotonic() + args.budget
    subprocess.run(["ip", "route", "replace", "local", RS_NET, "dev", "lo"], check=True)
    acceptor = Acceptor()
    texts = {1: config_text(args.vs, args.rs), 2: config_text(args.vs, args.rs,
                                                             bump=args.rs // 2)}
    dest = bumped_destination(texts[2])
    res: dict[str, Any] = {"vs": args.vs, "rs": args.rs, "dest": dest,
                           "delay_loop": DELAY_LOOP_S, "runs": {k: [] for k in DAEMONS}}
    with tempfile.TemporaryDirectory() as tmp:
        starts = [kind for _ in range(args.rounds) for kind in DAEMONS]
        for n, kind in enumerate(starts):
            if time.monotonic() > deadline:
                res["cut"] = True
                break
            # each start gets its share of what is left, so a slow first daemon
            # cannot eat the other's turn
            mine = time.monotonic() + (deadline - time.monotonic()) / (len(starts) - n)
            res["runs"][kind].append(_one_start(kind, Path(tmp), texts, dest, args.vs,
                                                args.rs, args.reloads, acceptor, mine))
            res["probes_total"] = acceptor.count
            Path(args.out).write_text(json.dumps(res, indent=2))
        for kind in DAEMONS:
            log = Path(tmp) / f"{kind}.log"
            if log.exists():
                Path(args.out).with_name(f"{kind}.log").write_bytes(log.read_bytes())
    Path(args.out).write_text(json.dumps(res, indent=2))
    return 0


# --------------------------------------------------------------------------- host


def _reloads(r: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [x for run in r["runs"][kind] for x in run["reloads"]]


def _wall(x: dict[str, Any]) -> float:
    """The reload's time; one never seen counts as the time waited for it (a lower bound)."""
    return float(x["s"] if x["s"] is not None else x.get("waited_s", float("nan")))


def report(figures: Any, r: dict[str, Any]) -> None:
    """The figures of one guest run (``r``: the guest's JSON)."""
    size = f"{r['vs']} VS / {r['rs']} RS"
    medians: dict[str, float] = {}
    for kind in DAEMONS:
        runs = r["runs"][kind]
        rel = _reloads(r, kind)
        errors = [run["error"] for run in runs if "error" in run]
        if not rel:
            figures.add(f"reload one RS, SIGHUP -> kernel, {kind}, VM ({size})", float("nan"),
                        "s", errors=errors)
            continue
        walls = [_wall(x) for x in rel]
        medians[kind] = statistics.median(walls)
        figures.add(f"reload one RS, SIGHUP -> kernel, {kind}, VM, median ({size})",
                    medians[kind], "s", max_s=max(walls), all_s=walls,
                    not_seen=sum(1 for x in rel if x["s"] is None),
                    converge_s=[run.get("converge_s") for run in runs],
                    probes_in_window=[x["probes_in_window"] for x in rel],
                    log=[x["log"] for x in rel], errors=errors)
        figures.add(f"reload one RS: kernel changes, {kind}, VM ({size})",
                    max(x["kernel_changes"] for x in rel), "changes", goal="== 1",
                    all=[x["kernel_changes"] for x in rel],
                    pool_changes=[x.get("pool_changes") for x in rel])
    if len(medians) == 2:
        unseen = any(x["s"] is None for x in _reloads(r, "keepalived"))
        figures.add("reload one RS: keepalived 2.2.7 time / hafast time (VM, medians)",
                    medians["keepalived"] / medians["hafast"], "x", goal="> 1x",
                    lower_bound=unseen)


def test_reload_one_rs_side_by_side_in_the_vm(figures: Any, tmp_path: Path) -> None:
    from hafast.lab.ipvs_vm import IpvsVM, VMError
    from tests.conftest import REPO, require, require_root

    require_root()
    require(Path(KEEPALIVED).exists(), f"{KEEPALIVED} missing")
    vm = IpvsVM(checkout=REPO, memory_mb=VM_MEMORY_MB)
    try:
        vm.setup()
    except VMError as exc:
        require(False, f"IPVS VM set-up failed: {exc}")
    out = tmp_path / "reload-bench.json"
    cmd = [sys.executable, "-m", "benchmarks.test_bench_reload_vm", "--out", str(out),
           "--vs", str(VS_COUNT), "--rs", str(RS_COUNT), "--rounds", str(ROUNDS),
           "--reloads", str(RELOADS), "--budget", str(BUDGET_S)]
    res = vm.run(cmd, timeout=BUDGET_S + 600, results_dir=tmp_path, cwd=str(REPO))
    log = res.output_path.read_text(errors="replace") if res.output_path.exists() else ""
    assert out.exists(), f"the guest wrote no figures (exit {res.returncode}):\n{log[-3000:]}"
    r = json.loads(out.read_text())
    print(f"\nreload bench ({r['vs']} VS / {r['rs']} RS, inside TCG VM): {json.dumps(r)}")
    report(figures, r)
    # Behaviour, not timing: hafast changes exactly the one destination.
    rel = _reloads(r, "hafast")
    assert rel, r["runs"]["hafast"]
    for x in rel:
        assert x["s"] is not None, x
        assert x["kernel_changes"] == 1, x
        assert sum(x["pool_changes"].values()) == 1, x


if __name__ == "__main__":
    raise SystemExit(guest_main(sys.argv[1:]))
