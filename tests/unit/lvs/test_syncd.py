"""The sync daemon's netlink encoding and the parent's state following, without a kernel
(a recording link).  The kernel's side of the same bytes: tests/ipvs/test_syncd_vm.py."""

from __future__ import annotations

import asyncio
import errno
import struct

from hafast.config import model as m
from hafast.lib.netlink import parse_attrs
from hafast.lvs.ipvs import (
    CMD_ATTR_DAEMON,
    DAEMON_MCAST_GROUP,
    DAEMON_MCAST_IFN,
    DAEMON_MCAST_PORT,
    DAEMON_MCAST_TTL,
    DAEMON_STATE,
    DAEMON_SYNC_ID,
    DAEMON_SYNC_MAXLEN,
    SyncDaemon,
    daemon_attrs,
    daemon_stop_attrs,
    decode_daemon,
)
from hafast.lvs.syncd import SyncDaemons, steps, wanted


def _inner(payload: bytes) -> dict[int, memoryview]:
    top = parse_attrs(payload)
    assert set(top) == {CMD_ATTR_DAEMON}
    return parse_attrs(top[CMD_ATTR_DAEMON])


def test_new_daemon_carries_what_libipvs_carries() -> None:
    d = SyncDaemon("master", "eth1", 51)
    attrs = _inner(daemon_attrs(d))
    # the three the kernel requires; no optional one when unset (kernel defaults)
    assert set(attrs) == {DAEMON_STATE, DAEMON_MCAST_IFN, DAEMON_SYNC_ID}
    assert struct.unpack("=I", attrs[DAEMON_STATE])[0] == 1  # IP_VS_STATE_MASTER
    assert bytes(attrs[DAEMON_MCAST_IFN]) == b"eth1\0"
    assert struct.unpack("=I", attrs[DAEMON_SYNC_ID])[0] == 51


def test_optional_attributes_and_their_sizes() -> None:
    d = SyncDaemon("backup", "eth1", 7, 1400, 8849, 2, "224.0.0.82")
    attrs = _inner(daemon_attrs(d))
    assert struct.unpack("=I", attrs[DAEMON_STATE])[0] == 2  # IP_VS_STATE_BACKUP
    assert len(attrs[DAEMON_SYNC_MAXLEN]) == 2 and len(attrs[DAEMON_MCAST_PORT]) == 2
    assert len(attrs[DAEMON_MCAST_TTL]) == 1
    assert bytes(attrs[DAEMON_MCAST_GROUP]) == bytes([224, 0, 0, 82])  # an in_addr
    assert struct.unpack("=H", attrs[DAEMON_MCAST_PORT])[0] == 8849  # host order
    assert decode_daemon(attrs) == d


def test_daemons_round_trip() -> None:
    for d in (SyncDaemon("master", "e", 0), SyncDaemon("backup", "eth0.100", 255, 65507, 1, 255),
              SyncDaemon("backup", "eth1", 3, group="ff02::1:81")):
        assert decode_daemon(_inner(daemon_attrs(d))) == d


def test_stop_carries_the_state() -> None:
    attrs = _inner(daemon_stop_attrs("backup", 9))
    assert struct.unpack("=I", attrs[DAEMON_STATE])[0] == 2
    assert struct.unpack("=I", attrs[DAEMON_SYNC_ID])[0] == 9


# -- following the instance ------------------------------------------------------------

SET = m.LvsSyncDaemon("eth1", "VI_1", 51)


def test_wanted_follows_the_state() -> None:
    assert list(wanted(SET, "MASTER")) == ["master"]
    for state in ("BACKUP", "FAULT", "INIT", None):
        assert list(wanted(SET, state)) == ["backup"]
    assert sorted(wanted(m.LvsSyncDaemon("eth1", None, 0), None)) == ["backup", "master"]
    assert wanted(None, "MASTER") == {}


