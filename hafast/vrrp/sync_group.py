"""vrrp_sync_group: member instances move together.

keepalived (vrrp_sync.c) keeps a group's members in one state:

* one member goes FAULT -> the others go FAULT (reason ``sync:<group>``) until it
  leaves FAULT again;
* one member becomes MASTER -> the others in BACKUP take over at once (their
  Master_Down_Timer is fired early);
* one member falls from MASTER to BACKUP -> the others still MASTER step down:
  they pass through a short sync fault, which sends priority 0 so the peer
  group's members take over at once, then return to BACKUP.

Group notify scripts and FIFO lines (``GROUP "G" MASTER 0``) are reported when
every member has reached the same state.

At start, a member waiting for a tracker's first report (``Instance.hold``) holds
the others too (reason ``sync-init:<group>``; keepalived's ``num_member_init``):
all wait in a silent FAULT and the group reports nothing.  A first failure is
announced by that member and the group (FAULT) only, the others already being in
FAULT; when none is left waiting, the others leave theirs (BACKUP, then the group).

Example::

    group = SyncGroup(spec, members=[vi_1, vi_2], notifier=notifier)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from hafast.config.model import SyncGroup as SyncGroupSpec
from hafast.lib.notify import Notifier, notify_scripts
from hafast.vrrp import fsm
from hafast.vrrp.fsm import State
from hafast.vrrp.instance import STATE_WORDS, Instance

log = logging.getLogger("hafast.vrrp.sync")


class SyncGroup:
    def __init__(self, spec: SyncGroupSpec, members: Sequence[Instance],
                 notifier: Notifier | None = None,
                 script_user: Sequence[str] | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.members = list(members)
        self.notifier = notifier
        # keepalived has no notify_master_rx_lower_pri for groups; the model has none.
        self.scripts = notify_scripts(spec, script_user)
        self.reason = f"sync:{spec.name}"
        self.waiting = f"sync-init:{spec.name}"
        self.state: State | None = None
        self._syncing = False
        # Set when the whole worker stops: a member's STOP moves no other member
        # (keepalived's notify_shutdown says STOP for each, then for each group).
        self.stopping = False
        for m in self.members:
            m.listeners.append(self._on_member)
        for m in self.members:
            if any(self._own_pending(o) for o in self.members if o is not m):
                m.hold(self.waiting)

    def _own_pending(self, inst: Instance) -> bool:
        return bool(inst.machine.state.pending - {self.waiting})

    def _release(self) -> None:
        if not any(self._own_pending(m) for m in self.members):
            for m in self.members:
                m.clear_fault(self.waiting)

    def _on_member(self, inst: Instance, before: State, after: State) -> None:
        if not self._syncing:
            self._syncing = True
            try:
                self._follow(inst, before, after)
                self._release()
            finally:
                self._syncing = False
        self._report()

    def _follow(self, inst: Instance, before: State, after: State) -> None:
        if self.stopping:
            return
        others = [m for m in self.members if m is not inst]
        faults = inst.machine.state.faults
        if after is State.FAULT and not faults:
            return  # waiting for a tracker's first report
        if after is State.FAULT and self.reason not in faults:
            # From a wait (before is FAULT too) the others, waiting in FAULT as
            # well, take the fault silently: keepalived's vrrp_sync_fault skips them.
            for m in others:
                m.raise_fault(self.reason)
        elif before is State.FAULT and self.reason not in inst.machine.state.faults:
            for m in others:
                m.clear_fault(self.reason)
        elif after is State.MASTER:
            for m in others:
                if m.state is State.BACKUP:
                    m.feed(fsm.MasterDownTimerFired(m.timers.now_us()))
        elif before is State.MASTER and after is State.BACKUP:
            for m in others:
                if m.state is State.MASTER:
                    m.raise_fault(self.reason)
                    m.clear_fault(self.reason)

    def step_down(self, inst: Instance, what: str) -> None:
        """``inst`` lost a VIP, virtual route or rule (:class:`hafast.vrrp.fsm.VipDeleted`).

        keepalived 2.2.7's set_vrrp_backup moves each other MASTER member the same
        way (priority 0, BACKUP, Skew_Time timer: no sync FAULT on the way) and sets
        the group's state to BACKUP without a GROUP notification; they all come back
        together once the first is MASTER again."""
        self.state = State.BACKUP
        self._syncing = True
        try:
            for m in [inst] + [m for m in self.members if m is not inst]:
                if m.state is State.MASTER:
                    m.feed(fsm.VipDeleted(m.timers.now_us(), what))
        finally:
            self._syncing = False

    def _report(self) -> None:
        if any(m.state is State.FAULT and not m.machine.state.faults for m in self.members):
            return  # keepalived: the group is in INIT while a member waits
        states = {m.state for m in self.members}
        if len(states) != 1:
            return
        (state,) = states
        if state is self.state:
            return
        self.state = state
        log.info("VRRP_Group(%s) entering %s state", self.name, STATE_WORDS.get(state))
        if self.notifier is not None:
            self.notifier.state_change("GROUP", self.name, STATE_WORDS.get(state, state.value),
                                       0, self.scripts)
