"""The VRRP state machine, pure: ``step(params, state, event) -> (state, actions)``.

No sockets, no event loop, no clock: time arrives inside every event as integer
microseconds, and timers leave as :class:`StartTimer` / :class:`CancelTimer`
actions that the shell (``vrrp/instance.py``) carries out in order.  A
:class:`StartTimer` replaces any pending timer of the same kind.

States and transitions follow RFC 3768 §6.4 (VRRPv2) and RFC 5798 / RFC 9568
§6.4 (VRRPv3), with keepalived's behaviour where it differs (each divergence is
marked ``keepalived:`` below):

* a master that hears a lower priority sends an advert at once ("forcing a new
  election") unless ``lower_prio_no_advert`` (forced by strict mode);
  ``higher_prio_send_advert`` sends one before stepping down;
* ``state MASTER`` starts as backup unless priority 255; it only shortens the
  first Master_Down_Timer to one interval plus the minimum skew;
* the owner with ``state BACKUP`` (not strict) starts as backup too and waits a
  whole Master_Down_Interval, where RFC 5798 §6.4.1 makes priority 255 master;
* ``preempt_delay``: lower-priority adverts keep resetting the Master_Down_Timer
  until the delay (from startup, or from the first lower advert after the delay
  was cleared) has run out;
* two address owners (255 and 255) both drop to 254 (RFC 9568 erratum 8298);
* ``owner_ignore_adverts`` (forced by strict mode) restores RFC 5798 §7.1's
  "owner discards adverts";
* Fault (tracked interface/script/file down) is keepalived's fourth state;
  a tracker that has not reported yet (:class:`FaultPending`) holds the start
  in a Fault nobody is told about, and its first report is what is announced;
  leaving a Fault goes to Backup, the owner too, unless it leaves that silent
  hold of the start (keepalived's wantstate);
* ``down_timer_adverts`` replaces the 3 in Master_Down_Interval;
* ``timer_expired_backup`` (2.3, with ``nopreempt``): a master that finds its last
  advert older than the quickest takeover by the others goes Backup first;
* ``vrrp_startup_delay``: until the delay ends (:attr:`Startup.delayed_until_us`)
  an instance is Backup (the owner too, silently) and hears adverts, but every
  Master_Down_Timer it arms counts from the end of the delay.

Handlers are kept in one table per state (FRR vrrpd's shape); an event a state
has no handler for is ignored and leaves the state untouched.

Example::

    >>> p = VrrpParams(priority=100, src_addr=0x0A000001)
    >>> s, actions = step(p, initial_state(p), Startup(now_us=0))
    >>> s.state, actions[0].at_us
    (<State.BACKUP: 'BACKUP'>, 3609375)
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeAlias

from hafast.vrrp.params import VrrpParams, address_key
from hafast.vrrp.timers import (
    PRIORITY_OWNER,
    PRIORITY_STOP,
    VRRP_V3,
    centiseconds_to_us,
    master_down_interval_us,
    skew_time_min_us,
    skew_time_us,
)


class State(enum.Enum):
    """RFC 5798 §6.4 states plus keepalived's Fault."""

    INITIALIZE = "INIT"  # RFC 5798 §6.4.1
    BACKUP = "BACKUP"  # RFC 5798 §6.4.2
    MASTER = "MASTER"  # RFC 5798 §6.4.3 (RFC 9568 "Active")
    FAULT = "FAULT"  # keepalived: a tracked object is down


class TimerKind(enum.Enum):
    ADVER = "adver"  # RFC 5798 §6.2 Adver_Timer
    MASTER_DOWN = "master_down"  # RFC 5798 §6.2 Master_Down_Timer
    GARP_DELAY = "garp_delay"  # keepalived garp_master_delay: second GARP burst
    GARP_REFRESH = "garp_refresh"  # keepalived garp_master_refresh
    GARP_LOWER_PRIO = "garp_lower_prio"  # keepalived garp_lower_prio_delay


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Startup:
    """RFC 5798 §6.4.1: the instance is enabled.

    ``delayed_until_us``: keepalived's ``vrrp_startup_delay`` end (its
    ``vrrp_delayed_start_time``), one instant for the whole daemon; 0 for none.
    """

    now_us: int
    delayed_until_us: int = 0


@dataclass(frozen=True, slots=True)
class Shutdown:
    """RFC 5798 §6.4.2/§6.4.3: the instance is disabled (keepalived: STOP)."""

    now_us: int


@dataclass(frozen=True, slots=True)
class MasterDownTimerFired:
    """``at_us``, when given, must match the armed deadline or the event is stale."""

    now_us: int
    at_us: int | None = None


