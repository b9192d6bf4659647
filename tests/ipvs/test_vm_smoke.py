"""Smoke test of the real IPVS kernel, run INSIDE the IPVS VM.

The host test tests/netns/test_ipvs_vm_boot.py boots the VM (hafast.lab.ipvs_vm) and
runs ``pytest tests/ipvs`` in it; the guest sets ``HAFAST_IN_VM=1``. On the host
kernel (no IPVS) this module has nothing to test and is skipped as a whole: it is
covered there by the boot test, which fails in CI if anything in here failed.

What it proves: ip_vs is loaded, pyroute2 can add a TCP service with the rr
scheduler (which must autoload, the reason for switch_root), add NAT destinations,
change a weight, read everything back from the raw netlink attributes, and that
ipvsadm (the kernel's other client) sees exactly that.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from socket import AF_INET, IPPROTO_TCP
from typing import Any

import pytest

from tests.conftest import require, require_root, require_tool

if os.environ.get("HAFAST_IN_VM") != "1":
    pytest.skip("runs inside the IPVS VM (tests/netns/test_ipvs_vm_boot.py boots it)",
                allow_module_level=True)

pytestmark = pytest.mark.ipvs

VIP = "10.0.0.1"
VPORT = 80
REALS = ("192.168.50.2", "192.168.50.3")
RPORT = 8080
# include/uapi/linux/ip_vs.h: IP_VS_CONN_F_MASQ is 0 (NAT); pyroute2's IPVSDest
# defaults to 3 (direct routing), so NAT must be asked for.
IP_VS_CONN_F_MASQ = 0


@pytest.fixture
def ipvs() -> Iterator[Any]:
    require_root()
    require(Path("/proc/net/ip_vs").exists(), "ip_vs is not loaded (the VM's stage 2 "
                                               "runs modprobe ip_vs)")
    from pyroute2 import IPVS
    from pyroute2.netlink.generic.ipvs import IPVS_CMD_FLUSH

    sock = IPVS()
    sock.service(IPVS_CMD_FLUSH)
    try:
        yield sock
    finally:
        sock.service(IPVS_CMD_FLUSH)
        sock.close()


def _service_attrs(msg: Any) -> dict[str, Any]:
    svc = msg.get_attr("IPVS_CMD_ATTR_SERVICE")
    names = ("AF", "PROTOCOL", "ADDR", "PORT", "SCHED_NAME", "FLAGS", "TIMEOUT", "NETMASK")
    return {n: svc.get_attr(f"IPVS_SVC_ATTR_{n}") for n in names}


def _dest_attrs(msg: Any) -> dict[str, Any]:
    dest = msg.get_attr("IPVS_CMD_ATTR_DEST")
    names = ("ADDR", "PORT", "FWD_METHOD", "WEIGHT", "ADDR_FAMILY", "U_THRESH", "L_THRESH")
    return {n: dest.get_attr(f"IPVS_DEST_ATTR_{n}") for n in names}


def _ipvsadm() -> str:
    ipvsadm = require_tool("ipvsadm")
    return subprocess.run([ipvsadm, "-Ln"], capture_output=True, text=True, check=True,
                          timeout=60).stdout


def test_kernel_has_ip_vs() -> None:
    assert Path("/proc/net/ip_vs").exists()
    assert "IP Virtual Server" in _ipvsadm()


def test_pyroute2_service_and_nat_dests_read_back(ipvs: Any) -> None:
    from pyroute2 import IPVSDest, IPVSService

    svc = IPVSService(addr=VIP, port=VPORT, protocol=IPPROTO_TCP, sched_name="rr")
    ipvs.service("add", service=svc)
    for addr in REALS:
        ipvs.dest("add", service=svc,
                  dest=IPVSDest(addr=addr, port=RPORT, fwd_method=IP_VS_CONN_F_MASQ, weight=1))
    ipvs.dest("set", service=svc,
              dest=IPVSDest(addr=REALS[1], port=RPORT, fwd_method=IP_VS_CONN_F_MASQ, weight=5))

    services = [_service_attrs(m) for m in ipvs.service("dump")]
    assert len(services) == 1
    got = services[0]
    assert (got["AF"], got["PROTOCOL"], got["ADDR"], got["PORT"]) == (
        AF_INET, IPPROTO_TCP, VIP, VPORT)
    assert got["SCHED_NAME"] == "rr"

    dests = sorted((_dest_attrs(m) for m in ipvs.dest("dump", service=svc)),
                   key=lambda d: d["ADDR"])
    assert [(d["ADDR"], d["PORT"], d["FWD_METHOD"], d["WEIGHT"]) for d in dests] == [
        (REALS[0], RPORT, IP_VS_CONN_F_MASQ, 1),
        (REALS[1], RPORT, IP_VS_CONN_F_MASQ, 5),
    ]
    assert all(d["ADDR_FAMILY"] == AF_INET for d in dests)

    # ipvsadm reads the same kernel table through the same netlink family.
    text = _ipvsadm()
    assert re.search(rf"^TCP\s+{re.escape(VIP)}:{VPORT}\s+rr\b", text, re.M), text
    for addr, weight in ((REALS[0], 1), (REALS[1], 5)):
        assert re.search(rf"->\s+{re.escape(addr)}:{RPORT}\s+Masq\s+{weight}\s", text), text

    ipvs.dest("del", service=svc, dest=IPVSDest(addr=REALS[0], port=RPORT))
    left = [_dest_attrs(m)["ADDR"] for m in ipvs.dest("dump", service=svc)]
    assert left == [REALS[1]]

    ipvs.service("del", service=svc)
    assert list(ipvs.service("dump")) == []
    assert not re.search(r"^(TCP|UDP)\s", _ipvsadm(), re.M)


def test_duplicate_and_missing_are_netlink_errors(ipvs: Any) -> None:
    from pyroute2 import IPVSService
    from pyroute2.netlink.exceptions import NetlinkError

    svc = IPVSService(addr=VIP, port=VPORT, protocol=IPPROTO_TCP, sched_name="rr")
    ipvs.service("add", service=svc)
    with pytest.raises(NetlinkError) as dup:
        ipvs.service("add", service=svc)
    assert dup.value.code == 17  # EEXIST
    ipvs.service("del", service=svc)
    with pytest.raises(NetlinkError) as gone:
        ipvs.service("del", service=svc)
    assert gone.value.code == 3  # ESRCH: the kernel's "no such service"
