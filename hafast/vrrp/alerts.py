"""Email alerts for VRRP state changes, keepalived's way (``vrrp_notify.c``
vrrp_smtp_notifier / vrrp_sync_smtp_notifier).

:class:`AlertingNotifier` is the VRRP worker's :class:`~hafast.lib.notify.Notifier`
plus a :class:`~hafast.lib.smtp_client.Mailer`: every state change an instance or a
sync group reports (after the FIFO line and the scripts, as keepalived orders them)
also queues a mail when alerts are on for it:

* on: its own ``smtp_alert``, else global ``smtp_alert_vrrp``, else global
  ``smtp_alert``, else off (:func:`hafast.lib.smtp_alert.enabled`);
* one mail per state actually entered: a state equal to the last one mailed sends
  nothing (keepalived's ``last_email_state``, which starts at INIT, so the first
  BACKUP is mailed);
* ``no_email_faults``: FAULT is not mailed (and does not count as mailed, so the
  return to the state before it is not mailed either).

Queuing never waits: a dead or silent SMTP server cannot delay a transition.

Example::

    notifier = AlertingNotifier(loop, fifos, scripts, config=config)
    notifier.state_change("INSTANCE", "VI_1", "MASTER", 100, scripts)  # + the mail
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from hafast.config.model import Config
from hafast.lib.notify import Argv, Notifier, NotifyScripts
from hafast.lib.smtp_alert import enabled, group_alert, instance_alert
from hafast.lib.smtp_client import Mailer, MailSettings

_MAKERS = {"INSTANCE": instance_alert, "GROUP": group_alert}


class AlertingNotifier(Notifier):
    """Notify scripts and FIFOs, and keepalived's email alerts (see the module)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fifos: Sequence[str] = (),
                 fifo_scripts: Sequence[Argv | None] = (), *, config: Config,
                 mailer: Mailer | None = None) -> None:
        super().__init__(loop, fifos, fifo_scripts)
        self.mailer = mailer or Mailer(loop, MailSettings.of(config.global_defs))
        self._on: dict[tuple[str, str], bool] = {}
        self._mailed: dict[tuple[str, str], str] = {}
        self.no_email_faults = False
        self.configure(config)

    def configure(self, config: Config) -> None:
        """Who sends alerts, and where to (at start and on each reload).  What was
        mailed last is kept: a reload that leaves an instance where it was sends
        nothing again."""
        gd = config.global_defs
        self.mailer.configure(MailSettings.of(gd))
        self.no_email_faults = gd.no_email_faults
        on = {("INSTANCE", i.name): enabled(i.smtp_alert, gd.smtp_alert_vrrp, gd.smtp_alert)
              for i in config.vrrp_instances}
        on.update({("GROUP", g.name): enabled(g.smtp_alert, gd.smtp_alert_vrrp, gd.smtp_alert)
                   for g in config.sync_groups})
        self._on = on

    def state_change(self, kind: str, name: str, state: str, priority: int,
                     scripts: NotifyScripts) -> None:
        super().state_change(kind, name, state, priority, scripts)
        self.alert(kind, name, state)

    def alert(self, kind: str, name: str, state: str) -> bool:
        """Queue the mail for ``name`` entering ``state`` if keepalived would send one."""
        key = (kind, name)
        if not self._on.get(key) or self._mailed.get(key) == state:
            return False
        if self.no_email_faults and state == "FAULT":
            return False
        made = _MAKERS.get(kind)
        alert = made(name, state) if made is not None else None
        if alert is None:
            return False
        self._mailed[key] = state
        return self.mailer.send(alert)

    def counters(self) -> dict[str, Any]:
        return dict(self.mailer.counters)

    def close(self) -> None:
        super().close()
        self.mailer.close()