@dataclass(frozen=True, slots=True)
class AdverTimerFired:
    now_us: int
    at_us: int | None = None


@dataclass(frozen=True, slots=True)
class GarpTimerFired:
    now_us: int
    kind: TimerKind = TimerKind.GARP_DELAY
    at_us: int | None = None


@dataclass(frozen=True, slots=True)
class AdvertReceived:
    """A validated ADVERTISEMENT (the codec already applied RFC 5798 §7.1).

    ``max_adver_int_cs`` is the v3 Max Adver Int; v2 ignores it (a v2 interval
    mismatch is dropped by the codec, RFC 3768 §7.1).  ``src_addr`` is the IP
    source (primary IPv4 / IPv6 link-local) as an int or packed bytes.
    """

    now_us: int
    priority: int
    src_addr: int | bytes
    max_adver_int_cs: int = 0


@dataclass(frozen=True, slots=True)
class PriorityChanged:
    """Tracker weights changed: ``weight`` is the new sum added to the base priority."""

    now_us: int
    weight: int


@dataclass(frozen=True, slots=True)
class FaultRaised:
    """A tracked interface/script/file went down; ``reason`` names it."""

    now_us: int
    reason: str


@dataclass(frozen=True, slots=True)
class FaultCleared:
    now_us: int
    reason: str


@dataclass(frozen=True, slots=True)
class FaultPending:
    """Before Startup: a tracker that can fault the instance (weight 0) has not
    reported yet; ``reason`` names it, and its first report is a FaultRaised or a
    FaultCleared of the same name.

    keepalived (vrrp_track.c initialise_track_script_state, vrrp_scheduler.c
    vrrp_init_state): a vrrp_script that has not run yet counts in
    ``num_script_init``; the instance starts in FAULT without notifying it, and
    only the script's first result is announced (FAULT, or BACKUP on leaving).
    """

    now_us: int
    reason: str


@dataclass(frozen=True, slots=True)
class VipDeleted:
    """Someone else deleted one of a master's VIPs, virtual routes or virtual rules
    (not written ``no_track``); ``what`` names it.

    keepalived 2.2.7 (keepalived_netlink.c netlink_if_address_filter /
    netlink_route_filter / netlink_rule_filter -> set_vrrp_backup): the master
    sends priority 0, removes its rules, routes and VIPs, goes BACKUP and arms its
    Master_Down_Timer for Skew_Time only, so that, unopposed, it is MASTER again
    (everything added back) after Skew_Time.  No RFC event: the election reruns.
    """

    now_us: int
    what: str


Event: TypeAlias = (
    Startup
    | Shutdown
    | MasterDownTimerFired
    | AdverTimerFired
    | GarpTimerFired
    | AdvertReceived
    | PriorityChanged
    | FaultRaised
    | FaultCleared
    | FaultPending
    | VipDeleted
)


# ---------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class SendAdvert:
    """Send one ADVERTISEMENT with this priority (0 = relinquishing, RFC 5798 §6.4.3)."""

    priority: int


@dataclass(frozen=True, slots=True)
class SendGratuitous:
    """Send ``repeat`` gratuitous ARPs (v4) / unsolicited NAs (v6) per VIP (§6.4.1)."""

    repeat: int


@dataclass(frozen=True, slots=True)
class AddVips:
    """Install the VIPs; ``accept`` False asks the VIP layer to drop traffic to them."""

    accept: bool


@dataclass(frozen=True, slots=True)
class RemoveVips:
    pass


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Arm (or re-arm, replacing the pending one) the ``kind`` timer for ``at_us``."""

    kind: TimerKind
    at_us: int


@dataclass(frozen=True, slots=True)
class CancelTimer:
    kind: TimerKind


@dataclass(frozen=True, slots=True)
class Notify:
    """State change for notify scripts/FIFO; ``INITIALIZE`` is keepalived's STOP."""

    state: State
    priority: int


@dataclass(frozen=True, slots=True)
class NotifyPriority:
    """keepalived notify_priority_changes: the effective priority moved."""

    priority: int


@dataclass(frozen=True, slots=True)
class NotifyMasterRxLowerPri:
    """keepalived notify_master_rx_lower_pri: a master heard a lower priority."""

    priority: int
    src_addr: int


@dataclass(frozen=True, slots=True)
class Warn:
    """Something the operator should hear about; ``reason`` is a stable name."""

    reason: str


Action: TypeAlias = (
    SendAdvert
    | SendGratuitous
    | AddVips
    | RemoveVips
    | StartTimer
    | CancelTimer
    | Notify
    | NotifyPriority
    | NotifyMasterRxLowerPri
    | Warn
)


