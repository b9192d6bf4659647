"""The nftables backend's rule text (pure; the kernel accepts it in tests/netns)."""

from __future__ import annotations

from hafast.lvs.backend import Dest, Service, ServiceKey
from hafast.lvs.nft import chain_name, service_rule


def test_weights_become_slot_ranges_and_schedulers_pick_the_expression() -> None:
    svc = Service(ServiceKey(4, "UDP", "10.0.0.1", 53), "sh")
    rule = service_rule(svc, [Dest("10.1.0.3", 53, 3), Dest("10.1.0.2", 53, 1),
                              Dest("10.1.0.4", 53, 0)])
    assert rule == ("meta l4proto udp dnat ip to jhash ip saddr mod 4 map "
                    "{ 0 : 10.1.0.2 . 53, 1-3 : 10.1.0.3 . 53 }")
    lc = service_rule(Service(svc.key, "lc"), [Dest("10.1.0.2", 53, 1)])
    assert lc is not None and "numgen random mod 1" in lc


def test_nothing_with_weight_means_no_rule() -> None:
    svc = Service(ServiceKey(4, "TCP", "10.0.0.1", 80), "rr")
    assert service_rule(svc, [Dest("10.1.0.2", 80, 0)]) is None
    assert service_rule(svc, []) is None


def test_ipv6_and_fwmark_services() -> None:
    v6 = Service(ServiceKey(6, "TCP", "fd00::1", 443), "wrr")
    assert service_rule(v6, [Dest("fd01::2", 443, 2)]) == (
        "meta l4proto tcp dnat ip6 to numgen inc mod 2 map { 0-1 : [fd01::2] . 443 }")
    fw = Service(ServiceKey(4, "", None, 0, 7), "rr")
    assert service_rule(fw, [Dest("10.1.0.2", 0, 1)]) == (
        "meta nfproto ipv4 dnat ip to numgen inc mod 1 map { 0 : 10.1.0.2 }")
    assert chain_name(fw.key) == "m4_7"
    assert chain_name(v6.key) == "s6_tcp_fd00__1_443"


class RecordingNft:
    """Stands in for libnftables: keeps the scripts."""

    def __init__(self) -> None:
        self.scripts: list[str] = []

    def run(self, script: str, *, json_output: bool = False) -> str:
        self.scripts.append(script)
        return ""


def _stop_after_start(keep: bool) -> list[str]:
    import asyncio

    from hafast.config.loader import load_text
    from hafast.lvs.manager import PoolManager
    from hafast.lvs.nft import NftBackend

    conf = ("virtual_server 10.0.0.1 80 {\n protocol TCP\n real_server 10.1.0.1 80 {\n"
            "  TCP_CHECK {\n  }\n }\n}\n")
    nft = RecordingNft()

    async def body() -> None:
        mgr = PoolManager(load_text(conf).config, NftBackend(nft=nft),  # type: ignore[arg-type]
                          keep=keep, run_scripts=False)
        await mgr.start()
        await mgr.stop()

    asyncio.run(body())
    return nft.scripts


def test_graceful_stop_deletes_the_table_unless_dont_release_ipvs() -> None:
    # Issue 12 item 6: an empty hafast_lvs was left behind after SIGTERM.
    last = _stop_after_start(keep=False)[-1]
    assert "delete table inet hafast_lvs" in last
    # -I (keep): the table stays, its content too
    scripts = _stop_after_start(keep=True)
    assert not any("delete table" in s for s in scripts[1:])  # scripts[0]: open's reset
    assert "add rule inet hafast_lvs" in scripts[-1]


def test_start_replaces_a_left_table_and_fills_it_in_one_transaction() -> None:
    # Issue 17 (chaos, parent SIGKILL then restart): open() ran the skeleton alone,
    # which swapped the dead parent's full table for an empty one; the pool came
    # 70 ms later in a second transaction.  Now nothing is committed in between.
    scripts = _stop_after_start(keep=True)
    assert len(scripts) == 1
    first = scripts[0]
    assert first.index("delete table inet hafast_lvs") < first.index("add rule inet hafast_lvs")
    assert "10.1.0.1 . 80" in first


def test_start_with_nothing_to_apply_still_makes_the_table() -> None:
    import asyncio

    from hafast.lvs.backend import Pool
    from hafast.lvs.nft import NftBackend

    nft = RecordingNft()

    async def body() -> None:
        b = NftBackend(nft=nft)  # type: ignore[arg-type]
        await b.open()
        assert nft.scripts == []
        await b.apply([])
        assert await b.dump() == Pool()

    asyncio.run(body())
    assert len(nft.scripts) == 1 and "map svc4" in nft.scripts[0]
