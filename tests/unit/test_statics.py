"""static_ipaddress / static_routes / static_rules: what the VRRP side holds across
start, reload and stop (hafast.net.statics), against the in-memory VIP backend."""

from __future__ import annotations

from hafast.config.iproute import parse_route
from hafast.config.iprule import parse_rule
from hafast.config.loader import load_text
from hafast.config.model import Config
from hafast.net.statics import OWNER, Statics
from hafast.net.vip import MemoryVips


def config(addrs: str, routes: str, rules: str) -> Config:
    res = load_text(f"global_defs {{\n default_interface eth1\n}}\n"
                    f"static_ipaddress {{\n{addrs}\n}}\nstatic_routes {{\n{routes}\n}}\n"
                    f"static_rules {{\n{rules}\n}}\n")
    assert not res.errors, res.errors
    return res.config


def test_start_reload_stop() -> None:
    mem = MemoryVips()
    statics = Statics(backend=mem)
    statics.apply(config("10.1.0.1/24\n10.2.0.1/24 dev eth2",
                         "10.9.0.0/16 via 10.1.0.254\nblackhole 10.8.0.0/16",
                         "from 10.1.0.0/24 table 5 priority 10\nto 10.7.0.0/16 table 5"))
    assert set(mem.installed) == {("eth1", "10.1.0.1/24"), ("eth2", "10.2.0.1/24")}
    assert set(mem.installed.values()) == {OWNER}
    assert set(mem.routes) == {parse_route(("10.9.0.0/16", "via", "10.1.0.254")),
                               parse_route(("blackhole", "10.8.0.0/16"))}
    # keepalived numbers the second rule
    assert parse_rule(("to", "10.7.0.0/16", "table", "5", "preference", "16384"))[0] in mem.rules
    # a reload: what went goes, what came comes, what stayed is not touched
    mem.log.clear()
    statics.apply(config("10.1.0.1/24\n10.3.0.1/24",
                         "10.9.0.0/16 via 10.1.0.254",
                         "from 10.1.0.0/24 table 5 priority 10"))
    assert set(mem.installed) == {("eth1", "10.1.0.1/24"), ("eth1", "10.3.0.1/24")}
    assert ("remove", "10.2.0.1/24") in mem.log
    assert list(mem.routes) == [parse_route(("10.9.0.0/16", "via", "10.1.0.254"))]
    assert list(mem.rules) == [parse_rule(("from", "10.1.0.0/24", "table", "5",
                                           "priority", "10"))[0]]
    statics.release()
    assert not mem.installed and not mem.routes and not mem.rules
    assert statics.counters() == {}


def test_no_statics_no_backend() -> None:
    statics = Statics()
    statics.apply(Config())  # would open a netlink socket if it made a backend
    statics.release()
    assert statics._backend is None