def test_steps_stop_before_start_and_replace_changed_ones() -> None:
    b = SyncDaemon("backup", "eth1", 51)
    mm = b.with_state("master")
    assert steps({"backup": b}, {"backup": b}) == []
    assert steps({"master": mm}, {"backup": b}) == [("del", "master", 51), ("new", b)]
    # the dump fills in the kernel's defaults: the same daemon as asked
    dumped = SyncDaemon("backup", "eth1", 51, 1472, 8848, 1, "224.0.0.81")
    assert steps({"backup": dumped}, {"backup": b}) == []
    other = SyncDaemon("backup", "eth2", 51)
    assert steps({"backup": dumped}, {"backup": other}) == [("del", "backup", 51),
                                                            ("new", other)]


class FakeLink:
    def __init__(self, running: list[SyncDaemon] | None = None,
                 refuse: dict[str, int] | None = None) -> None:
        self.kernel = {d.state: d for d in running or []}
        self.calls: list[tuple[str, ...]] = []
        self.refuse = refuse or {}
        self.closed = False

    def daemons(self) -> list[SyncDaemon]:
        return list(self.kernel.values())

    def new_daemon(self, d: SyncDaemon) -> None:
        self.calls.append(("new", d.state, d.interface, str(d.syncid)))
        code = self.refuse.get(d.interface)
        if code:
            raise OSError(code, "refused")
        if d.state in self.kernel:
            raise OSError(errno.EEXIST, "exists")
        self.kernel[d.state] = d

    def del_daemon(self, state: str, syncid: int = 0) -> None:
        self.calls.append(("del", state))
        if self.kernel.pop(state, None) is None:
            raise OSError(errno.ESRCH, "none")

    def close(self) -> None:
        self.closed = True


def _config(settings: m.LvsSyncDaemon | None) -> m.Config:
    return m.Config(global_defs=m.GlobalDefs(lvs_sync_daemon=settings),
                    vrrp_instances=(m.VrrpInstance("VI_1", virtual_router_id=51),))


def _run(coro_fn) -> None:  # type: ignore[no-untyped-def]
    asyncio.run(coro_fn())


def test_backup_at_start_master_on_master_and_back() -> None:
    link = FakeLink()

    async def go() -> None:
        sd = SyncDaemons(_config(m.LvsSyncDaemon("eth1", "VI_1")), link=lambda: link,
                         modprobe=False)
        await sd.open({})
        assert link.calls == [("new", "backup", "eth1", "51")]
        sd.follow({"VI_1": ("MASTER", 100)})
        sd.follow({"VI_1": ("MASTER", 100)})  # the same state again: nothing
        await asyncio.sleep(0.05)
        assert link.calls[1:] == [("del", "backup"), ("new", "master", "eth1", "51")]
        sd.follow({"VI_1": ("FAULT", 100)})
        await asyncio.sleep(0.05)
        assert link.calls[3:] == [("del", "master"), ("new", "backup", "eth1", "51")]
        await sd.close()
        assert link.calls[5:] == [("del", "backup")]
        assert link.kernel == {} and link.closed

    _run(go)


def test_a_resumed_master_starts_as_master_and_leftovers_go() -> None:
    link = FakeLink([SyncDaemon("backup", "eth9", 4)])

    async def go() -> None:
        sd = SyncDaemons(_config(m.LvsSyncDaemon("eth1", "VI_1")), link=lambda: link,
                         modprobe=False)
        await sd.open({"VI_1": ("MASTER", 100)})
        assert link.calls == [("del", "backup"), ("new", "master", "eth1", "51")]
        await sd.close()

    _run(go)


