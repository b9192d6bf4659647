"""The daemon's own pool code against the real IPVS kernel, run INSIDE the IPVS VM.

A keepalived.conf text -> the check engine (TCP_CHECK) + :class:`PoolManager` +
:class:`IpvsBackend` on one uvloop loop in a thread.  Real servers are tiny Python
HTTP servers (threads, sockets made inside a namespace) rather than nginx: starting
processes costs seconds each in the VM, and stopping a listener is the fault.

    client netns --veth-- director (guest root ns: VIP, IPVS) --veth-- servers netns

The story: all three servers in; one fails and leaves, comes back; an
inhibit_on_failure server fails and stays at weight 0; the quorum is lost and the
sorry server replaces the pool; everything recovers; stop releases the table.
After each step ``ipvsadm -Ln`` must equal the manager's model, and LVS-NAT traffic
from the client through the VIP must reach only the servers with weight.
"""

from __future__ import annotations

import collections
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require, require_root, require_tool

if os.environ.get("HAFAST_IN_VM") != "1":
    pytest.skip("runs inside the IPVS VM (tests/netns/test_ipvs_vm_boot.py boots it)",
                allow_module_level=True)

from hafast.app.pool_worker import run_pool_worker
from hafast.config.loader import load_text
from hafast.lvs.ipvs import IpvsBackend
from hafast.lvs.manager import PoolManager

pytestmark = pytest.mark.ipvs

PFX = f"hp{os.getpid() % 100000}"
VIP = "10.0.0.1"
CLIENT = "10.0.0.2"
DIR_RS = "192.168.70.1"
RS = ("192.168.70.2", "192.168.70.3", "192.168.70.4")
SORRY = "192.168.70.9"
PORT = 8080
# The VM runs Python ~20x slower: generous, bounded waits.
WAIT_S = 60.0

CONFIG = f"""
virtual_server {VIP} 80 {{
  protocol TCP
  lvs_sched rr
  lvs_method NAT
  quorum 2
  sorry_server {SORRY} {PORT}
  real_server {RS[0]} {PORT} {{ TCP_CHECK {{ connect_timeout 1
      retry 0
      delay_loop 0.5
      warmup 0 }} }}
  real_server {RS[1]} {PORT} {{ TCP_CHECK {{ connect_timeout 1
      retry 0
      delay_loop 0.5
      warmup 0 }} }}
  real_server {RS[2]} {PORT} {{ inhibit_on_failure
    TCP_CHECK {{ connect_timeout 1
      retry 0
      delay_loop 0.5
      warmup 0 }} }}
}}
"""


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"ip {' '.join(args)}: {proc.stderr.strip()}"


