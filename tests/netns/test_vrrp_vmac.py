"""Issue 14: use_vmac and vmac_xmit_base, hafast and Debian's keepalived 2.2.7 side by side.

Side by side: the same config runs in r1 under keepalived and under hafast, at the
same time in a lab of its own each (r1's eth0 with the same MAC in both), from the
same starting sysctls (``all.rp_filter=2`` and ``eth0.rp_filter=1``, so keepalived's
rp_filter shuffle shows).  While each is MASTER alone the test reads
what it did to the namespace: the macvlan (``ip -d -j link``: kind, mode, MAC,
addr_gen_mode, parent, up), the IPv4 sysctls of the macvlan, its parent and
all/default, ``disable_ipv6`` on the macvlan, where the VIP is, and the source MAC
of the adverts as a packet socket in ``cl`` sees them.  The two snapshots must be
equal.  After a graceful stop the macvlan is gone under both, and hafast puts every
sysctl back (keepalived 2.2.7 restores rp_filter but leaves the parent's
arp_ignore/arp_filter at 1: its documented intent is to restore them, and we do).

Failover: keepalived MASTER on r1, hafast BACKUP on r2, both with use_vmac; r1 dies
(SIGKILL, its macvlan taken away as a dead host's would be); hafast takes over on its
own macvlan and the VIP answers the client's ARP with 00:00:5e:00:01:33.  (The
client's neighbour entry then turns to the parent's MAC under keepalived 2.2.7 and
hafast alike: the echo reply leaves by the parent, whose connected route comes
first, and its ARP request carries the VIP as sender; arp_announce would change
that, and neither sets it.)  At hafast's stop its macvlan is gone.

Reports: a BACKUP's macvlan joins the VRRP group, and its IGMP/MLD reports leave by
the parent with the parent's MAC (keepalived's nftables rules, the same rules here).

Reload: removing one of two use_vmac instances deletes its macvlan and leaves the
other's link (same ifindex) and VIP alone, under keepalived and hafast alike.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from hafast.lab.netns import run_in, socket_in
from tests.conftest import require_root, require_tool
from tests.netns.vrrp_fixtures import (
    ADDR6,
    KEEPALIVED,
    VIP4,
    VIP6,
    Router,
    VrrpLab,
    labs_per_kind,
)

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(180)]

PREFIX = f"vm{os.getpid() % 100000}"
VRID = 51
VMAC = "vrrp.51"
VIRTUAL_MAC = {4: "00:00:5e:00:01:33", 6: "00:00:5e:00:02:33"}
ETH_P_ALL = 0x0003
IPPROTO_VRRP = 112
SYSCTL_IFACES = ("eth0", VMAC, "lo", "all", "default")
SYSCTL_NAMES = ("arp_ignore", "arp_filter", "rp_filter", "accept_local", "promote_secondaries")
START = {"net.ipv4.conf.all.rp_filter": "2", "net.ipv4.conf.eth0.rp_filter": "1",
         "net.ipv4.conf.default.rp_filter": "0", "net.ipv4.conf.eth0.arp_ignore": "0",
         "net.ipv4.conf.eth0.arp_filter": "0"}


@pytest.fixture
def lab() -> Iterator[VrrpLab]:
    require_root()
    require_tool(KEEPALIVED)
    with VrrpLab(PREFIX) as built:
        yield built


R1_MAC = "02:00:00:77:00:01"


@pytest.fixture
def labs() -> Iterator[dict[str, VrrpLab]]:
    """A lab per kind whose r1 has the same eth0 MAC (so the same link-local), for
    snapshots that name them."""
    require_root()
    require_tool(KEEPALIVED)
    with labs_per_kind("vm", ("keepalived", "hafast")) as made:
        for lab in made.values():
            ns = lab.ns("r1")
            run_in(ns, ["ip", "link", "set", "eth0", "down"])
            run_in(ns, ["ip", "link", "set", "eth0", "address", R1_MAC])
            run_in(ns, ["ip", "link", "set", "eth0", "up"])
            # the link down took the static IPv6 address with it
            run_in(ns, ["ip", "addr", "replace", f"{ADDR6['r1']}/64", "dev", "eth0"])
        yield made


def vmac_conf(*, priority: int, state: str = "BACKUP", family: int = 4,
              extra: str = "") -> str:
    vip = f"{VIP4}/24" if family == 4 else f"{VIP6}/64"
    return "\n".join([
        "global_defs {", "  vrrp_garp_master_delay 0", "}",
        "vrrp_instance VI_1 {", f"  state {state}", "  interface eth0",
        f"  virtual_router_id {VRID}", f"  priority {priority}", "  advert_int 1",
        "  use_vmac", extra,
        "  virtual_ipaddress {", f"    {vip}", "  }", "}", ""])


def set_start(lab: VrrpLab, role: str) -> None:
    for key, value in START.items():
        lab.reg.sysctl(lab.ns(role), key, value)


def sysctls(lab: VrrpLab, role: str) -> dict[str, str | None]:
    """The sysctls of SYSCTL_IFACES x SYSCTL_NAMES and the macvlan's disable_ipv6 (None
    for one the namespace does not have), read by one shell, not 26 processes."""
    keys = {f"{iface}.{name}": f"/proc/sys/net/ipv4/conf/{iface}/{name}"
            for iface in SYSCTL_IFACES for name in SYSCTL_NAMES}
    keys["ipv6.disable_ipv6"] = f"/proc/sys/net/ipv6/conf/{VMAC}/disable_ipv6"
    script = 'for f in "$@"; do if v=$(cat "$f" 2>/dev/null); then echo "$v"; else echo -; fi; done'
    res = run_in(lab.ns(role), ["sh", "-c", script, "sh", *keys.values()])
    values = res.stdout.splitlines()
    assert len(values) == len(keys), res
    return {k: None if v == "-" else v.strip() for k, v in zip(keys, values, strict=True)}


def link(lab: VrrpLab, role: str, name: str = VMAC) -> dict[str, Any] | None:
    res = run_in(lab.ns(role), ["ip", "-d", "-j", "link", "show", name], check=False)
    if res.returncode != 0:
        return None
    d = json.loads(res.stdout)[0]
    info = d.get("linkinfo", {})
    return {"kind": info.get("info_kind"), "mode": info.get("info_data", {}).get("mode"),
            "address": d.get("address"), "link": d.get("link"),
            "addr_gen_mode": d.get("inet6_addr_gen_mode"), "up": "UP" in d.get("flags", ())}


def addresses(lab: VrrpLab, role: str, dev: str) -> list[str]:
    res = run_in(lab.ns(role), ["ip", "-j", "addr", "show", "dev", dev], check=False)
    if res.returncode != 0:
        return []
    return sorted(f"{a['local']}/{a['prefixlen']}" for d in json.loads(res.stdout)
                  for a in d.get("addr_info", ()))


def advert_macs(lab: VrrpLab, family: int = 4, count: int = 2, timeout: float = 5.0
                ) -> list[str]:
    """Source MACs of the next ``count`` VRRP adverts on cl's link."""
    s = socket_in(lab.ns("cl"), socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        s.bind(("eth0", 0))
        s.setblocking(False)
        macs: list[str] = []
        deadline = time.monotonic() + timeout
        while len(macs) < count and time.monotonic() < deadline:
            if not select.select([s], [], [], 0.2)[0]:
                continue
            frame = s.recv(2048)
            ethertype = int.from_bytes(frame[12:14], "big")
            vrrp = ((ethertype == 0x0800 and frame[14 + 9] == IPPROTO_VRRP)
                    or (ethertype == 0x86DD and frame[14 + 6] == IPPROTO_VRRP))
            if vrrp and (ethertype == 0x0800) == (family == 4):
                macs.append(frame[6:12].hex(":"))
        return macs
    finally:
        s.close()


def arp_replies(lab: VrrpLab, vip: str, action: Any, timeout: float = 2.0) -> list[str]:
    """The MACs ARP replies on cl's link give for ``vip`` while ``action()`` runs."""
    s = socket_in(lab.ns("cl"), socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        s.bind(("eth0", 0))
        s.setblocking(False)
        action()
        want = socket.inet_aton(vip)
        macs: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not select.select([s], [], [], 0.1)[0]:
                continue
            frame = s.recv(2048)
            # ethertype ARP, operation 2 (reply), sender protocol address = the VIP
            if frame[12:14] == b"\x08\x06" and frame[20:22] == b"\x00\x02" \
                    and frame[28:32] == want:
                macs.append(frame[22:28].hex(":"))
        return macs
    finally:
        s.close()


def snapshot(lab: VrrpLab, role: str, family: int = 4) -> dict[str, Any]:
    vip = f"{VIP4}/24" if family == 4 else f"{VIP6}/64"
    lab.wait_for(lambda: vip in addresses(lab, role, VMAC), 15, f"{vip} on {VMAC}")
    return {"link": link(lab, role), "sysctls": sysctls(lab, role),
            "vmac_addrs": addresses(lab, role, VMAC),
            "vip_on_eth0": vip in addresses(lab, role, "eth0"),
            "advert_macs": sorted(set(advert_macs(lab, family)))}


def run_both(labs: dict[str, VrrpLab], conf: str, family: int = 4
             ) -> dict[str, tuple[dict, dict, dict]]:
    """Each kind in r1 of its own lab, at the same time: per kind its snapshot while
    MASTER, the sysctls after its stop, and its log."""
    routers: dict[str, Router] = {}
    try:
        for kind, lab in labs.items():
            set_start(lab, "r1")
            routers[kind] = lab.start("r1", kind, conf)
        # both watched at once: each snapshot waits for two adverts (advert_int 1)
        with ThreadPoolExecutor(len(labs)) as pool:
            futures = {kind: pool.submit(snapshot, lab, "r1", family)
                       for kind, lab in labs.items()}
            seen = {kind: future.result() for kind, future in futures.items()}
    finally:
        for kind, router in routers.items():
            labs[kind].stop(router)
    got = {}
    for kind, lab in labs.items():
        lab.wait_for(lambda lab=lab: link(lab, "r1") is None,  # type: ignore[misc]
                     10, f"{VMAC} gone after {kind} stopped")
        got[kind] = (seen[kind], sysctls(lab, "r1"), {"log": routers[kind].log_text()})
    return got


def test_use_vmac_side_by_side(labs: dict[str, VrrpLab]) -> None:
    conf = vmac_conf(priority=150, state="MASTER")
    got = run_both(labs, conf)
    ka, ka_after, _ = got["keepalived"]
    ha, ha_after, info = got["hafast"]
    assert ka["link"] == {"kind": "macvlan", "mode": "private", "address": VIRTUAL_MAC[4],
                          "link": "eth0", "addr_gen_mode": "none", "up": True}, ka
    assert ha == ka, info["log"][-3000:]
    assert ha["advert_macs"] == [VIRTUAL_MAC[4]]
    assert not ha["vip_on_eth0"]
    # After stop: rp_filter as keepalived restores it, and (unlike keepalived 2.2.7,
    # which leaves them at 1) the parent's arp_ignore/arp_filter back as they were.
    start = {k.removeprefix("net.ipv4.conf."): v for k, v in START.items()}
    for key, value in start.items():
        assert ha_after[key] == value, (key, ha_after)
    for key in ("all.rp_filter", "default.rp_filter", "eth0.rp_filter"):
        assert ka_after[key] == ha_after[key], key
    assert (ka_after["eth0.arp_ignore"], ka_after["eth0.arp_filter"]) == ("1", "1")


def test_vmac_xmit_base_side_by_side(labs: dict[str, VrrpLab]) -> None:
    conf = vmac_conf(priority=150, state="MASTER", extra="  vmac_xmit_base")
    got = run_both(labs, conf)
    (ka, _, _), (ha, _, info) = got["keepalived"], got["hafast"]
    assert ha == ka, info["log"][-3000:]
    # The adverts leave from the parent with its own MAC; the VIP is on the macvlan.
    assert ha["advert_macs"] == [labs["hafast"].mac("r1")] == [R1_MAC]
    assert ha["vmac_addrs"] == [f"{VIP4}/24"]


def test_use_vmac_ipv6_side_by_side(labs: dict[str, VrrpLab]) -> None:
    conf = vmac_conf(priority=150, state="MASTER", family=6).replace(
        "global_defs {", "global_defs {\n  vrrp_version 3")
    got = run_both(labs, conf, family=6)
    (ka, _, _), (ha, _, info) = got["keepalived"], got["hafast"]
    assert ka["link"]["address"] == VIRTUAL_MAC[6]
    assert ha == ka, info["log"][-3000:]
    # The parent's link-local is on the macvlan too: the adverts' source.
    assert any(a.startswith("fe80:") for a in ha["vmac_addrs"]), ha
    assert f"{VIP6}/64" in ha["vmac_addrs"] and f"{ADDR6['r1']}/64" not in ha["vmac_addrs"]


def test_hafast_backup_takes_over_with_the_virtual_mac(lab: VrrpLab) -> None:
    ka = lab.start("r1", "keepalived", vmac_conf(priority=200))
    ha = lab.start("r2", "hafast", vmac_conf(priority=100))
    lab.wait_for(lambda: f"{VIP4}/24" in addresses(lab, "r1", VMAC), 15,
                 "keepalived MASTER on its macvlan")
    lab.wait_for(lambda: link(lab, "r2") is not None, 10, "hafast's macvlan")
    assert f"{VIP4}/24" not in addresses(lab, "r2", VMAC)
    assert link(lab, "r2")["address"] == VIRTUAL_MAC[4]  # type: ignore[index]
    lab.stop(ka, graceful=False)
    # A dead host's macvlan is gone with it.
    run_in(lab.ns("r1"), ["ip", "link", "del", VMAC], check=False)
    lab.wait_for(lambda: f"{VIP4}/24" in addresses(lab, "r2", VMAC), 10,
                 "hafast MASTER on its macvlan")
    run_in(lab.ns("cl"), ["ip", "neigh", "flush", "dev", "eth0"], check=False)
    replies = arp_replies(lab, VIP4, lambda: lab.wait_for(lab.client_ping, 5,
                                                          "the client reaches the VIP"))
    assert replies == [VIRTUAL_MAC[4]], replies
    lab.stop(ha)
    assert ha.proc.returncode == 0, ha.log_text()[-3000:]
    assert link(lab, "r2") is None


def two_instances(*, second: bool) -> str:
    """VI_1 (VRID 51, VIP .100) and, with ``second``, VI_2 (VRID 52, VIP .101)."""
    out = ["global_defs {", "  vrrp_garp_master_delay 0", "}"]
    for name, vrid, vip in (("VI_1", 51, VIP4), ("VI_2", 52, VIP4[:-1] + "1")):
        if name == "VI_2" and not second:
            continue
        out += [f"vrrp_instance {name} {{", "  state MASTER", "  interface eth0",
                f"  virtual_router_id {vrid}", "  priority 150", "  advert_int 1",
                "  use_vmac", "  virtual_ipaddress {", f"    {vip}/24", "  }", "}"]
    return "\n".join(out) + "\n"


def ifindex(lab: VrrpLab, role: str, name: str) -> int | None:
    res = run_in(lab.ns(role), ["ip", "-j", "link", "show", name], check=False)
    return int(json.loads(res.stdout)[0]["ifindex"]) if res.returncode == 0 else None


@pytest.mark.parametrize("kind", ["keepalived", "hafast"])
def test_reload_removes_only_the_removed_instances_macvlan(lab: VrrpLab, kind: str) -> None:
    """keepalived 2.2.7 and hafast alike: a reload that removes VI_2 deletes vrrp.52;
    VI_1, unchanged, keeps vrrp.51 (the same link: same ifindex) with its VIP on it."""
    r = lab.start("r1", kind, two_instances(second=True))
    lab.wait_for(lambda: f"{VIP4}/24" in addresses(lab, "r1", "vrrp.51")
                 and f"{VIP4[:-1]}1/24" in addresses(lab, "r1", "vrrp.52"), 15,
                 "both instances MASTER on their macvlans")
    before = ifindex(lab, "r1", "vrrp.51")
    (lab.tmp / "r1.conf").write_text(two_instances(second=False))
    r.proc.send_signal(signal.SIGHUP)
    lab.wait_for(lambda: link(lab, "r1", "vrrp.52") is None, 10, "vrrp.52 deleted")
    time.sleep(1.5)  # a bounced vrrp.51 would show by now
    assert ifindex(lab, "r1", "vrrp.51") == before
    assert f"{VIP4}/24" in addresses(lab, "r1", "vrrp.51"), r.log_text()[-2000:]
    lab.stop(r)
    assert link(lab, "r1", "vrrp.51") is None


def report_macs(lab: VrrpLab, start: Any, family: int, timeout: float = 4.0) -> set[str]:
    """Source MACs of the IGMP (IPv4) or MLDv2 (IPv6) reports on cl's link while
    ``start()`` runs and ``timeout`` after."""
    s = socket_in(lab.ns("cl"), socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        s.bind(("eth0", 0))
        s.setblocking(False)
        start()
        macs: set[str] = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not select.select([s], [], [], 0.1)[0]:
                continue
            frame = s.recv(2048)
            if family == 4 and frame[12:14] == b"\x08\x00" and frame[14 + 9] == 2:  # IGMP
                macs.add(frame[6:12].hex(":"))
            # IPv6, hop-by-hop header (MLD carries router alert), then ICMPv6 type 143
            elif family == 6 and frame[12:14] == b"\x86\xdd" and frame[20] == 0 \
                    and frame[54] == 58 and frame[62] == 143:
                macs.add(frame[6:12].hex(":"))
        return macs
    finally:
        s.close()


def report_rules(lab: VrrpLab, role: str) -> list[str]:
    """The rules of the chain that redirects the macvlans' reports, table name aside."""
    out = run_in(lab.ns(role), ["nft", "list", "ruleset"], check=False).stdout
    return [line.strip() for line in out.splitlines()
            if "oifkind" in line or "type filter hook output" in line]


@pytest.mark.parametrize("family", [4, 6])
def test_backup_reports_leave_by_the_parent(labs: dict[str, VrrpLab], family: int) -> None:
    """A BACKUP's macvlan joins the VRRP group; its IGMP/MLD reports must not carry
    the virtual MAC (switches would learn it on the backup's port).  keepalived 2.2.7
    sends them out of the parent (nftables dup + drop), and so does hafast; the
    rules are the same."""
    conf = vmac_conf(priority=100, family=family)
    if family == 6:
        conf = conf.replace("global_defs {", "global_defs {\n  vrrp_version 3")
    started: dict[str, Router] = {}

    def watch(kind: str) -> set[str]:
        def start() -> None:
            started[kind] = labs[kind].start("r1", kind, conf)

        return report_macs(labs[kind], start, family)

    try:
        # both at once, each in its own lab: the reports' windows overlap
        with ThreadPoolExecutor(len(labs)) as pool:
            futures = {kind: pool.submit(watch, kind) for kind in labs}
            macs = {kind: future.result() for kind, future in futures.items()}
        seen = {}
        for kind, lab in labs.items():
            lab.wait_for(lambda lab=lab: link(lab, "r1") is not None,  # type: ignore[misc]
                         10, f"{kind}'s macvlan")
            seen[kind] = (macs[kind], report_rules(lab, "r1"))
    finally:
        for kind, router in started.items():
            labs[kind].stop(router)
    for kind, lab in labs.items():
        assert report_rules(lab, "r1") == [], f"{kind} left its report rules"
    # Only r1's frames count: the lab's other hosts report too (MLD at link up).
    mine = {R1_MAC, VIRTUAL_MAC[family]}
    seen = {k: (macs & mine, rules) for k, (macs, rules) in seen.items()}
    assert seen["keepalived"] == seen["hafast"], seen
    assert seen["hafast"][0] == {R1_MAC} == {labs["hafast"].mac("r1")}, seen


def test_supervised_worker_restart_reuses_the_macvlan(lab: VrrpLab) -> None:
    """The full daemon: its VRRP worker killed, the successor finds vrrp.51 (same link,
    same MAC) and resumes as MASTER with the VIP on it; SIGTERM deletes it. A successor
    too slow to advertise by its predecessor's release deadline (a loaded machine) is
    killed by the never-two-masters guard and started again: the next one counts too."""
    from tests.netns.daemon_fixtures import start_daemon

    d = start_daemon(lab.tmp / "sup", vmac_conf(priority=150, state="MASTER"),
                     ns=lab.ns("r1"))
    try:
        d.wait_ready()
        lab.wait_for(lambda: f"{VIP4}/24" in addresses(lab, "r1", VMAC), 15, "MASTER")
        before = ifindex(lab, "r1", VMAC)
        os.kill(d.worker_pid("vrrp"), signal.SIGKILL)
        d.wait_for(lambda s: s["workers"][0]["restarts"] >= 1 and s["workers"][0]["answering"]
                   and len(s["vrrp"]) == 1, 15, "VRRP worker back")
        lab.wait_for(lambda: f"{VIP4}/24" in addresses(lab, "r1", VMAC), 10, "VIP back")
        assert ifindex(lab, "r1", VMAC) == before
        assert advert_macs(lab) == [VIRTUAL_MAC[4]] * 2
        assert d.stop() == 0
    finally:
        d.close()
        for p in sorted((lab.tmp / "sup").glob("*"), reverse=True):
            p.unlink(missing_ok=True)
        (lab.tmp / "sup").rmdir()
    assert link(lab, "r1") is None


@pytest.mark.parametrize("kind", ["keepalived", "hafast"])
def test_reload_with_a_new_vmac_prefix_keeps_the_macvlan(lab: VrrpLab, kind: str) -> None:
    """A reload that changes vmac_prefix leaves an unchanged instance's macvlan as it
    is (keepalived 2.2.7: "Found matching interface vrrp.51"; hafast: the instance is
    kept, nothing rebuilt): same link, VIP still on it, no ka.51."""
    conf = vmac_conf(priority=150, state="MASTER")
    r = lab.start("r1", kind, conf)
    lab.wait_for(lambda: f"{VIP4}/24" in addresses(lab, "r1", VMAC), 15, "MASTER")
    before = ifindex(lab, "r1", VMAC)
    (lab.tmp / "r1.conf").write_text(conf.replace("global_defs {",
                                                  "global_defs {\n  vmac_prefix ka"))
    r.proc.send_signal(signal.SIGHUP)
    lab.wait_for(lambda: "eload" in r.log_text().split("MASTER", 1)[-1], 10, "the reload")
    time.sleep(1.5)
    assert ifindex(lab, "r1", VMAC) == before
    assert f"{VIP4}/24" in addresses(lab, "r1", VMAC)
    assert link(lab, "r1", "ka.51") is None
    lab.stop(r)
    assert link(lab, "r1") is None


@pytest.mark.parametrize("vmac", [True, False])
@pytest.mark.parametrize("kind", ["keepalived", "hafast"])
def test_parent_deleted_and_made_again(lab: VrrpLab, kind: str, vmac: bool) -> None:
    """r1's eth0 deleted (its macvlan goes with it) and made again: keepalived 2.2.7
    makes vrrp.51 again and is MASTER on it, adverts from the virtual MAC; so is
    hafast (its sockets, bound to the old links, are opened anew).  Without use_vmac
    the same: MASTER again on the new eth0, adverts from its MAC."""
    from tests.netns.vrrp_fixtures import ADDR4

    conf = vmac_conf(priority=150, state="MASTER")
    dev = VMAC
    if not vmac:
        conf, dev = conf.replace("  use_vmac\n", ""), "eth0"
    r = lab.start("r1", kind, conf)
    lab.wait_for(lambda: f"{VIP4}/24" in addresses(lab, "r1", dev), 20, "MASTER")
    ns, sw = lab.ns("r1"), lab.ns("sw")
    run_in(ns, ["ip", "link", "del", "eth0"])
    time.sleep(1.0)
    run_in(ns, ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "pr1",
                "netns", sw])
    run_in(sw, ["ip", "link", "set", "pr1", "master", "br0"])
    run_in(sw, ["ip", "link", "set", "pr1", "up"])
    run_in(ns, ["ip", "addr", "add", f"{ADDR4['r1']}/24", "dev", "eth0"])
    run_in(ns, ["ip", "link", "set", "eth0", "up"])
    lab.wait_for(lambda: f"{VIP4}/24" in addresses(lab, "r1", dev), 20,
                 f"{kind} MASTER again on a new {dev}")
    if vmac:
        assert link(lab, "r1")["link"] == "eth0"  # type: ignore[index]
    want = VIRTUAL_MAC[4] if vmac else lab.mac("r1")
    assert advert_macs(lab) == [want] * 2, r.log_text()[-3000:]
    lab.stop(r)
    assert link(lab, "r1") is None
