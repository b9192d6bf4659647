"""The peers hafast is measured against: running them and reading what they say.

Parsers are pure functions of a tool's text (unit-tested with canned outputs in
tests/unit/bench); runners start the tool inside a namespace the suite made,
bounded in time, and return plain dicts.

==================  ===============================================================
anchor              what it stands for
==================  ===============================================================
C paced loop        ``c/paced_loop.c``: the bare syscalls of a TCP connect check or an
                    ICMP echo (sendmmsg/recvmmsg), at the rate hafast runs at
wrk                 ``wrk -H 'Connection: close'``: HTTP with a fresh connection per
                    request, flat out (the machine's HTTP limit)
fping               ``fping -c K -p 1000``: every target once a second, as PING_CHECK
HAProxy             ``check inter 1s`` (``option httpchk`` for HTTP_GET) on the same
                    servers, one thread; checks counted on the wire, CPU from /proc
openssl speed       ``openssl speed -evp md5``: the md5stream anchor
==================  ===============================================================
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PACED_SOURCE = HERE / "c" / "paced_loop.c"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


class ToolError(RuntimeError):
    """A peer could not run or said something we cannot read."""


# -- parsers ------------------------------------------------------------------------------


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def parse_wrk(text: str) -> dict[str, float]:
    """wrk's summary: ``requests``, ``seconds``, ``rate`` (Requests/sec), socket
    ``errors`` (connect+read+write+timeout) and ``non2xx``.

    >>> parse_wrk("  5 requests in 1.00s, 1KB read\\nRequests/sec:      5.00\\n")["rate"]
    5.0
    """
    rate = re.search(r"Requests/sec:\s+([\d.,]+)", text)
    total = re.search(r"(\d+) requests in ([\d.]+)(m?s)", text)
    if rate is None or total is None:
        raise ToolError(f"wrk said nothing readable: {text[-300:]!r}")
    seconds = float(total.group(2)) / (1000.0 if total.group(3) == "ms" else 1.0)
    errors = 0.0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sock:
        errors = float(sum(int(g) for g in sock.groups()))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {"rate": _num(rate.group(1)), "requests": float(total.group(1)), "seconds": seconds,
            "errors": errors, "non2xx": float(non2xx.group(1)) if non2xx else 0.0}


_FPING = re.compile(r"^(\S+)\s*:\s*xmt/rcv/%loss = (\d+)/(\d+)/")


def parse_fping_summary(text: str) -> dict[str, int]:
    """fping ``-q -c`` per-target summaries summed: ``targets``, ``sent``, ``received``.

    >>> parse_fping_summary("10.0.0.1 : xmt/rcv/%loss = 3/2/33%, min/avg/max = 1/1/1\\n")
    {'targets': 1, 'sent': 3, 'received': 2}
    """
    targets = sent = received = 0
    for line in text.splitlines():
        m = _FPING.match(line.strip())
        if m:
            targets += 1
            sent += int(m.group(2))
            received += int(m.group(3))
    return {"targets": targets, "sent": sent, "received": received}


def parse_haproxy_stat(text: str) -> list[dict[str, str]]:
    """``show stat`` CSV (header line starts with ``# ``) -> one dict per row.

    >>> parse_haproxy_stat("# pxname,svname,status\\nfarm,s1,UP\\n")[0]["status"]
    'UP'
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("# "):
        raise ToolError(f"not a HAProxy stat CSV: {text[:120]!r}")
    lines[0] = lines[0][2:]
    return list(csv.DictReader(io.StringIO("\n".join(lines))))


def haproxy_servers(rows: Sequence[dict[str, str]], backend: str) -> dict[str, int]:
    """Of ``backend``'s servers: how many are ``up``, ``down``, and their ``chkfail`` sum.

    >>> rows = [{"pxname": "farm", "svname": "s1", "status": "UP", "chkfail": "0"},
    ...         {"pxname": "farm", "svname": "s2", "status": "DOWN", "chkfail": "3"},
    ...         {"pxname": "farm", "svname": "BACKEND", "status": "UP", "chkfail": ""}]
    >>> haproxy_servers(rows, "farm")
    {'servers': 2, 'up': 1, 'down': 1, 'chkfail': 3}
    """
    out = {"servers": 0, "up": 0, "down": 0, "chkfail": 0}
    for row in rows:
        if row.get("pxname") != backend or row.get("svname") in ("BACKEND", "FRONTEND"):
            continue
        out["servers"] += 1
        status = row.get("status", "")
        if status.startswith("UP"):
            out["up"] += 1
        elif status.startswith("DOWN"):
            out["down"] += 1
        out["chkfail"] += int(row.get("chkfail") or 0)
    return out


_HAPROXY_STATE = re.compile(r"Server (\S+?)/(\S+) is (UP|DOWN)\b")


def parse_haproxy_state_line(line: str) -> tuple[str, str, str] | None:
    """``(backend, server, "UP"|"DOWN")`` from a HAProxy state-change log line.

    >>> parse_haproxy_state_line("[WARNING]  (12) : Server farm/s7 is DOWN, reason: Layer4")
    ('farm', 's7', 'DOWN')
    """
    m = _HAPROXY_STATE.search(line)
    return (m.group(1), m.group(2), m.group(3)) if m else None


def parse_openssl_speed(text: str, algorithm: str = "md5") -> dict[int, float]:
    """``openssl speed`` table -> ``{block size: bytes per second}`` for ``algorithm``.

    The numbers are in 1000s of bytes per second (the ``k`` suffix).

    >>> parse_openssl_speed("type 16384 bytes\\nmd5   846365.08k\\n")
    {16384: 846365080.0}
    """
    sizes: list[int] = []
    for line in text.splitlines():
        if line.startswith("type"):
            sizes = [int(s) for s in re.findall(r"(\d+) bytes", line)]
        elif line.split(None, 1)[:1] == [algorithm] and sizes:
            values = re.findall(r"([\d.]+)k", line)
            return {size: float(v) * 1000.0 for size, v in zip(sizes, values, strict=False)}
    raise ToolError(f"no {algorithm} line in openssl speed output: {text[-200:]!r}")


def parse_proc_stat(text: str) -> dict[str, float]:
    """``/proc/PID/stat`` -> ``cpu`` (user+sys seconds, children not included) and
    ``rss_kib``.  The command name may hold spaces and parentheses: fields are
    counted after its LAST ``)`` (proc(5): utime is field 14, rss field 24).

    >>> line = "42 (a) b) S " + " ".join(["0"] * 10) + " 250 50 " + " ".join(["0"] * 8) + " 100"
    >>> parse_proc_stat(line)["cpu"] == 300 / CLK_TCK
    True
    """
    after = text[text.rindex(")") + 2:].split()
    # after[0] is field 3 (state): field k sits at after[k - 3]
    utime, stime, rss = int(after[11]), int(after[12]), int(after[21])
    return {"cpu": (utime + stime) / CLK_TCK, "rss_kib": float(rss * PAGE_KIB)}


def parse_paced(text: str) -> dict[str, float]:
    """``paced_loop``'s one line -> dict (seconds and CPU in seconds).

    >>> parse_paced("sent=10 ok=9 fail=1 elapsed_ns=2000000000 cpu_ns=1000000")["cpu"]
    0.001
    """
    fields = dict(re.findall(r"(\w+)=(\d+)", text))
    if "sent" not in fields:
        raise ToolError(f"paced_loop said: {text!r}")
    return {"sent": float(fields["sent"]), "ok": float(fields["ok"]),
            "fail": float(fields["fail"]), "seconds": int(fields["elapsed_ns"]) / 1e9,
            "cpu": int(fields["cpu_ns"]) / 1e9}


def parse_nft_counters(text: str) -> dict[str, int]:
    """``nft -j list table ...`` -> ``{rule comment: packets}``.

    >>> doc = {"nftables": [{"rule": {"comment": "syn", "expr": [
    ...     {"counter": {"packets": 7, "bytes": 420}}]}}]}
    >>> parse_nft_counters(json.dumps(doc))
    {'syn': 7}
    """
    out: dict[str, int] = {}
    for item in json.loads(text).get("nftables", []):
        rule = item.get("rule")
        if not rule or "comment" not in rule:
            continue
        for expr in rule.get("expr", []):
            if "counter" in expr:
                out[rule["comment"]] = int(expr["counter"]["packets"])
    return out


# -- runners ------------------------------------------------------------------------------


def nsenter(ns: str | None, argv: Sequence[str]) -> list[str]:
    if ns is None:
        return list(argv)
    return ["nsenter", f"--net=/run/netns/{ns}", "--", *argv]


def children_cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def build_c(source: Path, out_dir: Path) -> Path:
    """Compile ``source`` with gcc -O2 into ``out_dir`` (once per run)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise ToolError("gcc is needed to build the C anchors")
    exe = out_dir / source.stem
    # generous: a loaded, swapping machine has taken over 2 minutes for this file
    subprocess.run([gcc, "-O2", "-o", str(exe), str(source)], check=True, timeout=600,
                   capture_output=True)
    return exe


def run_paced(ns: str, exe: Path, mode: str, targets: Path, rate: float,
              seconds: float, port: int = 80) -> dict[str, float]:
    """The C paced loop for ``seconds`` at ``rate`` probes/s; its own CPU figure."""
    out = subprocess.run(
        nsenter(ns, [str(exe), mode, str(targets), f"{rate:.3f}", f"{seconds:.3f}", str(port)]),
        capture_output=True, text=True, timeout=seconds + 30, check=False,
    )
    if out.returncode != 0:
        raise ToolError(f"paced_loop {mode}: {out.stderr.strip()}")
    return parse_paced(out.stdout)


def run_wrk(ns: str, url: str, seconds: int, connections: int = 64) -> dict[str, float]:
    """wrk with a fresh connection per request; adds ``cpu`` (its user+sys seconds)."""
    cpu0 = children_cpu()
    out = subprocess.run(
        nsenter(ns, ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
                     "-H", "Connection: close", url]),
        capture_output=True, text=True, timeout=seconds + 30, check=False,
    )
    result = parse_wrk(out.stdout)
    result["cpu"] = children_cpu() - cpu0
    return result


# fping 5.1 keeps 65535 sequence numbers and refuses to reuse one sent less than 10 s
# ago (seqmap.c): one process walking N targets a second runs out after 65535/N s, so
# a farm is split so that each fping owns at most 6000 targets (about 11 s of numbers).
FPING_MAX_TARGETS = 6000


def fping_chunks(targets: list[str], limit: int = FPING_MAX_TARGETS) -> list[list[str]]:
    """``targets`` split into the fewest near-equal chunks of at most ``limit``.

    >>> [len(c) for c in fping_chunks([str(i) for i in range(16384)])]
    [5462, 5461, 5461]
    >>> fping_chunks(["a", "b"])
    [['a', 'b']]
    """
    parts = max(1, -(-len(targets) // limit))
    return [targets[i::parts] for i in range(parts)]


def run_fping(ns: str | None, targets: Path, count: int,
              period_ms: float = 1000.0) -> dict[str, float]:
    """fping walking every target once per ``period_ms``, ``count`` times, spacing
    sends evenly over the period (``-i``), as a checker with delay_loop 1 would; one
    fping per :func:`fping_chunks` chunk, all at once (their ICMP ids differ)."""
    hosts = [ln.strip() for ln in targets.read_text().splitlines() if ln.strip()]
    chunks = fping_chunks(hosts, FPING_MAX_TARGETS)
    files = []
    for i, chunk in enumerate(chunks):
        f = targets if len(chunks) == 1 else targets.with_name(f"{targets.stem}.fping{i}.txt")
        if len(chunks) > 1:
            f.write_text("\n".join(chunk) + "\n")
        files.append((f, len(chunk)))
    cpu0, t0 = children_cpu(), time.monotonic()
    procs = []
    for f, n in files:
        interval = max(period_ms / max(n, 1) * 0.9, 0.01)
        procs.append(subprocess.Popen(
            nsenter(ns, ["fping", "-q", "-c", str(count), "-p", f"{period_ms:g}",
                         "-i", f"{interval:.3f}", "-t", "500", "-f", str(f)]),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True))
    text = ""
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=count * period_ms / 1000 + 60)
            text += err + out
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()  # our own child, by PID
                proc.wait(5)
    wall = time.monotonic() - t0
    summary = parse_fping_summary(text)
    if not summary["targets"]:
        raise ToolError(f"fping said: {text[-300:]!r}")
    return {"sent": float(summary["sent"]), "ok": float(summary["received"]),
            "seconds": wall, "cpu": children_cpu() - cpu0}


def openssl_md5_speed(seconds: int = 1, block: int = 16384) -> float:
    """OpenSSL's own MD5 speed in bytes/s for ``block``-byte buffers."""
    out = subprocess.run(
        ["openssl", "speed", "-evp", "md5", "-bytes", str(block), "-seconds", str(seconds)],
        capture_output=True, text=True, timeout=seconds * 4 + 30, check=True,
    )
    return parse_openssl_speed(out.stdout)[block]


def proc_stat(pid: int) -> dict[str, float]:
    return parse_proc_stat(Path(f"/proc/{pid}/stat").read_text())


# -- HAProxy ------------------------------------------------------------------------------


def haproxy_config(workdir: Path, addrs: Sequence[str], kind: str, *, port: int = 80,
                   inter_ms: int = 1000, fall: int = 1, rise: int = 1,
                   timeout_ms: int = 2000) -> str:
    """A backend of every address with ``check inter 1s``; nothing is proxied.

    ``kind`` is ``tcp`` (a connect check, like TCP_CHECK) or ``http`` (``GET /``
    expecting 200, like HTTP_GET without the digest HAProxy cannot check).
    One thread, so it is compared with one hafast worker.
    """
    check = ("  option httpchk GET / HTTP/1.0\n  http-check expect status 200\n"
             if kind == "http" else "")
    servers = "\n".join(f"  server s{i} {a}:{port}" for i, a in enumerate(addrs))
    return f"""\
# hafast benchmark suite: generated, do not edit
global
  nbthread 1
  maxconn 1024
  pidfile {workdir}/haproxy.pid
  stats socket {workdir}/haproxy.sock mode 600 level admin
  log stdout format raw local0 info
defaults
  mode {"http" if kind == "http" else "tcp"}
  log global
  timeout connect {timeout_ms}ms
  timeout check {timeout_ms}ms
  timeout client 5s
  timeout server 5s
backend farm
  default-server check inter {inter_ms} fall {fall} rise {rise}
{check}{servers}
"""


# HAProxy sizes its descriptor table from maxconn AND the server count (a check
# socket per server) and refuses to start when the hard limit is lower.
HAPROXY_NOFILE = 262144


def _raise_fd_limit() -> None:
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (HAPROXY_NOFILE, HAPROXY_NOFILE))