# ---------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class VrrpState:
    """Everything the FSM remembers between events (immutable; ``step`` returns a new one)."""

    state: State
    base_priority: int
    priority: int  # effective: base + tracker weight, clamped (owner never moves)
    master_adver_int_us: int  # RFC 5798 §6.1 Master_Adver_Interval
    weight: int = 0
    master_down_at: int | None = None
    adver_at: int | None = None
    garp_refresh_at: int | None = None
    # keepalived preempt_time: None = "not running; start at the next lower advert".
    preempt_until: int | None = None
    faults: frozenset[str] = field(default_factory=frozenset)
    # FaultPending reasons not reported yet: Fault, silently, while any is left
    pending: frozenset[str] = field(default_factory=frozenset)
    master_src: int | None = None  # last master heard (status/SNMP)
    master_priority: int = 0
    delayed_until: int = 0  # keepalived vrrp_delayed_start_time (0: none)
    # keepalived's wantstate MASTER for the owner: only a Fault that held the start
    # (trackers not reported yet) keeps it; any fault since clears it (down_instance)
    want_master: bool = False


def initial_state(params: VrrpParams) -> VrrpState:
    """The Initialize state for ``params`` (RFC 5798 §6.4.1 before Startup).

    >>> initial_state(VrrpParams(priority=150)).state
    <State.INITIALIZE: 'INIT'>
    """
    return VrrpState(
        state=State.INITIALIZE,
        base_priority=params.priority,
        priority=params.priority,
        master_adver_int_us=params.adver_int_us,
        # nothing clears these: Startup lands in Fault and stays there
        faults=frozenset(params.config_faults),
    )


Handler: TypeAlias = Callable[[VrrpParams, VrrpState, Any], tuple[VrrpState, list[Action]]]


# ---------------------------------------------------------------- helpers


def _effective_priority(base: int, weight: int) -> int:
    # keepalived vrrp_set_effective_priority: the owner is never moved by
    # trackers; everyone else is clamped into 1..254.
    if base == PRIORITY_OWNER:
        return PRIORITY_OWNER
    return min(max(base + weight, 1), PRIORITY_OWNER - 1)


def _down_interval(p: VrrpParams, s: VrrpState) -> int:
    return master_down_interval_us(
        p.version, s.priority, s.master_adver_int_us, p.down_timer_adverts_effective
    )


def _skew(p: VrrpParams, s: VrrpState) -> int:
    return skew_time_us(p.version, s.priority, s.master_adver_int_us)


def _learn_adver_int(p: VrrpParams, s: VrrpState, e: AdvertReceived) -> VrrpState:
    # RFC 5798 §6.4.2/§6.4.3: v3 sets Master_Adver_Interval from the advert.
    # v2 keeps its configured interval (RFC 3768 has no Master_Adver_Interval).
    if p.version == VRRP_V3 and e.max_adver_int_cs > 0:
        return replace(s, master_adver_int_us=centiseconds_to_us(e.max_adver_int_cs))
    return s


def _garp_kinds(p: VrrpParams) -> list[TimerKind]:
    kinds = []
    if p.garp_master_delay_us:
        kinds.append(TimerKind.GARP_DELAY)
    if p.garp_master_refresh_us:
        kinds.append(TimerKind.GARP_REFRESH)
    if p.garp_lower_prio_delay_effective_us and p.garp_lower_prio_repeat_effective:
        kinds.append(TimerKind.GARP_LOWER_PRIO)
    return kinds


def _stale(deadline: int | None, at_us: int | None) -> bool:
    return deadline is None or (at_us is not None and at_us != deadline)


def ignores_adverts(p: VrrpParams, s: VrrpState) -> bool:
    """Whether ``s`` drops every advert (the shell counts them as keepalived does).

    >>> ignores_adverts(VrrpParams(priority=255, owner_ignore_adverts=True),
    ...                 initial_state(VrrpParams(priority=255)))
    True
    """
    # RFC 5798 §7.1: the address owner MUST discard adverts.  keepalived
    # processes them by default (to resolve duplicate owners, erratum 8298)
    # unless owner_ignore_adverts (2.3.3) or strict mode.  The effective
    # priority decides, as in keepalived's vrrp_check_packet.
    return s.priority == PRIORITY_OWNER and p.owner_ignore_adverts_effective


def _backup_deadline(s: VrrpState, now: int, interval: int) -> int:
    # keepalived vrrp_init_instance_sands: during vrrp_startup_delay a backup's
    # timer runs from the end of the delay, whatever armed it.
    if now < s.delayed_until:
        return s.delayed_until + interval
    return now + interval


