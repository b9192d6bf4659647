"""The parent's pieces: wire format, seeding, pools, address watch, control socket;
and, as processes on loopback (no privileges), a reload that adds or removes the
whole check side."""

from __future__ import annotations

import asyncio
import functools
import os
import pickle
import signal
import socket
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from hafast.app import ipc
from hafast.app import supervisor as sup
from hafast.app.control import ControlServer, query
from hafast.check import side as cside
from hafast.check.engine import Engine
from hafast.config.loader import load_text
from hafast.lib.events import DOWN, UP, ServerEvent
from hafast.lvs import keeper as lvs_keeper
from hafast.lvs.memory import MemoryBackend
from hafast.net import addrwatch as aw
from hafast.vrrp import side as vside

CONF = """
virtual_server 10.0.0.1 80 {
  delay_loop 1
  protocol TCP
  real_server 10.1.0.1 80 { weight 2
    TCP_CHECK { connect_timeout 1 } }
  real_server 10.1.0.2 80 { weight 3
    TCP_CHECK { connect_timeout 1 } }
  real_server 10.1.0.3 80 { weight 1
    alpha
    TCP_CHECK { connect_timeout 1 } }
}
"""


def config(text: str = CONF) -> Any:
    res = load_text(text)
    assert not res.errors, res.errors
    return res.config


def test_wire_roundtrip_of_config_and_events() -> None:
    cfg = config()
    ev = ServerEvent(cfg.virtual_servers[0].key, ("10.1.0.1", 80), DOWN, 2, "x", 1.5)
    for kind, payload in (("init", {"config": cfg}), ("events", [ev]), ("ping", 7)):
        frame = ipc.encode(kind, payload)
        assert int.from_bytes(frame[:4], "big") == len(frame) - 4
        assert ipc.decode_body(frame[4:]) == (kind, payload)


def test_read_message_stops_at_eof() -> None:
    async def go() -> list[Any]:
        r = asyncio.StreamReader()
        r.feed_data(ipc.encode("pong", 1) + ipc.encode("pong", 2)[:6])
        r.feed_eof()
        return [await ipc.read_message(r), await ipc.read_message(r)]

    assert asyncio.run(go()) == [("pong", 1), None]


def test_seed_engine_starts_from_last_known_health() -> None:
    cfg = config()
    vs = cfg.virtual_servers[0].key
    loop = asyncio.new_event_loop()
    try:
        eng = Engine(cfg, loop)
        # alpha server 3 starts down; the parent knows it came up, and server 1 went down.
        assert eng.snapshot()[(vs, ("10.1.0.3", 80))] == (False, 1)
        seed = {(vs, ("10.1.0.1", 80)): (False, 2), (vs, ("10.1.0.3", 80)): (True, 1)}
        assert cside.seed_engine(eng, seed) == 2
        snap = eng.snapshot()
        assert snap[(vs, ("10.1.0.1", 80))] == (False, 2)
        assert snap[(vs, ("10.1.0.2", 80))] == (True, 3)
        assert snap[(vs, ("10.1.0.3", 80))] == (True, 1)
        # the checks agree, so the next success/failure is a real transition
        ups = {c.healths[0].real_server: c.state.up for c in eng.runner.checks}
        assert ups == {("10.1.0.1", 80): False, ("10.1.0.2", 80): True, ("10.1.0.3", 80): True}
    finally:
        loop.close()


def test_a_first_seed_leaves_out_what_a_fresh_worker_starts_with() -> None:
    """The parent's seed before any report names only the alpha server (down); an
    engine seeded with it starts exactly as one seeded with every server's state."""
    cfg = config()
    vs = cfg.virtual_servers[0].key

    async def seeds() -> tuple[dict[Any, Any], dict[Any, Any]]:
        keeper = lvs_keeper.PoolKeeper(cfg, MemoryBackend(), keep=False)
        await keeper.open()
        full = {(vk, rk): (r.alive, r.weight) for vk, st in keeper.policy.vss.items()
                for rk, r in st.rss.items()}
        sent = keeper.seed()
        await keeper.close()
        return full, sent

    full, sent = asyncio.run(seeds())
    assert list(sent) == [(vs, ("10.1.0.3", 80))] and len(full) == 3
    loop = asyncio.new_event_loop()
    try:
        started = []
        for seed in (full, sent):
            eng = Engine(cfg, loop)
            cside.seed_engine(eng, seed)
            started.append((eng.snapshot(), [(c.state.up, c.healths[0].failing)
                                             for c in eng.runner.checks]))
        assert started[0] == started[1]
    finally:
        loop.close()


