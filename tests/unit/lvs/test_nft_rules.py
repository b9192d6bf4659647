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


# -- LVS-DR (hafast.lvs.nft_dr): the netdev table, as the backend writes it ----------


class FakeNeighbours:
    """Stands in for rtnetlink: each address's hop (or why none), the links up."""

    def __init__(self, hops: dict[str, object], devices: list[str]) -> None:
        self.hops, self.up = hops, devices
        self.nudged: list[str] = []
        self.refreshed = 0

    def refresh(self) -> None:
        self.refreshed += 1

    def lookup(self, address: str) -> object:
        return self.hops[address]

    def devices(self) -> list[str]:
        return list(self.up)

    def nudge(self, address: str) -> None:
        self.nudged.append(address)


def _hop(n: int) -> object:
    from hafast.net.neighbours import LinkHop

    return LinkHop("eth1", f"02:00:00:00:00:0{n}", "02:00:00:00:00:ff")


def test_dr_rule_picks_by_flow_hash_client_hash_or_destination_hash() -> None:
    from hafast.lvs.nft_dr import dr_rule

    key = ServiceKey(6, "UDP", "fd00::1", 53)
    hops = [(_hop(1), 1), (_hop(2), 2), (_hop(3), 0)]
    assert dr_rule(Service(key, "wlc"), hops) == (  # type: ignore[arg-type]
        "meta l4proto udp ether saddr set 02:00:00:00:00:ff ether daddr set jhash ip6 saddr "
        ". th sport mod 3 map { 0 : 02:00:00:00:00:01, 1-2 : 02:00:00:00:00:02 } "
        'fwd to "eth1"')
    sticky = dr_rule(Service(key, "rr", timeout=60), hops)  # type: ignore[arg-type]
    assert sticky is not None and "jhash ip6 saddr mod 3 map" in sticky
    dh = dr_rule(Service(key, "dh"), hops)  # type: ignore[arg-type]
    assert dh is not None and "jhash ip6 daddr mod 3 map" in dh
    assert dr_rule(Service(key, "rr"), [(_hop(3), 0)]) is None  # type: ignore[list-item]


def test_dr_services_go_to_the_netdev_table_hooked_while_one_exists() -> None:
    import asyncio

    from hafast.lvs.backend import Pool, diff
    from hafast.lvs.nft import NftBackend
    from hafast.net.neighbours import NOT_ON_LINK, UNRESOLVED

    key = ServiceKey(4, "TCP", "192.0.2.1", 80)
    chain = chain_name(key)
    nft = RecordingNft()
    near = FakeNeighbours({"10.1.0.1": _hop(1), "10.1.0.2": UNRESOLVED,
                           "10.9.0.1": NOT_ON_LINK}, ["eth0", "eth1"])

    def pool(method: str, *addresses: str) -> Pool:
        p = Pool()
        p.add(Service(key, "wrr"), [Dest(a, 80, 1, method) for a in addresses])
        return p

    async def body() -> None:
        b = NftBackend(nft=nft, neighbours=near)  # type: ignore[arg-type]
        await b.open()
        await b.apply(diff(await b.dump(), pool("DR", "10.1.0.1", "10.1.0.2", "10.9.0.1")))
        first = nft.scripts[-1]
        # the skeleton came with it; the chain jumps from dr4; hooked on the links up
        assert "table netdev hafast_lvs_dr {" in first
        assert f"add element netdev hafast_lvs_dr dr4 {{ 192.0.2.1 . tcp . 80 : jump {chain} }}" \
            in first
        assert 'hook ingress devices = { "eth0", "eth1" }' in first
        # only the resolved one for now; the unresolved one nudged, the far one left out
        assert "map { 0 : 02:00:00:00:00:01 }" in first and "dnat" not in first
        assert near.nudged == ["10.1.0.2"]
        from hafast.lvs.nft_dr import RETRY_S

        assert b.dr.delay() == RETRY_S[0]  # looked at again soon
        near.hops["10.1.0.2"] = _hop(2)
        b._dr_tick()  # what the timer armed by apply does
        assert near.refreshed == 1  # the tables read afresh for it
        assert "map { 0 : 02:00:00:00:00:01, 1 : 02:00:00:00:00:02 }" in nft.scripts[-1]
        assert "hook ingress" not in nft.scripts[-1]  # the links did not change
        assert b.dr.delay() == 30.0  # none waiting: the slow look for changed MACs
        sent = len(nft.scripts)
        b._dr_tick()  # nothing changed: nothing sent
        assert len(nft.scripts) == sent or nft.scripts[-1].strip() == ""
        near.hops["10.1.0.1"] = _hop(3)  # a real server's new MAC (a replaced NIC)
        b._dr_tick()
        assert "map { 0 : 02:00:00:00:00:03, 1 : 02:00:00:00:00:02 }" in nft.scripts[-1]
        # lvs_method NAT now: out of the netdev table, into the inet one, unhooked
        await b.apply(diff(await b.dump(), pool("NAT", "10.1.0.1")))
        moved = nft.scripts[-1]
        assert "delete element netdev hafast_lvs_dr dr4 { 192.0.2.1 . tcp . 80 }" in moved
        assert f"delete chain netdev hafast_lvs_dr {chain}" in moved
        assert "delete chain netdev hafast_lvs_dr ingress" in moved
        assert f"add rule inet hafast_lvs {chain} meta l4proto tcp dnat ip to" in moved
        await b.release()
        assert "delete table netdev hafast_lvs_dr" in nft.scripts[-1]

    asyncio.run(body())


