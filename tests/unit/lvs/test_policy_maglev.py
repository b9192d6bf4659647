"""A Maglev fleet's pool (``lvs_sched mh`` + ``announce``): every director must add the
same destinations in the same order, and keep it, so their Maglev tables agree
(hafast/lvs/policy.py's docstring; the VM test is tests/ipvs/test_fleet_maglev.py)."""

from __future__ import annotations

import pytest

from hafast.config import model as m
from hafast.config.loader import load_text
from hafast.fleet.runner import maglev_warnings
from hafast.lib.events import DOWN, UP, ServerEvent
from hafast.lvs.backend import ADD_DEST, DEL_DEST, EDIT_DEST, Change, Pool, ServiceKey, diff
from hafast.lvs.policy import PoolPolicy

VIP = "192.0.2.100"
SVC = ServiceKey(4, "TCP", VIP, 80)
# written out of order, 10.1.0.9 before 10.1.0.10 only numerically
SERVERS = ("10.1.0.21", "10.1.0.10", "10.1.0.9", "10.1.0.23")


def config(sched: str = "mh", announce: bool = True, order: tuple[str, ...] = SERVERS,
           extra: str = "") -> m.Config:
    rss = "".join(f"  real_server {a} 80 {{\n    TCP_CHECK {{ }}\n  }}\n" for a in order)
    ann = f"  announce {{\n    prefix {VIP}/32\n  }}\n" if announce else ""
    res = load_text(f"virtual_server {VIP} 80 {{\n  protocol TCP\n  lvs_sched {sched}\n"
                    f"  mh-port\n  lvs_method DR\n{extra}{ann}{rss}}}\n")
    assert not res.errors, res.errors
    return res.config


def added(changes: list[Change]) -> list[str]:
    return [c.dest.address for c in changes if c.op == ADD_DEST and c.dest is not None]


def ops(changes: list[Change]) -> list[tuple[str, str, int]]:
    return [(c.op, c.dest.address, c.dest.weight) for c in changes if c.dest is not None]


def event(cfg: m.Config, rs: str, state: str, at: float) -> ServerEvent:
    return ServerEvent(cfg.virtual_servers[0].key, (rs, 80), state, 1, "test", at)


NUMERIC = ["10.1.0.9", "10.1.0.10", "10.1.0.21", "10.1.0.23"]


def test_destinations_are_added_sorted_whatever_the_config_order() -> None:
    for order in (SERVERS, tuple(reversed(SERVERS))):
        p = PoolPolicy(config(order=order))
        p.start()
        assert added(diff(Pool(), p.pool)) == NUMERIC


def test_a_dead_real_server_stays_at_weight_zero_and_keeps_its_place() -> None:
    cfg = config()
    p = PoolPolicy(cfg)
    p.start()
    kernel = Pool()
    kernel.apply(diff(kernel, p.pool))
    p.on_event(event(cfg, "10.1.0.10", DOWN, 1.0))
    down = diff(kernel, p.pool)
    assert ops(down) == [(EDIT_DEST, "10.1.0.10", 0)]
    kernel.apply(down)
    p.on_event(event(cfg, "10.1.0.10", UP, 2.0))
    up = diff(kernel, p.pool)
    assert ops(up) == [(EDIT_DEST, "10.1.0.10", 1)]
    assert not any(c.op in (ADD_DEST, DEL_DEST) for c in down + up)


def test_alpha_servers_start_in_at_weight_zero_in_order() -> None:
    """With alpha each director would otherwise add its servers in the order their
    first checks happened to pass."""
    cfg = config(extra="  alpha\n")
    p = PoolPolicy(cfg)
    p.start()
    assert added(diff(Pool(), p.pool)) == NUMERIC
    assert {d.weight for d in p.pool.dests[SVC].values()} == {0}


@pytest.mark.parametrize(("sched", "announce"), [("mh", False), ("wlc", True)])
def test_other_services_keep_keepalived_order_and_removal(sched: str, announce: bool) -> None:
    cfg = config(sched=sched, announce=announce)
    p = PoolPolicy(cfg)
    p.start()
    assert added(diff(Pool(), p.pool)) == list(SERVERS)
    p.on_event(event(cfg, "10.1.0.10", DOWN, 1.0))
    assert ("10.1.0.10", 80) not in p.pool.dests[SVC]


def test_sloppy_tcp_warning() -> None:
    seen: list[str] = []

    def read(path: str) -> str | None:
        seen.append(path)
        return "0"

    [text] = maglev_warnings(config(), read)
    assert seen == ["/proc/sys/net/ipv4/vs/sloppy_tcp"]
    assert "sloppy_tcp is 0" in text and f"{VIP} 80" in text
    assert maglev_warnings(config(), lambda path: "1") == []
    assert maglev_warnings(config(), lambda path: None) == []  # no ip_vs: no judgement
    assert maglev_warnings(config(sched="wlc"), read) == []
    assert maglev_warnings(config(announce=False), read) == []