def test_pool_keeper_reload_keeps_health_and_removes_nothing_healthy() -> None:
    cfg = config()
    vs = cfg.virtual_servers[0].key

    async def go() -> tuple[Any, ...]:
        keeper = lvs_keeper.PoolKeeper(cfg, MemoryBackend(), keep=False)
        await keeper.open()
        first = dict(keeper.backend.changes)
        await keeper.on_events([ServerEvent(vs, ("10.1.0.3", 80), UP, 1, "", 1.0),
                                ServerEvent(vs, ("10.1.0.2", 80), DOWN, 3, "dead", 1.0)])
        await keeper.manager.wait_idle()
        before = dict(keeper.backend.changes)
        # reload: a new alpha server and an unchanged rest
        new = config(CONF.replace("}\n\"\"\"", "").rstrip()[:-1] + """
  real_server 10.1.0.4 80 { weight 1
    alpha
    TCP_CHECK { connect_timeout 1 } }
}
""")
        await keeper.reload(new)
        after = dict(keeper.backend.changes)
        seed = keeper.seed()
        pool = await keeper.backend.dump()
        await keeper.close()
        released = await keeper.backend.dump()
        return first, before, after, seed, pool, released, keeper.status()

    first, before, after, seed, pool, released, status = asyncio.run(go())
    assert first == {"add-service": 1, "add-dest": 2}
    assert before == {"add-service": 1, "add-dest": 3, "del-dest": 1}
    assert after == before  # the reload touched nothing: the new server is alpha (down)
    assert seed[(vs, ("10.1.0.2", 80))] == (False, 3)
    assert seed[(vs, ("10.1.0.3", 80))] == (True, 1)
    assert seed[(vs, ("10.1.0.4", 80))] == (False, 1)
    # never reported and up, as a fresh worker's checks start: nothing to say
    assert (vs, ("10.1.0.1", 80)) not in seed
    assert sorted(pool.dests[next(iter(pool.dests))]) == [("10.1.0.1", 80), ("10.1.0.3", 80)]
    assert released.counts() == (0, 0)
    rss = {r["address"]: r for r in status["virtual_servers"][0]["real_servers"]}
    assert rss["10.1.0.1"]["pool_weight"] == 2 and rss["10.1.0.2"]["pool_weight"] is None


def test_pool_status_rows_made_lazily_are_the_same_rows() -> None:
    """The control socket's rows (JsonArray, written a chunk at a time) are the
    dumps' and /metrics' rows; pool_weight is read from the pool."""
    import json

    from hafast.lib.jsonstream import pieces

    cfg = config()
    vs = cfg.virtual_servers[0].key

    async def go() -> tuple[str, str, dict[str, Any]]:
        keeper = lvs_keeper.PoolKeeper(cfg, MemoryBackend(), keep=False)
        await keeper.open()
        await keeper.on_events([ServerEvent(vs, ("10.1.0.2", 80), DOWN, 3, "dead", 1.0)])
        lazy = "".join(pieces(keeper.status(lazy_rows=True)))
        plain = keeper.status()
        await keeper.close()
        return lazy, json.dumps(plain, separators=(",", ":"), default=str), plain

    lazy, plain_text, plain = asyncio.run(go())
    assert lazy == plain_text
    rows = {r["address"]: r for r in plain["virtual_servers"][0]["real_servers"]}
    assert rows["10.1.0.1"]["pool_weight"] == 2 and rows["10.1.0.2"]["pool_weight"] is None
    assert rows["10.1.0.3"]["pool_weight"] is None  # alpha: not in the pool yet