def test_a_down_is_its_elements_alone_and_the_rule_narrows_once_for_a_burst() -> None:
    """Issue 16: a verdict must reach the kernel in under 10 ms p99.  Adding the rule
    that names a 10,000-slot map costs ~1.5 ms, and every DOWN of a burst paid it.
    A server leaving is now its map elements alone (the rule keeps its width, the
    slot past the table lent to a server still in it); one transaction a moment
    later (NftBackend._narrow, by its timer) narrows the rule once for the burst.
    A server coming back within the lent width needs no rule either; stopping with
    -I (close) narrows what is still wide."""
    import asyncio

    import hafast.lvs.nft as nft_mod
    from hafast.lvs.backend import Dest, Pool, Service, ServiceKey, diff
    from hafast.lvs.nft import NftBackend

    nft = RecordingNft()
    key = ServiceKey(4, "TCP", "10.0.0.1", 80)
    addrs = [f"10.1.0.{i}" for i in range(1, 6)]

    def pool(*up: str) -> Pool:
        p = Pool()
        p.add(Service(key, "rr"), [Dest(a, 80, 1) for a in up])
        return p

    async def body() -> list[str]:
        b = NftBackend(nft=nft)  # type: ignore[arg-type]
        await b.open()
        await b.apply(diff(await b.dump(), pool(*addrs)))
        for gone in (addrs[1], addrs[3]):  # a burst of two DOWNs
            await b.apply(diff(await b.dump(), pool(*(a for a in addrs
                                                        if a not in (addrs[1], gone)))))
        assert b.ruled == {key: 5}
        await asyncio.sleep(nft_mod.NARROW_AFTER * 2)  # the timer's transaction
        assert b.ruled == {}
        await b.apply(diff(await b.dump(), pool(*addrs[:4])))  # 10.1.0.2, .4 back: mod 4
        await b.apply(diff(await b.dump(), pool(*addrs[:3])))  # .4 down again: lent
        await b.close()
        return nft.scripts[1:]

    down1, down2, narrow, back, down3, closing = asyncio.run(body())
    for down in (down1, down2, down3):
        assert "add rule" not in down and "flush chain" not in down, down
    assert down1 == ("delete element inet hafast_lvs s4_tcp_10_0_0_1_80_sp { 1, 4 }\n"
                     "add element inet hafast_lvs s4_tcp_10_0_0_1_80_sp "
                     "{ 1 : 10.1.0.5 . 80, 4 : 10.1.0.1 . 80 }\n")
    assert narrow == ("delete element inet hafast_lvs s4_tcp_10_0_0_1_80_sp { 3, 4 }\n"
                      "flush chain inet hafast_lvs s4_tcp_10_0_0_1_80\n"
                      "add rule inet hafast_lvs s4_tcp_10_0_0_1_80 meta l4proto tcp dnat ip "
                      "to numgen inc mod 3 map @s4_tcp_10_0_0_1_80_sp\n")
    assert "mod 4 map" in back  # wider than the rule: the rule at once
    assert closing.startswith("delete element inet hafast_lvs s4_tcp_10_0_0_1_80_sp { 3 }\n")
    assert "mod 3 map" in closing
