"""Sections 1 and 2: check throughput and cost, and failure detection latency.

Both run against :class:`hafast.lab.Farm` (one nginx answering for N addresses in a
server namespace; the checkers run in the farm's director namespace) so hafast and
its peers probe the SAME servers in the same run.

Throughput (section "checks"), per checker kind and farm size, each round:

* hafast: the shipped daemon (:mod:`benchmarks.suite.daemon_run`, parent + workers)
  with ``delay_loop 1`` over every server; its checks counted on the wire like
  HAProxy's, CPU and PSS/RSS of its whole process tree from /proc;
* hafast engine alone (micro): ``benchmarks.suite.hafast_run`` (the check engine, one
  process), attempts from its own counters, RSS growth after the config was loaded;
* the C paced loop at the attempt rate hafast reached in this round (TCP_CHECK:
  connect+close; PING_CHECK: echo via sendmmsg/recvmmsg);
* HAProxy ``check inter 1s`` (TCP_CHECK: connect check; HTTP_GET: ``option
  httpchk``), one thread; its checks are counted on the wire (an nft counter of
  SYNs in the server namespace), its CPU and RSS read from /proc/PID/stat;
* wrk with ``Connection: close`` (HTTP_GET): flat out, the machine's HTTP limit;
* fping ``-c K -p 1000`` (PING_CHECK): every target once a second.

Detection (section "detection"): the hafast daemon (TCP_CHECK, ``retry 0``,
``connect_timeout 1``; DOWN read from its notify FIFO) and HAProxy (``fall 1``,
``timeout check 1s``) watch the same farm AT THE SAME TIME; a fault is put on K
random servers and the time from the fault to each checker's DOWN for that server
is recorded.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from benchmarks.suite import anchors
from benchmarks.suite.model import Section
from benchmarks.suite.stats import percentile

if TYPE_CHECKING:
    from benchmarks.suite.daemon_run import DaemonProc
    from benchmarks.suite.nftgen import Commits

ROOT = Path(__file__).resolve().parents[2]
VIP = "10.99.0.1"
COUNTER_TABLE = "hbsuite"
# The engine-in-one-process figure, kept beside the daemon's as a named micro row.
ENGINE = "hafast engine alone (micro)"

# checker kind -> its block in keepalived.conf ({digest} filled per server)
CHECK_BLOCKS: dict[str, str] = {
    "TCP_CHECK": "TCP_CHECK {{\n connect_timeout {timeout}\n retry {retry}\n }}",
    "HTTP_GET": ("HTTP_GET {{\n url {{\n path /\n digest {digest}\n }}\n"
                 " connect_timeout {timeout}\n retry {retry}\n }}"),
    "PING_CHECK": "PING_CHECK {{\n connect_timeout {timeout}\n retry {retry}\n }}",
}
# kind -> (HAProxy check type or None, C loop mode or None)
PEERS: dict[str, tuple[str | None, str | None]] = {
    "TCP_CHECK": ("tcp", "tcp"),
    "HTTP_GET": ("http", None),
    "PING_CHECK": (None, "icmp"),
}


def keepalived_conf(kind: str, addrs: Sequence[str], *, delay_loop: float = 1, retry: int = 0,
                    timeout: float = 2, port: int = 80,
                    delay_before_retry: float | None = None) -> str:
    """One virtual server holding every address as a real server with ``kind``.

    >>> "digest 6a0" in keepalived_conf("HTTP_GET", ["10.201.0.1"])
    False
    >>> keepalived_conf("TCP_CHECK", ["10.201.0.1"]).count("real_server")
    1
    """
    from hafast.lab.farm import body_for, md5_hex

    parts = [f"virtual_server {VIP} {port} {{\n delay_loop {delay_loop}\n lb_algo rr\n"
             " lb_kind NAT\n protocol TCP\n"]
    block = CHECK_BLOCKS[kind]
    for a in addrs:
        digest = md5_hex(body_for(a)) if kind == "HTTP_GET" else ""
        check = block.format(timeout=timeout, retry=retry, digest=digest)
        if delay_before_retry is not None:
            check = check.replace(f" retry {retry}\n",
                                  f" retry {retry}\n delay_before_retry {delay_before_retry}\n")
        parts.append(f" real_server {a} {port} {{\n weight 1\n {check}\n }}\n")
    parts.append("}\n")
    return "".join(parts)


# What one check of each kind puts on the wire, by the comment of its counter in
# counter_ruleset: a connection's SYN, or an echo request.
WIRE_COUNTER = {"TCP_CHECK": "syn", "HTTP_GET": "syn", "PING_CHECK": "echo"}


def counter_ruleset(table: str = COUNTER_TABLE, port: int = 80) -> str:
    """nft table counting, in the server namespace, what every checker sends:
    TCP SYNs to the service port and ICMP echo requests (before any fault rule)."""
    return f"""\