def test_pool_keeper_keep_leaves_the_pool(tmp_path: Path) -> None:
    async def go() -> Any:
        keeper = lvs_keeper.PoolKeeper(config(), MemoryBackend(), keep=True)
        await keeper.open()
        await keeper.close()
        return await keeper.backend.dump()

    assert asyncio.run(go()).counts() == (1, 2)


def test_make_backend_names() -> None:
    assert lvs_keeper.make_backend("memory").name == "memory"
    with pytest.raises(KeyError):
        lvs_keeper.make_backend("bogus")


def test_control_socket_roundtrip(tmp_path: Path) -> None:
    path = str(tmp_path / "c.ctl")

    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        if req.get("cmd") == "boom":
            raise RuntimeError("no")
        return {"echo": req}

    async def go() -> list[Any]:
        server = ControlServer(path, handler)
        await server.start()
        mode = os.stat(path).st_mode & 0o777
        loop = asyncio.get_running_loop()
        out: list[Any] = [mode]
        for cmd in ("status", "boom"):
            out.append(await loop.run_in_executor(None, functools.partial(query, path, cmd)))
        await server.close()
        out.append(os.path.exists(path))
        return out

    mode, ok, boom, exists = asyncio.run(go())
    assert mode == 0o600
    assert ok == {"echo": {"cmd": "status"}}
    assert "error" in boom
    assert exists is False


def test_latency_histogram_is_cumulative() -> None:
    lat = cside.Latency(cside.LATENCY_BUCKETS)
    for s in (0.0005, 0.003, 0.003, 20.0):
        lat.observe(s)
    d = lat.as_dict()
    buckets = dict(d["buckets"])
    assert buckets[0.001] == 1 and buckets[0.005] == 3 and buckets[10.0] == 3
    assert d["count"] == 4


def test_config_pickles_for_the_workers() -> None:
    cfg = config()
    assert pickle.loads(pickle.dumps(cfg)) == cfg


# --------------------------------------------------------------------------- addresses


def nl_addr(kind: int, family: int, index: int, **attrs: bytes) -> bytes:
    body = aw._IFADDRMSG.pack(family, 24, 0, 0, index)
    for name, value in attrs.items():
        code = {"local": aw.IFA_LOCAL, "address": aw.IFA_ADDRESS, "label": 3}[name]
        attr = struct.pack("=HH", 4 + len(value), code) + value  # struct rtattr
        body += attr + bytes(-len(attr) % 4)
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body  # struct nlmsghdr


def test_parse_addr_messages_local_before_peer_v6_done_and_truncation() -> None:
    v4 = nl_addr(aw.RTM_NEWADDR, socket.AF_INET, 2, address=bytes([10, 0, 0, 9]),
                 local=bytes([10, 0, 0, 1]), label=b"ppp0\0")
    v6 = nl_addr(aw.RTM_DELADDR, socket.AF_INET6, 3,
                 address=socket.inet_pton(socket.AF_INET6, "2001:db8::1"))
    bad = nl_addr(aw.RTM_NEWADDR, socket.AF_INET, 4, address=b"\x01\x02")  # wrong size
    done = struct.pack("=IHHII", 20, aw.NLMSG_DONE, 0, 0, 0) + bytes(4)
    got = list(aw.parse_addr_messages(v4 + v6 + bad + done + v4[:10]))
    assert got == [(aw.RTM_NEWADDR, "10.0.0.1", 2), (aw.RTM_DELADDR, "2001:db8::1", 3),
                   (aw.NLMSG_DONE, "", 0)]