def _late_as_master(p: VrrpParams, s: VrrpState, now: int) -> bool:
    # keepalived 2.3 timer_expired_backup (vrrp.c vrrp_thread_timeout_handler, run
    # before the events of a late loop turn): the last advert went out longer ago
    # than a backup of the given priority waits (3 intervals plus its skew), so
    # one may have taken over while we were not running.
    hop = p.timer_expired_backup if p.nopreempt_effective else 0
    if not hop or s.state is not State.MASTER or s.adver_at is None:
        return False
    last_sent = s.adver_at - p.adver_int_us
    return now >= last_sent + 3 * p.adver_int_us + skew_time_us(p.version, hop, p.adver_int_us)


def _step_down_late(p: VrrpParams, s: VrrpState, now: int) -> tuple[VrrpState, list[Action]]:
    # keepalived vrrp_state_leave_master with wantstate BACKUP: no priority 0, the
    # VIPs go, Master_Down_Timer from now.
    s, actions = _leave_master(p, s, relinquish=False)
    s = replace(s, preempt_until=None, master_adver_int_us=p.adver_int_us)
    s, enter = _enter_backup(p, s, now)
    return s, [Warn("timer_expired_backup"), *actions, *enter]


def _become_master(p: VrrpParams, s: VrrpState, now: int) -> tuple[VrrpState, list[Action]]:
    # RFC 5798 §6.4.1/§6.4.2: send an ADVERTISEMENT, announce the VIPs, start
    # the Adver_Timer, transition to Master.  The advert goes first so that an
    # old master drops the VIPs before our GARPs land (keepalived does the same).
    # keepalived: a v3 master advertises its own configured interval again.
    adver_at = now + p.adver_int_us
    s = replace(
        s,
        state=State.MASTER,
        master_adver_int_us=p.adver_int_us,
        master_down_at=None,
        adver_at=adver_at,
        garp_refresh_at=now + p.garp_master_refresh_us if p.garp_master_refresh_us else None,
        preempt_until=None,
        master_src=p.src_key,
        master_priority=s.priority,
    )
    actions: list[Action] = [SendAdvert(s.priority), AddVips(p.accept_effective)]
    if p.garp_master_repeat:
        actions.append(SendGratuitous(p.garp_master_repeat))
    actions.append(StartTimer(TimerKind.ADVER, adver_at))
    if p.garp_master_delay_us:
        actions.append(StartTimer(TimerKind.GARP_DELAY, now + p.garp_master_delay_us))
    if s.garp_refresh_at is not None:
        actions.append(StartTimer(TimerKind.GARP_REFRESH, s.garp_refresh_at))
    actions.append(Notify(State.MASTER, s.priority))
    return s, actions


def _leave_master(p: VrrpParams, s: VrrpState, relinquish: bool) -> tuple[VrrpState, list[Action]]:
    # RFC 5798 §6.4.3: cancel the Adver_Timer; on Shutdown also send an
    # ADVERTISEMENT with Priority 0.  keepalived sends priority 0 on going to
    # Fault too, and drops any delayed GARPs.
    actions: list[Action] = [CancelTimer(TimerKind.ADVER)]
    actions += [CancelTimer(kind) for kind in _garp_kinds(p)]
    if relinquish:
        actions.append(SendAdvert(PRIORITY_STOP))
    actions.append(RemoveVips())
    return replace(s, adver_at=None, garp_refresh_at=None), actions


def _enter_backup(
    p: VrrpParams, s: VrrpState, now: int, down_us: int | None = None
) -> tuple[VrrpState, list[Action]]:
    s = replace(s, state=State.BACKUP)
    at = _backup_deadline(s, now, _down_interval(p, s) if down_us is None else down_us)
    s = replace(s, master_down_at=at)
    return s, [StartTimer(TimerKind.MASTER_DOWN, at), Notify(State.BACKUP, s.priority)]


def _set_priority(
    p: VrrpParams, s: VrrpState, base: int, weight: int
) -> tuple[VrrpState, list[Action]]:
    new = _effective_priority(base, weight)
    old = s.priority
    s = replace(s, base_priority=base, weight=weight)
    if new == old:
        return s, []
    actions: list[Action] = []
    armed = s.master_down_at
    if s.state is State.BACKUP and armed is not None:
        # keepalived vrrp_set_effective_priority: move the armed deadline by
        # the change in Master_Down_Interval (the skew depends on priority).
        old_down = _down_interval(p, s)
        s = replace(s, priority=new)
        at = armed + (_down_interval(p, s) - old_down)
        s = replace(s, master_down_at=at)
        actions.append(StartTimer(TimerKind.MASTER_DOWN, at))
    else:
        s = replace(s, priority=new)
    actions.append(NotifyPriority(new))
    return s, actions