table inet {table}
delete table inet {table}
table inet {table} {{
  chain count_in {{
    type filter hook input priority -10; policy accept;
    tcp dport {port} tcp flags & (syn | ack) == syn counter comment "syn"
    icmp type echo-request counter comment "echo"
  }}
}}
"""


@dataclass
class Lab:
    """A farm of ``n`` servers plus the suite's counters; ``with Lab(n) as lab:``."""

    n: int
    workdir: Path
    farm: Any = None
    targets: Path = field(init=False)

    def __enter__(self) -> Lab:
        from hafast.lab import Farm
        from hafast.lab.netns import run_in

        self.farm = Farm(self.n, name=f"bs{os.getpid()}", workers=2)
        self.farm.build()
        try:
            run_in(self.farm.server_ns, ["nft", "-f", "-"], input=counter_ruleset())
            self.targets = self.workdir / f"targets-{self.n}.txt"
            self.targets.write_text("\n".join(self.farm.addresses) + "\n")
        except BaseException:
            self.farm.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.farm.close()

    @property
    def dir_ns(self) -> str:
        return str(self.farm.director_ns)

    def counters(self) -> dict[str, int]:
        from hafast.lab.netns import run_in

        out = run_in(self.farm.server_ns, ["nft", "-j", "list", "table", "inet", COUNTER_TABLE])
        return anchors.parse_nft_counters(out.stdout)


class Watcher(Protocol):
    """What detection reads of hafast: ``hafast_run --events`` or the daemon's FIFO."""

    def events(self) -> list[dict[str, Any]]: ...