def test_address_watch_reports_first_arrival_and_last_departure() -> None:
    async def go() -> tuple[bool, list[tuple[str, bool]], set[str]]:
        calls: list[tuple[str, bool]] = []
        watch = aw.AddressWatch(asyncio.get_running_loop(),
                                 lambda a, p: calls.append((a, p)))
        watch.open()  # a real RTNL dump of this namespace
        has_lo = "127.0.0.1" in watch.addresses()
        watch.close()
        # events through a stand-in socket: the same address on two interfaces
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        a.setblocking(False)
        watch._sock = a
        ip = bytes([10, 7, 0, 1])
        for kind, index in ((aw.RTM_NEWADDR, 5), (aw.RTM_NEWADDR, 6),
                            (aw.RTM_DELADDR, 5)):
            b.send(nl_addr(kind, socket.AF_INET, index, local=ip))
        watch._readable()
        b.send(nl_addr(aw.RTM_DELADDR, socket.AF_INET, 6, local=ip))
        watch._readable()
        left = watch.addresses()
        watch._sock = None
        a.close()
        b.close()
        return has_lo, calls, left

    has_lo, calls, left = asyncio.run(go())
    assert has_lo
    assert calls == [("10.7.0.1", True), ("10.7.0.1", False)]
    assert "10.7.0.1" not in left


def test_pool_keeper_ha_suspend_follows_the_address() -> None:
    cfg = config(CONF.replace("delay_loop 1", "delay_loop 1\n  ha_suspend"))

    async def go() -> list[Any]:
        keeper = lvs_keeper.PoolKeeper(cfg, MemoryBackend(), keep=False, vips_present=["10.0.0.2"])
        await keeper.open()
        seen: list[Any] = [(await keeper.backend.dump()).counts(), keeper.status()]
        keeper.set_vip("10.0.0.1", True)
        await keeper.manager.wait_idle()
        seen.append((await keeper.backend.dump()).counts())
        keeper.set_vip("10.0.0.1", False)
        await keeper.manager.wait_idle()
        seen.append((await keeper.backend.dump()).counts())
        await keeper.close()
        return seen

    empty, status, up, down = asyncio.run(go())
    assert empty == (0, 0) and up == (1, 2) and down == (0, 0)
    vs = status["virtual_servers"][0]
    assert vs["suspended"] and all(r["pool_weight"] is None for r in vs["real_servers"])


# --------------------------------------------------------------------------- reload


def loopback_conf(port: int | None) -> str:
    head = "global_defs {\n  router_id reload-sides\n}\n"
    if port is None:
        return head
    return head + f"""virtual_server 10.9.9.8 80 {{
  delay_loop 0.5
  protocol TCP
  lvs_sched rr
  real_server 127.0.0.1 {port} {{
    TCP_CHECK {{ connect_timeout 1 }}
  }}
}}
"""


def test_status_leaves_out_a_worker_a_reload_stopped_while_it_was_asked() -> None:
    """The status is gathered over an await: a reload that retires the check side
    meanwhile must not leave its worker listed beside pools it already closed (CI of
    fa90f18 read such a status in the test below)."""
    from types import SimpleNamespace

    from hafast.app.desk import StatusDesk

    check0 = SimpleNamespace(name="check0", pid=1234, restarts=0, heartbeat_kills=0,
                             deadline_kills=0, last_pong=time.monotonic(), startup_s=0.1,
                             role=ipc.CHECK)
    fake = SimpleNamespace(
        workers=[check0], pools=SimpleNamespace(status=lambda: {"virtual_servers": []}),
        options=SimpleNamespace(config_file="/etc/k.conf"), started_at=time.time(),
        reloads_q=SimpleNamespace(applied=1, rejected=0, status=lambda: {}),
        vip_guard=SimpleNamespace(released=0), fleet=None)

    class Desk(StatusDesk):
        async def worker_status(self, w: Any, timeout: float = 2.0) -> Any:
            # the reload's _retire and pools.close, done while this reply is awaited
            fake.workers.remove(w)
            fake.pools = None
            await asyncio.sleep(0)
            return None

    st = asyncio.run(Desk(fake).status())  # type: ignore[arg-type]
    assert st["pools"] is None and st["workers"] == []


