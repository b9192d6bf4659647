"""The parent's pieces without processes: wire format, seeding, pools, control socket."""

from __future__ import annotations

import asyncio
import functools
import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from hafast.check.engine import Engine
from hafast.check.events import DOWN, UP, ServerEvent
from hafast.config.loader import load_text
from hafast.core import supervisor as sup
from hafast.core.control import ControlServer, query
from hafast.lvs.memory import MemoryBackend

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
        frame = sup.encode(kind, payload)
        assert int.from_bytes(frame[:4], "big") == len(frame) - 4
        assert sup.decode_body(frame[4:]) == (kind, payload)


def test_read_message_stops_at_eof() -> None:
    async def go() -> list[Any]:
        r = asyncio.StreamReader()
        r.feed_data(sup.encode("pong", 1) + sup.encode("pong", 2)[:6])
        r.feed_eof()
        return [await sup.read_message(r), await sup.read_message(r)]

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
        assert sup.seed_engine(eng, seed) == 2
        snap = eng.snapshot()
        assert snap[(vs, ("10.1.0.1", 80))] == (False, 2)
        assert snap[(vs, ("10.1.0.2", 80))] == (True, 3)
        assert snap[(vs, ("10.1.0.3", 80))] == (True, 1)
        # the checks agree, so the next success/failure is a real transition
        ups = {c.healths[0].real_server: c.state.up for c in eng.runner.checks}
        assert ups == {("10.1.0.1", 80): False, ("10.1.0.2", 80): True, ("10.1.0.3", 80): True}
    finally:
        loop.close()


def test_pool_keeper_reload_keeps_health_and_removes_nothing_healthy() -> None:
    cfg = config()
    vs = cfg.virtual_servers[0].key

    async def go() -> tuple[Any, ...]:
        keeper = sup.PoolKeeper(cfg, MemoryBackend(), keep=False)
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
    assert sorted(pool.dests[next(iter(pool.dests))]) == [("10.1.0.1", 80), ("10.1.0.3", 80)]
    assert released.counts() == (0, 0)
    rss = {r["address"]: r for r in status["virtual_servers"][0]["real_servers"]}
    assert rss["10.1.0.1"]["pool_weight"] == 2 and rss["10.1.0.2"]["pool_weight"] is None


def test_pool_keeper_keep_leaves_the_pool(tmp_path: Path) -> None:
    async def go() -> Any:
        keeper = sup.PoolKeeper(config(), MemoryBackend(), keep=True)
        await keeper.open()
        await keeper.close()
        return await keeper.backend.dump()

    assert asyncio.run(go()).counts() == (1, 2)


def test_make_backend_names() -> None:
    assert sup.make_backend("memory").name == "memory"
    with pytest.raises(KeyError):
        sup.make_backend("bogus")


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
    lat = sup.Latency()
    for s in (0.0005, 0.003, 0.003, 20.0):
        lat.observe(s)
    d = lat.as_dict()
    buckets = dict(d["buckets"])
    assert buckets[0.001] == 1 and buckets[0.005] == 3 and buckets[10.0] == 3
    assert d["count"] == 4


def test_config_pickles_for_the_workers() -> None:
    cfg = config()
    assert pickle.loads(pickle.dumps(cfg)) == cfg
