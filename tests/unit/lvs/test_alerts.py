"""Quorum email alerts (hafast.lvs.alerts) through the parent's pools
(hafast.lvs.keeper.PoolKeeper) on an in-memory backend."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from hafast.config.loader import load_text
from hafast.lib.events import DOWN, UP, ServerEvent
from hafast.lib.smtp_alert import Alert
from hafast.lvs import keeper as keeper_module
from hafast.lvs.alerts import QuorumAlerts
from hafast.lvs.keeper import PoolKeeper
from hafast.lvs.memory import MemoryBackend


class FakeMailer:
    settings = SimpleNamespace(enabled=True)

    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def configure(self, settings: Any) -> None:
        pass

    def send(self, alert: Alert) -> bool:
        self.sent.append(alert)
        return True

    def close(self) -> None:
        pass


CONF = """global_defs {{
{globals_}
}}
virtual_server 10.0.0.1 80 {{
 protocol TCP
 quorum 3
 hysteresis 1
{vs_extra}
 real_server 10.1.0.1 80 {{
  weight 2
  TCP_CHECK {{ connect_timeout 1 }}
 }}
 real_server 10.1.0.2 80 {{
  weight 2
  TCP_CHECK {{ connect_timeout 1 }}
 }}
}}
"""


def run(monkeypatch: pytest.MonkeyPatch, globals_: str, vs_extra: str) -> list[Alert]:
    cfg = load_text(CONF.format(globals_=globals_, vs_extra=vs_extra)).config
    mailer = FakeMailer()
    monkeypatch.setattr(keeper_module, "QuorumAlerts",
                        lambda loop, config: QuorumAlerts(loop, config, mailer))  # type: ignore[arg-type]
    vs = cfg.virtual_servers[0].key

    async def go() -> list[Alert]:
        keeper = PoolKeeper(cfg, MemoryBackend(), keep=False)
        await keeper.open()
        await keeper.on_events([ServerEvent(vs, ("10.1.0.1", 80), DOWN, 2, "x", 1.0)])
        await keeper.on_events([ServerEvent(vs, ("10.1.0.2", 80), DOWN, 2, "x", 2.0)])
        await keeper.on_events([ServerEvent(vs, ("10.1.0.1", 80), UP, 2, "", 3.0)])
        await keeper.on_events([ServerEvent(vs, ("10.1.0.2", 80), UP, 2, "", 4.0)])
        await keeper.close()
        return mailer.sent

    return asyncio.run(go())


def test_quorum_lost_and_gained(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = run(monkeypatch, "", " smtp_alert")
    # start: 4 live, up; 2 < 3-1? no; 0: lost (threshold 3-1=2); 2 >= 3+1? no; 4: gained
    assert sent == [
        Alert("Virtualserver [10.0.0.1]:tcp:80 - UP",
              "=> Starting with quorum up 3+1=4 <= 4 <="),
        Alert("Virtualserver [10.0.0.1]:tcp:80 - DOWN", "=> Lost quorum 3+1=2 <= 0 <="),
        Alert("Virtualserver [10.0.0.1]:tcp:80 - UP", "=> Gained quorum 3+1=4 <= 4 <="),
    ]


@pytest.mark.parametrize(("globals_", "vs_extra", "mailed"), [
    ("", "", False),                            # a virtual server's: off by default
    (" smtp_alert_checker", "", True),
    (" smtp_alert", " smtp_alert off", False),
])
def test_who_sends(monkeypatch: pytest.MonkeyPatch, globals_: str, vs_extra: str,
                   mailed: bool) -> None:
    assert bool(run(monkeypatch, globals_, vs_extra)) is mailed


def test_reload_mails_removed_live_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """keepalived clear_service_rs: a live real server a reload takes away is mailed
    DOWN, '=> Removing <='."""
    cfg = load_text(CONF.format(globals_="", vs_extra="")).config
    text = CONF.format(globals_="", vs_extra="")
    cut = text.index(" real_server 10.1.0.2")
    new = load_text(text[:cut] + "}\n").config
    mailer = FakeMailer()
    monkeypatch.setattr(keeper_module, "QuorumAlerts",
                        lambda loop, config: QuorumAlerts(loop, config, mailer))  # type: ignore[arg-type]

    async def go() -> None:
        keeper = PoolKeeper(cfg, MemoryBackend(), keep=False)
        await keeper.open()
        await keeper.reload(new)
        await keeper.close()

    asyncio.run(go())
    assert mailer.sent == [Alert(
        "Realserver [10.1.0.2]:tcp:80 of virtual server [10.0.0.1]:tcp:80 - DOWN",
        "=> Removing <=")]


def test_reload_that_loses_the_quorum_mails_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """keepalived 2.2.7 (seen in the IPVS VM): the old virtual server loses its
    quorum, then the new one 'starts' with it down."""
    text = CONF.format(globals_="", vs_extra=" smtp_alert")
    cfg = load_text(text).config
    new = load_text(text[:text.index(" real_server 10.1.0.2")] + "}\n").config
    vs = cfg.virtual_servers[0].key
    mailer = FakeMailer()
    monkeypatch.setattr(keeper_module, "QuorumAlerts",
                        lambda loop, config: QuorumAlerts(loop, config, mailer))  # type: ignore[arg-type]

    async def go() -> None:
        keeper = PoolKeeper(cfg, MemoryBackend(), keep=False)
        await keeper.open()
        await keeper.on_events([ServerEvent(vs, ("10.1.0.1", 80), DOWN, 2, "x", 1.0)])
        await keeper.reload(new)  # 10.1.0.2 (the last live one) goes: 0 < 3-1
        await keeper.close()

    asyncio.run(go())
    assert [a.body for a in mailer.sent] == [
        "=> Starting with quorum up 3+1=4 <= 4 <=",
        "=> Removing <=",
        "=> Lost quorum 3+1=2 <= 0 <=",
        "=> Starting with quorum down 3+1=2 <= 0 <=",
    ]



TWO = (CONF.format(globals_="", vs_extra=" smtp_alert")
       + CONF.split("}}\n", 1)[1].format(vs_extra=" smtp_alert").replace("10.0.0.1", "10.0.0.2"))
RS2 = " real_server 10.1.0.2 80 {\n  weight 2\n  TCP_CHECK { connect_timeout 1 }\n }\n"


def reload_two(monkeypatch: pytest.MonkeyPatch, new_text: str, down: list[str]
               ) -> tuple[list[str], list[tuple[str, str]]]:
    """TWO's virtual servers (which share their real servers' checks), ``down``
    failed, then a reload to ``new_text``: its FIFO lines and its mails."""
    cfg = load_text(TWO).config
    vs1 = cfg.virtual_servers[0].key
    mailer = FakeMailer()
    monkeypatch.setattr(keeper_module, "QuorumAlerts",
                        lambda loop, config: QuorumAlerts(loop, config, mailer))  # type: ignore[arg-type]

    async def go() -> list[str]:
        keeper = PoolKeeper(cfg, MemoryBackend(), keep=False)
        await keeper.open()
        await keeper.on_events([ServerEvent(vs1, (a, 80), DOWN, 2, "x", 1.0) for a in down])
        mailer.sent.clear()
        with keeper.manager.recording() as done:
            await keeper.reload(load_text(new_text).config)
        lines = [getattr(a, "line", "") for a in done]
        await keeper.close()
        return [x for x in lines if x]

    lines = asyncio.run(go())
    return lines, [(a.subject, a.body) for a in mailer.sent]


def test_reload_mails_follow_the_notify_transitions(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reload's mails are the policy's notify transitions, in the FIFO's order:
    per virtual server its removed live server, then the old one's quorum loss
    (old settings); then the new ones, in the configuration's order."""
    lines, mails = reload_two(monkeypatch, TWO.replace(RS2, ""), ["10.1.0.1"])
    assert lines == [
        "RS [10.1.0.2]:tcp:80 [10.0.0.1]:tcp:80 DOWN",
        "VS [10.0.0.1]:tcp:80 DOWN",
        "RS [10.1.0.2]:tcp:80 [10.0.0.2]:tcp:80 DOWN",
        "VS [10.0.0.2]:tcp:80 DOWN",
        "VS [10.0.0.1]:tcp:80 DOWN",
        "VS [10.0.0.2]:tcp:80 DOWN",
    ]
    removing = "Realserver [10.1.0.2]:tcp:80 of virtual server [10.0.0.{}]:tcp:80 - DOWN"
    assert mails == [
        (removing.format(1), "=> Removing <="),
        ("Virtualserver [10.0.0.1]:tcp:80 - DOWN", "=> Lost quorum 3+1=2 <= 0 <="),
        (removing.format(2), "=> Removing <="),
        ("Virtualserver [10.0.0.2]:tcp:80 - DOWN", "=> Lost quorum 3+1=2 <= 0 <="),
        ("Virtualserver [10.0.0.1]:tcp:80 - DOWN", "=> Starting with quorum down 3+1=2 <= 0 <="),
        ("Virtualserver [10.0.0.2]:tcp:80 - DOWN", "=> Starting with quorum down 3+1=2 <= 0 <="),
    ]


def test_reload_new_sorry_server_on_a_down_quorum(monkeypatch: pytest.MonkeyPatch) -> None:
    """keepalived init_service_vs: a sorry server new to a quorum that was down
    reports it down again, as the FIFO line says; the other virtual server, its
    dead server taken away, says nothing."""
    head, tail = TWO.rsplit(RS2, 1)  # the second virtual server's copy goes
    new = (head + tail).replace(" smtp_alert\n", " smtp_alert\n sorry_server 10.9.0.1 80\n", 1)
    lines, mails = reload_two(monkeypatch, new, ["10.1.0.1", "10.1.0.2"])
    assert lines == ["VS [10.0.0.1]:tcp:80 DOWN"]
    assert mails == [
        ("Virtualserver [10.0.0.1]:tcp:80 - DOWN", "=> Starting with quorum down 3+1=4 <= 0 <="),
    ]
