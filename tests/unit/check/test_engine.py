"""The engine: config -> checks, deduplication across virtual servers (keepalived
#2358), targets from connect_*/bind*, sharding, events per (virtual server, real
server); on the manual-clock loop with a scripted kind in place of the real ones."""

from __future__ import annotations

import random
from typing import Any, ClassVar

from hafast.check.api import NO_ATTEMPT, Attempt, Done, ProbeKind, ProbeResult
from hafast.check.engine import Engine, shard_of, target_for
from hafast.check.runner import Runner
from hafast.config import model as m
from hafast.config.loader import load_text
from hafast.lib.events import DOWN, UP, ServerEvent
from tests.unit.check.fakeloop import FakeLoop

CONFIG = """
virtual_server 10.0.0.1 80 {
  delay_loop 1
  real_server 10.1.0.1 80 {
    TCP_CHECK {
      connect_timeout 0.3
      retry 0
    }
  }
  real_server 10.1.0.2 80 {
    TCP_CHECK {
      connect_timeout 0.3
      retry 0
    }
  }
}
virtual_server 10.0.0.2 80 {
  delay_loop 1
  real_server 10.1.0.1 80 {
    weight 5
    TCP_CHECK {
      connect_timeout 0.3
      retry 0
    }
    MISC_CHECK {
      misc_path "/bin/true"
    }
  }
  real_server 10.1.0.1 8080 {
    TCP_CHECK {
      connect_timeout 0.3
      retry 0
    }
  }
}
"""


def config(text: str = CONFIG) -> m.Config:
    res = load_text(text)
    assert not res.errors, res.errors
    return res.config


class Fake(ProbeKind):
    keyword = "FAKE"
    down: ClassVar[set[tuple[str, int | None, str]]] = set()
    made: ClassVar[list[Fake]] = []

    def __init__(self, spec: Any, target: Any, loop: Any, **extras: Any) -> None:
        super().__init__(spec, target, loop)
        self.extras = extras
        self.attempts = 0
        Fake.made.append(self)

    def start(self, done: Done) -> Attempt:
        self.attempts += 1
        bad = (self.target.address, self.target.port, self.spec.kind) in Fake.down
        done(ProbeResult(not bad, "refused" if bad else ""))
        return NO_ATTEMPT


def engine(cfg: m.Config, loop: FakeLoop, events: list[ServerEvent], **kw: Any) -> Engine:
    Fake.made = []
    Fake.down = set()
    kinds: dict[str, type[ProbeKind]] = {"TCP_CHECK": Fake, "MISC_CHECK": Fake}
    return Engine(cfg, loop, events.append, kinds=kinds,
                  runner=Runner(loop, None, rng=random.Random(2)), **kw)


def test_same_real_server_and_check_under_two_virtual_servers_is_checked_once() -> None:
    loop, events = FakeLoop(), list[ServerEvent]()
    eng = engine(config(), loop, events)
    # TCP 10.1.0.1:80 twice -> one; 10.1.0.2:80; MISC; TCP 10.1.0.1:8080 => 4 checks
    assert eng.checks == 4 and eng.deduplicated == 1
    eng.start()
    loop.advance(1.5)
    shared = [k for k in Fake.made if k.spec.kind == "TCP_CHECK" and k.target == target_for(
        m.RealServer("10.1.0.1", 80), m.TcpCheck())]
    assert len(shared) == 1 and shared[0].attempts >= 1
    Fake.down.add(("10.1.0.1", 80, "TCP_CHECK"))
    loop.advance(1.0)
    down = sorted((e.virtual_server[1], e.real_server, e.state) for e in events)
    assert down == [("10.0.0.1", ("10.1.0.1", 80), DOWN), ("10.0.0.2", ("10.1.0.1", 80), DOWN)]
    Fake.down.clear()
    loop.advance(1.0)
    ups = [e for e in events if e.state == UP]
    assert {e.virtual_server[1] for e in ups} == {"10.0.0.1", "10.0.0.2"}
    assert {e.weight for e in ups} == {1, 5}  # each health keeps its own weight
    eng.stop()
    assert loop.pending() == 0


