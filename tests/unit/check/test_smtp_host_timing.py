"""SMTP_CHECK ``host {}`` blocks on the runner's schedule (manual clock): each host's
own connect_timeout is its attempt's deadline; retry and delay_before_retry, written
in a host, are the whole check's (keepalived 2.2.7 check_api.c / check_smtp.c)."""

from __future__ import annotations

import random
from typing import Any, ClassVar

from hafast.check.api import Done, ProbeKind
from hafast.check.engine import Engine
from hafast.check.runner import Runner
from hafast.config.loader import load_text
from hafast.lib.events import DOWN, ServerEvent
from tests.unit.check.fakeloop import FakeLoop

CONFIG = """
virtual_server 10.0.0.1 25 {
  lvs_sched rr
  lvs_method NAT
  protocol TCP
  delay_loop 30
  real_server 10.1.0.1 25 {
    SMTP_CHECK {
      warmup 0
      connect_timeout 5
      host {
        connect_ip 10.1.0.7
        connect_timeout 1
        retry 1
        delay_before_retry 0.5
      }
      host {
        connect_ip 10.1.0.8
        connect_timeout 10
      }
    }
  }
}
"""


class Hang(ProbeKind):
    """A server that accepts and never greets: every attempt runs to its deadline."""

    keyword = "SMTP_CHECK"
    log: ClassVar[list[tuple[str, str, float]]] = []

    def start(self, done: Done) -> Any:
        loop, address = self.loop, self.target.address
        Hang.log.append(("start", address, loop.time()))

        class Pending:
            def cancel(self) -> None:
                Hang.log.append(("deadline", address, loop.time()))

        return Pending()


def test_each_host_times_out_on_its_own_connect_timeout() -> None:
    res = load_text(CONFIG)
    assert not res.diagnostics, res.diagnostics
    loop, events = FakeLoop(), list[ServerEvent]()
    Hang.log = []
    eng = Engine(res.config, loop, events.append, kinds={"SMTP_CHECK": Hang},
                 runner=Runner(loop, None, rng=random.Random(3)))
    t0 = loop.time()
    eng.start()
    loop.advance(4.0)
    # 10.1.0.7: 1 s attempt, 0.5 s pause, 1 s retry (retry 1 from its host block) -> DOWN
    fast = [(what, round(at - t0, 2)) for what, a, at in Hang.log if a == "10.1.0.7"]
    assert fast[:4] == [("start", 0.0), ("deadline", 1.0), ("start", 1.5), ("deadline", 2.5)]
    assert [(e.real_server, e.state, round(e.at - t0, 2)) for e in events] == [
        (("10.1.0.1", 25), DOWN, 2.5)
    ]
    # 10.1.0.8: its one attempt, 10 s long, is still running
    slow = [(what, round(at - t0, 2)) for what, a, at in Hang.log if a == "10.1.0.8"]
    assert slow == [("start", 0.0)]
    loop.advance(7.0)
    slow = [(what, round(at - t0, 2)) for what, a, at in Hang.log if a == "10.1.0.8"]
    assert slow[:2] == [("start", 0.0), ("deadline", 10.0)]
    eng.stop()
