"""The shipped daemon under measurement: ``hafast -f CONF -n -l``, parent plus workers.

The checks and detection sections run this for hafast (issue 16: measure what
ships).  The daemon starts in the farm's director namespace with the nft pool
backend (the host kernel has no IPVS), its own pid files, control socket and a
notify FIFO under a work folder; it leads its own process group so
:meth:`DaemonProc.stop` ends it and its workers by PID.

Figures come from outside the daemon, as for every other peer:

* CPU: utime+stime of the whole process tree (parent and every worker, found by
  walking ``/proc/*/stat`` parent links from the parent PID), read before and after
  the measured window;
* memory: ``Pss`` and ``Rss`` from ``/proc/PID/smaps_rollup`` summed over the tree;
* attempts: not from the daemon's counters; the caller counts SYNs on the wire;
* fault -> DOWN: each ``RS ... DOWN`` line of the notify FIFO, stamped with the
  wall clock when read, by a probe process at real-time priority
  (:mod:`benchmarks.suite.stamps`; the daemon's own log or event print is not used).

Example::

    d = DaemonProc(ns, conf_text, workdir)
    d.wait_ready(60)
    before = d.sample()
    ...
    after = d.sample()
    d.stop()
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmarks.suite import anchors
from benchmarks.suite.stamps import FifoStamps
from hafast.lab.proctree import process_tree  # checks.py imports it from here too

ROOT = Path(__file__).resolve().parents[2]


def hafast_argv() -> list[str]:
    """The installed ``hafast`` command beside this interpreter, else ``-m hafast``."""
    exe = Path(sys.executable).parent / "hafast"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("hafast")
    return [found] if found else [sys.executable, "-m", "hafast"]


def compile_bytecode(root: Path = ROOT / "hafast") -> float:
    """The package's bytecode written, as ``pip install`` writes it for the package it
    installs; seconds taken.  An editable checkout has none, and where
    PYTHONDONTWRITEBYTECODE is set (this lab's shells) Python never writes it, so
    every ``hafast`` command the suite timed compiled each module it imported from
    source: ~0.3 s of a 37k-RS ``hafast -t``, most of a ``hafast status``.  Python
    still reads what this writes, and recompiles (in memory) a module edited since."""
    import compileall

    t0 = time.monotonic()
    if not compileall.compile_dir(str(root), quiet=1, workers=0):
        raise OSError(f"compileall failed under {root}")
    return time.monotonic() - t0


def smaps_rollup(pid: int) -> dict[str, int]:
    """``Pss`` and ``Rss`` in KiB from ``/proc/PID/smaps_rollup`` (zero if gone)."""
    got = {"pss_kib": 0, "rss_kib": 0}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("Pss", "Rss"):
                got[f"{key.lower()}_kib"] = int(rest.split()[0])
    return got


def tree_sample(pids: Iterable[int]) -> dict[str, float]:
    """CPU seconds, PSS and RSS summed over ``pids``; ``procs`` how many answered."""
    cpu, pss, rss, procs = 0.0, 0, 0, 0
    for pid in pids:
        try:
            st = anchors.proc_stat(pid)
        except (OSError, ValueError):
            continue
        mem = smaps_rollup(pid)
        cpu += st["cpu"]
        pss += mem["pss_kib"]
        rss += mem["rss_kib"]
        procs += 1
    return {"cpu": cpu, "pss_kib": float(pss), "rss_kib": float(rss), "procs": float(procs)}


_VERDICT = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{3}) \S+\[\d+\]: [A-Z_]+ "
                      r"\[?([0-9a-f.:]+?)\]?:\d+: .*checker (DOWN|UP)$")


def verdicts(log_text: str, state: str = "DOWN") -> list[tuple[float, str]]:
    """``(time, address)`` of each check worker's "checker DOWN" (or UP) line in the
    daemon's ``-l`` log: when the check itself reached its verdict, before the way to
    the parent.  The log stamps in whole milliseconds (cut, not rounded), so a time
    here is the middle of its millisecond: within 0.5 ms of the true one.

    >>> verdicts("2026-12-08 03:09:01.547 hafast_healthcheckers[14498]: TCP_CHECK "
    ...          "10.201.36.125:80: failed after 1 retries (refused connect), checker DOWN\\n"
    ...          "2026-12-08 03:09:01.547 hafast[14492]: RS [10.201.36.125]:tcp:80 DOWN\\n"
    ...          )[0][1]
    '10.201.36.125'
    """
    out = []
    for line in log_text.splitlines():
        got = _VERDICT.match(line)
        if got and got.group(4) == state:
            t = time.mktime(time.strptime(got.group(1), "%Y-%m-%d %H:%M:%S"))
            out.append((t + int(got.group(2)) / 1000 + 0.0005, got.group(3)))
    return out


def with_fifo(conf_text: str, fifo: Path) -> str:
    """The suite's config with a ``global_defs`` naming the notify FIFO.

    >>> with_fifo("virtual_server 10.0.0.1 80 {\\n}\\n", Path("/x/f")).splitlines()[1]
    ' notify_fifo /x/f'
    """
    return f"global_defs {{\n notify_fifo {fifo}\n}}\n{conf_text}"


def parse_rs_line(line: str) -> tuple[str, str] | None:
    """``RS [10.1.0.1]:tcp:80 [VS]:tcp:80 DOWN`` -> (``10.1.0.1``, ``DOWN``).

    >>> parse_rs_line("RS [10.1.0.1]:tcp:80 [10.0.0.1]:tcp:80 DOWN")
    ('10.1.0.1', 'DOWN')
    >>> parse_rs_line('INSTANCE "VI_1" MASTER 100') is None
    True
    """
    parts = line.split()
    if len(parts) < 4 or parts[0] != "RS" or not parts[1].startswith("["):
        return None
    return parts[1][1:parts[1].index("]")], parts[-1]


class DaemonProc:
    """``hafast -f CONF -n -l --pool-backend nft`` in namespace ``ns``."""

    def __init__(self, ns: str, conf_text: str, workdir: Path, *, name: str = "hafast") -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.dir = workdir
        self.fifo = workdir / f"{name}.fifo"
        with contextlib.suppress(FileNotFoundError):
            self.fifo.unlink()
        os.mkfifo(self.fifo, 0o600)
        # Opened before the daemon starts so no line is lost; O_NONBLOCK so the open
        # does not wait for a writer.
        self._fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
        conf = workdir / f"{name}.conf"
        conf.write_text(with_fifo(conf_text, self.fifo))
        self.ctl = str(workdir / f"{name}.ctl")
        argv = [*hafast_argv(), "-f", str(conf), "-n", "-l", "-G",
                "-p", str(workdir / f"{name}.pid"), "-r", str(workdir / f"{name}_vrrp.pid"),
                "-c", str(workdir / f"{name}_check.pid"), "--control-socket", self.ctl,
                "--dump-prefix", str(workdir / f"{name}-dump"), "--pool-backend", "nft"]
        self.log = workdir / f"{name}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                anchors.nsenter(ns, argv), cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
                env=dict(os.environ, PYTHONPATH=str(ROOT)))
        self._events: list[dict[str, Any]] = []
        # stamped by a probe process of its own (benchmarks.suite.stamps)
        self._stamps = FifoStamps(self._fd, self._on_line)

    @property
    def pid(self) -> int:
        return self.proc.pid  # nsenter execs the daemon: same PID

    def _on_line(self, now: float, line: str) -> None:
        got = parse_rs_line(line)
        if got:
            self._events.append({"event": got[1], "addr": got[0], "t": now})

    def events(self) -> list[dict[str, Any]]:
        """Real-server transitions read from the FIFO, same shape as ``hafast_run``'s."""
        return list(self._events)

    def status(self, timeout: float = 10.0) -> dict[str, Any]:
        from hafast.app.control import query

        return query(self.ctl, "status", timeout=timeout)

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-1500:]
        except OSError:
            return ""

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        """Until every worker answers and every check has a verdict (or ``timeout``)."""
        end = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise anchors.ToolError(
                    f"hafast exited ({self.proc.returncode}): {self.log_tail()}")
            st: dict[str, Any] = {}
            with contextlib.suppress(OSError, ValueError):
                st = self.status(timeout=5)
            workers = st.get("workers") or []
            if workers and all(w.get("answering") for w in workers):
                return st
            if time.monotonic() > end:
                raise anchors.ToolError(f"hafast not ready in {timeout} s: {self.log_tail()}")
            time.sleep(0.1)

    def sample(self) -> dict[str, float]:
        """The whole tree now: ``cpu`` seconds, ``pss_kib``, ``rss_kib``, ``procs``."""
        return tree_sample(process_tree(self.pid))

    def up_count(self) -> int:
        return sum(int(c.get("up", 0)) for c in self.status().get("checkers", ()))

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)  # our own child, by PID
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        # A worker left behind is in the daemon's process group (it leads it).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._stamps.stop()
        with contextlib.suppress(OSError):
            os.close(self._fd)