def test_no_instance_runs_both_for_the_daemon_life() -> None:
    link = FakeLink()

    async def go() -> None:
        sd = SyncDaemons(_config(m.LvsSyncDaemon("eth1")), link=lambda: link, modprobe=False)
        await sd.open({})
        assert sorted(link.kernel) == ["backup", "master"]
        assert {d.syncid for d in link.kernel.values()} == {0}
        sd.follow({"VI_1": ("MASTER", 100)})
        await asyncio.sleep(0.05)
        assert len(link.calls) == 2
        await sd.close()
        assert link.kernel == {}

    _run(go)


def test_a_refusal_is_logged_counted_and_retried_on_the_next_report(caplog) -> None:  # type: ignore[no-untyped-def]
    link = FakeLink(refuse={"eth1": errno.ENODEV})

    async def go() -> None:
        sd = SyncDaemons(_config(m.LvsSyncDaemon("eth1", "VI_1")), link=lambda: link,
                         modprobe=False)
        await sd.open({})
        assert sd.errors == 1 and sd.running == {}
        assert "cannot start the backup sync daemon on eth1: No such device" in caplog.text
        link.refuse.clear()
        sd.follow({"VI_1": ("BACKUP", 100)})
        await asyncio.sleep(0.05)
        assert list(sd.running) == ["backup"]
        await sd.close()

    _run(go)


def test_reload_restarts_a_changed_daemon_and_stops_a_removed_one() -> None:
    link = FakeLink()

    async def go() -> None:
        sd = SyncDaemons(_config(m.LvsSyncDaemon("eth1", "VI_1")), link=lambda: link,
                         modprobe=False)
        states = {"VI_1": ("MASTER", 100)}
        await sd.open(states)
        await sd.configure(_config(m.LvsSyncDaemon("eth1", "VI_1")), states)
        assert link.calls == [("new", "master", "eth1", "51")]  # unchanged: untouched
        await sd.configure(_config(m.LvsSyncDaemon("eth1", "VI_1", 9)), states)
        assert link.calls[1:] == [("del", "master"), ("new", "master", "eth1", "9")]
        await sd.configure(_config(None), states)
        assert link.calls[3:] == [("del", "master")] and link.kernel == {}
        await sd.close()

    _run(go)


def test_nothing_configured_touches_nothing() -> None:
    made: list[int] = []

    async def go() -> None:
        sd = SyncDaemons(_config(None), link=lambda: made.append(1), modprobe=False)
        await sd.open({})
        sd.follow({"VI_1": ("MASTER", 100)})
        await sd.close()

    _run(go)
    assert made == []


def test_no_ipvs_is_logged_and_the_daemon_goes_on(caplog) -> None:  # type: ignore[no-untyped-def]
    from hafast.lvs.ipvs import IpvsUnavailable

    def no_ipvs() -> None:
        raise IpvsUnavailable("no IPVS generic-netlink family; is ip_vs loaded?")

    async def go() -> None:
        sd = SyncDaemons(_config(m.LvsSyncDaemon("eth1", "VI_1")), link=no_ipvs,
                         modprobe=False)
        await sd.open({})
        sd.follow({"VI_1": ("MASTER", 100)})
        await asyncio.sleep(0.05)
        assert sd.errors == 2 and sd.running == {}
        await sd.close()

    _run(go)
    assert "lvs_sync_daemon: cannot reach IPVS: no IPVS generic-netlink family" in caplog.text


def test_the_side_that_drives_it_must_run() -> None:
    """keepalived: the instance's daemon is the VRRP process's, the pair the checker's."""
    link = FakeLink()

    async def go() -> None:
        with_inst = _config(m.LvsSyncDaemon("eth1", "VI_1"))
        sd = SyncDaemons(with_inst, link=lambda: link, modprobe=False,
                         sides=lambda: (False, True))  # -C: checks only
        await sd.open({})
        assert not sd.active and link.calls == []
        pair = SyncDaemons(_config(m.LvsSyncDaemon("eth1")), link=lambda: link,
                           modprobe=False, sides=lambda: (True, False))  # -P: VRRP only
        await pair.open({})
        assert not pair.active and link.calls == []

    _run(go)
