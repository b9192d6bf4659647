"""Starting and stopping keepalived and hafast as the IPVS VM's side-by-side checker
tests do (test_http_regex, test_quorum_notify, test_smtp_alerts_checker): ``-C`` (the
checker alone), in the foreground, each in its own session with its pid files, log,
control socket and dump files in the test's directory.

Example::

    proc = start("keepalived", tmp_path, conf)
    try:
        ...  # read ipvsadm -Ln, the FIFO, the mails
    finally:
        stop(proc)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

KEEPALIVED = "/usr/sbin/keepalived"
ENTRY = "import sys; from hafast.app.cmdline import main; sys.exit(main(sys.argv[1:]))"


def start(kind: str, d: Path, conf: Path) -> subprocess.Popen[bytes]:
    """``kind`` ("keepalived" or "hafast") on ``conf``, its output in ``d/<kind>.log``."""
    if kind == "keepalived":
        argv = [KEEPALIVED, "-n", "-l", "-D", "-C", "-f", str(conf),
                "-p", str(d / "ka.pid"), "-r", str(d / "ka_vrrp.pid"),
                "-c", str(d / "ka_chk.pid")]
    else:
        argv = [sys.executable, "-c", ENTRY, "-f", str(conf), "-n", "-l", "-C",
                "-p", str(d / "ha.pid"), "-r", str(d / "ha_vrrp.pid"),
                "-c", str(d / "ha_check.pid"), "--control-socket", str(d / "ha.ctl"),
                "--dump-prefix", str(d / "ha-dump")]
    with (d / f"{kind}.log").open("wb") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
                                env=dict(os.environ, PYTHONPATH=str(REPO)))


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to its process group (its children with it), SIGKILL after 30 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