# ---------------------------------------------------------------- Initialize


def _init_startup(p: VrrpParams, s: VrrpState, e: Startup) -> tuple[VrrpState, list[Action]]:
    now = e.now_us
    s = replace(s, master_adver_int_us=p.adver_int_us, delayed_until=e.delayed_until_us)
    if s.faults:
        # keepalived: an instance whose tracked objects are down starts in Fault.
        return replace(s, state=State.FAULT), [Notify(State.FAULT, s.priority)]
    if s.pending:
        # keepalived vrrp_init_state: "Entering FAULT STATE (init)", notified to
        # no one until the trackers waited for report.
        return replace(s, state=State.FAULT,
                       want_master=s.priority == PRIORITY_OWNER and p.owner_starts_master), []
    if s.priority == PRIORITY_OWNER and p.owner_starts_master:
        if now < s.delayed_until:
            # keepalived vrrp_init_state: the owner becomes master by a backup
            # timer of 1 µs, here run from the end of vrrp_startup_delay; it
            # notifies nothing until it is master.
            at = s.delayed_until
            return replace(s, state=State.BACKUP, master_down_at=at), [
                StartTimer(TimerKind.MASTER_DOWN, at)
            ]
        # RFC 5798 §6.4.1: Priority 255 -> Master at once.
        return _become_master(p, s, now)
    # RFC 5798 §6.4.1: otherwise Master_Adver_Interval = Advertisement_Interval,
    # Master_Down_Timer = Master_Down_Interval, -> Backup.  keepalived 2.2.7 puts
    # an owner that says `state BACKUP` here too (wantstate BACKUP is not the
    # shortcut's condition); it then discards every lower advert and takes over
    # when the timer fires, so a quiet link costs it 3 intervals plus the skew.
    if p.preempt_delay_effective_us:
        s = replace(s, preempt_until=now + p.preempt_delay_effective_us)
    down = None
    if p.fast_start_backup:
        # keepalived: `state MASTER` without priority 255 waits one interval
        # plus the minimum skew, so it wins quickly on a quiet link.
        down = p.adver_int_us + skew_time_min_us(p.version, p.adver_int_us)
    return _enter_backup(p, s, now, down)


# ---------------------------------------------------------------- Backup


def _backup_shutdown(p: VrrpParams, s: VrrpState, e: Shutdown) -> tuple[VrrpState, list[Action]]:
    # RFC 5798 §6.4.2: cancel the Master_Down_Timer, -> Initialize.
    s = replace(s, state=State.INITIALIZE, master_down_at=None, preempt_until=None)
    return s, [CancelTimer(TimerKind.MASTER_DOWN), Notify(State.INITIALIZE, s.priority)]


def _backup_master_down(
    p: VrrpParams, s: VrrpState, e: MasterDownTimerFired
) -> tuple[VrrpState, list[Action]]:
    if _stale(s.master_down_at, e.at_us):
        return s, []
    # RFC 5798 §6.4.2: Master_Down_Timer fires -> send ADVERTISEMENT, GARP/NA,
    # Adver_Timer, -> Master.
    return _become_master(p, s, e.now_us)


def _backup_advert(
    p: VrrpParams, s: VrrpState, e: AdvertReceived
) -> tuple[VrrpState, list[Action]]:
    if ignores_adverts(p, s):
        return s, []
    now = e.now_us
    src = address_key(e.src_addr)
    if e.priority == PRIORITY_STOP:
        # RFC 5798 §6.4.2: Priority 0 -> Master_Down_Timer = Skew_Time.
        at = _backup_deadline(s, now, _skew(p, s))
        return replace(s, master_down_at=at), [StartTimer(TimerKind.MASTER_DOWN, at)]
    holding = p.preempt_delay_effective_us > 0 and (
        s.preempt_until is None or s.preempt_until > now
    )
    if p.nopreempt_effective or e.priority >= s.priority or holding:
        # RFC 5798 §6.4.2: Preempt_Mode False, or Priority >= local: (v3) learn
        # Master_Adver_Interval, recompute Skew/Down, reset Master_Down_Timer.
        # keepalived: while preempt_delay holds, a lower advert counts too.
        s = _learn_adver_int(p, s, e)
        at = _backup_deadline(s, now, _down_interval(p, s))
        preempt_until = s.preempt_until
        if p.preempt_delay_effective_us:
            if e.priority >= s.priority:
                preempt_until = None  # keepalived: "stop preempt delay"
            elif preempt_until is None:
                preempt_until = now + p.preempt_delay_effective_us  # "start preempt delay"
        s = replace(
            s,
            master_down_at=at,
            master_src=src,
            master_priority=e.priority,
            preempt_until=preempt_until,
        )
        return s, [StartTimer(TimerKind.MASTER_DOWN, at)]
    # RFC 5798 §6.4.2: Preempt_Mode True and lower priority: discard.  The
    # Master_Down_Timer keeps running, so we take over when it fires.
    s = replace(s, master_src=src)
    if now < s.delayed_until and s.master_down_at is not None:
        # keepalived 2.2.7 (vrrp_state_backup, then vrrp_init_instance_sands):
        # the time left is re-armed from the end of vrrp_startup_delay, so each
        # discarded advert during the delay pushes the takeover later.  Kept:
        # a peer running keepalived with the same delay takes over when we do.
        at = s.delayed_until + max(s.master_down_at - now, 0)
        return replace(s, master_down_at=at), [StartTimer(TimerKind.MASTER_DOWN, at)]
    return s, []


