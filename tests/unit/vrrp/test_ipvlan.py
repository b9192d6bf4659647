"""use_ipvlan: the words, the link and the settings keepalived 2.2.7 makes (no root).

The host kernel has no ipvlan, so the link itself is exercised beside keepalived in
the IPVS VM (tests/ipvs/test_vrrp_ipvlan.py); here the config part, the netlink
request that makes the link, and what is (not) set around it, on fakes.
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hafast.config.loader import load_text
from hafast.config.vmac import parse_use_ipvlan
from hafast.lib import netlink
from hafast.net import vmac as vmac_mod
from hafast.net.vmac import IPVLAN_MODE_L2, LinkInfo, Sysctl, VmacLinks, conf_key
from hafast.vrrp.from_config import (
    IPVLAN_NO_ADDRESS,
    VmacConfig,
    channel_for,
    config_faults,
    vip_ifname,
    vmac_for,
    vrrp_mac,
)


def _inst(body: str, vips: str = "10.0.0.1/24") -> tuple:
    res = load_text("vrrp_instance V {\n interface eth0\n virtual_router_id 51\n"
                    f"{body}\n virtual_ipaddress {{\n {vips}\n }}\n}}\n")
    assert not [d for d in res.diagnostics if d.severity == "error"], res.diagnostics
    return res.config.vrrp_instances[0], res.config.global_defs


def test_use_ipvlan_is_no_longer_refused() -> None:
    # It was: "vrrp_instance use_ipvlan refuse ipvlan interfaces are not made".
    res = load_text("vrrp_instance V {\n interface eth0\n virtual_router_id 51\n"
                    " use_ipvlan 10.0.0.5/24\n virtual_ipaddress {\n 10.0.0.1/24\n }\n}\n")
    assert [d.message for d in res.diagnostics] == []
    assert res.config.vrrp_instances[0].use_ipvlan == ("10.0.0.5/24",)


@pytest.mark.parametrize(("words", "name", "address", "flags"), [
    ("", "vrrp.51", None, 0),
    ("10.0.0.5", "vrrp.51", "10.0.0.5/32", 0),  # no prefix: the whole address
    ("ipv1 10.0.0.5/24 private", "ipv1", "10.0.0.5/24", 1),
    ("vepa 10.0.0.5/24 ipv2", "ipv2", "10.0.0.5/24", 2),
    ("bridge", "vrrp.51", None, 0),
    # keepalived 2.2.7 has no mode word (always l2): "l3" is the interface's name.
    ("l3 10.0.0.5/24", "l3", "10.0.0.5/24", 0),
    ("abcdefghijklmnop 10.0.0.5/24", "vrrp.51", "10.0.0.5/24", 0),  # 16 bytes: too long
])
def test_use_ipvlan_words(words: str, name: str, address: str | None, flags: int) -> None:
    inst, gd = _inst(f" use_ipvlan {words}")
    v = vmac_for(inst, gd)
    assert v is not None
    assert (v.kind, v.name, v.parent, v.address, v.ipvlan_flags, v.mac) == (
        "ipvlan", name, "eth0", address, flags, b"")
    assert not v.xmit_base and not v.ipv6


def test_adverts_leave_from_the_ipvlan_with_its_address() -> None:
    inst, gd = _inst(" use_ipvlan ipv1 10.0.0.5/24")
    ch = channel_for(inst, gd)
    assert (ch.ifname, ch.src) == ("ipv1", socket.inet_aton("10.0.0.5"))
    # The VIPs stay on the parent: keepalived 2.2.7 moves them onto macvlans only.
    assert vip_ifname(inst, gd) == "eth0"
    assert config_faults(inst) == ()
    # A configured source wins, as in keepalived.
    inst, gd = _inst(" use_ipvlan ipv1 10.0.0.5/24\n mcast_src_ip 10.0.0.7")
    assert channel_for(inst, gd).src == socket.inet_aton("10.0.0.7")


def test_ipv4_without_an_address_is_a_fault() -> None:
    inst, gd = _inst(" use_ipvlan ipv1")
    assert config_faults(inst) == (IPVLAN_NO_ADDRESS,)
    inst, gd = _inst(" use_ipvlan ipv1 fd00::5/64")  # the wrong family: skipped
    assert vmac_for(inst, gd).address is None  # type: ignore[union-attr]
    assert config_faults(inst) == (IPVLAN_NO_ADDRESS,)
    # IPv6 may go without: a link-local is the source (ipvlan_for says which).
    inst, gd = _inst(" use_ipvlan ipv1", vips="fd00::1/64")
    assert config_faults(inst) == ()
    assert vmac_for(inst, gd).ipv6  # type: ignore[union-attr]


def test_ipvlan_wins_over_use_vmac() -> None:
    # keepalived 2.2.7 makes the ipvlan when both are given (vrrp.c tests the bit first).
    inst, gd = _inst(" use_vmac\n use_ipvlan 10.0.0.5/24")
    assert vmac_for(inst, gd).kind == "ipvlan"  # type: ignore[union-attr]


def test_hafast_t_says_what_keepalived_t_says() -> None:
    # keepalived 2.2.7 -t on the same lines (eth0 existing, addressed) prints these.
    res = load_text(
        "vrrp_instance A {\n interface eth0\n virtual_router_id 51\n"
        " use_ipvlan ipv1 10.0.0.5/24 private vepa 10.0.0.6 ipv2 l3\n"
        " virtual_ipaddress {\n 10.0.0.1/24\n }\n}\n"
        "vrrp_instance B {\n interface eth0\n virtual_router_id 52\n"
        " use_ipvlan abcdefghijklmnopq\n virtual_ipaddress {\n 10.0.0.2/24\n }\n}\n"
        "vrrp_instance D {\n interface eth0\n virtual_router_id 54\n use_ipvlan\n"
        " promote_secondaries\n unicast_peer {\n 10.0.0.9\n }\n"
        " virtual_ipaddress {\n 10.0.0.4/24\n }\n}\n")
    said = [(d.line, d.severity, d.message) for d in res.diagnostics]
    assert said == [
        (4, "warning", "(A) ipvlan type already specified - ignoring 'vepa'"),
        (4, "warning", "(A) ipvlan address already specified - ignoring '10.0.0.6'"),
        (4, "warning", "(A) IPVLAN interface already specified - ignoring 'ipv2'"),
        (4, "warning", "(A) IPVLAN interface already specified - ignoring 'l3'"),
        (12, "warning", "(B) IPVLAN interface name 'abcdefghijklmnopq' too long - ignoring"),
        (12, "warning", "(B) IPv4 ipvlan requires a source ip address to be configured. "
                        "setting instance to fault state"),
        (20, "warning", "(D) unicast with use_vmac requires vmac_xmit_base - setting"),
        (20, "warning", "(D) promote_secondaries is automatically set for vmacs - ignoring"),
        (20, "warning", "(D) IPv4 ipvlan requires a source ip address to be configured. "
                        "setting instance to fault state"),
        (20, "warning", "(D) vmac_xmit_base is only valid with a vmac"),
    ]
    d = res.config.vrrp_instances[2]
    assert not d.promote_secondaries and not d.vmac_xmit_base
    # Unicast or not, an ipvlan's adverts leave from it.
    assert channel_for(d, res.config.global_defs).ifname == "vrrp.54"


def test_parse_use_ipvlan_keeps_the_first_of_each() -> None:
    assert parse_use_ipvlan(("private", "bridge"), "V") == (
        None, None, 1, ["(V) ipvlan type already specified - ignoring 'bridge'"])


def test_changing_use_ipvlan_replaces_the_instance() -> None:
    from hafast.config.diff import REPLACE_ON
    from hafast.config.model import VrrpInstance

    assert "use_ipvlan" in REPLACE_ON[VrrpInstance]


def test_vip_guard_looks_on_the_parent() -> None:
    from hafast.app.vipguard import guarded

    cfg = load_text("vrrp_instance A { interface eth0\n virtual_router_id 7\n"
                    " use_ipvlan 10.0.0.5/24\n virtual_ipaddress {\n 10.0.0.1/24\n }\n}\n"
                    ).config
    assert guarded(cfg)["A"].ifname == "eth0"


# -- the link: the request that makes it, and what is set around it -----------------

def _attrs(data: bytes, start: int = 0) -> dict[int, bytes]:
    return {k: bytes(v) for k, v in netlink.parse_attrs(data, start).items()}


def _sent(monkeypatch: pytest.MonkeyPatch, links: VmacLinks) -> list[bytes]:
    sent: list[bytes] = []

    def request(sock: Any, seq: int, message: bytes) -> int:
        sent.append(message)
        return 0

    monkeypatch.setattr(netlink, "request", request)
    links._nl = SimpleNamespace(_seq=0, sock=None)  # type: ignore[assignment]
    return sent


def _linkinfo(message: bytes) -> tuple[dict[int, bytes], dict[int, bytes], dict[int, bytes]]:
    body = message[netlink.NLMSGHDR.size:]
    top = _attrs(body, struct.calcsize("=BxHiII"))
    info = _attrs(top[vmac_mod.IFLA_LINKINFO])
    return top, info, _attrs(info[vmac_mod.IFLA_INFO_DATA])


def test_create_requests_an_l2_ipvlan_with_its_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    links = VmacLinks(Sysctl(Path("/nonexistent")))
    sent = _sent(monkeypatch, links)
    cfg = VmacConfig("ipv1", "eth0", b"", 4, kind="ipvlan", ipvlan_flags=1,
                     address="10.0.0.5/24")
    assert links._create(cfg, 7) == 0
    top, info, data = _linkinfo(sent[0])
    assert top[vmac_mod.IFLA_IFNAME] == b"ipv1\0"
    assert struct.unpack("=i", top[vmac_mod.IFLA_LINK]) == (7,)
    assert vmac_mod.IFLA_ADDRESS not in top  # an ipvlan has its parent's MAC
    assert info[vmac_mod.IFLA_INFO_KIND] == b"ipvlan"
    assert struct.unpack("=H", data[vmac_mod.IFLA_IPVLAN_MODE]) == (IPVLAN_MODE_L2,)
    assert struct.unpack("=H", data[vmac_mod.IFLA_IPVLAN_FLAGS]) == (1,)


def test_create_still_requests_a_private_macvlan(monkeypatch: pytest.MonkeyPatch) -> None:
    links = VmacLinks(Sysctl(Path("/nonexistent")))
    sent = _sent(monkeypatch, links)
    assert links._create(VmacConfig("vrrp.51", "eth0", vrrp_mac(51, 4), 4), 7) == 0
    top, info, data = _linkinfo(sent[0])
    assert top[vmac_mod.IFLA_ADDRESS] == vrrp_mac(51, 4)
    assert info[vmac_mod.IFLA_INFO_KIND] == b"macvlan"
    assert struct.unpack("=I", data[vmac_mod.IFLA_MACVLAN_MODE]) == (
        vmac_mod.MACVLAN_MODE_PRIVATE,)


def _proc(root: Path, values: dict[str, int]) -> Sysctl:
    for key, value in values.items():
        p = root / key
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"{value}\n")
    return Sysctl(root)


def _rec(calls: list[Any], tag: str, shown: Any = None) -> Any:
    """A fake for a netlink step: records ``(tag, first argument)`` and succeeds."""
    def fake(*args: Any, **kwargs: Any) -> int:
        calls.append((tag, (shown or (lambda a: a))(args[0])))
        return 0
    return fake


class _Reports:
    def __init__(self) -> None:
        self.added: list[str] = []

    def add(self, name: str, parent: str, families: tuple[int, ...]) -> None:
        self.added.append(name)

    def remove(self, name: str) -> None:
        pass

    def close(self) -> None:
        pass


def test_ipvlan_gets_disable_ipv6_and_its_address_and_nothing_else(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = {conf_key(i, k): 0 for i in ("all", "default", "eth0", "ipv1")
            for k in ("arp_ignore", "arp_filter", "rp_filter", "accept_local",
                      "promote_secondaries")}
    keys[conf_key("all", "rp_filter")] = 1
    keys[conf_key("ipv1", "disable_ipv6", 6)] = 0
    sysctl = _proc(tmp_path, keys)
    reports = _Reports()
    links = VmacLinks(sysctl, reports)  # type: ignore[arg-type]
    calls: list[tuple[str, Any]] = []
    indexes = {"eth0": 2, "ipv1": 9}
    monkeypatch.setattr(vmac_mod.socket, "if_nametoindex", lambda n: indexes[n])
    monkeypatch.setattr(links, "lookup", lambda name: None)
    monkeypatch.setattr(links, "_create", lambda cfg, parent: calls.append(("create", parent)))
    monkeypatch.setattr(links, "_no_autoconf", _rec(calls, "no_autoconf"))
    monkeypatch.setattr(links, "_add_address",
                        lambda i, addr, *a, **k: _rec(calls, "address")(str(addr)))
    monkeypatch.setattr(links, "_up", _rec(calls, "up"))
    monkeypatch.setattr(links, "_delete", _rec(calls, "delete"))
    cfg = VmacConfig("ipv1", "eth0", b"", 4, kind="ipvlan", address="10.0.0.5/24")
    assert links.ensure("V", cfg, b"\xfe\x80" + bytes(14))
    assert calls == [("create", 2), ("address", "10.0.0.5/24"), ("up", 9)]
    assert reports.added == []  # the ipvlan's reports carry the parent's MAC anyway
    changed = {k for k, v in keys.items() if sysctl.get(k) != v}
    assert changed == {conf_key("ipv1", "disable_ipv6", 6)}  # no rp_filter, no arp_*
    links.close()
    assert calls[-1] == ("delete", 9)
    assert {k for k, v in keys.items() if sysctl.get(k) != v} == {
        conf_key("ipv1", "disable_ipv6", 6)}


@pytest.mark.parametrize(("found", "create"), [
    (LinkInfo(9, b"", 2, "ipvlan", ipvlan_mode=IPVLAN_MODE_L2, ipvlan_flags=1), False),
    (LinkInfo(9, b"", 2, "ipvlan", ipvlan_mode=IPVLAN_MODE_L2, ipvlan_flags=0), True),
    (LinkInfo(9, b"", 2, "ipvlan", ipvlan_mode=1, ipvlan_flags=1), True),  # an l3 one
    (LinkInfo(9, b"", 3, "ipvlan", ipvlan_mode=IPVLAN_MODE_L2, ipvlan_flags=1), True),
    (LinkInfo(9, b"", 2, "macvlan", macvlan_mode=1), True),
])
def test_an_existing_link_is_reused_only_when_it_is_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, found: LinkInfo, create: bool) -> None:
    links = VmacLinks(_proc(tmp_path, {}), _Reports())  # type: ignore[arg-type]
    calls: list[tuple[str, Any]] = []
    monkeypatch.setattr(vmac_mod.socket, "if_nametoindex", lambda n: {"eth0": 2}.get(n, 9))
    monkeypatch.setattr(links, "lookup", lambda name: found)
    monkeypatch.setattr(links, "_create", _rec(calls, "create", lambda cfg: cfg.name))
    monkeypatch.setattr(links, "_delete", _rec(calls, "delete"))
    monkeypatch.setattr(links, "_add_address", lambda *a, **k: 0)
    monkeypatch.setattr(links, "_up", lambda i: 0)
    cfg = VmacConfig("ipv1", "eth0", b"", 4, kind="ipvlan", ipvlan_flags=1,
                     address="10.0.0.5/24")
    assert links.ensure("V", cfg)
    assert calls == ([("delete", 9), ("create", "ipv1")] if create else [])


def test_a_real_interface_of_that_name_is_left_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    links = VmacLinks(_proc(tmp_path, {}), _Reports())  # type: ignore[arg-type]
    monkeypatch.setattr(vmac_mod.socket, "if_nametoindex", lambda n: 2)
    monkeypatch.setattr(links, "lookup", lambda name: LinkInfo(9, b"", 0, "veth"))
    monkeypatch.setattr(links, "_delete", lambda i: pytest.fail("deleted a veth"))
    cfg = VmacConfig("ipv1", "eth0", b"", 4, kind="ipvlan", address="10.0.0.5/24")
    assert not links.ensure("V", cfg)