class HafastProc:
    """``hafast_run`` in the director namespace; JSON lines read on a thread."""

    def __init__(self, ns: str, conf: Path, *, warm: float, seconds: float,
                 events: bool = False) -> None:
        argv = [sys.executable, "-m", "benchmarks.suite.hafast_run", str(conf),
                "--warm", str(warm), "--seconds", str(seconds)]
        if events:
            argv.append("--events")
        self.proc = subprocess.Popen(
            anchors.nsenter(ns, argv), cwd=ROOT, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        self.messages: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                msg = json.loads(line)
                self.messages.append(msg)
                if msg.get("ready"):
                    self.ready.set()

    def events(self) -> list[dict[str, Any]]:
        return [m for m in list(self.messages) if "event" in m]

    def result(self, timeout: float) -> dict[str, Any]:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise anchors.ToolError("hafast_run overran its time") from None
        self._reader.join(5)
        for m in self.messages:
            if "result" in m:
                return dict(m["result"])
        err = self.proc.stderr.read() if self.proc.stderr else ""
        raise anchors.ToolError(f"hafast_run gave no result: {err[-500:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, 15)  # our own child, by PID
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, 9)
                self.proc.wait(5)


@dataclass
class Params:
    sizes: Sequence[int]
    kinds: Sequence[str]
    rounds: int
    warm: float
    seconds: float
    workdir: Path
    detect_size: int = 1000
    detect_faults: Sequence[str] = ("reject",)
    detect_k: int = 20
    c_exe: Path | None = None
    log: Callable[[str], None] = field(default=lambda s: None)


def _per_1000(cpu: float, checks: float) -> float | None:
    return 1000.0 * cpu / checks if checks > 0 else None


def _hafast_round(lab: Lab, kind: str, p: Params) -> dict[str, float]:
    conf = p.workdir / f"keepalived-{kind}-{lab.n}.conf"
    if not conf.exists():
        conf.write_text(keepalived_conf(kind, lab.farm.addresses))
    proc = HafastProc(lab.dir_ns, conf, warm=p.warm, seconds=p.seconds)
    r = proc.result(timeout=p.warm + p.seconds + 120)
    return {
        "rate": r["attempts"] / r["seconds"], "ok_rate": r["ok"] / r["seconds"],
        "cpu1k": _per_1000(r["cpu"], r["attempts"]) or float("nan"),
        "rss_rs": (r["rss_kib"] - r["base_rss_kib"]) / lab.n, "rss_total_rs": r["rss_kib"] / lab.n,
    }


def _daemon_round(lab: Lab, kind: str, p: Params) -> dict[str, float]:
    """The shipped daemon: checks counted as SYNs on the wire (as HAProxy's), CPU and
    PSS of the whole process tree from /proc (parent + every worker)."""
    from benchmarks.suite.daemon_run import DaemonProc

    d = DaemonProc(lab.dir_ns, keepalived_conf(kind, lab.farm.addresses),
                   Path(tempfile.mkdtemp(prefix="hbs-hafast-", dir=p.workdir)))
    wire = WIRE_COUNTER[kind]
    try:
        d.wait_ready(60)
        time.sleep(p.warm)
        c0, s0, t0 = lab.counters().get(wire, 0), d.sample(), time.monotonic()
        time.sleep(p.seconds)
        c1, s1, t1 = lab.counters().get(wire, 0), d.sample(), time.monotonic()
        up = d.up_count()
    finally:
        d.stop()
    checks = c1 - c0
    return {"rate": checks / (t1 - t0), "ok_rate": checks / (t1 - t0) * up / lab.n,
            "cpu1k": _per_1000(s1["cpu"] - s0["cpu"], checks) or float("nan"),
            "rss_total_rs": s1["rss_kib"] / lab.n, "pss_total_rs": s1["pss_kib"] / lab.n,
            "procs": s1["procs"]}


def _haproxy_round(lab: Lab, kind: str, p: Params) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="hbs-haproxy-", dir=p.workdir) as tmp:
        hp = anchors.Haproxy(lab.dir_ns, Path(tmp),
                             anchors.haproxy_config(Path(tmp), lab.farm.addresses, kind))
        hp.start()
        try:
            time.sleep(p.warm)
            c0, s0, t0 = lab.counters().get("syn", 0), anchors.proc_stat(hp.pid), time.monotonic()
            time.sleep(p.seconds)
            c1, s1, t1 = lab.counters().get("syn", 0), anchors.proc_stat(hp.pid), time.monotonic()
            up = hp.servers()["up"]
        finally:
            hp.stop()
    checks = c1 - c0
    return {"rate": checks / (t1 - t0), "ok_rate": checks / (t1 - t0) * up / lab.n,
            "cpu1k": _per_1000(s1["cpu"] - s0["cpu"], checks) or float("nan"),
            "rss_total_rs": s1["rss_kib"] / lab.n}


def _c_round(lab: Lab, mode: str, rate: float, p: Params) -> dict[str, float]:
    assert p.c_exe is not None
    r = anchors.run_paced(lab.dir_ns, p.c_exe, mode, lab.targets, rate, p.seconds)
    return {"rate": r["sent"] / r["seconds"], "ok_rate": r["ok"] / r["seconds"],
            "cpu1k": _per_1000(r["cpu"], r["sent"]) or float("nan")}


def _wrk_round(lab: Lab, p: Params) -> dict[str, float]:
    r = anchors.run_wrk(lab.dir_ns, f"http://{lab.farm.addresses[0]}/", max(int(p.seconds), 1))
    return {"rate": r["rate"], "ok_rate": r["rate"] * (1 - r["non2xx"] / max(r["requests"], 1)),
            "cpu1k": _per_1000(r["cpu"], r["requests"]) or float("nan")}