def _backup_priority(
    p: VrrpParams, s: VrrpState, e: PriorityChanged
) -> tuple[VrrpState, list[Action]]:
    return _set_priority(p, s, s.base_priority, e.weight)


# ---------------------------------------------------------------- Master


def _master_shutdown(p: VrrpParams, s: VrrpState, e: Shutdown) -> tuple[VrrpState, list[Action]]:
    # RFC 5798 §6.4.3: cancel Adver_Timer, send ADVERTISEMENT with Priority 0,
    # -> Initialize.
    s, actions = _leave_master(p, s, relinquish=True)
    s = replace(s, state=State.INITIALIZE)
    actions.append(Notify(State.INITIALIZE, s.priority))
    return s, actions


def _master_adver_timer(
    p: VrrpParams, s: VrrpState, e: AdverTimerFired
) -> tuple[VrrpState, list[Action]]:
    if _stale(s.adver_at, e.at_us):
        return s, []
    # RFC 5798 §6.4.3: send an ADVERTISEMENT, reset Adver_Timer to
    # Advertisement_Interval.
    at = e.now_us + p.adver_int_us
    return replace(s, adver_at=at), [SendAdvert(s.priority), StartTimer(TimerKind.ADVER, at)]


def _master_garp_timer(
    p: VrrpParams, s: VrrpState, e: GarpTimerFired
) -> tuple[VrrpState, list[Action]]:
    if e.kind is TimerKind.GARP_DELAY:
        # keepalived garp_master_delay: the second burst after becoming master.
        return s, [SendGratuitous(p.garp_master_repeat)] if p.garp_master_repeat else []
    if e.kind is TimerKind.GARP_LOWER_PRIO:
        repeat = p.garp_lower_prio_repeat_effective
        return s, [SendGratuitous(repeat)] if repeat else []
    if e.kind is TimerKind.GARP_REFRESH and not _stale(s.garp_refresh_at, e.at_us):
        at = e.now_us + p.garp_master_refresh_us
        actions: list[Action] = []
        if p.garp_master_refresh_repeat:
            actions.append(SendGratuitous(p.garp_master_refresh_repeat))
        actions.append(StartTimer(TimerKind.GARP_REFRESH, at))
        return replace(s, garp_refresh_at=at), actions
    return s, []