def test_reload_starts_and_stops_the_check_side(tmp_path: Path) -> None:
    from tests.netns.daemon_fixtures import start_daemon

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    d = start_daemon(tmp_path, loopback_conf(None),
                     extra=["--pool-backend", "memory", "--check-workers", "1"])
    try:
        st = d.wait_for(lambda s: "workers" in s, 20, "the control socket")
        assert st["workers"] == [] and st["pools"] is None
        # the first virtual server: the pools open and a check worker starts
        (tmp_path / "hafast.conf").write_text(loopback_conf(port))
        d.signal(signal.SIGHUP)
        st = d.wait_for(lambda s: s["reloads"] == 1 and bool(s["pools"]) and bool(
            s["pools"]["virtual_servers"][0]["real_servers"][0]["pool_weight"]),
            20, "the pool after the reload")
        st = d.wait_for(lambda s: [w["name"] for w in s["workers"]] == ["check0"]
                        and s["workers"][0]["answering"], 20, "check0 answering")
        pid = st["workers"][0]["pid"]
        assert d.pid_file("_check").exists()
        # and the last one gone: the worker stops (not restarted), the pools close
        (tmp_path / "hafast.conf").write_text(loopback_conf(None))
        d.signal(signal.SIGHUP)
        st = d.wait_for(lambda s: s["reloads"] == 2 and s["pools"] is None, 20,
                        "the check side stopped")
        assert st["workers"] == []
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(f"/proc/{pid}")
        assert not d.pid_file("_check").exists()
        log = d.log_text()
        assert "del-service" in log and "restarting" not in log
        assert d.stop() == 0
    finally:
        d.close()
        server.close()


