"""Email alerts for a virtual server's quorum, keepalived's way (``ipwrapper.c``
do_vs_notifies: ``[ROUTER_ID] Virtualserver [10.0.0.1]:tcp:80 - DOWN`` with the body
``=> Lost quorum 3+1=2 <= 1 <=``: quorum, hysteresis, the threshold it crossed, the
live weight).

On for a virtual server when its ``smtp_alert`` is, else global
``smtp_alert_checker``, else global ``smtp_alert``, else off.  The parent's pools
(:class:`hafast.lvs.keeper.PoolKeeper`) hand over the quorum transitions of each
batch of real-server events and each change is mailed on the parent's loop
(:meth:`QuorumAlerts.after_events`); with no virtual server on, nothing is looked at.

At start keepalived 2.2.7 mails every virtual server's quorum too (init_service_vs
calls update_quorum_state(init) with quorum_state_up still false): ``=> Starting
with quorum up 1+0=1 <= 2 <=``, or, with a sorry server, ``Starting with quorum
down`` (:meth:`QuorumAlerts.started`; seen in the IPVS VM's side-by-side test).

A reload mails as keepalived's does (clear_diff_services, then init_service_vs;
:meth:`QuorumAlerts.reloaded`): ``Realserver ... - DOWN`` / ``=> Removing <=`` for
each live real server it takes away (alerts on as for its checkers: default on);
the old virtual server, without them, may lose its quorum (``Lost quorum``); the new
one starts from the quorum state from before the reload and is mailed with the start
wording when it reports (so a reload that takes the last live server away sends both
``Lost quorum`` and ``Starting with quorum down``, as keepalived 2.2.7 does in the
IPVS VM's side-by-side test); a virtual server the reload adds gets the start mail.

Which of these happen is not decided here: the start and the reload mail the
transitions :class:`hafast.lvs.policy.PoolPolicy` computed for its notify scripts
and FIFO lines (:class:`~hafast.lvs.policy.RsMoved`,
:class:`~hafast.lvs.policy.QuorumMoved`), in the same order.

Not sent (yet): the "=> Shutting down <=" mails of omega virtual servers and their
real servers at exit, and the quorum loss of a virtual server a reload removes (its
real servers' "=> Removing <=" mails are sent).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from hafast.config import model as m
from hafast.lib.smtp_alert import checker_alert, enabled, quorum_alert, quorum_body
from hafast.lib.smtp_client import Mailer, MailSettings
from hafast.lvs.policy import Action, QuorumMoved, RsMoved, VsKey


class QuorumAlerts:
    """Which virtual servers mail their quorum changes, and the mailer that sends."""

    def __init__(self, loop: asyncio.AbstractEventLoop, config: m.Config,
                 mailer: Mailer | None = None) -> None:
        self.mailer = mailer or Mailer(loop, MailSettings.of(config.global_defs))
        self.on: frozenset[VsKey] = frozenset()
        self.gd = config.global_defs
        self.configure(config)

    def configure(self, config: m.Config) -> None:
        gd = self.gd = config.global_defs
        self.mailer.configure(MailSettings.of(gd))
        self.on = frozenset(vs.key for vs in config.virtual_servers
                            if enabled(vs.smtp_alert, gd.smtp_alert_checker, gd.smtp_alert))

    def started(self, actions: Iterable[Action]) -> int:
        """The start mails (see the module), from the start's ``actions``
        (:meth:`hafast.lvs.policy.PoolPolicy.start`); returns how many."""
        return sum(self._quorum_mail(t) for t in actions
                   if isinstance(t, QuorumMoved) and t.init and t.vs.key in self.on)

    def reloaded(self, config: m.Config, actions: Iterable[Action]) -> int:
        """Take ``config`` and send the reload's mails (see the module), from the
        reload's ``actions`` (:meth:`hafast.lvs.policy.PoolPolicy.reload`; any
        real-server event's among them are :meth:`after_events`'); returns how many."""
        # the removed servers and the old virtual servers mail as configured before
        old_on, old_gd, was_enabled = self.on, self.gd, self.mailer.settings.enabled
        self.configure(config)
        kept = {vs.key for vs in config.virtual_servers}
        n = 0
        for t in actions:
            if isinstance(t, RsMoved):
                if t.removed and was_enabled and enabled(
                        t.rs.smtp_alert, old_gd.smtp_alert_checker, old_gd.smtp_alert,
                        default=True):
                    n += self.mailer.send(checker_alert(t.rs_label, t.vs_label, False,
                                                        "=> Removing <="))
            elif isinstance(t, QuorumMoved) and (
                    (t.cleared and t.vs.key in old_on and t.vs.key in kept)
                    or (t.init and t.vs.key in self.on)):
                n += self._quorum_mail(t)
        return n

    def _quorum_mail(self, t: QuorumMoved) -> int:
        body = quorum_body(t.up, t.init, t.vs.quorum, t.vs.hysteresis, t.threshold, t.weight)
        return int(self.mailer.send(quorum_alert(t.label, t.up, body)))

    def after_events(self, actions: Iterable[Action]) -> int:
        """Mail the quorum changes among a batch of real-server events' ``actions``
        (:meth:`hafast.lvs.policy.PoolPolicy.on_event`); returns how many.  A
        virtual server whose quorum ends the batch where it began is not mailed;
        one that moved is mailed with its last transition's figures."""
        if not self.on:
            return 0
        began: dict[VsKey, bool] = {}
        last: dict[VsKey, QuorumMoved] = {}
        for t in actions:
            if isinstance(t, QuorumMoved) and t.vs.key in self.on:
                began.setdefault(t.vs.key, not t.up)
                last[t.vs.key] = t
        return sum(self._quorum_mail(t) for key, t in last.items() if t.up != began[key])

    def close(self) -> None:
        self.mailer.close()