def _fping_round(lab: Lab, p: Params) -> dict[str, float]:
    r = anchors.run_fping(lab.dir_ns, lab.targets, max(int(p.seconds), 1))
    return {"rate": r["sent"] / r["seconds"], "ok_rate": r["ok"] / r["seconds"],
            "cpu1k": _per_1000(r["cpu"], r["sent"]) or float("nan")}


def _record(sec: Section, kind: str, n: int, i: int, who: str, got: dict[str, float]) -> None:
    case = f"{kind} {n}"
    table = (("rate", "checks/s", "/s", "higher"),
             ("ok_rate", "successful checks/s", "/s", "higher"),
             ("cpu1k", "CPU per 1000 checks", "ms", "lower"),
             ("rss_rs", "RSS growth per real server", "KiB", "lower"),
             ("rss_total_rs", "whole RSS / real servers", "KiB", "lower"),
             ("pss_total_rs", "whole PSS / real servers", "KiB", "lower"),
             ("procs", "processes measured", "", "lower"))
    for key, metric, unit, better in table:
        if key in got:
            value = got[key] * (1000.0 if key == "cpu1k" else 1.0)
            sec.row(case, metric, unit, better, group=kind, n=n).add(i, who, value)


Step = Callable[[str], contextlib.AbstractContextManager[None]]


def run_checks(p: Params, step: Step) -> Section:
    """Section 1: every (size, kind), ``p.rounds`` rounds, peers interleaved per round."""
    sec = Section("checks", "Check throughput and cost (delay_loop 1)")
    sec.notes.append(
        "hafast: the shipped daemon (`hafast -f CONF -n -l --pool-backend nft`, parent + "
        "every worker, default check workers), its checks counted as SYNs on the wire like "
        "HAProxy's, CPU (utime+stime) and PSS/RSS summed over its whole process tree from "
        "/proc. 'hafast engine alone (micro)' is the check engine in one process "
        "(benchmarks.suite.hafast_run, attempts from its own counters): a micro figure, "
        "not what ships. HAProxy: nbthread 1; the C loop is "
        "paced to the attempt rate the daemon reached in the same round. CPU per 1000 checks "
        "and RSS: lower is better, so a ratio below 1 favours hafast. HAProxy's checks "
        "are counted as SYNs on the wire; it cannot check an MD5 digest (HTTP_GET: status "
        "only). wrk runs flat out (fresh connection per request): its rate is the "
        "machine's HTTP limit, not a delay_loop 1 workload. With N real servers at "
        "delay_loop 1, N checks/s are due: a checks/s figure below N means that checker "
        "fell behind.")
    t0 = time.monotonic()
    for n in p.sizes:
        with Lab(n, p.workdir) as lab:
            for kind in p.kinds:
                hp_kind, c_mode = PEERS[kind]
                for i in range(p.rounds):
                    with step(f"checks {kind} {n} round {i + 1}/{p.rounds}"):
                        got = _guard(p, f"hafast {kind} {n}", _daemon_round, lab, kind, p)
                        if got:
                            _record(sec, kind, n, i, "hafast", got)
                        eng = _guard(p, f"hafast engine {kind} {n}", _hafast_round, lab, kind, p)
                        if eng:
                            _record(sec, kind, n, i, ENGINE, eng)
                        rate = got["rate"] if got else float(n)
                        if c_mode and p.c_exe is not None:
                            c = _guard(p, f"C loop {kind} {n}", _c_round, lab, c_mode, rate, p)
                            if c:
                                _record(sec, kind, n, i, "C paced loop", c)
                        if hp_kind:
                            h = _guard(p, f"HAProxy {kind} {n}", _haproxy_round, lab, hp_kind, p)
                            if h:
                                _record(sec, kind, n, i, "HAProxy", h)
                        if kind == "HTTP_GET":
                            w = _guard(p, f"wrk {n}", _wrk_round, lab, p)
                            if w:
                                _record(sec, kind, n, i, "wrk (flat out)", w)
                        if kind == "PING_CHECK":
                            f = _guard(p, f"fping {n}", _fping_round, lab, p)
                            if f:
                                _record(sec, kind, n, i, "fping", f)
    sec.notes.append(
        "keepalived 2.2.7's checkers need IPVS, which this kernel lacks: they are compared "
        "with hafast in the IPVS VM section (one boot, both peers).")
    sec.seconds = time.monotonic() - t0
    return sec