def test_address_watch_overflow_reads_the_table_again(monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    class Overflowed:
        def __init__(self) -> None:
            self.replies: list[Any] = [OSError(errno.ENOBUFS, "overflow"),
                                       nl_addr(aw.RTM_DELADDR, socket.AF_INET, 1,
                                               local=bytes([10, 7, 0, 2]))]

        def recv(self, n: int) -> bytes:
            if not self.replies:
                raise BlockingIOError
            got = self.replies.pop(0)
            if isinstance(got, Exception):
                raise got
            return bytes(got)

    monkeypatch.setattr(aw, "dump_addresses", lambda: {("10.7.0.3", 1)})
    calls: list[tuple[str, bool]] = []
    watch = aw.AddressWatch(None, lambda a, p: calls.append((a, p)))  # type: ignore[arg-type]
    watch.held = {("10.7.0.2", 1)}
    watch._sock = Overflowed()  # type: ignore[assignment]
    watch._readable()
    assert watch.resyncs == 1 and watch.addresses() == {"10.7.0.3"}
    assert calls == [("10.7.0.3", True), ("10.7.0.2", False)]


def test_without_the_address_watch_vrrp_states_stand_in() -> None:
    from hafast.app.cmdline import parse

    cfg = config("""
vrrp_instance VI_1 {
  interface lo
  virtual_router_id 7
  priority 100
  virtual_ipaddress {
    10.0.0.1/32
  }
}
""" + CONF.replace("delay_loop 1", "delay_loop 1\n  ha_suspend"))

    async def go() -> list[tuple[int, int]]:
        s = sup.Supervisor(parse(["-f", "/nonexistent"]), cfg)
        s.pools = lvs_keeper.PoolKeeper(cfg, MemoryBackend(), keep=False, vips_present=[])
        await s.pools.open()
        seen = [(await s.pools.backend.dump()).counts()]
        for state in ("MASTER", "BACKUP"):
            s._vips_moved({"VI_1": (state, 100)})
            await s.pools.manager.wait_idle()
            seen.append((await s.pools.backend.dump()).counts())
        await s.pools.close()
        return seen

    assert asyncio.run(go()) == [(0, 0), (1, 2), (0, 0)]


class FakeNetlinkVips:
    """Stands in for NetlinkVips (no rtnetlink writes): records the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def adopt(self, owner: str, vips: Any, dev: str) -> list[Any]:
        self.calls.append(("adopt", owner, tuple(vips), dev))
        return list(vips)

    def owns(self, vip: Any, dev: str) -> bool:
        return False

    def add(self, owner: str, vips: Any, routes: Any, dev: str, rules: Any = ()) -> None:
        self.calls.append(("add", owner, tuple(vips), dev))

    def remove(self, owner: str, vips: Any, routes: Any, dev: str, rules: Any = ()) -> None:
        self.calls.append(("remove", owner, tuple(vips), dev))

    def release_all(self) -> None:
        self.calls.append(("release_all",))

    def close(self) -> None:
        self.calls.append(("close",))


def netlink_calls(vips: Any) -> list[tuple[Any, ...]]:
    return list(vips.inner.calls)


def test_resuming_vips_adopts_through_netlink_only_when_resumed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import hafast.net.vip

    monkeypatch.setattr(hafast.net.vip, "NetlinkVips", FakeNetlinkVips)
    fresh, resumed = vside.ResumingVips(adopt=False), vside.ResumingVips(adopt=True)
    assert fresh.adopt("VI_1", ["v"], "eth0") == [] and netlink_calls(fresh) == []
    assert resumed.adopt("VI_1", ["v"], "eth0") == ["v"]
    resumed.remove("VI_1", ["v"], [], "eth0")
    resumed.close()
    assert netlink_calls(resumed) == [("adopt", "VI_1", ("v",), "eth0"),
                                   ("remove", "VI_1", ("v",), "eth0"),
                                   ("release_all",), ("close",)]
    # -V: nothing is removed, not even on close
    fresh.keep = True
    assert fresh.remove("VI_1", ["v"], [], "eth0").result() is None
    fresh.close()
    assert netlink_calls(fresh) == []


class FakeMachine:
    def __init__(self) -> None:
        from hafast.vrrp.fsm import State

        self.state = State.INITIALIZE
        self.master_down_at = 0


class FakeInstance:
    def __init__(self, name: str) -> None:
        from hafast.config.model import VirtualAddress

        self.name, self.priority = name, 100
        self.listeners: list[Any] = []
        self.notifier = None
        self.vips: Any = None
        self.spec = type("Spec", (), {"vips": (VirtualAddress("10.0.0.1", 24, 4),),
                                      "excluded": (), "ifname": "eth0"})()
        self.machine = type("M", (), {"state": FakeMachine()})()

    @property
    def state(self) -> Any:
        return self.machine.state.state

    def start(self) -> None:
        from hafast.vrrp.fsm import State

        self.machine.state.state = State.MASTER

    def resume(self, was: Any, *, adopt: bool = True) -> None:
        from hafast.vrrp.fsm import State

        if was is State.MASTER and adopt:
            self.vips.adopt(self.name, self.spec.vips + self.spec.excluded, self.spec.ifname)
        self.start()


class FakeWorker:
    """VrrpWorker's surface VrrpSide uses; reload "starts" one changed instance."""

    def __init__(self, loop: Any, config: Any, *, vips: Any) -> None:
        self.config, self.vips = config, vips
        self.instances = [FakeInstance("VI_1")]
        self.instances[0].vips = vips
        self.on_started: Any = None
        self.reloaded: list[Any] = []
        self.tracking = type("T", (), {"start": lambda self: None})()
        self.statics = type("S", (), {"apply": lambda self, c: None,
                                      "counters": lambda self: {}})()

    def reload(self, config: Any) -> dict[str, int]:
        self.reloaded.append(config)
        inst = FakeInstance("VI_1")
        inst.start()
        self.instances = [inst]
        self.on_started(inst)
        return {"keep": 0, "adopt": 1, "add": 0, "remove": 0}


def test_vrrp_side_reloads_through_the_worker_and_publishes_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import hafast.net.vip
    import hafast.vrrp.worker

    monkeypatch.setattr(hafast.net.vip, "NetlinkVips", FakeNetlinkVips)
    monkeypatch.setattr(hafast.vrrp.worker, "VrrpWorker", FakeWorker)
    published: list[dict[str, tuple[str, int]]] = []
    side = vside.VrrpSide(None, "old", {"VI_1": "MASTER"}, True, False,  # type: ignore[arg-type]
                        published.append)
    side.start()
    # resumed as MASTER: its predecessor's VIPs are adopted before it starts
    assert netlink_calls(side.vips)[0][:2] == ("adopt", "VI_1")
    assert published == [{"VI_1": ("MASTER", 100)}]
    counts = side.reload("new")  # type: ignore[arg-type]
    assert counts["adopt"] == 1 and side.config == "new"
    assert side.worker.reloaded == ["new"]  # type: ignore[attr-defined]
    # the successor is published once, as MASTER (never BACKUP on the way)
    assert published[1:] == [{"VI_1": ("MASTER", 100)}]
    (inst,) = side.worker.instances
    assert side._changed in inst.listeners


def test_a_pong_sent_before_the_reload_does_not_end_its_grace() -> None:
    """The 37k-RS reload in the IPVS VM (benchmarks/test_bench_reload_vm.py): the
    parent parsed for 18 s while a check worker's pong to an earlier ping sat in the
    pipe; read after the reload was sent, it ended the reload's grace, and the worker,
    still rebuilding 37,000 checks, was killed 2 s later (every check restarted).
    Only a pong to a ping sent after the reload says the worker is through it."""
    from hafast.app.cmdline import parse
    from hafast.app.process import STARTUP_GRACE_S, WorkerHandle

    async def go() -> None:
        s = sup.Supervisor(parse(["-f", "/nonexistent"]), config())
        w = WorkerHandle("check", 0)
        w.ping_seq = 41  # the heartbeat's last ping before the reload
        w.grace_until = time.monotonic() + STARTUP_GRACE_S
        w.grace_from_seq = w.ping_seq  # what Reloader sets with the grace

        await s._on_message(w, "pong", 41)  # answered before the reload was read
        assert w.grace_until > time.monotonic()
        await s._on_message(w, "pong", 40)  # older still
        assert w.grace_until > time.monotonic()
        await s._on_message(w, "pong", 42)  # a ping after the reload: through it
        assert w.grace_until == 0.0
        # the VRRP worker's pong carries its adverts beside the sequence number
        v = WorkerHandle("vrrp", 0)
        v.grace_until, v.grace_from_seq = time.monotonic() + 10, 7
        await s._on_message(v, "pong", (7, {"VI_1": 1.0}))
        assert v.grace_until > time.monotonic() and v.last_adverts == {"VI_1": 1.0}
        await s._on_message(v, "pong", (8, {}))
        assert v.grace_until == 0.0

    asyncio.run(go())


def test_a_check_worker_killed_before_it_was_ready_gets_twice_the_time() -> None:
    """The emulated IPVS VM, loaded: check workers whose start took over the 60 s grace
    were killed at 60 s, restarted, and killed again, never checking at all.  Each kill
    before 'ready' doubles the next start's grace (to 600 s at most); a kill of a
    worker that was ready (a hung loop) changes nothing."""
    from hafast.app.cmdline import parse
    from hafast.app.process import STARTUP_GRACE_MAX_S, STARTUP_GRACE_S, WorkerHandle

    class Proc:
        killed = 0

        def kill(self) -> None:
            self.killed += 1

    async def go() -> None:
        s = sup.Supervisor(parse(["-f", "/nonexistent"]), config())
        w = WorkerHandle("check", 0)
        graces = []
        for _ in range(5):
            w.proc = Proc()  # type: ignore[assignment]
            w.ready = asyncio.Event()  # a new start: not ready yet
            s._hung(w, time.monotonic())
            graces.append(w.start_grace_s)
        assert graces == [2 * STARTUP_GRACE_S, 4 * STARTUP_GRACE_S, 8 * STARTUP_GRACE_S,
                          STARTUP_GRACE_MAX_S, STARTUP_GRACE_MAX_S]
        ready = WorkerHandle("check", 1)
        ready.proc = Proc()  # type: ignore[assignment]
        ready.ready.set()
        s._hung(ready, time.monotonic())
        assert ready.start_grace_s == STARTUP_GRACE_S and ready.heartbeat_kills == 1

    asyncio.run(go())
