"""global_defs state_dump_file / stats_dump_file / json_dump_file (and the keepalived man
page's *_file_location names) on the real daemon: the SIGUSR1, SIGUSR2 and JSON dumps
go where they say, with the dump-safety rules of tests/netns/test_dump_safety.py (a
directory others may write to without the sticky bit is refused, the daemon runs on).

No namespace: a check worker on loopback, the memory pool backend; root, as the
dump-safety tests.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_root
from tests.netns.daemon_fixtures import Daemon, start_daemon

pytestmark = [pytest.mark.root, pytest.mark.timeout(90)]


@pytest.fixture
def port() -> Iterator[int]:
    s = socket.create_server(("127.0.0.1", 0), backlog=16)
    yield s.getsockname()[1]
    s.close()


def conf(port: int, extra: str) -> str:
    return f"""global_defs {{
  router_id dumpfiles
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


def start(dir: Path, port: int, extra: str) -> Daemon:
    require_root()
    d = start_daemon(dir, conf(port, extra),
                     extra=["--pool-backend", "memory", "--check-workers", "1"])
    d.wait_ready()
    return d


def wait_file(path: Path, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.05)
    return path.read_text()


def test_configured_paths_receive_the_dumps(tmp_path: Path, port: int) -> None:
    state = tmp_path / "state" / "mystate.data"
    stats_dir = tmp_path / "stats"
    for d in (state.parent, stats_dir):
        d.mkdir(mode=0o755)
    daemon_dir = tmp_path / "d"
    d = start(daemon_dir, port, f"""  state_dump_file {state}
  stats_dump_file {stats_dir}/
  json_file_location rel.json
""")
    try:
        d.signal(signal.SIGUSR1)
        assert "127.0.0.1" in wait_file(state)
        d.signal(signal.SIGUSR2)
        # a directory: the usual name (here the fixture's --dump-prefix name) in it
        assert wait_file(stats_dir / "hafast-dump.stats")
        d.signal(signal.SIGRTMIN + 2)
        # relative: in --dump-prefix's directory; the checkers' file beside it
        assert json.loads(wait_file(daemon_dir / "rel.json")) == []
        wait_file(daemon_dir / "rel_check.json")
        assert d.request("data") == {"file": str(state)}
        assert not list(daemon_dir.glob("hafast-dump.*"))
    finally:
        d.close()


def test_unsafe_configured_directory_is_refused(tmp_path: Path, port: int) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)  # anyone may rename files here: no sticky bit
    d = start(tmp_path / "d", port, f"  state_dump_file {open_dir}/ka.data\n")
    try:
        d.signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while "refusing to write" not in d.log_text():
            assert time.monotonic() < deadline, d.log_text()[-2000:]
            time.sleep(0.05)
        assert not list(open_dir.iterdir())
        assert d.status()["workers"]  # still serving
    finally:
        d.close()


def test_data_use_instance_names_the_namespace(tmp_path: Path) -> None:
    """keepalived 2.2.7's data_use_instance with -s NS: keepalived.NS.data (the stats
    keep hafast's own _NS, as without the keyword)."""
    require_root()
    from hafast.lab.netns import Registry, socket_in

    name = f"hd{os.getpid()}"
    with Registry() as reg:
        reg.add_netns(name)
        s = socket_in(name)
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        try:
            d = start_daemon(tmp_path / "d", conf(s.getsockname()[1], "  data_use_instance\n"),
                             extra=["--pool-backend", "memory", "--check-workers", "1",
                                    "-s", name])
            try:
                d.wait_ready()
                data = tmp_path / "d" / f"hafast-dump.{name}.data"
                assert d.request("data") == {"file": str(data)}
                assert "127.0.0.1" in wait_file(data)
                stats = tmp_path / "d" / f"hafast-dump_{name}.stats"
                assert d.request("stats") == {"file": str(stats)}
            finally:
                d.close()
        finally:
            s.close()
