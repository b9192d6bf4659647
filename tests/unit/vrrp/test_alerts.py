"""VRRP email alerts (hafast.vrrp.alerts): who sends, when, and keepalived's rules
(smtp_alert inheritance, last_email_state, no_email_faults)."""

from __future__ import annotations

from typing import Any

import pytest

from hafast.config.loader import load_text
from hafast.lib.eventloop import new_loop
from hafast.lib.notify import NotifyScripts
from hafast.lib.smtp_alert import Alert
from hafast.vrrp.alerts import AlertingNotifier


class FakeMailer:
    def __init__(self) -> None:
        self.sent: list[Alert] = []
        self.settings: Any = None
        self.counters: dict[str, int] = {}

    def configure(self, settings: Any) -> None:
        self.settings = settings

    def send(self, alert: Alert) -> bool:
        self.sent.append(alert)
        return True

    def close(self) -> None:
        pass


def notifier(globals_: str, inst: str = "", group: str = "") -> tuple[AlertingNotifier,
                                                                         FakeMailer]:
    text = (f"global_defs {{\n notification_email {{\n ops@example.com\n }}\n"
            f" smtp_server 127.0.0.1\n{globals_}\n}}\n"
            f"vrrp_instance A {{\n interface lo\n virtual_router_id 1\n{inst}\n}}\n"
            f"vrrp_instance B {{\n interface lo\n virtual_router_id 2\n}}\n"
            f"vrrp_sync_group G {{\n group {{\n A\n B\n }}\n{group}\n}}\n")
    cfg = load_text(text).config
    mailer = FakeMailer()
    loop = new_loop()
    n = AlertingNotifier(loop, config=cfg, mailer=mailer)  # type: ignore[arg-type]
    loop.close()
    return n, mailer


def states(n: AlertingNotifier, kind: str, name: str, *words: str) -> None:
    for w in words:
        n.state_change(kind, name, w, 100, NotifyScripts())


@pytest.mark.parametrize(("globals_", "inst", "mailed"), [
    ("", "", False),                                        # keepalived: off by default
    ("", " smtp_alert", True),
    (" smtp_alert", "", True),
    (" smtp_alert", " smtp_alert off", False),              # its own wins
    (" smtp_alert\n smtp_alert_vrrp off", "", False),       # _vrrp before smtp_alert
    (" smtp_alert off\n smtp_alert_vrrp", "", True),
    (" smtp_alert_checker", "", False),                     # the checkers' only
])
def test_who_sends(globals_: str, inst: str, mailed: bool) -> None:
    n, mailer = notifier(globals_, inst)
    states(n, "INSTANCE", "A", "BACKUP")
    assert bool(mailer.sent) is mailed


def test_one_mail_per_state_and_words() -> None:
    n, mailer = notifier(" smtp_alert")
    states(n, "INSTANCE", "A", "BACKUP", "MASTER", "MASTER", "BACKUP")
    states(n, "GROUP", "G", "MASTER")
    assert [a.subject for a in mailer.sent] == [
        "VRRP Instance A - Entering BACKUP state",
        "VRRP Instance A - Entering MASTER state",
        "VRRP Instance A - Entering BACKUP state",
        "VRRP Group G - Entering MASTER state",
    ]
    assert mailer.sent[-1].body == "=> All VRRP group instances are now in MASTER state <="
    assert mailer.settings.server == ("127.0.0.1", None)


def test_no_email_faults() -> None:
    n, mailer = notifier(" smtp_alert\n no_email_faults")
    states(n, "INSTANCE", "A", "BACKUP", "FAULT", "BACKUP", "MASTER")
    # FAULT is not mailed, nor the BACKUP after it (still the last state mailed)
    assert [a.subject.split(" - ")[1] for a in mailer.sent] == [
        "Entering BACKUP state", "Entering MASTER state"]


def test_group_has_its_own_switch() -> None:
    n, mailer = notifier("", "", " smtp_alert")
    states(n, "INSTANCE", "A", "MASTER")
    states(n, "GROUP", "G", "MASTER")
    assert [a.subject for a in mailer.sent] == ["VRRP Group G - Entering MASTER state"]
