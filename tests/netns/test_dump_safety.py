"""The real daemon's SIGUSR2 dump against a local attacker (issue 12 item 4, the class
of keepalived's CVE-2018-19044): symlinks planted where the dump goes must not make
root overwrite another file, and a dump directory anyone may rename files in is
refused without stopping the daemon.

No namespace: check workers on loopback, the memory pool backend (like
tests/unit/core/test_daemon_loopback.py); root, because the point is a root-owned
victim.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_root
from tests.netns.daemon_fixtures import Daemon, start_daemon

pytestmark = [pytest.mark.root, pytest.mark.timeout(90)]

VICTIM_TEXT = "root:precious:0:0\n"


@pytest.fixture
def port() -> Iterator[int]:
    s = socket.create_server(("127.0.0.1", 0), backlog=128)
    yield s.getsockname()[1]
    s.close()


def conf(port: int) -> str:
    return f"""
global_defs {{
  router_id dumpsafety
}}
virtual_server 10.9.9.9 80 {{
  delay_loop 0.5
  protocol TCP
  lb_algo rr
  real_server 127.0.0.1 {port} {{
    weight 1
    TCP_CHECK {{ connect_timeout 1 }}
  }}
}}
"""


def start(dir: Path, port: int, *extra: str) -> Daemon:
    require_root()
    return start_daemon(dir, conf(port), extra=["--pool-backend", "memory",
                                                "--check-workers", "1", *extra])


def root_victim(dir: Path) -> Path:
    dir.mkdir(mode=0o755)
    victim = dir / "victim"
    victim.write_text(VICTIM_TEXT)
    os.chown(victim, 0, 0)
    victim.chmod(0o644)
    return victim


def sigusr2_and_wait(d: Daemon, path: Path) -> str:
    """SIGUSR2, then wait for the parent's log line about ``path`` (written or not)."""
    before = d.log_text().count(str(path))
    d.signal(signal.SIGUSR2)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        log = d.log_text()
        if log.count(str(path)) > before:
            return log
        assert d.proc.poll() is None, f"daemon exited\n{log[-3000:]}"
        time.sleep(0.05)
    raise AssertionError(f"no log line about {path} after SIGUSR2\n{d.log_text()[-3000:]}")


def test_sigusr2_does_not_write_through_planted_symlinks(tmp_path: Path, port: int) -> None:
    victim = root_victim(tmp_path / "etc")
    d = start(tmp_path / "run", port)
    try:
        d.wait_ready()
        stats = Path(f"{d.dir / 'hafast-dump'}.stats")
        # The name the old writer used (the parent's pid: it writes from a thread)
        # and the final name, both pointing at the victim.
        os.symlink(victim, f"{stats}.{d.proc.pid}.tmp")
        os.symlink(victim, stats)

        log = sigusr2_and_wait(d, stats)

        assert victim.read_text() == VICTIM_TEXT, "the dump was written through a symlink"
        assert f"wrote {stats}" in log
        st = os.lstat(stats)
        assert stat.S_ISREG(st.st_mode), "the final name is still the planted symlink"
        assert stat.S_IMODE(st.st_mode) == 0o644
        assert "Check worker shard 0/1:" in stats.read_text()
        # no temporary file left behind beside the dump
        assert sorted(p.name for p in d.dir.glob("hafast-dump*")) == [
            "hafast-dump.stats", f"hafast-dump.stats.{d.proc.pid}.tmp"]
        assert d.status()["pid"] == d.proc.pid
    finally:
        d.close()


def test_dump_into_world_writable_non_sticky_dir_is_refused(tmp_path: Path, port: int
                                                            ) -> None:
    victim = root_victim(tmp_path / "etc")
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)  # explicit: mkdir's mode goes through the umask
    prefix = open_dir / "keepalived"
    d = start(tmp_path / "run", port, "--dump-prefix", str(prefix))
    try:
        d.wait_ready()
        stats = Path(f"{prefix}.stats")
        os.symlink(victim, stats)

        log = sigusr2_and_wait(d, stats)

        assert f"cannot write {stats}" in log
        assert f"directory {open_dir} is writable by others and not sticky" in log
        assert victim.read_text() == VICTIM_TEXT
        assert os.listdir(open_dir) == ["keepalived.stats"]
        assert os.path.islink(stats)
        # still running, still answering
        assert d.proc.poll() is None
        assert d.status()["pid"] == d.proc.pid
    finally:
        d.close()
