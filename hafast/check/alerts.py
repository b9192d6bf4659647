"""Email alerts for checkers, keepalived's way (``check/check_*.c``: one
``smtp_alert(SMTP_MSG_RS, ...)`` where each checker goes up or down).

:class:`AlertingRunner` is the check worker's :class:`~hafast.check.runner.Runner`
that, after a checker's transition has been applied to its real servers, queues
keepalived's mail on the worker's loop (:class:`~hafast.lib.smtp_client.Mailer`):

* one mail per (virtual server, real server) the checker feeds, when that real
  server's ``smtp_alert`` is on: its own, else global ``smtp_alert_checker``, else
  global ``smtp_alert``, else ON (keepalived 2.2.7 check_data.c keeps real servers'
  alerts on by default "to maintain backwards compatibility");
* with ``no_checker_emails``, only when the real server as a whole went up or down
  (a second checker failing on a server already down sends nothing);
* the subject says whether the real server is alive now, the body which checker
  moved (``=> TCP CHECK failed on service <=``); FILE_CHECK sends none.

MISC_CHECK mails its first result whatever it is (keepalived 2.2.7 check_misc.c
sends its mail wherever it calls update_svr_checker_state, and a checker that has
not run calls it either way): an alpha MISC_CHECK whose first run fails mails
``=> MISC CHECK failed on service <=`` (DOWN) though nothing changed, as keepalived
did in the IPVS VM (2026-12-06); the other kinds mail only a checker that was up
going down (``checker_was_up``), so their alpha first failure sends none.

What keepalived does and this does not: MISC_CHECK also mails a non-alpha
checker's first success (its "succeeded" on the first run; that success takes the
checks' compiled shortcut, which tells nobody); SMTP_CHECK's failure body carries
its error text (here the plain ``=> CHECK failed on service <=``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

from hafast.check.api import ProbeResult
from hafast.check.runner import Runner
from hafast.check.view import Source, pairs
from hafast.config import model as m
from hafast.config.labels import rs_key_label, vs_label
from hafast.lib.smtp_alert import checker_alert, checker_body, enabled
from hafast.lib.smtp_client import Mailer, MailSettings

log = logging.getLogger("hafast.alert")

# The kinds that mail an alpha checker's first failure (see the module docstring).
FIRST_RESULT_MAILS = frozenset({"MISC_CHECK"})


class CheckAlerts:
    """Who gets checker mails and what they say; the mailer of one check worker."""

    def __init__(self, loop: asyncio.AbstractEventLoop, config: Source,
                 mailer: Mailer | None = None) -> None:
        self.mailer = mailer or Mailer(loop, MailSettings.of(config.global_defs))
        # Per virtual server with some real server's alerts on: it, its label, and the
        # keys of its real servers whose alerts are off (usually none).  Per virtual
        # server, not per real server: a real server's label is made from its key
        # when a mail goes (issue 16: at 10,000 real servers a label pair per real
        # server was ~370 bytes of each check worker's memory per real server).
        self.labels: dict[Any, tuple[m.VirtualServer, str, frozenset[Any]]] = {}
        self.no_checker_emails = False
        self.configure(config)

    def configure(self, config: Source) -> None:
        gd = config.global_defs
        self.mailer.configure(MailSettings.of(gd))
        self.no_checker_emails = gd.no_checker_emails
        # per virtual server: it, and the keys of its real servers that want mails
        # and of those that do not
        seen: dict[Any, tuple[m.VirtualServer, set[Any], set[Any]]] = {}
        for vs, rs in pairs(config):
            entry = seen.get(vs.key)
            if entry is None:
                entry = seen[vs.key] = (vs, set(), set())
            wants = enabled(rs.smtp_alert, gd.smtp_alert_checker, gd.smtp_alert, default=True)
            (entry[1] if wants else entry[2]).add(rs.key)
        # a key listed twice mails when one of its entries wants it; the label needs
        # the virtual server's protocol and port, not its real servers, which the
        # worker frees once its checks are built
        self.labels = {key: (replace(vs, real_servers=()) if vs.real_servers else vs,
                             vs_label(vs), frozenset(off - on))
                       for key, (vs, on, off) in seen.items() if on}

    def checker_moved(self, keyword: str, up: bool, reason: str,
                      healths: list[tuple[Any, bool]]) -> int:
        """A ``keyword`` checker went ``up`` (or down, for ``reason``); ``healths`` are
        the real servers it feeds with whether each was alive before.  Returns how
        many mails were queued."""
        if not self.labels:
            return 0
        body = checker_body(keyword, up, reason)
        if body is None:
            return 0
        n = 0
        for h, was_alive in healths:
            entry = self.labels.get(h.virtual_server)
            if entry is None or h.real_server in entry[2] or (
                    self.no_checker_emails and was_alive == h.up):
                continue
            n += self.mailer.send(checker_alert(rs_key_label(entry[0], h.real_server),
                                                entry[1], h.up, body))
        return n

    def close(self) -> None:
        self.mailer.close()


class AlertingRunner(Runner):
    """A :class:`Runner` whose checker transitions also send keepalived's mails."""

    alerts: CheckAlerts | None = None

    def _transition(self, check: Any, was_up: bool, transition: bool | None,
                    result: ProbeResult) -> None:
        alerts = self.alerts
        if transition is None or alerts is None or not alerts.labels:
            super()._transition(check, was_up, transition, result)
            return
        before = [h.up for h in check.healths]
        super()._transition(check, was_up, transition, result)
        try:
            alerts.checker_moved(check.kind.keyword, transition, result.reason,
                                 list(zip(check.healths, before, strict=True)))
        except Exception:  # a mail must never stop a check's timer
            log.exception("%s: alert failed", check.name)

    def _first_down(self, check: Any, result: ProbeResult) -> None:
        super()._first_down(check, result)
        alerts = self.alerts
        keyword = check.kind.keyword
        if alerts is None or not alerts.labels or keyword not in FIRST_RESULT_MAILS:
            return
        try:
            # nothing changed: with no_checker_emails this mails nothing
            alerts.checker_moved(keyword, False, result.reason,
                                 [(h, h.up) for h in check.healths])
        except Exception:  # a mail must never stop a check's timer
            log.exception("%s: alert failed", check.name)