@pytest.fixture
def lab() -> Iterator[dict[str, str]]:
    require_root()
    require(Path("/proc/net/ip_vs").exists(), "ip_vs is not loaded")
    require_tool("ipvsadm")
    names = {"client": f"{PFX}c", "servers": f"{PFX}r"}
    try:
        Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
        for role, near, far, extra in (("client", VIP, CLIENT, ()),
                                       ("servers", DIR_RS, RS[0], (*RS[1:], SORRY))):
            ns = names[role]
            _ip("netns", "add", ns)
            _ip("link", "add", f"{ns}d", "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("addr", "add", f"{near}/24", "dev", f"{ns}d")
            _ip("link", "set", f"{ns}d", "up")
            for a in (far, *extra):
                _ip("-n", ns, "addr", "add", f"{a}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "route", "add", "default", "via", near)
        yield names
    finally:
        for ns in names.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=60)
        subprocess.run(["ipvsadm", "-C"], capture_output=True, timeout=60)


class Servers:
    """One HTTP-ish listener per address in the servers namespace; stop = refuse."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.socks: dict[str, socket.socket] = {}
        self.stop_all = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self, addr: str) -> None:
        from pyroute2.netns import popns, pushns

        pushns(self.ns)
        try:
            srv = socket.socket()
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind((addr, PORT))
            srv.listen(64)
        finally:
            popns()
        srv.settimeout(0.2)
        self.socks[addr] = srv

        def loop() -> None:
            while not self.stop_all.is_set() and srv.fileno() >= 0:
                try:
                    conn, _ = srv.accept()
                except (TimeoutError, OSError):
                    continue
                with conn:
                    try:
                        conn.sendall(f"HTTP/1.0 200 OK\r\n\r\n{addr}".encode())
                    except OSError:
                        pass

        t = threading.Thread(target=loop, daemon=True)
        t.start()
        self.threads.append(t)

    def stop(self, addr: str) -> None:
        self.socks.pop(addr).close()

    def close(self) -> None:
        self.stop_all.set()
        for s in self.socks.values():
            s.close()
        for t in self.threads:
            t.join(timeout=5)


def ipvsadm_pool() -> dict[str, tuple[str, int]]:
    """``ipvsadm -Ln`` for the VIP service: {addr: (forward, weight)}."""
    text = subprocess.run(["ipvsadm", "-Ln"], capture_output=True, text=True, check=True,
                          timeout=60).stdout
    out: dict[str, tuple[str, int]] = {}
    in_vip = False
    for line in text.splitlines():
        if re.match(r"^(TCP|UDP|SCTP|FWM)\s", line):
            in_vip = line.split()[1] == f"{VIP}:80"
        m = re.match(r"\s+->\s+(\S+):(\d+)\s+(\w+)\s+(\d+)", line)
        if in_vip and m:
            out[m.group(1)] = (m.group(3), int(m.group(4)))
    return out


def model_pool(manager: PoolManager) -> dict[str, tuple[str, int]]:
    key = next(iter(manager.policy.pool.services))
    return {a: ("Masq" if d.method == "NAT" else d.method, d.weight)
            for (a, _), d in manager.policy.pool.dests[key].items()}


def wait_for(expect: dict[str, int], manager: PoolManager) -> dict[str, tuple[str, int]]:
    deadline = time.monotonic() + WAIT_S
    got: dict[str, tuple[str, int]] = {}
    while time.monotonic() < deadline:
        got = ipvsadm_pool()
        if {a: w for a, (_, w) in got.items()} == expect and model_pool(manager) == got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"kernel {got} / model {model_pool(manager)} never became {expect}")


def fetch(ns: str, count: int) -> collections.Counter[str]:
    from pyroute2.netns import popns, pushns

    seen: collections.Counter[str] = collections.Counter()
    pushns(ns)
    try:
        for _ in range(count):
            with socket.create_connection((VIP, 80), timeout=10) as conn:
                data = b""
                while chunk := conn.recv(256):
                    data += chunk
            seen[data.decode().rsplit("\n", 1)[-1]] += 1
    finally:
        popns()
    return seen


def test_pool_follows_the_checks_and_traffic_follows_the_pool(lab: dict[str, str]) -> None:
    servers = Servers(lab["servers"])
    for a in (*RS, SORRY):
        servers.start(a)
    config = load_text(CONFIG).config
    stop = threading.Event()
    ready: list[PoolManager] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            run_pool_worker(config, IpvsBackend(), stop=stop,
                            on_ready=lambda mgr, _eng: ready.append(mgr))
        except BaseException as exc:  # surfaced by the test body
            errors.append(exc)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + WAIT_S
        while not ready and not errors and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not errors, errors
        assert ready, "the pool worker did not start"
        mgr = ready[0]
        all_in = {RS[0]: 1, RS[1]: 1, RS[2]: 1}

        got = wait_for(all_in, mgr)
        assert all(fwd == "Masq" for fwd, _ in got.values())
        assert fetch(lab["client"], 6) == {RS[0]: 2, RS[1]: 2, RS[2]: 2}

        # A failing server leaves the pool; traffic avoids it.
        servers.stop(RS[0])
        wait_for({RS[1]: 1, RS[2]: 1}, mgr)
        assert set(fetch(lab["client"], 4)) == {RS[1], RS[2]}
        servers.start(RS[0])
        wait_for(all_in, mgr)

        # inhibit_on_failure: the failed server stays, at weight 0 (drained).
        servers.stop(RS[2])
        wait_for({RS[0]: 1, RS[1]: 1, RS[2]: 0}, mgr)
        assert set(fetch(lab["client"], 4)) == {RS[0], RS[1]}

        # Live weight 1 < quorum 2: the sorry server replaces the pool.
        servers.stop(RS[1])
        wait_for({SORRY: 1, RS[2]: 0}, mgr)
        assert fetch(lab["client"], 3) == {SORRY: 3}
        lines = [getattr(a, "line", "") for a in mgr.actions]
        assert f"VS [{VIP}]:tcp:80 DOWN" in lines

        # Everything back: quorum regained, the sorry server leaves.
        servers.start(RS[1])
        servers.start(RS[2])
        wait_for(all_in, mgr)
        assert set(fetch(lab["client"], 6)) == set(RS)
        assert lines.count(f"VS [{VIP}]:tcp:80 DOWN") == 1
        assert f"VS [{VIP}]:tcp:80 UP" in [getattr(a, "line", "") for a in mgr.actions]
    finally:
        stop.set()
        thread.join(timeout=WAIT_S)
        servers.close()
    assert not errors, errors
    # Stop released what hafast owned.
    assert ipvsadm_pool() == {}
    assert not re.search(r"^TCP\s", subprocess.run(["ipvsadm", "-Ln"], capture_output=True,
                                                    text=True, timeout=60).stdout, re.M)


