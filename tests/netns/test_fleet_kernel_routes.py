"""The fleet's kernel routes in a real namespace (hafast.fleet.kernel): what
``KernelRoutes.ours`` reads back, and a start that withdraws the announcements an
earlier run left for a VIP the config no longer has (fail-static keeps them after a
crash; nobody else would ever withdraw them)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hafast.config.loader import load_text
from hafast.fleet.kernel import RTPROT_HAFAST_FLEET, KernelRoutes
from hafast.fleet.runner import Announcer
from hafast.lab.netns import Registry, inside, run_in
from tests.conftest import require_root

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(60)]

NS = f"fkr{os.getpid() % 100000}"


@pytest.fixture
def ns() -> Iterator[str]:
    require_root()
    with Registry() as reg:
        reg.add_netns(NS)  # loopback up: the local routes' device; blackholes need none
        yield NS


def fleet_routes(ns: str) -> set[tuple[str, str, str]]:
    """(table, type, dst) of every protocol-250 route, as ``ip`` shows them."""
    out = set()
    for family in ("-4", "-6"):
        got = run_in(ns, ["ip", "-j", family, "route", "show", "table", "all",
                          "proto", str(RTPROT_HAFAST_FLEET)]).stdout
        for r in json.loads(got or "[]"):
            out.add((str(r.get("table", "main")), r.get("type", "unicast"), r["dst"]))
    return out


class Loop:
    """Enough of a loop for Announcer.start: the time and timers it never runs here."""

    def time(self) -> float:
        return 0.0

    def call_at(self, when: float, fn: object, *args: object) -> object:
        class Handle:
            def cancel(self) -> None:
                pass
        return Handle()


def test_ours_reads_back_both_families_and_nothing_else(ns: str) -> None:
    with inside(ns):
        k = KernelRoutes()
        try:
            for p in ("192.0.2.10/32", "2001:db8:9::10/128"):
                k.make_local(p)
                k.announce(p)
            # an operator's route to the same kind of prefix is not ours
            run_in(ns, ["ip", "route", "add", "blackhole", "192.0.2.11/32", "proto", "static"])
            assert k.ours() == {"192.0.2.10/32", "2001:db8:9::10/128"}
        finally:
            k.close()


def test_a_start_withdraws_a_vip_the_config_no_longer_has(ns: str) -> None:
    with inside(ns):
        k = KernelRoutes()
        try:
            for p in ("192.0.2.20/32", "192.0.2.21/32"):  # what a crashed run left
                k.make_local(p)
                k.announce(p)
            run_in(ns, ["ip", "route", "add", "blackhole", "192.0.2.22/32", "proto", "static"])
            cfg = load_text("""virtual_server 192.0.2.20 80 {
  lvs_sched mh
  lvs_method DR
  announce { prefix 192.0.2.20/32 }
  real_server 10.7.0.5 80 { TCP_CHECK { connect_timeout 1 } }
}
""")
            assert cfg.ok, [d.format() for d in cfg.errors]
            a = Announcer(Loop(), k)
            a.start(cfg.config, lambda key: False)
            a.stop()
            # 192.0.2.21 is gone (both routes); 192.0.2.20 is left to its machine
            # (STARTUP holds what the kernel has); the operator's route is untouched
            assert fleet_routes(ns) == {("main", "blackhole", "192.0.2.20"),
                                        ("local", "local", "192.0.2.20")}
            static = run_in(ns, ["ip", "route", "show", "192.0.2.22/32"]).stdout
            assert "blackhole 192.0.2.22" in static
        finally:
            k.close()


def test_hafast_t_warns_about_a_vip_someone_put_on_an_interface(ns: str, tmp_path: Path) -> None:
    """An address of the announced VIP that the config does not make (an operator's
    ``ip addr add``): zebra would keep it announced as connected; ``hafast -t`` run in
    the namespace says so, and says nothing once the address is gone."""
    conf = tmp_path / "k.conf"
    conf.write_text("""virtual_server 192.0.2.100 80 {
  protocol TCP
  lvs_sched wlc
  lvs_method DR
  announce {
    prefix 192.0.2.100/32
  }
  real_server 10.1.0.1 80 {
  }
}
""")
    argv = [sys.executable, "-m", "hafast", "-t", "-f", str(conf)]
    run_in(ns, ["ip", "addr", "add", "192.0.2.100/32", "dev", "lo"])
    said = run_in(ns, argv, check=False)
    assert "announce 192.0.2.100/32: 192.0.2.100 is an address on an interface here" in (
        said.stdout + said.stderr), said
    run_in(ns, ["ip", "addr", "del", "192.0.2.100/32", "dev", "lo"])
    said = run_in(ns, argv, check=False)
    assert "is an address on an interface" not in said.stdout + said.stderr, said
