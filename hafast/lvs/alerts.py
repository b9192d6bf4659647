"""Email alerts for a virtual server's quorum, keepalived's way (``ipwrapper.c``
do_vs_notifies: ``[ROUTER_ID] Virtualserver [10.0.0.1]:tcp:80 - DOWN`` with the body
``=> Lost quorum 3+1=2 <= 1 <=``: quorum, hysteresis, the threshold it crossed, the
live weight).

On for a virtual server when its ``smtp_alert`` is, else global
``smtp_alert_checker``, else global ``smtp_alert``, else off.  The parent's pools
(:class:`hafast.lvs.keeper.PoolKeeper`) look at those virtual servers' quorum before
and after each batch of real-server events and mail each change on the parent's
loop; with no virtual server on, nothing is looked at.

At start keepalived 2.2.7 mails every virtual server's quorum too (init_service_vs
calls update_quorum_state(init) with quorum_state_up still false): ``=> Starting
with quorum up 1+0=1 <= 2 <=``, or, with a sorry server, ``Starting with quorum
down`` (:meth:`QuorumAlerts.started`; seen in the IPVS VM's side-by-side test).

A reload mails as keepalived's does (clear_diff_services, then init_service_vs;
:meth:`QuorumAlerts.after_reload`): ``Realserver ... - DOWN`` / ``=> Removing <=``
for each live real server it takes away (alerts on as for its checkers: default on);
the old virtual server, without them, may lose its quorum (``Lost quorum``); the new
one starts from the quorum state from before the reload and is mailed with the start
wording when it lands elsewhere (so a reload that takes the last live server away
sends both ``Lost quorum`` and ``Starting with quorum down``, as keepalived 2.2.7 does
in the IPVS VM's side-by-side test); a virtual server the reload adds gets the start
mail.

Not sent (yet): the "=> Shutting down <=" mails of omega virtual servers and their
real servers at exit, and whatever keepalived mails for a virtual server a reload
removes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hafast.config import model as m
from hafast.config.labels import rs_label
from hafast.lib.smtp_alert import checker_alert, enabled, quorum_alert, quorum_body
from hafast.lib.smtp_client import Mailer, MailSettings


class QuorumAlerts:
    """Which virtual servers mail their quorum changes, and the mailer that sends."""

    def __init__(self, loop: asyncio.AbstractEventLoop, config: m.Config,
                 mailer: Mailer | None = None) -> None:
        self.mailer = mailer or Mailer(loop, MailSettings.of(config.global_defs))
        self.on: frozenset[Any] = frozenset()
        self.gd = config.global_defs
        self.configure(config)

    def configure(self, config: m.Config) -> None:
        gd = self.gd = config.global_defs
        self.mailer.configure(MailSettings.of(gd))
        self.on = frozenset(vs.key for vs in config.virtual_servers
                            if enabled(vs.smtp_alert, gd.smtp_alert_checker, gd.smtp_alert))

    def started(self, policy: Any) -> int:
        """The start mails (see the module); returns how many."""
        return sum(self._start_mail(st) for key in self.on
                   if (st := policy.vss.get(key)) is not None)

    def _start_mail(self, st: Any) -> int:
        if not (st.quorum_up or st.vs.sorry_server is not None):
            return 0
        vs = st.vs
        body = quorum_body(st.quorum_up, True, vs.quorum, vs.hysteresis,
                           vs.quorum + vs.hysteresis, st.live_weight())
        return int(self.mailer.send(quorum_alert(st.label, st.quorum_up, body)))

    def before_reload(self, policy: Any) -> dict[Any, tuple[bool, int, int, dict[Any, int]]]:
        """Each mailing virtual server's quorum state, quorum, hysteresis and live
        real servers' weights, before a reload."""
        return {k: (st.quorum_up, st.vs.quorum, st.vs.hysteresis,
                    {rk: r.weight for rk, r in st.rss.items() if r.alive})
                for k in self.on if (st := policy.vss.get(k)) is not None}

    def after_reload(self, policy: Any,
                     snap: dict[Any, tuple[bool, int, int, dict[Any, int]]]) -> int:
        """The reload's quorum mails (see the module); returns how many."""
        n = 0
        for key, (was_up, quorum, hyst, weights) in snap.items():
            st = policy.vss.get(key)
            if st is None or not was_up:
                continue
            # keepalived update_vs_notifies(old_vs): only a loss, old settings
            left = sum(w for rk, w in weights.items() if rk in st.rss)
            if not left or left < quorum - hyst:
                body = quorum_body(False, False, quorum, hyst, quorum - hyst, left)
                n += self.mailer.send(quorum_alert(st.label, False, body))
        for key in self.on:
            st = policy.vss.get(key)
            if st is None:
                continue
            old = snap.get(key)
            if old is None:
                n += self._start_mail(st)
                continue
            was_up = old[0]
            if st.quorum_up != was_up:
                vs = st.vs
                threshold = vs.quorum + (-1 if was_up else 1) * vs.hysteresis
                body = quorum_body(st.quorum_up, True, vs.quorum, vs.hysteresis, threshold,
                                   st.live_weight())
                n += self.mailer.send(quorum_alert(st.label, st.quorum_up, body))
        return n

    def before(self, policy: Any) -> dict[Any, bool] | None:
        """The quorum of every virtual server that mails, before a batch."""
        if not self.on:
            return None
        return {k: st.quorum_up for k in self.on if (st := policy.vss.get(k)) is not None}

    def after(self, policy: Any, before: dict[Any, bool] | None) -> int:
        """Mail each quorum that changed since :meth:`before`; returns how many."""
        if not before:
            return 0
        n = 0
        for key, was_up in before.items():
            st = policy.vss.get(key)
            if st is None or st.quorum_up == was_up:
                continue
            vs = st.vs
            # keepalived compares with quorum -/+ hysteresis as the state was
            threshold = vs.quorum + (-1 if was_up else 1) * vs.hysteresis
            body = quorum_body(st.quorum_up, False, vs.quorum, vs.hysteresis, threshold,
                               st.live_weight())
            n += self.mailer.send(quorum_alert(st.label, st.quorum_up, body))
        return n

    def alive_servers(self, policy: Any) -> dict[tuple[Any, Any], tuple[str, str]]:
        """Before a reload: each live real server whose alerts are on, with its
        labels (empty when email is off)."""
        if not self.mailer.settings.enabled:
            return {}
        gd = self.gd
        out = {}
        for vk, st in policy.vss.items():
            for rk, rst in st.rss.items():
                if rst.alive and enabled(rst.rs.smtp_alert, gd.smtp_alert_checker,
                                         gd.smtp_alert, default=True):
                    out[(vk, rk)] = (rs_label(st.vs, rst.rs, rst.dest_port), st.label)
        return out

    def removed(self, policy: Any, alive: dict[tuple[Any, Any], tuple[str, str]]) -> int:
        """After a reload: mail each of ``alive`` the new pools no longer have."""
        n = 0
        for (vk, rk), (rs_text, vs_text) in alive.items():
            st = policy.vss.get(vk)
            if st is not None and rk in st.rss:
                continue
            n += self.mailer.send(checker_alert(rs_text, vs_text, False, "=> Removing <="))
        return n

    def close(self) -> None:
        self.mailer.close()
