"""Issue 14: the top-level ``net_namespace NAME``, the full hafast daemon against
keepalived 2.2.7 on the same configuration.

Two namespaces of the test's own: the daemon is started in ``start`` (``ip netns exec
start ...``, as an operator's shell would run it) and its file says ``net_namespace
other``.  Both namespaces have the same link (``va``, a veth pair whose two ends live in
the namespace) with the same address, so a daemon that did not move would put the VIP
on ``start``'s ``va``.  Each daemon runs in turn on the same file; the outcome must be
the same: the VIP appears in ``other`` only, the daemon's processes are in ``other``,
and at a graceful stop the VIP goes.

A reload that changes net_namespace is dropped whole by keepalived (``reload_config``
returns before its children are signalled): a VIP added in the same file does not
come; the same file with the original namespace then brings it.  A namespace that does
not exist is not created: both log "Unable to set network namespace NAME - exiting"
and stop (keepalived with status 0, hafast with 1).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hafast.lab.netns import Registry, run_in
from tests.conftest import require_root, require_tool
from tests.netns.daemon_fixtures import start_daemon
from tests.netns.vrrp_fixtures import KEEPALIVED

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(150)]

VIP = "10.97.0.100"
VIP2 = "10.97.0.101"
KINDS = ("hafast", "keepalived")


@dataclass(frozen=True)
class Spaces:
    start: str
    other: str


@pytest.fixture
def spaces() -> Iterator[Spaces]:
    require_root()
    require_tool("keepalived")
    sp = Spaces(f"hns{os.getpid()}s", f"hns{os.getpid()}o")
    with Registry() as reg:
        for ns in (sp.start, sp.other):
            reg.add_netns(ns)
            reg.add_veth(ns, "va", ns, "vb")
            reg.add_address(ns, "va", "10.97.0.1/24")
        yield sp
    # keepalived's pid directory for the namespace, had it been killed (it removes it
    # itself on a clean stop); ours only, never /run/keepalived itself
    for ns in (sp.other, f"{sp.other}x"):
        d = Path("/run/keepalived") / ns
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()


def conf(namespace: str, vips: tuple[str, ...] = (VIP,)) -> str:
    addrs = "\n".join(f"    {v}/24" for v in vips)
    return f"""net_namespace {namespace}
