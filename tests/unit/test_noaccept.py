"""hafast.net.noaccept without a kernel: the transactions the filter sends, in order.

A recording stand-in for :class:`hafast.net.nftables.Nft` takes the scripts; the
namespace test (``tests/netns/test_noaccept_as_keepalived.py``) checks what the
kernel makes of them against keepalived 2.2.7.
"""

from __future__ import annotations

from typing import Any, cast

from hafast.config.model import VirtualAddress
from hafast.net.nftables import Nft, NftError
from hafast.net.noaccept import NftSettings, NoAcceptFilter

V4 = VirtualAddress("10.0.0.1", 24, 4)
V4B = VirtualAddress("10.0.0.2", 32, 4)
V6 = VirtualAddress("fd00::1", 64, 6)
LL = VirtualAddress("fe80::1:1", 64, 6)
LL_DEV = VirtualAddress("fe80::1:2", 64, 6, dev="eth1")


class Recorder:
    lib = object()  # "libnftables loaded"

    def __init__(self) -> None:
        self.scripts: list[str] = []
        self.fail = False

    def run(self, script: str, *, json_output: bool = False) -> str:
        if self.fail:
            raise NftError("nft: refused")
        self.scripts.append(script)
        return ""


def _filter(settings: NftSettings | None = None) -> tuple[NoAcceptFilter, Recorder]:
    rec = Recorder()
    return NoAcceptFilter(settings, nft=cast(Nft, cast(Any, rec))), rec


def test_a_family_s_table_comes_with_its_first_vip() -> None:
    f, rec = _filter()
    f.block("VI_1", (V4,))
    assert len(rec.scripts) == 1
    s = rec.scripts[0]
    # a leftover of the name goes first, in the same transaction
    assert s.startswith("add table ip keepalived\ndelete table ip keepalived\n")
    assert "ip6" not in s
    assert s.index("chain ip keepalived out") < s.index("chain ip keepalived in ")
    assert "type filter hook output priority -1; policy accept;" in s
    assert "add rule ip keepalived in ip daddr @vips drop" in s
    assert "add rule ip keepalived out ip saddr @vips drop" in s
    assert s.endswith("add element ip keepalived vips { 10.0.0.1 }\n")
    f.block("VI_1", (V4B,))  # the table exists: only the element
    assert rec.scripts[1] == "add element ip keepalived vips { 10.0.0.2 }\n"


def test_settings_name_priority_counters() -> None:
    f, rec = _filter(NftSettings(table="vr", priority=-7, counters=True))
    f.block("VI_1", (V6,))
    s = rec.scripts[0]
    assert "add table ip6 vr" in s and "priority -7;" in s
    assert "add rule ip6 vr in ip6 daddr @vips counter drop" in s
    assert "icmpv6 type @neighbor-discovery counter accept" in s
    assert "ip6 daddr fe80::/10 counter goto in_link_local" in s
    assert "vips_link_local" not in s  # made with the first link-local VIP


def test_link_local_by_index_or_by_name() -> None:
    f, rec = _filter()
    f.bind("VI_1", "eth0")
    f.block("VI_1", (LL,))
    s = rec.scripts[0]
    assert "add set ip6 keepalived vips_link_local { type ipv6_addr . iface_index; }" in s
    assert "ip6 daddr . iif @vips_link_local drop" in s
    assert s.endswith('add element ip6 keepalived vips_link_local { fe80::1:1 . "eth0" }\n')
    # dont_track_primary: the VIP on the instance's interface by name, another by index
    f, rec = _filter()
    f.bind("VI_1", "eth0", dont_track_primary=True)
    f.block("VI_1", (LL, LL_DEV))
    s = rec.scripts[0]
    assert "vips_link_local_name { type ipv6_addr . ifname; }" in s
    assert "ip6 saddr . oifname @vips_link_local_name drop" in s
    assert 'vips_link_local { fe80::1:2 . "eth1" }' in s
    assert 'vips_link_local_name { fe80::1:1 . "eth0" }' in s
    # ... unless nftables_ifindex
    f, rec = _filter(NftSettings(ifindex=True))
    f.bind("VI_1", "eth0", dont_track_primary=True)
    f.block("VI_1", (LL,))
    assert "vips_link_local_name" not in rec.scripts[0]


def test_shared_vips_and_stop() -> None:
    f, rec = _filter()
    f.block("VI_1", (V4, V6))
    f.block("VI_2", (V4,))
    assert len(rec.scripts) == 1  # already filtered
    f.unblock("VI_1", (V4, V6))
    assert rec.scripts[1] == "delete element ip6 keepalived vips { fd00::1 }\n"
    assert f.blocked == ["10.0.0.1"]
    f.unblock("VI_3", (V4,))  # not a holder: nothing
    assert len(rec.scripts) == 2
    f.close()
    assert rec.scripts[2] == "delete table ip keepalived\ndelete table ip6 keepalived\n"
    f.close()
    assert len(rec.scripts) == 3


def test_a_refused_transaction_leaves_nothing_behind() -> None:
    f, rec = _filter()
    rec.fail = True
    f.block("VI_1", (V4,))
    assert f.blocked == [] and not f.ready
    rec.fail = False
    f.block("VI_1", (V4,))  # tried again in full, tables and all
    assert rec.scripts[0].startswith("add table ip keepalived\n")
    f.close()
    f2, rec2 = _filter()
    f2.close()
    assert rec2.scripts == []  # never master without Accept_Mode: nftables untouched
