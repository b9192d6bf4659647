"""Run the hafast daemon (parent + workers) as a real process, and watch it.

Used by tests/netns/test_daemon_*.py (inside namespaces) and by
tests/unit/core/test_daemon_loopback.py (no namespace, loopback only).  Every
daemon gets its own pid files, control socket and dump prefix under a temporary
folder; :meth:`Daemon.close` stops it by PID (SIGTERM, then SIGKILL to its process
group) even when a test failed.

Example::

    d = start_daemon(tmp_path, conf_text, extra=["--pool-backend", "memory"])
    d.wait_ready()
    assert d.status()["pools"]["changes"] == {...}
    d.close()
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hafast.core.control import query

REPO = Path(__file__).resolve().parents[2]
ENTRY = "import sys; from hafast.core.cmdline import main; sys.exit(main(sys.argv[1:]))"


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    dir: Path
    name: str
    ns: str | None

    @property
    def ctl(self) -> str:
        return str(self.dir / f"{self.name}.ctl")

    @property
    def log(self) -> Path:
        return self.dir / f"{self.name}.log"

    def pid_file(self, which: str = "") -> Path:
        return self.dir / f"{self.name}{which}.pid"

    def worker_pid(self, which: str) -> int:
        """``vrrp`` or ``check`` (the first check worker) from the pid files."""
        path = self.pid_file("_vrrp" if which == "vrrp" else "_check")
        return int(path.read_text().split()[0])

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def status(self, timeout: float = 10.0) -> dict[str, Any]:
        return query(self.ctl, "status", timeout=timeout)

    def request(self, cmd: str) -> dict[str, Any]:
        return query(self.ctl, cmd)

    def wait_for(self, cond: Callable[[dict[str, Any]], bool], timeout: float, what: str
                 ) -> dict[str, Any]:
        """Poll the status every 50 ms until ``cond(status)``; raise with the log."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon {self.name} exited ({self.proc.returncode}) "
                                     f"waiting for {what}\n{self.log_text()[-4000:]}")
            try:
                last = self.status(timeout=5)
                if cond(last):
                    return last
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; last "
                                     f"status {str(last)[:1500]}\n{self.log_text()[-4000:]}")
            time.sleep(0.05)

    def wait_ready(self, timeout: float = 20.0) -> dict[str, Any]:
        return self.wait_for(
            lambda st: bool(st.get("workers")) and all(w["answering"] for w in st["workers"]),
            timeout, "every worker answering")

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait (the graceful path); returns the exit status."""
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def close(self) -> None:
        """Make sure nothing of this daemon is left running (its process group)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def daemon_argv(dir: Path, name: str, conf: Path, extra: Sequence[str] = ()) -> list[str]:
    return [sys.executable, "-c", ENTRY, "-f", str(conf), "-n", "-l", "-G",
            "-p", str(dir / f"{name}.pid"), "-r", str(dir / f"{name}_vrrp.pid"),
            "-c", str(dir / f"{name}_check.pid"), "--control-socket", str(dir / f"{name}.ctl"),
            "--dump-prefix", str(dir / f"{name}-dump"), *extra]


def start_daemon(dir: Path, conf_text: str, *, name: str = "hafast", ns: str | None = None,
                 extra: Sequence[str] = ()) -> Daemon:
    """Write the config and start ``hafast -n`` (in namespace ``ns`` when given).

    The daemon leads its own process group, so :meth:`Daemon.close` can end it and
    its workers by PID without touching anything else.
    """
    dir.mkdir(parents=True, exist_ok=True)
    conf = dir / f"{name}.conf"
    conf.write_text(conf_text)
    argv = daemon_argv(dir, name, conf, extra)
    if ns is not None:
        argv = ["ip", "netns", "exec", ns, *argv]
    out = (dir / f"{name}.log").open("wb")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, cwd=REPO, env=env,
                                start_new_session=True)
    finally:
        out.close()
    return Daemon(proc, dir, name, ns)
