"""use_vmac: names, MACs and the sysctls keepalived 2.2.7 sets (no root needed).

The link itself (netlink) is exercised in tests/netns/test_vrrp_vmac.py beside
keepalived; here the pure choices, and the sysctl bookkeeping on a fake /proc/sys.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hafast.config.loader import load_text
from hafast.net.vmac import (
    PARENT_SYSCTLS,
    VMAC_SYSCTLS,
    Sysctl,
    VmacLinks,
    _Held,
    conf_key,
    link_local_from_mac,
    restore_plan,
    rp_filter_plan,
)
from hafast.vrrp.from_config import VmacConfig, channel_for, vip_ifname, vmac_for, vrrp_mac


def _inst(body: str, vips: str = "10.0.0.1/24", glob: str = "") -> tuple:
    text = (f"global_defs {{\n{glob}\n}}\n" if glob else "") + (
        "vrrp_instance V {\n interface eth0\n virtual_router_id 51\n"
        f"{body}\n virtual_ipaddress {{\n {vips}\n }}\n}}\n")
    cfg = load_text(text).config
    return cfg.vrrp_instances[0], cfg.global_defs


def test_default_name_and_mac() -> None:
    inst, gd = _inst(" use_vmac")
    v = vmac_for(inst, gd)
    assert v is not None
    assert (v.name, v.parent, v.mac_text, v.family, v.xmit_base, v.ipv6) == (
        "vrrp.51", "eth0", "00:00:5e:00:01:33", 4, False, False)
    # The adverts leave from the macvlan, the VIPs go on it.
    assert channel_for(inst, gd).ifname == "vrrp.51"
    assert vip_ifname(inst, gd) == "vrrp.51"


def test_ipv6_instance_keeps_keepalived_name() -> None:
    # keepalived 2.2.7 names an IPv6 instance's macvlan vrrp.VRID too (seen side by side).
    inst, gd = _inst(" use_vmac", vips="fd00::1/64")
    v = vmac_for(inst, gd)
    assert v is not None and (v.name, v.mac_text, v.ipv6) == ("vrrp.51", "00:00:5e:00:02:33", True)


@pytest.mark.parametrize(("words", "name", "mac"), [
    ("use_vmac vmx1", "vmx1", "00:00:5e:00:01:33"),
    ("use_vmac name vmx2", "vmx2", "00:00:5e:00:01:33"),
    ("use_vmac vmx3 02:11:22:33:44", "vmx3", "02:11:22:33:44:33"),  # five octets + VRID
    ("use_vmac 02:11:22:33:44:55 vmx4", "vmx4", "02:11:22:33:44:55"),
    ("use_vmac 03:11:22:33:44:55", "vrrp.51", "00:00:5e:00:01:33"),  # multicast: ignored
    ("use_vmac 00:00:5e:00:01:07", "vrrp.51", "00:00:5e:00:01:33"),  # RFC 5798's: ignored
    ("use_vmac 02:11:zz:33:44:55", "vrrp.51", "00:00:5e:00:01:33"),  # malformed: ignored
    ("use_vmac a/b", "vrrp.51", "00:00:5e:00:01:33"),  # not a device name: ignored
    ("use_vmac abcdefghijklmnop", "vrrp.51", "00:00:5e:00:01:33"),  # 16 characters: too long
])
def test_use_vmac_words(words: str, name: str, mac: str) -> None:
    inst, gd = _inst(" " + words)
    v = vmac_for(inst, gd)
    assert v is not None and (v.name, v.mac_text) == (name, mac)


def test_vmac_prefix() -> None:
    inst, gd = _inst(" use_vmac", glob=" vmac_prefix ka")
    assert vip_ifname(inst, gd) == "ka.51"


def test_xmit_base_sends_from_the_parent() -> None:
    inst, gd = _inst(" use_vmac\n vmac_xmit_base")
    assert channel_for(inst, gd).ifname == "eth0"
    assert vip_ifname(inst, gd) == "vrrp.51"
    assert channel_for(inst, gd).vmac.xmit_base  # type: ignore[union-attr]


def test_unicast_forces_xmit_base() -> None:
    # keepalived: "unicast with use_vmac requires vmac_xmit_base - setting".
    inst, gd = _inst(" use_vmac\n unicast_peer {\n 10.0.0.9\n }")
    assert channel_for(inst, gd).ifname == "eth0"


def test_ipv6_evip_keeps_ipv6_on() -> None:
    inst, gd = _inst(" use_vmac\n virtual_ipaddress_excluded {\n fd00::5/64\n }")
    assert vmac_for(inst, gd).ipv6  # type: ignore[union-attr]
    inst, gd = _inst(" use_vmac\n virtual_ipaddress_excluded {\n fd00::5/64 dev eth1\n }")
    assert not vmac_for(inst, gd).ipv6  # type: ignore[union-attr]


def test_without_use_vmac_nothing_changes() -> None:
    inst, gd = _inst("")
    assert vmac_for(inst, gd) is None
    assert channel_for(inst, gd).ifname == vip_ifname(inst, gd) == "eth0"


def test_rfc5798_mac() -> None:
    assert vrrp_mac(1, 4).hex(":") == "00:00:5e:00:01:01"
    assert vrrp_mac(255, 6).hex(":") == "00:00:5e:00:02:ff"


def test_link_local_is_modified_eui64() -> None:
    # RFC 4291 appendix A: universal/local bit flipped, ff:fe in the middle.
    ll = link_local_from_mac(bytes.fromhex("021122334455"))
    assert ll.hex() == "fe80000000000000" + "001122fffe334455"


def test_rp_filter_plan_raises_before_clearing_all() -> None:
    plan = rp_filter_plan(1, 0, {"eth0": 0, "eth1": 2})
    assert plan == [(conf_key("default", "rp_filter"), 0, 1),
                    (conf_key("eth0", "rp_filter"), 0, 1),
                    (conf_key("all", "rp_filter"), 1, 0)]
    assert plan[-1][0].endswith("all/rp_filter")  # all last: nothing filters less meanwhile


def test_restore_only_what_still_holds_our_value() -> None:
    writes = [("a", 0, 1), ("b", 2, 0)]
    assert restore_plan(writes, {"a": 1, "b": 0}) == [("a", 0), ("b", 2)]
    assert restore_plan(writes, {"a": 2, "b": 1}) == []  # changed since: the admin's


def _proc(root: Path, values: dict[str, int]) -> Sysctl:
    for key, value in values.items():
        p = root / key
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"{value}\n")
    return Sysctl(root)


def test_sysctls_set_and_restored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = {conf_key(i, k): 0 for i in ("all", "default", "lo", "eth0", "eth1", "vrrp.51")
            for k in ("arp_ignore", "arp_filter", "rp_filter", "accept_local",
                      "promote_secondaries")}
    base[conf_key("all", "rp_filter")] = 2
    base[conf_key("eth0", "rp_filter")] = 1
    base[conf_key("eth0", "arp_ignore")] = 2
    sysctl = _proc(tmp_path, base)
    links = VmacLinks(sysctl)
    deleted: list[int] = []

    def delete(index: int) -> int:
        deleted.append(index)
        return 0

    monkeypatch.setattr(links, "_delete", delete)
    cfg = VmacConfig("vrrp.51", "eth0", vrrp_mac(51, 4), 4)
    links._set_ipv4(cfg)
    links._held["vrrp.51"] = _Held(cfg, 7, {"V"})
    got = {k: sysctl.get(k) for k in base}
    for name, value in VMAC_SYSCTLS:
        assert got[conf_key("vrrp.51", name)] == value
    for name, value in PARENT_SYSCTLS:
        assert got[conf_key("eth0", name)] == value
    # all.rp_filter moved onto default and every interface below it, then cleared;
    # loopback left alone, as keepalived 2.2.7 leaves it.
    assert got[conf_key("all", "rp_filter")] == 0
    assert got[conf_key("default", "rp_filter")] == 2
    assert got[conf_key("eth0", "rp_filter")] == 2
    assert got[conf_key("eth1", "rp_filter")] == 2
    assert got[conf_key("lo", "rp_filter")] == 0
    # An administrator changes eth1's meanwhile: that one stays theirs.
    sysctl.set(conf_key("eth1", "rp_filter"), 1)
    links.close()
    assert deleted == [7]
    after = {k: sysctl.get(k) for k in base}
    assert after[conf_key("all", "rp_filter")] == 2
    assert after[conf_key("default", "rp_filter")] == 0
    assert after[conf_key("eth0", "rp_filter")] == 1
    assert after[conf_key("eth1", "rp_filter")] == 1
    assert after[conf_key("eth0", "arp_ignore")] == 2
    assert after[conf_key("eth0", "arp_filter")] == 0


def test_parent_restored_with_its_last_macvlan(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    keys = [conf_key(i, k) for i in ("all", "default", "eth0", "a", "b")
            for k in ("arp_ignore", "arp_filter", "rp_filter", "accept_local",
                      "promote_secondaries")]
    sysctl = _proc(tmp_path, dict.fromkeys(keys, 0))
    links = VmacLinks(sysctl)
    monkeypatch.setattr(links, "_delete", lambda index: 0)
    for i, name in enumerate(("a", "b")):
        cfg = VmacConfig(name, "eth0", vrrp_mac(i + 1, 4), 4)
        links._set_ipv4(cfg)
        links._held[name] = _Held(cfg, 10 + i, {name.upper()})
    links.release("A")
    assert sysctl.get(conf_key("eth0", "arp_ignore")) == 1  # b still on eth0
    links.release("B")
    assert sysctl.get(conf_key("eth0", "arp_ignore")) == 0
    assert links.names == []


def test_keep_leaves_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = [conf_key(i, k) for i in ("all", "default", "eth0", "vrrp.51")
            for k in ("arp_ignore", "arp_filter", "rp_filter", "accept_local",
                      "promote_secondaries")]
    sysctl = _proc(tmp_path, dict.fromkeys(keys, 0))
    links = VmacLinks(sysctl)
    monkeypatch.setattr(links, "_delete", lambda index: pytest.fail("deleted with keep"))
    cfg = VmacConfig("vrrp.51", "eth0", vrrp_mac(51, 4), 4)
    links._set_ipv4(cfg)
    links._held["vrrp.51"] = _Held(cfg, 7, {"V"})
    links.close(keep=True)
    assert sysctl.get(conf_key("eth0", "arp_ignore")) == 1


def test_vip_guard_removes_vips_from_the_macvlan() -> None:
    # A dead or hung worker's VIPs are taken off where they live: the macvlan.
    from hafast.app.vipguard import guarded

    cfg = load_text("vrrp_instance A { interface eth0\n virtual_router_id 7\n use_vmac\n"
                    " virtual_ipaddress {\n 10.0.0.1/24\n }\n}\n"
                    "vrrp_instance B { interface eth0\n virtual_router_id 8\n"
                    " virtual_ipaddress {\n 10.0.0.2/24\n }\n}\n").config
    g = guarded(cfg)
    assert (g["A"].ifname, g["B"].ifname) == ("vrrp.7", "eth0")


def test_hafast_t_says_what_keepalived_t_says() -> None:
    # keepalived 2.2.7 -t on the same lines (an interface that exists) prints these.
    res = load_text(
        "vrrp_instance A {\n interface eth0\n virtual_router_id 51\n"
        " use_vmac vmx/1 03:11:22:33:44:55\n unicast_peer {\n 10.0.0.2\n }\n"
        " virtual_ipaddress {\n 10.0.0.1/24\n }\n}\n"
        "vrrp_instance B {\n interface eth0\n virtual_router_id 52\n"
        " use_vmac vx vy 00:00:5e:00:01:07 zz:11\n virtual_ipaddress {\n 10.0.0.2/24\n }\n}\n")
    said = [(d.line, d.severity, d.message) for d in res.diagnostics]
    assert said == [
        (4, "warning", "VMAC interface name 'vmx/1' too long or invalid characters - ignoring"),
        (4, "warning", "VMAC MAC address is multicast 03:11:22:33:44:55 - ignoring"),
        (4, "warning", "(A) unicast with use_vmac requires vmac_xmit_base - setting"),
        (15, "warning", "VMAC interface name already specified"),
        (15, "warning", "VMAC MAC address not allowed to be RFC5798 address "
                        "(00:00:5e:00:01:07) - ignoring"),
        (15, "warning", "VMAC invalid MAC address zz:11"),
    ]
