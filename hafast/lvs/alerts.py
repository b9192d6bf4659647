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

A reload mails the quorum changes it makes, and, as keepalived's clear_service_rs
does, ``Realserver ... - DOWN`` / ``=> Removing <=`` for each live real server it
takes away (alerts on as for its checkers: default on).

Not sent (yet): the "=> Shutting down <=" mails of omega virtual servers and their
real servers at exit, and the start mails of virtual servers a reload adds.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hafast.config import model as m
from hafast.lib.smtp_alert import checker_alert, enabled, quorum_alert, quorum_body
from hafast.lib.smtp_client import Mailer, MailSettings
from hafast.lvs.policy import rs_label


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
        n = 0
        for key in self.on:
            st = policy.vss.get(key)
            if st is None or not (st.quorum_up or st.vs.sorry_server is not None):
                continue
            vs = st.vs
            body = quorum_body(st.quorum_up, True, vs.quorum, vs.hysteresis,
                               vs.quorum + vs.hysteresis, st.live_weight())
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