def test_other_checkers_of_one_virtual_server_still_count() -> None:
    loop, events = FakeLoop(), list[ServerEvent]()
    eng = engine(config(), loop, events)
    eng.start()
    Fake.down.add(("10.1.0.1", 80, "MISC_CHECK"))
    loop.advance(2.0)
    # MISC runs only under 10.0.0.2: only that virtual server's real server is DOWN
    assert [(e.virtual_server[1], e.state) for e in events] == [("10.0.0.2", DOWN)]


def test_snapshot_reports_initial_states() -> None:
    text = CONFIG.replace("    weight 5\n", "    weight 5\n    alpha\n")
    loop, events = FakeLoop(), list[ServerEvent]()
    eng = engine(config(text), loop, events)
    snap = eng.snapshot()
    vs2 = next(vs.key for vs in eng.config.virtual_servers if vs.address == "10.0.0.2")
    assert snap[(vs2, ("10.1.0.1", 80))] == (False, 5)
    assert all(up for key, (up, _) in snap.items() if key != (vs2, ("10.1.0.1", 80)))


def test_shards_partition_the_real_servers() -> None:
    cfg = config()
    loop = FakeLoop()
    seen: list[tuple[str, int | None]] = []
    for i in range(3):
        eng = engine(cfg, loop, [], shard_index=i, shard_count=3)
        seen.extend(rs for (_, rs) in eng.healths)
    every = [rs.key for vs in cfg.virtual_servers for rs in vs.real_servers]
    assert sorted(seen) == sorted(every)
    rs = m.RealServer("10.9.9.9", 443)
    assert shard_of(rs, 1) == 0 and shard_of(rs, 4) == shard_of(rs, 4) < 4


def test_unsupported_kinds_are_listed_not_fatal() -> None:
    text = CONFIG.replace('MISC_CHECK {\n      misc_path "/bin/true"\n    }',
                          "HTTP_GET {\n      url {\n        path /\n      }\n    }")
    loop = FakeLoop()
    eng = engine(config(text), loop, [])
    assert [k for _, k in eng.skipped] == ["HTTP_GET"]


def test_target_applies_connect_and_bind_options() -> None:
    rs = m.RealServer("10.1.0.1", 80)
    t = target_for(rs, m.TcpCheck(connect_ip="10.2.0.1", connect_port=81, bindto="10.3.0.1",
                                   bind_port=5000, bind_if="eth1", fwmark=7))
    assert (t.address, t.port, t.bindto, t.bind_port, t.bind_if, t.fwmark) == (
        "10.2.0.1", 81, "10.3.0.1", 5000, "eth1", 7)
    assert target_for(m.RealServer("10.1.0.1"), m.SmtpCheck()).port == 25
    assert target_for(m.RealServer("10.1.0.1"), m.DnsCheck()).port == 53
    assert target_for(m.RealServer("fd00::1", 53), m.DnsCheck()).family == 10


def test_file_check_gets_its_path_and_base_weight(tmp_path: Any) -> None:
    path = tmp_path / "health"
    path.write_text("0\n")
    text = f"""
track_file tf {{
  file {path}
  weight 0
}}
virtual_server 10.0.0.1 80 {{
  real_server 10.1.0.1 80 {{
    weight 4
    FILE_CHECK {{
      track_file tf
      weight 0
    }}
  }}
}}
"""
    loop = FakeLoop()
    eng = Engine(config(text), loop, None, runner=Runner(loop, None, rng=random.Random(1)))
    kind: Any = eng.runner.checks[0].kind
    assert kind.path == str(path) and kind.base_weight == 4


def test_http_kinds_come_from_their_module() -> None:
    text = CONFIG.replace('MISC_CHECK {\n      misc_path "/bin/true"\n    }',
                          "HTTP_GET {\n      url {\n        path /\n      }\n    }")
    loop = FakeLoop()
    eng = Engine(config(text), loop, None, runner=Runner(loop, None, rng=random.Random(1)))
    assert not eng.skipped
    assert "HTTP_GET" in {c.kind.keyword for c in eng.runner.checks}


