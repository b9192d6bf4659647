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


class Misc(Scripted):
    keyword = "MISC_CHECK"


@pytest.mark.parametrize(("kind", "quiet", "mailed"), [
    (Misc, False, ["=> MISC CHECK failed on service <="]),
    (Misc, True, []),  # no_checker_emails: the real server did not change
    (Tcp, False, []),  # keepalived's TCP_CHECK mails only a checker that was up
])
def test_an_alpha_checkers_first_failure_mails_for_misc_check_only(
        kind: type[Scripted], quiet: bool, mailed: list[str]) -> None:
    # keepalived 2.2.7 in the IPVS VM: an alpha MISC_CHECK whose first run fails
    # mails "... - DOWN" / "=> MISC CHECK failed on service <="; an alpha TCP_CHECK
    # that fails sends nothing
    runner, health, loop, sent = lab(" no_checker_emails" if quiet else "")
    probe = kind(spec(alpha=True, retry=0), Target("10.1.0.1", 8080), loop)
    probe.script = lambda n: "F"
    runner.add(probe, [health])
    runner.start()
    loop.advance(1.2)  # three attempts: only the first one mails
    assert [x.body for x in sent] == mailed
    assert all(x.subject.endswith(" - DOWN") for x in sent)


def test_check_side_mails_a_real_smtp_server() -> None:
    """The check worker's side on a real loop: TCP_CHECKs against 127.0.0.1, the mails
    to aiosmtpd on the same loop."""
    import asyncio
    import socket
    from email import message_from_bytes

    pytest.importorskip("aiosmtpd")
    from aiosmtpd.smtp import SMTP

    from hafast.check.side import CheckSide
    from hafast.lib.eventloop import new_loop

    got: list[Any] = []

    class Keep:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            got.append(envelope)
            return "250 OK"

    live = socket.socket()
    live.bind(("127.0.0.1", 0))
    live.listen(8)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    port = live.getsockname()[1]
    loop = new_loop()
    try:
        srv = loop.run_until_complete(loop.create_server(lambda: SMTP(Keep()), "127.0.0.1", 0))
        smtp_port = srv.sockets[0].getsockname()[1]
        check = "TCP_CHECK {\n connect_timeout 0.2\n retry 0\n delay_loop 0.1\n warmup 0\n"
        cfg = load_text(f"""global_defs {{
 router_id lb1
 notification_email {{
  ops@example.com
 }}
 notification_email_from lb1@example.com
 smtp_server 127.0.0.1 {smtp_port}
}}
virtual_server 10.0.0.1 80 {{
 protocol TCP
 real_server 127.0.0.1 {port} {{
  {check} alpha
  }}
 }}
 real_server 127.0.0.1 {dead} {{
  {check} }}
 }}
}}
""").config
        side = CheckSide(loop, 0, 1, lambda batch: None)
        side.start(cfg, {})
        loop.run_until_complete(asyncio.sleep(0.5))
        loop.run_until_complete(side.alerts.mailer.drain(5))
        status = side.status()
        side.stop()
        srv.close()
        loop.run_until_complete(asyncio.sleep(0))  # the mailer's task sees its cancel
    finally:
        live.close()
        loop.close()
    assert status["alerts"]["sent"] == 2
    mails = sorted((m["Subject"], str(m.get_payload()).strip())
                   for m in (message_from_bytes(e.original_content) for e in got))
    assert mails == sorted([
        (f"[lb1] Realserver [127.0.0.1]:tcp:{port} of virtual server [10.0.0.1]:tcp:80 - UP",
         "=> TCP CHECK succeed on service <="),
        (f"[lb1] Realserver [127.0.0.1]:tcp:{dead} of virtual server [10.0.0.1]:tcp:80 - DOWN",
         "=> TCP CHECK failed on service <="),
    ])


def test_alerts_per_real_server_in_one_virtual_server() -> None:
    # Kept per virtual server (issue 16): a real server whose alerts are off stays
    # silent beside those that mail, each labelled by its own key.
    cfg = load_text(
        "virtual_server 10.0.0.1 80 {\n protocol TCP\n"
        " real_server 10.1.0.1 8080 {\n smtp_alert off\n }\n"
        " real_server 10.1.0.2 {\n }\n"
        " real_server 10.1.0.3 8081 {\n }\n}\n").config
    loop = FakeLoop()
    mailer = FakeMailer()
    alerts = CheckAlerts(loop, cfg, mailer=mailer)  # type: ignore[arg-type]
    vs = cfg.virtual_servers[0]
    healths = [ServerHealth(vs.key, rs.key, 1) for rs in vs.real_servers[:3]]
    for h in healths:
        h.up = False
    assert alerts.checker_moved("TCP_CHECK", False, "timeout",
                                [(h, True) for h in healths]) == 2
    assert [a.subject for a in mailer.sent] == [
        "Realserver [10.1.0.2]:tcp:80 of virtual server [10.0.0.1]:tcp:80 - DOWN",
        "Realserver [10.1.0.3]:tcp:8081 of virtual server [10.0.0.1]:tcp:80 - DOWN"]
