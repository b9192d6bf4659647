"""Checker email alerts (hafast.check.alerts) on a manual clock: which transitions
mail, who is on by default, no_checker_emails, the words."""

from __future__ import annotations

import random
from typing import Any

import pytest

from hafast.check.alerts import AlertingRunner, CheckAlerts
from hafast.check.api import Target
from hafast.check.runner import ServerHealth
from hafast.config.loader import load_text
from hafast.lib.smtp_alert import Alert
from tests.unit.check.fakeloop import FakeLoop
from tests.unit.check.test_runner import Scripted, spec


class Tcp(Scripted):
    keyword = "TCP_CHECK"


class FakeMailer:
    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def configure(self, settings: Any) -> None:
        pass

    def send(self, alert: Alert) -> bool:
        self.sent.append(alert)
        return True

    def close(self) -> None:
        pass


def lab(globals_: str = "", rs_extra: str = "") -> tuple[Any, Any, FakeLoop, list[Alert]]:
    text = (f"global_defs {{\n{globals_}\n}}\n"
            "virtual_server 10.0.0.1 80 {\n protocol TCP\n real_server 10.1.0.1 8080 {\n"
            f"{rs_extra}\n }}\n}}\n")
    cfg = load_text(text).config
    loop = FakeLoop()
    mailer = FakeMailer()
    alerts = CheckAlerts(loop, cfg, mailer=mailer)  # type: ignore[arg-type]
    runner = AlertingRunner(loop, None, rng=random.Random(1))
    runner.alerts = alerts
    vs = cfg.virtual_servers[0]
    return runner, ServerHealth(vs.key, vs.real_servers[0].key, 1), loop, mailer.sent


def add(runner: Any, loop: FakeLoop, health: ServerHealth, state: dict[str, str]) -> None:
    kind = Tcp(spec(retry=0), Target("10.1.0.1", 8080), loop)
    kind.script = lambda n: state["now"]
    runner.add(kind, [health])


def test_down_and_up_mails_keepalived_words() -> None:
    runner, health, loop, sent = lab()  # real servers: on by default
    state = {"now": "F"}
    add(runner, loop, health, state)
    runner.start()
    loop.advance(0.1)
    state["now"] = "S"
    loop.advance(1.0)
    assert sent == [
        Alert("Realserver [10.1.0.1]:tcp:8080 of virtual server [10.0.0.1]:tcp:80 - DOWN",
              "=> TCP CHECK failed on service <="),
        Alert("Realserver [10.1.0.1]:tcp:8080 of virtual server [10.0.0.1]:tcp:80 - UP",
              "=> TCP CHECK succeed on service <="),
    ]


@pytest.mark.parametrize(("globals_", "rs_extra", "mailed"), [
    ("", "", True),
    ("", " smtp_alert off", False),
    (" smtp_alert off", "", False),
    (" smtp_alert off\n smtp_alert_checker", "", True),
    (" smtp_alert_vrrp off", "", True),     # the VRRP side's switch only
])
def test_who_sends(globals_: str, rs_extra: str, mailed: bool) -> None:
    runner, health, loop, sent = lab(globals_, rs_extra)
    add(runner, loop, health, {"now": "F"})
    runner.start()
    loop.advance(0.1)
    assert bool(sent) is mailed


@pytest.mark.parametrize("quiet", [False, True])
def test_second_checker_and_no_checker_emails(quiet: bool) -> None:
    runner, health, loop, sent = lab(" no_checker_emails" if quiet else "")
    a, b = {"now": "S"}, {"now": "S"}
    add(runner, loop, health, a)
    add(runner, loop, health, b)
    runner.start()
    loop.advance(0.1)
    a["now"] = "F"
    loop.advance(1.0)   # the server goes DOWN
    b["now"] = "F"
    loop.advance(1.0)   # a second checker fails: the server was down already
    a["now"] = "S"
    loop.advance(1.0)   # one recovers: still DOWN
    subjects = [x.subject.rsplit(" - ", 1)[1] for x in sent]
    assert subjects == (["DOWN"] if quiet else ["DOWN", "DOWN", "DOWN"])