def _master_advert(
    p: VrrpParams, s: VrrpState, e: AdvertReceived
) -> tuple[VrrpState, list[Action]]:
    if ignores_adverts(p, s):
        return s, []
    now = e.now_us
    src = address_key(e.src_addr)
    ours = p.src_key
    actions: list[Action] = []
    if e.priority == PRIORITY_STOP:
        # RFC 5798 §6.4.3: Priority 0 -> send an ADVERTISEMENT, reset Adver_Timer.
        at = now + p.adver_int_us
        return replace(s, adver_at=at), [SendAdvert(s.priority), StartTimer(TimerKind.ADVER, at)]

    # RFC 5798 §6.4.3: ties are broken by the primary address, larger wins.
    def peer_wins() -> bool:
        return e.priority > s.priority or (e.priority == s.priority and src > ours)

    if p.higher_prio_send_advert_effective and peer_wins():
        # keepalived higher_prio_send_advert: tell the peer we existed, then yield.
        # Other backups take this farewell as a master's advert and adopt our
        # interval (RFC 9568 §6.4.2); with a shorter interval than the new
        # master's and a new master silent on lower priorities, that flaps in
        # keepalived 2.2.7 too (tests/unit/vrrp/test_fsm_regressions.py), so we
        # keep its wire behaviour rather than invent a fix peers would not share.
        actions.append(SendAdvert(s.priority))
    if e.priority == s.priority:
        if src == ours:
            actions.append(Warn("equal_priority_from_own_address"))
        elif s.priority == PRIORITY_OWNER:
            # keepalived (RFC 9568 erratum 8298): two address owners is a
            # configuration error; drop ours to 254 so one of them can win.
            actions.append(Warn("duplicate_address_owner"))
            s = replace(
                s,
                base_priority=PRIORITY_OWNER - 1,
                priority=_effective_priority(PRIORITY_OWNER - 1, s.weight),
            )
    if e.priority < s.priority or (e.priority == s.priority and src < ours):
        # RFC 5798 §6.4.3 says discard.  keepalived sends an advert at once to
        # force a new election, unless lower_prio_no_advert (strict forces it).
        if not p.lower_prio_no_advert_effective:
            actions.append(SendAdvert(s.priority))
        repeat = p.garp_lower_prio_repeat_effective
        if repeat:
            actions.append(SendGratuitous(repeat))
            delay = p.garp_lower_prio_delay_effective_us
            if delay:
                actions.append(StartTimer(TimerKind.GARP_LOWER_PRIO, now + delay))
        actions.append(NotifyMasterRxLowerPri(e.priority, src))
        return s, actions
    if peer_wins():
        # RFC 5798 §6.4.3: higher priority (or equal and larger address):
        # cancel Adver_Timer, (v3) learn Master_Adver_Interval, set
        # Master_Down_Timer to Master_Down_Interval, -> Backup.
        s, leave = _leave_master(p, s, relinquish=False)
        actions += leave
        s = _learn_adver_int(p, s, e)
        # keepalived vrrp_state_leave_master: preempt_time is cleared.
        s = replace(s, master_src=src, master_priority=e.priority, preempt_until=None)
        s, enter = _enter_backup(p, s, now)
        return s, actions + enter
    return s, actions


def _master_vip_deleted(
    p: VrrpParams, s: VrrpState, e: VipDeleted
) -> tuple[VrrpState, list[Action]]:
    # keepalived set_vrrp_backup: vrrp_state_leave_master(advF true) sends priority
    # 0 and removes what is left, then "we want a quick transition back to master":
    # ms_down_timer = VRRP_TIMER_SKEW, not the Master_Down_Interval.
    s, actions = _leave_master(p, s, relinquish=True)
    s = replace(s, preempt_until=None)
    s, enter = _enter_backup(p, s, e.now_us, _skew(p, s))
    return s, actions + enter


def _master_priority(
    p: VrrpParams, s: VrrpState, e: PriorityChanged
) -> tuple[VrrpState, list[Action]]:
    # The next advert carries the new priority; a backup that now outranks us
    # preempts through its own Master_Down_Timer.
    return _set_priority(p, s, s.base_priority, e.weight)


# ---------------------------------------------------------------- Fault


def _any_fault_raised(
    p: VrrpParams, s: VrrpState, e: FaultRaised
) -> tuple[VrrpState, list[Action]]:
    first = not s.faults
    waited = e.reason in s.pending
    s = replace(s, faults=s.faults | {e.reason}, pending=s.pending - {e.reason},
                want_master=False)
    if first and waited and s.state is State.FAULT:
        # keepalived down_instance -> vrrp_state_leave_fault: the silent Fault of
        # Startup is announced when the tracker waited for reports a failure.
        return s, [Notify(State.FAULT, s.priority)]
    if not first or s.state in (State.INITIALIZE, State.FAULT):
        return s, []
    actions: list[Action] = []
    if s.state is State.MASTER:
        s, actions = _leave_master(p, s, relinquish=True)
    else:
        actions.append(CancelTimer(TimerKind.MASTER_DOWN))
    s = replace(s, state=State.FAULT, master_down_at=None, preempt_until=None)
    actions.append(Notify(State.FAULT, s.priority))
    return s, actions


def _any_fault_cleared(
    p: VrrpParams, s: VrrpState, e: FaultCleared
) -> tuple[VrrpState, list[Action]]:
    if e.reason not in s.faults | s.pending:
        return s, []
    s = replace(s, faults=s.faults - {e.reason}, pending=s.pending - {e.reason})
    if s.faults or s.pending or s.state is not State.FAULT:
        return s, []
    # keepalived try_up_instance / vrrp_state_leave_fault: back to Backup with the
    # configured interval; straight to Master only for the owner whose wantstate is
    # still MASTER, i.e. leaving the start's silent Fault.  After a real fault
    # (down_instance set wantstate FAULT) keepalived 2.2.7's owner waits a whole
    # Master_Down_Interval as a backup, as tests/netns/test_vrrp_owner_state_backup.py
    # shows it doing.
    s = replace(s, master_adver_int_us=p.adver_int_us, preempt_until=None)
    if s.priority == PRIORITY_OWNER and s.want_master:
        return _become_master(p, replace(s, want_master=False), e.now_us)
    return _enter_backup(p, s, e.now_us)