# -- scale: the daemon's memory as the farm grows (issue 16) ------------------------------


# The scale section's farm, as issue 16 sets it: TCP_CHECK delay_loop 1,
# connect_timeout 1, retry 1, delay_before_retry 0.2.  A server that rejects is
# seen at its next check (within delay_loop) and once more after the retry delay.
SCALE_DELAY_LOOP, SCALE_TIMEOUT, SCALE_RETRY, SCALE_DBR = 1, 1, 1, 0.2
SCALE_BOUND_MS = 1000 * (SCALE_DELAY_LOOP + SCALE_RETRY * SCALE_DBR)
SCALE_FAULT_ROUNDS = 3
STATUS_RUNS = 5


def _status_ms(ctl: str, *args: str) -> float:
    """``hafast status`` as an operator runs it: a fresh process, wall time."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hafast", "status", "--socket", ctl, *args],
                   cwd=ROOT, capture_output=True, timeout=60, check=True)
    return (time.perf_counter() - t0) * 1000.0


def _scale_round(lab: Lab, p: Params, probe: bool) -> dict[str, Any]:
    """The shipped daemon's PSS, whole tree and per process, once its checks run;
    with ``probe``, then also: a 1 % reject fault (fault -> DOWN from the notify FIFO,
    DOWN -> the kernel's next nftables commit), the largest shard's engine lag over
    those rounds, and ``hafast status`` (table and ``--json``) timed from the shell."""
    from benchmarks.suite.daemon_run import DaemonProc, process_tree, smaps_rollup
    from benchmarks.suite.nftgen import Commits

    conf = keepalived_conf("TCP_CHECK", lab.farm.addresses, delay_loop=SCALE_DELAY_LOOP,
                           timeout=SCALE_TIMEOUT, retry=SCALE_RETRY,
                           delay_before_retry=SCALE_DBR)
    d = DaemonProc(lab.dir_ns, conf, Path(tempfile.mkdtemp(prefix="hbs-scale-", dir=p.workdir)))
    commits: Commits | None = None
    try:
        d.wait_ready(120)
        time.sleep(max(p.warm + p.seconds, 5.0))  # a few rounds of checks
        pss = {pid: smaps_rollup(pid)["pss_kib"] for pid in process_tree(d.pid)}
        workers = [v for pid, v in pss.items() if pid != d.pid]
        out: dict[str, Any] = {
            "total": float(sum(pss.values())), "parent": float(pss.get(d.pid, 0)),
            "worker_max": float(max(workers, default=0)), "procs": float(len(pss))}
        if probe:
            commits = Commits(lab.dir_ns)
            out.update(_scale_probe(lab, d, commits))
        return out
    finally:
        if commits is not None:
            commits.stop()
        d.stop()


def _scale_probe(lab: Lab, d: DaemonProc, commits: Commits) -> dict[str, Any]:
    """:func:`_scale_round`'s probe of the running daemon ``d``: three rounds of 1 %
    rejecting, then ``hafast status``."""
    from benchmarks.suite.daemon_run import verdicts

    rng = random.Random(lab.n)
    k = max(1, lab.n // 100)
    detect: list[float] = []
    kernel: list[float] = []
    from_verdict: list[float] = []  # the check worker's own verdict line -> the kernel
    d.status()  # the engines' lag maxima start from here
    for _ in range(SCALE_FAULT_ROUNDS):
        victims = rng.sample(lab.farm.addresses, k)
        seen = len(d.events())
        t_fault = time.time()
        lab.farm.faults.apply(victims, "reject")
        _wait(lambda v=victims, s=seen: len(_transitions(d, s, "DOWN", v)) == k,  # type: ignore[misc]
              3 * SCALE_BOUND_MS / 1000 + 3)
        time.sleep(0.5)  # the last commit is in
        got = _transitions(d, seen, "DOWN", victims)
        detect += [(t - t_fault) * 1000.0 for t in got.values()]
        kernel += [x * 1000.0 for x in commits.lags(list(got.values()), time.time())]
        first: dict[str, float] = {}
        for t, addr in verdicts(d.log.read_text(errors="replace")):
            if addr in got and t >= t_fault and addr not in first:
                first[addr] = t
        until = time.time()
        for addr, t_verdict in first.items():
            # the commit is the one after the parent's DOWN line, as above (the first
            # after the verdict could be an earlier server's); the hop is added to it
            after = commits.lags([got[addr]], until)
            if after:
                from_verdict.append((after[0] + got[addr] - t_verdict) * 1000.0)
        lab.farm.faults.recover(victims)
        _wait(lambda v=victims, s=seen: len(_transitions(d, s, "UP", v)) == k,  # type: ignore[misc]
              10)
    lag = max((w["lag"]["max"] for w in d.status().get("checkers", ())), default=0.0)
    return {"detect": detect, "kernel": kernel, "verdict": from_verdict,
            "victims": k * SCALE_FAULT_ROUNDS,
            "engine_lag_ms": lag * 1000.0,
            "status_ms": sorted(_status_ms(d.ctl) for _ in range(STATUS_RUNS)),
            "json_ms": sorted(_status_ms(d.ctl, "--json") for _ in range(STATUS_RUNS))}


def run_scale(p: Params, sizes: Sequence[int], step: Step) -> Section:
    """The shipped daemon at each size (TCP_CHECK, nft backend): its PSS and the
    growth per real server from the smallest size to each larger one, per round; at
    each larger size, detection, the verdict's way to the kernel and the status."""
    sec = Section("scale", "The shipped daemon as the farm grows (TCP_CHECK)")
    sec.notes.append(
        "`hafast -f CONF -n -l --pool-backend nft` (parent + every worker, default check "
        "workers) on a farm of N servers, TCP_CHECK delay_loop 1, connect_timeout 1, "
        "retry 1, delay_before_retry 0.2; PSS from /proc/PID/smaps_rollup summed over "
        "the whole process tree once the checks have run a few seconds. Growth per real "
        "server: (PSS at N - PSS at the smallest N) / (N - smallest N), paired per round. "
        f"Then, at each larger N, {SCALE_FAULT_ROUNDS} rounds of 1 % of the servers "
        "rejecting: fault -> DOWN is the 'RS ... DOWN' line of the notify FIFO, stamped "
        "when read by a probe process at real-time priority (benchmarks/suite/stamps.py; "
        "the bound is delay_loop + retry x delay_before_retry = "
        f"{SCALE_BOUND_MS:.0f} ms); DOWN -> kernel is from that line to the next "
        "nftables commit the kernel announces (NFT_MSG_NEWGEN on NFNLGRP_NFTABLES, "
        "benchmarks/suite/nftgen.py, same clock, also at real-time priority); checker "
        "verdict -> kernel adds the worker -> parent hop before it: from the check "
        "worker's own 'checker DOWN' line in the daemon's -l log (stamped in whole ms, "
        "taken at the middle of its ms: +-0.5 ms) to the FIFO line, for the DOWNs whose "
        "line the workers' log limit (20 lines a second each) let through, the first of "
        "each second; engine lag "
        "is the largest shard's worst timer lateness over those rounds; `hafast status` "
        "is timed from the shell, a fresh process each time (median of "
        f"{STATUS_RUNS}). keepalived's checkers need IPVS (not on this kernel): no peer "
        "here.")
    t0 = time.monotonic()
    base = min(sizes)
    got: dict[int, list[dict[str, Any] | None]] = {}
    for n in sizes:
        with Lab(n, p.workdir) as lab:
            got[n] = []
            for i in range(p.rounds):
                with step(f"scale {n} round {i + 1}/{p.rounds}"):
                    r = _guard(p, f"hafast at scale {n}", _scale_round, lab, p, n != base)
                got[n].append(r)
                if r is None:
                    continue
                _scale_rows(sec, n, i, r)
    for n in sizes:
        if n == base:
            continue
        for i, (lo, hi) in enumerate(zip(got[base], got[n], strict=True)):
            if lo is not None and hi is not None:
                sec.row(f"TCP_CHECK {base} -> {n}", "PSS growth per real server", "KiB",
                        "lower", group="TCP_CHECK", n=n).add(
                    i, "hafast", (hi["total"] - lo["total"]) / (n - base))
    sec.seconds = time.monotonic() - t0
    return sec


def _scale_rows(sec: Section, n: int, i: int, r: dict[str, Any]) -> None:
    case = f"TCP_CHECK {n}"
    sec.row(case, "whole-tree PSS", "MiB", "lower", group="TCP_CHECK",
            n=n).add(i, "hafast", r["total"] / 1024)
    sec.row(case, "parent PSS", "MiB", "lower", group="TCP_CHECK",
            n=n).add(i, "hafast", r["parent"] / 1024)
    sec.row(case, "largest worker PSS", "MiB", "lower", group="TCP_CHECK",
            n=n).add(i, "hafast", r["worker_max"] / 1024)
    if "detect" not in r:
        return
    fault = f"TCP_CHECK {n}, {r['victims'] // SCALE_FAULT_ROUNDS} rejecting"
    for label, values in (("fault -> checker DOWN", r["detect"]),
                          ("checker DOWN -> kernel", r["kernel"]),
                          ("checker verdict -> kernel", r["verdict"])):
        sec.samples.setdefault(f"{label}, {n} servers (ms)", {}).setdefault(
            "hafast", []).extend(values)
        for q in (50, 99):
            sec.row(fault, f"{label} p{q}", "ms", "lower", group="TCP_CHECK", n=n).add(
                i, "hafast", percentile(values, q) if values else None)
    sec.row(fault, "servers seen DOWN", "", "higher", group="TCP_CHECK", n=n).add(
        i, "hafast", float(len(r["detect"])))
    sec.row(fault, "engine lag, largest shard", "ms", "lower", group="TCP_CHECK", n=n).add(
        i, "hafast", r["engine_lag_ms"])
    for label, key in (("hafast status", "status_ms"), ("hafast status --json", "json_ms")):
        values = r[key]
        sec.row(case, f"{label} wall (median)", "ms", "lower", group="TCP_CHECK", n=n).add(
            i, "hafast", values[len(values) // 2])


def _guard(p: Params, what: str, fn: Callable[..., dict[str, float]],
           *args: Any) -> dict[str, float] | None:
    """Run one peer's measurement; a peer that fails is logged and left out of
    that round (its cells show fewer rounds), never replaced by a made-up value."""
    try:
        return fn(*args)
    except Exception as exc:  # any peer failure is reported, not fatal
        p.log(f"{what}: not measured this round: {exc}")
        return None


# -- detection ---------------------------------------------------------------------------


def _wait(cond: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def _transitions(w: Watcher, since: int, event: str, addrs: Sequence[str]) -> dict[str, float]:
    """When ``w`` said ``event`` ("DOWN", "UP") for each of ``addrs``, from its
    ``since``-th event on (the last time, for one said twice)."""
    want = set(addrs)
    return {e["addr"]: e["t"] for e in w.events()[since:]
            if e["event"] == event and e["addr"] in want}


def detection_round(lab: Lab, hafast: Watcher, hp: anchors.Haproxy, fault: str,
                    victims: Sequence[str], limit: float) -> dict[str, list[float]]:
    """Fault on ``victims`` now; seconds until each checker said DOWN for each.

    Both checkers watch the same servers at once, so they see the same fault at the
    same instant.  Servers not declared DOWN within ``limit`` seconds count as
    missing (left out, and reported as a count)."""
    index = {a: f"s{i}" for i, a in enumerate(lab.farm.addresses)}
    names = {index[a]: a for a in victims}
    h_seen = len(hafast.events())
    p_seen = len(hp.state_changes())
    t_fault = time.time()
    lab.farm.faults.apply(victims, fault)

    def downs() -> tuple[dict[str, float], dict[str, float]]:
        h = _transitions(hafast, h_seen, "DOWN", victims)
        p = {names[s]: t for t, s, state in hp.state_changes()[p_seen:]
             if state == "DOWN" and s in names}
        return h, p

    _wait(lambda: all(len(d) == len(victims) for d in downs()), limit)
    h, p = downs()
    lab.farm.faults.recover(victims)
    # Both must see every victim UP again before the next round's fault.
    _wait(lambda: _all_up(lab, hafast, hp, victims, h_seen, p_seen, names), limit + 3)
    return {"hafast": [h[a] - t_fault for a in victims if a in h],
            "HAProxy": [p[a] - t_fault for a in victims if a in p]}


def _all_up(lab: Lab, hafast: Watcher, hp: anchors.Haproxy, victims: Sequence[str],
            h_seen: int, p_seen: int, names: dict[str, str]) -> bool:
    h_up = set(_transitions(hafast, h_seen, "UP", victims))
    p_up = {names[s] for _, s, state in hp.state_changes()[p_seen:]
            if state == "UP" and s in names}
    return set(victims) <= h_up and set(victims) <= p_up


def run_detection(p: Params, step: Step) -> Section:
    """Section 2: fault -> DOWN latency, hafast and HAProxy side by side."""
    sec = Section("detection", "Failure detection latency (fault -> DOWN)",
                  sample_label="ms from fault to DOWN")
    sec.notes.append(
        f"{p.detect_k} random servers of {p.detect_size} faulted per round; hafast TCP_CHECK "
        "(delay_loop 1, retry 0, connect_timeout 1) and HAProxy (check inter 1s fall 1, "
        "timeout check 1s) watch the same farm at the same time. 'reject' answers SYNs "
        "with RST; 'drop' loses them (detection waits for the connect timeout). "
        "hafast is the shipped daemon (parent + workers, nft pool backend); its DOWN is "
        "the 'RS ... DOWN' line of its notify FIFO, stamped when a probe process of the "
        "suite at real-time priority reads it. "
        "keepalived's checkers need IPVS (the host kernel has none): its fault -> removal "
        "from the IPVS table is measured against hafast's in the IPVS VM section.")
    from benchmarks.suite.daemon_run import DaemonProc

    t0 = time.monotonic()
    rng = random.Random(1)
    with Lab(p.detect_size, p.workdir) as lab:
        conf = p.workdir / f"keepalived-detect-{lab.n}.conf"
        conf.write_text(keepalived_conf("TCP_CHECK", lab.farm.addresses, timeout=1))
        hdir = Path(tempfile.mkdtemp(prefix="hbs-haproxy-", dir=p.workdir))
        hp = anchors.Haproxy(lab.dir_ns, hdir, anchors.haproxy_config(
            hdir, lab.farm.addresses, "tcp", timeout_ms=1000))
        hafast = DaemonProc(lab.dir_ns, conf.read_text(),
                            Path(tempfile.mkdtemp(prefix="hbs-hafast-", dir=p.workdir)))
        try:
            hp.start()
            hafast.wait_ready(60)
            time.sleep(2.5)  # every check ran at least once, both sides
            for fault in p.detect_faults:
                for i in range(p.rounds):
                    with step(f"detection {fault} round {i + 1}/{p.rounds}"):
                        victims = rng.sample(lab.farm.addresses, p.detect_k)
                        got = detection_round(lab, hafast, hp, fault, victims, 6.0)
                        for who, lat in got.items():
                            ms = [x * 1000.0 for x in lat]
                            sec.samples.setdefault(f"fault {fault}", {}).setdefault(
                                who, []).extend(ms)
                            case = f"{fault} ({p.detect_k} of {lab.n})"
                            for metric, q in (("p50", 50), ("p99", 99)):
                                sec.row(case, f"{metric} latency", "ms", "lower").add(
                                    i, who if who == "hafast" else "HAProxy",
                                    percentile(ms, q) if ms else None)
                            sec.row(case, "servers seen DOWN", "", "higher").add(
                                i, who, float(len(ms)))
        finally:
            hafast.stop()
            hp.stop()
    sec.seconds = time.monotonic() - t0
    return sec


@contextlib.contextmanager
def no_step(label: str) -> Iterator[None]:
    yield
