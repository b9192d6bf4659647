"""What the two demos share (:mod:`hafast.daemon_demo`, :mod:`hafast.fleet_demo`):
their error, their bounded waits, how they start the daemon in a namespace, and their
last line.

Example::

    proc = start_daemon("ns1", Path("/tmp/d1.conf"), Path("/tmp/d1"), Path("/tmp/d1.log"),
                        "--pool-backend", "nft")   # control socket /tmp/d1.ctl
    wait_until(lambda: Path("/tmp/d1.ctl").exists(), 20, "d1's control socket")
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

# the daemon's entry point, run by this interpreter with the checkout on its path
ENTRY = "import sys; from hafast.app.cmdline import main; sys.exit(main(sys.argv[1:]))"


class DemoError(RuntimeError):
    pass


def wait_until(cond: Callable[[], bool], timeout: float, what: str,
               poll: float = 0.02) -> float:
    """Seconds until ``cond()`` (a condition that raises is not met yet); DemoError
    after ``timeout``."""
    start = time.monotonic()
    while True:
        with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
            if cond():
                return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise DemoError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(poll)


def start_daemon(ns: str, conf: Path, run: Path, log: Path,
                 *extra: str) -> subprocess.Popen[bytes]:
    """``hafast -f CONF -n -l -G`` in namespace ``ns``, its own process group; its pid
    files, control socket (``RUN.ctl``) and dumps named after ``run``, its output in
    ``log``."""
    argv = ["ip", "netns", "exec", ns, sys.executable, "-c", ENTRY, "-f", str(conf),
            "-n", "-l", "-G", "-p", f"{run}.pid", "-r", f"{run}_vrrp.pid",
            "-c", f"{run}_check.pid", "--control-socket", f"{run}.ctl",
            "--dump-prefix", f"{run}-dump", *extra]
    repo = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=repo + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)


def done_line(started: float, deadline: float) -> str:
    """The demo's last line: how long it took (``started`` from time.monotonic())."""
    total = time.monotonic() - started
    return (f"== done in {total:.1f}s, everything torn down"
            + ("" if total < deadline else " (slower than planned)"))
