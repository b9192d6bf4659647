"""The VIP backend against the kernel, in a scratch namespace: add, idempotence,
labels, IPv6 without DAD, routes, and removing only what hafast added; and the
no-Accept_Mode filter's table, through libnftables."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from hafast.config.model import VirtualAddress
from hafast.lab.netns import Registry, call_in, run_in
from hafast.net.noaccept import NoAcceptFilter
from hafast.net.vip import NetlinkVips, parse_route
from tests.conftest import require_root

pytestmark = [pytest.mark.root, pytest.mark.netns]

NS = f"hvv{os.getpid() % 100000}"


@pytest.fixture
def ns() -> Iterator[str]:
    require_root()
    with Registry() as reg:
        reg.add_netns(NS)
        reg.add_netns(NS + "p")
        reg.add_veth(NS, "eth0", NS + "p", "eth0")
        reg.add_address(NS, "eth0", "10.66.0.1/24")
        yield NS


def _addrs(ns: str) -> str:
    return run_in(ns, ["ip", "-o", "addr", "show", "dev", "eth0"]).stdout


def test_add_remove_only_what_we_added(ns: str) -> None:
    run_in(ns, ["ip", "addr", "add", "10.66.0.50/24", "dev", "eth0"])  # the admin's
    vips = (
        VirtualAddress("10.66.0.100", 24, 4, label="eth0:vip", brd="+"),
        VirtualAddress("10.66.0.50", 24, 4),  # already there: never ours to remove
        VirtualAddress("fd66::100", 64, 6),
    )
    routes = (parse_route(("10.99.0.0/16", "via", "10.66.0.254")),
              parse_route(("blackhole", "10.98.0.0/16")))

    def body() -> tuple[str, str, str, str]:
        b = NetlinkVips()
        b.add("VI_1", vips, routes, "eth0")
        b.add("VI_1", vips, routes, "eth0")  # idempotent
        after_add = _addrs(ns) + run_in(ns, ["ip", "route"]).stdout
        flags6 = run_in(ns, ["ip", "-6", "-o", "addr", "show", "dev", "eth0"]).stdout
        b.remove("VI_1", vips[:1], routes[:1], "eth0")
        after_remove = _addrs(ns) + run_in(ns, ["ip", "route"]).stdout
        b.close()  # releases the rest
        return after_add, flags6, after_remove, _addrs(ns) + run_in(ns, ["ip", "route"]).stdout

    after_add, flags6, after_remove, after_close = call_in(ns, body)
    assert "10.66.0.100/24 brd 10.66.0.255" in after_add and "eth0:vip" in after_add
    assert "10.99.0.0/16 via 10.66.0.254" in after_add and "blackhole 10.98.0.0/16" in after_add
    assert "fd66::100/64 scope global nodad" in flags6  # usable at once, no DAD wait
    assert "10.66.0.100" not in after_remove and "10.99.0.0/16" not in after_remove
    assert "fd66::100" in after_remove and "blackhole" in after_remove
    assert "fd66::100" not in after_close and "blackhole" not in after_close
    assert "10.66.0.50/24" in after_close and "10.66.0.1/24" in after_close


def test_adopt_takes_a_predecessors_vips_as_our_own(ns: str) -> None:
    # A restarted worker finds its predecessor's VIP up: add() leaves it unowned,
    # adopt() makes it ours, so the stop path removes it; an absent one is not adopted.
    left = VirtualAddress("10.66.0.77", 24, 4)
    absent = VirtualAddress("10.66.0.78", 24, 4)
    run_in(ns, ["ip", "addr", "add", "10.66.0.77/24", "dev", "eth0"])

    def body() -> tuple[bool, list[VirtualAddress], bool, bool, str]:
        b = NetlinkVips()
        b.add("VI_1", (left,), (), "eth0")
        before = b.owns(left, "eth0")
        taken = b.adopt("VI_1", (left, absent), "eth0")
        after, other = b.owns(left, "eth0"), b.owns(absent, "eth0")
        b.close()
        return before, taken, after, other, _addrs(ns)

    before, taken, after, other, final = call_in(ns, body)
    assert not before and after and not other
    assert taken == [left]
    assert "10.66.0.77" not in final and "10.66.0.1/24" in final


def test_adopt_reads_the_kernel_table_by_netlink(
        ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel's address table comes from one RTM_GETADDR dump, no `ip` child; a
    # point-to-point VIP is found by its local address (IFA_LOCAL), an IPv6 one too.
    import subprocess

    def no_child(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a child process in adopt: {args!r}")

    v6 = VirtualAddress("fd66::77", 64, 6)
    ptp = VirtualAddress("10.66.5.1", 32, 4, peer="10.66.5.2")
    run_in(ns, ["ip", "addr", "add", "fd66::77/64", "dev", "eth0", "nodad"])
    run_in(ns, ["ip", "addr", "add", "10.66.5.1/32", "peer", "10.66.5.2", "dev", "eth0"])
    shown = _addrs(ns)

    def body() -> list[VirtualAddress]:
        b = NetlinkVips()
        try:
            with monkeypatch.context() as m:
                m.setattr(subprocess, "Popen", no_child)
                return b.adopt("VI_1", (v6, ptp, VirtualAddress("10.66.0.1", 32, 4)), "eth0")
        finally:
            b.close()

    # 10.66.0.1 is there as /24, not /32: the prefix is part of the key
    assert call_in(ns, body) == [v6, ptp]
    assert "fd66::77/64" in shown and "10.66.5.1 peer 10.66.5.2/32" in shown
    assert "10.66.5.1" not in _addrs(ns)  # adopted, so released on close


def test_no_accept_filter_through_libnftables_without_a_child(
        ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # RFC 5798 §6.4.3 filtering as the VRRP loop does it at a transition: every
    # change is a libnftables transaction in this thread; a child process (the nft
    # program, waited for on the loop) would fail the test.
    import subprocess

    def no_child(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a child process on the VRRP loop: {args!r}")

    v4, v6 = VirtualAddress("10.66.0.100", 24, 4), VirtualAddress("fd66::100", 64, 6)
    ll = VirtualAddress("fe80::66:100", 64, 6)

    def body() -> tuple[str, str, str, float, bool]:
        f = NoAcceptFilter()
        f.bind("VI_1", "eth0")
        monkeypatch.setattr(subprocess.Popen, "__init__", no_child)
        try:
            t0 = time.perf_counter()
            f.block("VI_1", (v4, v6, ll))
            blocked = _table(f)
            f.block("VI_2", (v4,))  # a second holder of the same VIP
            f.unblock("VI_1", (v4, v6, ll))
            shared = _table(f)
            f.unblock("VI_2", (v4,))
            took = time.perf_counter() - t0
            none = _table(f)
            f.close()
        finally:
            monkeypatch.undo()
        return blocked, shared, none, took, f.failed

    blocked, shared, none, took, failed = call_in(ns, body)
    assert not failed
    assert "10.66.0.100" in blocked and "fd66::100" in blocked
    assert 'fe80::66:100 . "eth0"' in blocked
    assert "10.66.0.100" in shared and "fd66::100" not in shared and "fe80::66" not in shared
    assert "10.66.0.100" not in none
    print(f"\nset-up and four block/unblock transactions: {took * 1e3:.2f} ms")
    assert run_in(ns, ["nft", "list", "ruleset"]).stdout.strip() == ""  # both tables gone


def _table(f: NoAcceptFilter) -> str:
    assert f.nft is not None
    return f.nft.run("list ruleset")