def _init_pending(
    p: VrrpParams, s: VrrpState, e: FaultPending
) -> tuple[VrrpState, list[Action]]:
    if e.reason in s.faults:
        return s, []
    return replace(s, pending=s.pending | {e.reason}), []


def _fault_shutdown(p: VrrpParams, s: VrrpState, e: Shutdown) -> tuple[VrrpState, list[Action]]:
    return replace(s, state=State.INITIALIZE), [Notify(State.INITIALIZE, s.priority)]


def _any_priority(
    p: VrrpParams, s: VrrpState, e: PriorityChanged
) -> tuple[VrrpState, list[Action]]:
    return _set_priority(p, s, s.base_priority, e.weight)


# ---------------------------------------------------------------- tables

_TABLE: dict[State, dict[type, Handler]] = {
    State.INITIALIZE: {
        Startup: _init_startup,
        PriorityChanged: _any_priority,
        FaultRaised: _any_fault_raised,
        FaultCleared: _any_fault_cleared,
        FaultPending: _init_pending,
    },
    State.BACKUP: {
        Shutdown: _backup_shutdown,
        MasterDownTimerFired: _backup_master_down,
        AdvertReceived: _backup_advert,
        PriorityChanged: _backup_priority,
        FaultRaised: _any_fault_raised,
        FaultCleared: _any_fault_cleared,
    },
    State.MASTER: {
        Shutdown: _master_shutdown,
        AdverTimerFired: _master_adver_timer,
        GarpTimerFired: _master_garp_timer,
        AdvertReceived: _master_advert,
        PriorityChanged: _master_priority,
        VipDeleted: _master_vip_deleted,
        FaultRaised: _any_fault_raised,
        FaultCleared: _any_fault_cleared,
    },
    State.FAULT: {
        Shutdown: _fault_shutdown,
        PriorityChanged: _any_priority,
        FaultRaised: _any_fault_raised,
        FaultCleared: _any_fault_cleared,
    },
}


def timer_fired(kind: TimerKind, now_us: int, at_us: int | None = None) -> Event:
    """The event the shell feeds back when the ``kind`` timer it armed runs out.

    >>> timer_fired(TimerKind.ADVER, 10, 10)
    AdverTimerFired(now_us=10, at_us=10)
    >>> timer_fired(TimerKind.GARP_REFRESH, 10).kind
    <TimerKind.GARP_REFRESH: 'garp_refresh'>
    """
    if kind is TimerKind.ADVER:
        return AdverTimerFired(now_us, at_us)
    if kind is TimerKind.MASTER_DOWN:
        return MasterDownTimerFired(now_us, at_us)
    return GarpTimerFired(now_us, kind, at_us)


def handles(state: State, event_type: type) -> bool:
    """Whether ``state`` reacts to ``event_type`` at all (others are ignored)."""
    return event_type in _TABLE[state]


def step(
    params: VrrpParams, state: VrrpState, event: Event
) -> tuple[VrrpState, tuple[Action, ...]]:
    """Feed one event; get the next state and the actions to carry out in order.

    >>> p = VrrpParams(priority=255, src_addr=1)
    >>> s, actions = step(p, initial_state(p), Startup(now_us=0))
    >>> s.state, actions[:2]
    (<State.MASTER: 'MASTER'>, (SendAdvert(priority=255), AddVips(accept=True)))
    """
    first: list[Action] = []
    if _late_as_master(params, state, event.now_us):
        state, first = _step_down_late(params, state, event.now_us)
    handler = _TABLE[state.state].get(type(event))
    if handler is None:
        return state, tuple(first)
    new_state, actions = handler(params, state, event)
    return new_state, (*first, *actions)


class VrrpMachine:
    """A convenience holder of params + current state around :func:`step`.

    >>> m = VrrpMachine(VrrpParams(priority=100, src_addr=1))
    >>> [type(a).__name__ for a in m.handle(Startup(0))]
    ['StartTimer', 'Notify']
    >>> m.state.state
    <State.BACKUP: 'BACKUP'>
    """

    __slots__ = ("params", "state")

    def __init__(self, params: VrrpParams, state: VrrpState | None = None) -> None:
        self.params = params
        self.state = initial_state(params) if state is None else state

    def handle(self, event: Event) -> tuple[Action, ...]:
        self.state, actions = step(self.params, self.state, event)
        return actions