@dataclass
class Haproxy:
    """HAProxy running in namespace ``ns`` from ``workdir``; lines it prints are
    kept with the wall-clock time they arrived (state changes for detection)."""

    ns: str
    workdir: Path
    config: str
    proc: subprocess.Popen[str] | None = None
    lines: list[tuple[float, str]] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Haproxy:
        exe = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(exe).exists():
            raise ToolError("haproxy is not installed (apt-get install haproxy)")
        conf = self.workdir / "haproxy.cfg"
        conf.write_text(self.config)
        self.proc = subprocess.Popen(
            nsenter(self.ns, [exe, "-db", "-f", str(conf)]), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
            start_new_session=True, preexec_fn=_raise_fd_limit,
        )
        for stream in (self.proc.stdout, self.proc.stderr):
            t = threading.Thread(target=self._read, args=(stream,), daemon=True)
            t.start()
            self._threads.append(t)
        deadline = time.monotonic() + 20
        sock = self.workdir / "haproxy.sock"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._threads[0].join(1)
                raise ToolError("haproxy exited: " + " | ".join(t for _, t in self.lines[-5:]))
            if sock.exists():
                with contextlib.suppress(OSError):
                    self.command("show info")
                    return self
            time.sleep(0.05)
        raise ToolError("haproxy did not open its stats socket in 20 s")

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append((time.time(), line.rstrip("\n")))

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def command(self, cmd: str, timeout: float = 10.0) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(self.workdir / "haproxy.sock"))
            s.sendall(cmd.encode() + b"\n")
            chunks = []
            while True:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
        return b"".join(chunks).decode(errors="replace")

    def servers(self) -> dict[str, int]:
        return haproxy_servers(parse_haproxy_stat(self.command("show stat")), "farm")

    def state_changes(self) -> list[tuple[float, str, str]]:
        """``(wall time, server name, UP|DOWN)`` for every state line seen so far."""
        out = []
        for t, line in list(self.lines):
            got = parse_haproxy_state_line(line)
            if got:
                out.append((t, got[1], got[2]))
        return out

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)  # our own child, by PID
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
