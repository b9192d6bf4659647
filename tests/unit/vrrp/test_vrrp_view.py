"""The VRRP worker is sent a VRRP-only view of the config (issue 16), and its worker
process loads neither the check side nor pyroute2's package ``__init__``."""

from __future__ import annotations

import pickle
import subprocess
import sys
from typing import Any

from hafast.app.ipc import CHECK, VRRP
from hafast.app.process import WorkerHandle
from hafast.check.view import without_real_servers
from hafast.config.diff import diff
from hafast.config.loader import load_text
from hafast.config.model import Config
from hafast.vrrp.view import vrrp_view

CONF = """
global_defs {
    router_id r1
    lvs_sync_daemon eth0 VI_1
}
vrrp_script chk { script "/bin/true" }
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    priority 100
    virtual_ipaddress { 10.0.0.100/24 }
    track_script { chk }
}
virtual_server 10.0.0.100 80 {
    real_server 10.0.1.1 80 { weight %d
        TCP_CHECK { connect_timeout 3 }
    }
}
"""


def config(weight: int = 1) -> Config:
    res = load_text(CONF % weight)
    assert not res.errors, res.errors
    return res.config


class _Writer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.sent.append(pickle.loads(data[4:]))


def sent_by(role: str, kind: str) -> Any:
    w = WorkerHandle(role, 0)
    writer = _Writer()
    w.writer = writer  # type: ignore[assignment]
    assert w.send(kind, {"config": config(), "seed": {}})
    ((got_kind, payload),) = writer.sent
    assert got_kind == kind
    return payload


def test_the_vrrp_worker_gets_the_view_at_init_and_reload() -> None:
    for kind in ("init", "reload"):
        got = sent_by(VRRP, kind)["config"]
        assert got == vrrp_view(config())
        assert got.virtual_servers == ()
        # what the VRRP side reads is all there
        c = config()
        assert got.vrrp_instances == c.vrrp_instances
        assert got.vrrp_scripts == c.vrrp_scripts
        assert got.global_defs == c.global_defs


def test_a_lone_check_worker_still_gets_the_whole_config() -> None:
    """Every real server, as a ShardView (the config without them, and them in
    chunks: hafast.check.view)."""
    sent, whole = sent_by(CHECK, "reload")["config"], config()
    assert sent.config == without_real_servers(whole)
    assert [(vs.key, rs) for vs, rs in sent.pairs()] == [
        (vs.key, rs) for vs in whole.virtual_servers for rs in vs.real_servers]


def test_each_check_worker_gets_its_shard_at_init_and_reload() -> None:
    """hafast.check.view: each of three check workers is sent only the real servers
    it checks; together they are all of them, each once; the rest is whole."""
    many = load_text("virtual_server 10.0.0.100 80 {\n" + "".join(
        f" real_server 10.0.1.{i} 80 {{\n TCP_CHECK {{\n }}\n }}\n" for i in range(1, 31))
        + "}\n").config
    for kind in ("init", "reload"):
        got = []
        for index in range(3):
            w = WorkerHandle(CHECK, index, shards=3)
            writer = _Writer()
            w.writer = writer  # type: ignore[assignment]
            seed = {(many.virtual_servers[0].key, rs.key): (True, 1)
                    for rs in many.virtual_servers[0].real_servers}
            assert w.send(kind, {"config": many, "seed": seed})
            ((_, payload),) = writer.sent
            (vs,) = payload["config"].virtual_servers
            assert vs.key == many.virtual_servers[0].key and vs.real_servers == ()
            mine = [rs for v, rs in payload["config"].pairs() if v.key == vs.key]
            assert 0 < len(mine) < 30
            assert payload["config"].global_defs == many.global_defs
            # the seed: the same real servers' last known health, no others
            assert {k[1] for k in payload["seed"]} == {rs.key for rs in mine}
            got.extend(mine)
        assert sorted(got, key=lambda rs: rs.address) == sorted(
            many.virtual_servers[0].real_servers, key=lambda rs: rs.address)


def test_a_real_server_change_is_no_vrrp_change_in_the_view() -> None:
    plan = diff(vrrp_view(config(1)), vrrp_view(config(2)))
    assert len(plan.vrrp_instances.keep) == 1
    assert not (plan.vrrp_instances.adopt or plan.vrrp_instances.add
                or plan.vrrp_instances.remove)
    assert diff(config(1), config(2)).vrrp_instances == plan.vrrp_instances


PROBE = """
import sys
import hafast.app.worker
from hafast.net.vip import NetlinkVips
from hafast.vrrp.side import VrrpSide
from hafast.vrrp.worker import VrrpWorker
loaded = sorted(m for m in sys.modules if m.startswith(("hafast.check", "pyroute2.ndb",
                                                        "pyroute2.iproute")))
assert not loaded, loaded
from hafast.net.pyroute2_lazy import skip_package_init
skip_package_init()
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
m = ifaddrmsg(); m["attrs"] = [("IFA_LOCAL", "192.0.2.1"), ("IFA_LABEL", "x")]; m.encode()
lazy = bytes(m.data)
assert not any(k.startswith("pyroute2.ndb") for k in sys.modules)
from pyroute2 import IPVS, IPRoute  # the package __init__ runs on first use
import pyroute2
assert pyroute2.__version__ and "__getattr__" not in vars(pyroute2)
m = ifaddrmsg(); m["attrs"] = [("IFA_LOCAL", "192.0.2.1"), ("IFA_LABEL", "x")]; m.encode()
assert bytes(m.data) == lazy
"""


def test_the_vrrp_worker_process_loads_no_check_code_and_lean_pyroute2() -> None:
    subprocess.run([sys.executable, "-c", PROBE], check=True)


IFINFMSG_PROBE = """
from hafast.net.pyroute2_lazy import skip_package_init
skip_package_init()
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg  # does 'from pyroute2 import config'
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2 import IPRoute  # the package __init__ still runs on first use
assert ifinfmsg and ifaddrmsg and IPRoute
"""


def test_a_submodule_imported_by_package_name_does_not_run_the_package_init() -> None:
    """use_vmac's ifinfmsg imports ``from pyroute2 import config``: that name is a
    submodule and must not run pyroute2's __init__ from inside ifinfmsg's import."""
    subprocess.run([sys.executable, "-c", IFINFMSG_PROBE], check=True)