def test_smtp_host_blocks_become_one_check_each() -> None:
    text = """
virtual_server 10.0.0.1 25 {
  real_server 10.1.0.1 25 {
    SMTP_CHECK {
      helo_name lb
      host {
        connect_ip 10.1.0.7
        connect_port 2525
      }
      host {
        connect_ip 10.1.0.8
      }
    }
  }
}
"""
    loop = FakeLoop()
    eng = Engine(config(text), loop, None, runner=Runner(loop, None, rng=random.Random(1)))
    targets = sorted((c.kind.target.address, c.kind.target.port) for c in eng.runner.checks)
    assert targets == [("10.1.0.7", 2525), ("10.1.0.8", 25)]
    health = next(iter(eng.healths.values()))
    assert health.checks == 2


# --------------------------------------------------------------------------- reload


def test_reload_keeps_unchanged_checks_with_their_state_and_timer() -> None:
    loop, events = FakeLoop(), list[ServerEvent]()
    eng = engine(config(), loop, events)
    eng.start()
    Fake.down.add(("10.1.0.2", 80, "TCP_CHECK"))
    loop.advance(2.0)
    assert [(e.real_server, e.state) for e in events] == [(("10.1.0.2", 80), DOWN)]
    kept_check = next(c for c in eng.runner.checks if c.kind.target.address == "10.1.0.2")
    token = kept_check.token
    # drop 10.0.0.2's MISC and its :8080 server, add a new real server
    text = CONFIG.replace('    MISC_CHECK {\n      misc_path "/bin/true"\n    }\n', "")
    text = text.replace("real_server 10.1.0.1 8080", "real_server 10.1.0.3 8080")
    plan = eng.reload(config(text))
    assert plan == {"kept": 2, "added": 1, "removed": 2}
    assert eng.checks == 3
    assert kept_check in eng.runner.checks and kept_check.token == token
    assert not kept_check.state.up  # still DOWN: no new event, no flap
    snap = eng.snapshot()
    assert snap[(eng.config.virtual_servers[0].key, ("10.1.0.2", 80))] == (False, 1)
    Fake.down.clear()
    loop.advance(2.0)
    assert (("10.1.0.2", 80), UP) in [(e.real_server, e.state) for e in events]
    new = [k for k in Fake.made if k.target.address == "10.1.0.3"]
    assert len(new) == 1 and new[0].attempts >= 1
    eng.stop()
    assert loop.pending() == 0


def test_reload_publishes_a_server_that_changed_as_a_whole() -> None:
    loop, events = FakeLoop(), list[ServerEvent]()
    eng = engine(config(), loop, events)
    eng.start()
    Fake.down.add(("10.1.0.1", 80, "MISC_CHECK"))
    loop.advance(2.0)
    assert [(e.virtual_server[1], e.state) for e in events] == [("10.0.0.2", DOWN)]
    # the failing MISC_CHECK is removed: 10.1.0.1:80 under 10.0.0.2 is whole again
    eng.reload(config(CONFIG.replace('    MISC_CHECK {\n      misc_path "/bin/true"\n    }\n',
                                     "")))
    assert [(e.virtual_server[1], e.state) for e in events][-1] == ("10.0.0.2", UP)
    eng.stop()


def test_reload_with_the_same_config_changes_nothing() -> None:
    loop, events = FakeLoop(), list[ServerEvent]()
    cfg = config()
    eng = engine(cfg, loop, events)
    eng.start()
    loop.advance(1.5)
    checks = list(eng.runner.checks)
    assert eng.reload(config()) == {"kept": 4, "added": 0, "removed": 0}
    assert eng.runner.checks == checks and not events


