"""global_defs startup_script / shutdown_script on the real daemon, as keepalived 2.2.7
runs them: the startup script ends before any worker starts, the shutdown script runs
once every worker has gone, a script past its timeout is killed with what it started,
a failing one is logged, and script_user / a script's own user is honoured.

No namespace: a check worker on loopback and the memory pool backend (like
tests/netns/test_dump_safety.py); root, to run a script as another user.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_root
from tests.netns.daemon_fixtures import Daemon, start_daemon

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]


@pytest.fixture
def port() -> Iterator[int]:
    s = socket.create_server(("127.0.0.1", 0), backlog=16)
    yield s.getsockname()[1]
    s.close()


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory any user may traverse (pytest's tmp_path is root's 0700): scripts
    and the daemon's files; ``out`` inside is writable by the script users."""
    require_root()
    d = Path(tempfile.mkdtemp(prefix="hf-startstop-"))
    d.chmod(0o755)
    (d / "out").mkdir(mode=0o777)
    (d / "out").chmod(0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def conf(port: int, extra: str) -> str:
    return f"""global_defs {{
  router_id startstop
{extra}
}}
virtual_server 10.9.9.9 80 {{
  delay_loop 0.5
  protocol TCP
  lb_algo rr
  real_server 127.0.0.1 {port} {{
    TCP_CHECK {{ connect_timeout 1 }}
  }}
}}
"""


def script(base: Path, name: str, body: str) -> Path:
    path = base / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def start(base: Path, port: int, extra: str) -> Daemon:
    return start_daemon(base / "d", conf(port, extra),
                        extra=["--pool-backend", "memory", "--check-workers", "1"])


def wait_until(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_order_around_the_workers(base: Path, port: int) -> None:
    out = base / "out" / "order"
    check_pid = base / "d" / "hafast_check.pid"
    up = script(base, "up.sh", f"""
echo "startup begins; check worker pid file: $(test -e {check_pid} && echo yes || echo no)" >> {out}
sleep 1
echo "startup ends; check worker pid file: $(test -e {check_pid} && echo yes || echo no)" >> {out}
""")
    down = script(base, "down.sh", f"""
pid=$(cat {check_pid})
echo "shutdown; check worker $pid: $(kill -0 $pid 2>/dev/null && echo alive || echo gone)" >> {out}
""")
    d = start(base, port, f"  startup_script {up}\n  shutdown_script {down}\n")
    try:
        d.wait_ready()
        assert out.read_text().splitlines() == [
            "startup begins; check worker pid file: no",
            "startup ends; check worker pid file: no"]
        pid = d.worker_pid("check")
        assert d.stop() == 0
        assert out.read_text().splitlines()[2:] == [f"shutdown; check worker {pid}: gone"]
    finally:
        d.close()


def test_timeout_kills_the_script_and_its_children(base: Path, port: int) -> None:
    child = base / "out" / "child.pid"
    slow = script(base, "slow.sh", f"sleep 300 &\necho $! > {child}\nsleep 300\n")
    t0 = time.monotonic()
    d = start(base, port, f"  startup_script {slow}\n  startup_script_timeout 1\n")
    try:
        d.wait_ready()
        took = time.monotonic() - t0
        assert 1.0 <= took < 6.0, took
        assert "startup script timed out" in d.log_text()
        pid = int(child.read_text())
        wait_until(lambda: not Path(f"/proc/{pid}").exists()
                   or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z", 5,
                   "the script's child to die")
    finally:
        d.close()


def test_failure_is_logged_and_the_daemon_runs(base: Path, port: int) -> None:
    bad = script(base, "bad.sh", "exit 3\n")
    d = start(base, port, f"  startup_script {bad}\n  shutdown_script {bad}\n")
    try:
        d.wait_ready()
        assert "startup script script failed, status 3" in d.log_text()
        assert d.stop() == 0
        assert "shutdown script script failed, status 3" in d.log_text()
    finally:
        d.close()


def test_script_users(base: Path, port: int) -> None:
    out = base / "out"
    who = script(base, "who.sh", 'echo "$(id -un)" > "$1"\n')
    d = start(base, port, f"""  script_user nobody
  startup_script "{who} {out}/startup"
  shutdown_script "{who} {out}/shutdown" daemon
""")
    try:
        d.wait_ready()
        assert (out / "startup").read_text().strip() == "nobody"
        assert d.stop() == 0
        assert (out / "shutdown").read_text().strip() == "daemon"
    finally:
        d.close()


def test_insecure_script_with_script_security_is_not_run(base: Path, port: int) -> None:
    out = base / "out" / "ran"
    unsafe = script(base, "unsafe.sh", f"touch {out}\n")
    unsafe.chmod(0o777)  # anyone may rewrite what root would run
    d = start(base, port, f"  enable_script_security\n  startup_script {unsafe}\n")
    try:
        d.wait_ready()
        assert not out.exists()
        assert "startup script" in d.log_text() and "is not run" in d.log_text()
    finally:
        d.close()
    os.chmod(unsafe, 0o755)