global_defs {{
  router_id netns
  vrrp_garp_master_delay 0
}}
vrrp_instance VI_1 {{
  state MASTER
  interface va
  virtual_router_id 52
  priority 100
  advert_int 1
  virtual_ipaddress {{
{addrs}
  }}
}}
"""


class Runner:
    """One daemon (hafast or keepalived) started in a namespace, stopped by PID."""

    def __init__(self, kind: str, dir: Path, ns: str, conf_text: str) -> None:
        self.kind = kind
        self.dir = dir
        self.conf = dir / f"{kind}.conf"
        dir.mkdir(parents=True, exist_ok=True)
        if kind == "hafast":
            self.daemon = start_daemon(dir, conf_text, name=kind, ns=ns)
            self.proc = self.daemon.proc
            self.log = self.daemon.log
            self.vrrp_pid_file = self.daemon.pid_file("_vrrp")
            return
        self.conf.write_text(conf_text)
        self.log = dir / "keepalived.log"
        self.vrrp_pid_file = dir / "keepalived_vrrp.pid"
        argv = ["ip", "netns", "exec", ns, KEEPALIVED, "-n", "-l", "-D", "-G", "-P", "-R",
                "-f", str(self.conf), "-p", str(dir / "keepalived.pid"),
                "-r", str(self.vrrp_pid_file), "-c", str(dir / "keepalived_chk.pid")]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def rewrite(self, conf_text: str) -> None:
        (self.daemon.dir / "hafast.conf" if self.kind == "hafast" else self.conf
         ).write_text(conf_text)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self) -> int:
        self.signal(signal.SIGTERM)
        return self.proc.wait(30)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # it leads its own group
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def has(ns: str, vip: str) -> bool:
    out = run_in(ns, ["ip", "-o", "addr", "show", "dev", "va"]).stdout
    return f" {vip}/" in out


def netns_of(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


def named(ns: str) -> str:
    return f"net:[{os.stat(f'/run/netns/{ns}').st_ino}]"


def wait(cond: Callable[[], bool], timeout: float, what: str, r: Runner) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if r.proc.poll() is not None and time.monotonic() > deadline - timeout + 1:
            raise AssertionError(f"{r.kind} exited ({r.proc.returncode}) waiting for "
                                 f"{what}\n{r.log_text()[-4000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{r.kind}: timed out after {timeout}s waiting for {what}"
                                 f"\n{r.log_text()[-4000:]}")
        time.sleep(0.05)


def vrrp_pid(r: Runner) -> int:
    out: list[int] = []

    def read() -> bool:
        try:
            out.append(int(r.vrrp_pid_file.read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            return False
        return True

    wait(read, 10, "the VRRP pid file", r)
    return out[-1]


@pytest.mark.parametrize("kind", KINDS)
def test_the_daemon_moves_into_net_namespace(kind: str, tmp_path: Path,
                                             spaces: Spaces) -> None:
    r = Runner(kind, tmp_path / kind, spaces.start, conf(spaces.other))
    try:
        wait(lambda: has(spaces.other, VIP), 20, f"{VIP} in {spaces.other}", r)
        seen = {"other": has(spaces.other, VIP), "start": has(spaces.start, VIP)}
        # the parent and its VRRP process run in the named namespace, not where started
        where = {netns_of(r.proc.pid), netns_of(vrrp_pid(r))}
        ident = "hafast_" if kind == "hafast" else "Keepalived_"
        named_log = f"{ident}{spaces.other}" in r.log_text()
        code = r.stop()
        wait(lambda: not has(spaces.other, VIP), 10, f"{VIP} gone at stop", r)
        seen_after = {"other": has(spaces.other, VIP), "start": has(spaces.start, VIP)}
    finally:
        r.close()
    assert seen == {"other": True, "start": False}, r.log_text()[-3000:]
    assert where == {named(spaces.other)}
    assert named_log, r.log_text()[-3000:]  # the syslog ident carries _NAME
    assert code == 0
    assert seen_after == {"other": False, "start": False}


@pytest.mark.parametrize("kind", KINDS)
def test_a_reload_cannot_change_it(kind: str, tmp_path: Path, spaces: Spaces) -> None:
    r = Runner(kind, tmp_path / kind, spaces.start, conf(spaces.other))
    try:
        wait(lambda: has(spaces.other, VIP), 20, f"{VIP} in {spaces.other}", r)
        # the namespace changed, and a VIP added: the whole reload is dropped
        r.rewrite(conf(spaces.start, (VIP, VIP2)))
        r.signal(signal.SIGHUP)
        wait(lambda: "Cannot change network namespace at a reload" in r.log_text(), 15,
             "the reload refused", r)
        time.sleep(1.0)  # the verdict is logged before anything would be applied
        refused = {ns: (has(ns, VIP), has(ns, VIP2)) for ns in (spaces.other, spaces.start)}
        # the same file with the namespace it runs in: reloaded, the VIP comes
        r.rewrite(conf(spaces.other, (VIP, VIP2)))
        r.signal(signal.SIGHUP)
        wait(lambda: has(spaces.other, VIP2), 20, f"{VIP2} after a good reload", r)
        assert netns_of(r.proc.pid) == named(spaces.other)
        assert r.stop() == 0
    finally:
        r.close()
    assert refused == {spaces.other: (True, False), spaces.start: (False, False)}


@pytest.mark.parametrize("kind", KINDS)
def test_a_missing_namespace_is_not_created(kind: str, tmp_path: Path,
                                            spaces: Spaces) -> None:
    missing = f"{spaces.other}x"  # never created
    r = Runner(kind, tmp_path / kind, spaces.start, conf(missing))
    try:
        code = r.proc.wait(30)
    finally:
        r.close()
    assert f"Unable to set network namespace {missing} - exiting" in r.log_text()
    assert not Path(f"/run/netns/{missing}").exists()
    assert not has(spaces.start, VIP)
    # keepalived 2.2.7 stops with status 0 (main.c: goto end with exit_code still OK);
    # hafast says it failed
    assert code == (1 if kind == "hafast" else 0)