def test_check_worker_reload_is_a_diff_seeding_only_new_checks() -> None:
    """A check worker's reload (CheckSide.reload) keeps each unchanged check, object,
    state and all, whatever the parent's seed says of it; a new real server's check
    starts from the parent's last known health.  (The loop never runs: no attempt.)"""
    from hafast.check.side import CheckSide
    from hafast.lib.eventloop import new_loop

    def rs(last: int, weight: int = 1) -> str:
        return (f"  real_server 10.1.0.{last} 80 {{\n    weight {weight}\n"
                "    TCP_CHECK {\n      connect_timeout 0.3\n    }\n  }\n")

    def conf(*servers: str) -> m.Config:
        return config("virtual_server 10.0.0.1 80 {\n  protocol TCP\n  delay_loop 1\n"
                      + "".join(servers) + "}\n")

    first = conf(rs(1), rs(2))
    vs = first.virtual_servers[0].key
    loop = new_loop()
    try:
        side = CheckSide(loop, 0, 1, lambda batch: None)
        side.start(first, {(vs, ("10.1.0.1", 80)): (False, 1)})
        by_address = {c.kind.target.address: c for c in side.engine.runner.checks}
        assert not by_address["10.1.0.1"].state.up and by_address["10.1.0.2"].state.up
        # the parent's seed is older than the worker's own state for kept checks
        seed = {(vs, ("10.1.0.1", 80)): (True, 1), (vs, ("10.1.0.3", 80)): (False, 1)}
        counts = side.reload(conf(rs(1), rs(2, weight=5), rs(3)), seed)
        assert counts == {"kept": 2, "added": 1, "removed": 0}
        after = {c.kind.target.address: c for c in side.engine.runner.checks}
        assert after["10.1.0.1"] is by_address["10.1.0.1"] and not after["10.1.0.1"].state.up
        assert after["10.1.0.2"] is by_address["10.1.0.2"]
        assert not after["10.1.0.3"].state.up  # seeded: the parent knew it down
        healths = side.engine.healths
        assert healths[(vs, ("10.1.0.2", 80))].weight == 5
        assert [h.up for h in healths.values()] == [False, True, False]
        side.stop()
    finally:
        loop.close()


def test_a_shard_view_builds_the_shards_checks_one_chunk_at_a_time(
        monkeypatch: Any) -> None:
    """What the parent sends a check worker (hafast.check.view.check_view): the config
    without real servers plus the shard's real servers pickled in chunks.  The engine
    built from it has the checks the whole config gives that shard, reloads as a
    diff from another view, and never sees more than one chunk's RealServer objects
    alive at once."""
    import gc
    import pickle

    from hafast.check import view

    monkeypatch.setattr(view, "CHUNK", 3)
    text = "".join(
        f"virtual_server 10.0.0.{v} 80 {{\n  delay_loop 1\n" + "".join(
            f"  real_server 10.1.{v}.{i} 80 {{\n    TCP_CHECK {{\n      connect_timeout 0.3\n"
            "    }\n  }\n" for i in range(1, 11)) + "}\n" for v in (1, 2))
    cfg = config(text)
    for shard in range(2):
        sent = pickle.loads(pickle.dumps(view.check_view(cfg, shard, 2)))
        assert all(vs.real_servers == () for vs in sent.config.virtual_servers)
        assert all(len(pickle.loads(blob)) <= 3 for _, blob in sent.chunks)
        alive: list[int] = []
        real = view.ShardView.pairs

        def counting(self: view.ShardView, real: Any = real, alive: list[int] = alive) -> Any:
            for vs, rs in real(self):
                gc.collect()
                alive.append(sum(1 for o in gc.get_objects() if type(o) is m.RealServer))
                yield vs, rs

        gc.collect()
        before = sum(1 for o in gc.get_objects() if type(o) is m.RealServer)  # cfg's, others'
        monkeypatch.setattr(view.ShardView, "pairs", counting)
        loop = FakeLoop()
        got = engine(sent, loop, [])  # type: ignore[arg-type]
        monkeypatch.setattr(view.ShardView, "pairs", real)
        whole = engine(cfg, FakeLoop(), [], shard_index=shard, shard_count=2)
        assert sorted(got.healths) == sorted(whole.healths) and got.healths
        # one chunk at a time beside those alive before (and the chunk before's last,
        # still in a loop variable while the next is unpickled)
        assert max(alive) - before <= 3 + 1, (before, alive)
        checks = set(map(id, got.runner.checks))
        counts = got.reload(pickle.loads(pickle.dumps(view.check_view(cfg, shard, 2))))
        assert counts["added"] == 0 and set(map(id, got.runner.checks)) == checks
