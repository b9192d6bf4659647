"""hafast.check.rounds: a virtual server's first round is reported once every check
feeding it has decided (run, retries not in progress), and only once."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace as NS
from typing import Any

from hafast.check.rounds import RoundWatch, decided

VS1, VS2, VS3 = ("addr", "192.0.2.1", 80, "TCP"), ("addr", "192.0.2.2", 80, "TCP"), ("x",)


def check(*vss: Any) -> Any:
    return NS(has_run=False, retry_it=0, healths=[NS(virtual_server=v) for v in vss])


def test_decided_is_a_verdict_not_an_attempt() -> None:
    c = check(VS1)
    assert not decided(c)
    c.has_run, c.retry_it = True, 1  # failed once, retrying
    assert not decided(c)
    c.retry_it = 0  # retries spent (DOWN), or a success
    assert decided(c)


def test_each_virtual_server_is_reported_once_when_all_its_checks_decided() -> None:
    a, b, shared = check(VS1), check(VS2), check(VS1, VS2)
    got: list[list[Any]] = []

    async def go() -> None:
        w = RoundWatch(asyncio.get_running_loop(), got.append)
        # VS3 has no check in this shard: reported at once; VS1 and VS2 wait
        w.begin([a, b, shared], [VS1, VS2, VS3])
        await asyncio.sleep(0.05)
        assert got == [[VS3]]
        a.has_run = shared.has_run = True
        await asyncio.sleep(0.3)
        assert got == [[VS3], [VS1]]
        b.has_run = True
        await asyncio.sleep(0.3)
        assert got == [[VS3], [VS1], [VS2]]
        assert w.pending == {} and w._handle is None  # nothing left: no more polls
        w.begin([a, b, shared], [VS1])  # a reload: kept checks have decided
        await asyncio.sleep(0.05)
        assert got[-1] == [VS1]
    asyncio.run(go())


def test_on_a_real_engine_a_failing_server_decides_after_its_retries() -> None:
    """TCP_CHECK against a closed loopback port, retry 2: the round is reported after
    the third refusal, not the first (the checks' own has_run/retry_it, either twin)."""
    from hafast.check.engine import Engine
    from hafast.config.loader import load_text

    cfg = load_text("""virtual_server 192.0.2.1 80 {
  protocol TCP
  lvs_sched wlc
  lvs_method DR
  announce {
    prefix 192.0.2.1/32
  }
  real_server 127.0.0.1 9 {
    TCP_CHECK {
      connect_timeout 0.5
      retry 2
      delay_before_retry 0.3
      delay_loop 5
      warmup 0
    }
  }
}""").config
    got: list[tuple[float, list[Any]]] = []

    async def go() -> float:
        loop = asyncio.get_running_loop()
        engine = Engine(cfg, loop, lambda ev: None)
        w = RoundWatch(loop, lambda keys: got.append((loop.time(), keys)))
        t0 = loop.time()
        engine.start()
        w.begin(engine.runner.checks, [cfg.virtual_servers[0].key])
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.05)
        engine.stop()
        return t0

    t0 = asyncio.run(go())
    assert [keys for _, keys in got] == [[cfg.virtual_servers[0].key]]
    assert got[0][0] - t0 >= 0.6  # two delay_before_retry waits at least
