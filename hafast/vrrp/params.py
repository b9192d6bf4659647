"""The parameters one VRRP instance's state machine runs with.

This is deliberately the FSM's own small view, not the config model: the config
loader maps a ``vrrp_instance`` block (plus the global ``vrrp_*`` defaults) onto
it.  Times are integer microseconds.  The ``*_effective`` properties apply
keepalived's normalisation (``vrrp_complete_instance`` in ``vrrp.c``): strict mode
forcing RFC behaviour, ``state MASTER`` and priority 255 clearing ``nopreempt``,
and so on; :meth:`VrrpParams.config_warnings` lists what was overridden so the
loader can tell the user.
"""

from __future__ import annotations

from dataclasses import dataclass

from hafast.config.model import accept_mode
from hafast.lib.units import US_PER_S
from hafast.vrrp.timers import (
    DOWN_TIMER_ADVERTS_DEFAULT,
    DOWN_TIMER_ADVERTS_MAX,
    DOWN_TIMER_ADVERTS_MIN,
    PRIORITY_DEFAULT,
    PRIORITY_OWNER,
    US_PER_CENTISECOND,
    V2_ADVER_INT_MAX_S,
    V3_ADVER_INT_MAX_CS,
    VRRP_V2,
    VRRP_V3,
)

# keepalived: preempt_delay is 0..1000 s (TIMER_MAX_SEC).
PREEMPT_DELAY_MAX_US = 1000 * US_PER_S
# keepalived VRRP_GARP_DELAY / VRRP_GARP_REP / VRRP_GARP_REFRESH_REP defaults.
GARP_MASTER_DELAY_DEFAULT_US = 5 * US_PER_S
GARP_MASTER_REPEAT_DEFAULT = 5
GARP_MASTER_REFRESH_REPEAT_DEFAULT = 1


def address_key(addr: int | bytes) -> int:
    """The number an address compares by (RFC 5798 §6.4.3: "primary IPvX address").

    Bytes are read big-endian, so ``bytes(ipaddress.ip_address(x).packed)`` and
    ``int(ipaddress.ip_address(x))`` compare the same way.

    >>> address_key(bytes([10, 0, 0, 2])) == 0x0A000002
    True
    """
    if isinstance(addr, bytes | bytearray):
        return int.from_bytes(addr, "big")
    return int(addr)


@dataclass(frozen=True, slots=True)
class VrrpParams:
    """One VRRP instance as the FSM needs it.

    >>> p = VrrpParams(priority=150, src_addr=0x0A000001)
    >>> p.adver_int_us, p.version, p.is_owner
    (1000000, 2, False)
    """

    # RFC 3768 §5.3.4 / RFC 5798 §5.2.4: 1..254 backup priority, 255 = owner.
    priority: int = PRIORITY_DEFAULT
    # Our primary IPv4 address (or IPv6 link-local): the tie-break key, RFC 5798 §6.4.3.
    src_addr: int | bytes = 0
    version: int = VRRP_V2
    # Advertisement_Interval: v2 whole seconds, v3 whole centiseconds, in µs.
    adver_int_us: int = US_PER_S
    # keepalived `state MASTER`: only the owner really starts as master.
    initial_master: bool = False
    # keepalived `state BACKUP` written out: the owner too starts as backup and
    # takes over when its Master_Down_Timer fires (vrrp_init_state only shortcuts
    # an owner whose wantstate is MASTER, which is what an unset state means).
    initial_backup: bool = False
    nopreempt: bool = False
    preempt_delay_us: int = 0
    # None = keepalived's default (accept unless strict; the owner always accepts).
    accept: bool | None = None
    strict: bool = False
    down_timer_adverts: int = DOWN_TIMER_ADVERTS_DEFAULT
    lower_prio_no_advert: bool = False
    higher_prio_send_advert: bool = False
    owner_ignore_adverts: bool = False
    garp_master_delay_us: int = GARP_MASTER_DELAY_DEFAULT_US
    garp_master_repeat: int = GARP_MASTER_REPEAT_DEFAULT
    garp_master_refresh_us: int = 0
    garp_master_refresh_repeat: int = GARP_MASTER_REFRESH_REPEAT_DEFAULT
    # None = keepalived's default: the garp_master_* value.
    garp_lower_prio_delay_us: int | None = None
    garp_lower_prio_repeat: int | None = None
    # keepalived num_config_faults: what holds the instance in Fault for good (a
    # config it cannot run, e.g. unicast_fault_no_peer without peers); fault reasons.
    config_faults: tuple[str, ...] = ()
    # keepalived 2.3 timer_expired_backup: the highest priority of the other routers
    # (0: off); a nopreempt master that was not running for longer than such a one
    # needs to take over returns as backup
    timer_expired_backup: int = 0

    def __post_init__(self) -> None:
        if self.version not in (VRRP_V2, VRRP_V3):
            raise ValueError(f"version must be 2 or 3, not {self.version!r}")
        if not 1 <= self.priority <= PRIORITY_OWNER:
            raise ValueError(f"priority must be 1..255, not {self.priority!r}")
        if self.version == VRRP_V2:
            # RFC 3768 §5.3.7: 8-bit whole seconds.
            if self.adver_int_us % US_PER_S or not (
                1 <= self.adver_int_us // US_PER_S <= V2_ADVER_INT_MAX_S
            ):
                raise ValueError(
                    f"VRRPv2 advert interval must be 1..255 whole seconds, "
                    f"not {self.adver_int_us} µs"
                )
        elif self.adver_int_us % US_PER_CENTISECOND or not (
            1 <= self.adver_int_us // US_PER_CENTISECOND <= V3_ADVER_INT_MAX_CS
        ):
            # RFC 5798 §5.2.7: 12-bit centiseconds.
            raise ValueError(
                f"VRRPv3 advert interval must be 1..4095 centiseconds, not {self.adver_int_us} µs"
            )
        if not 0 <= self.timer_expired_backup < PRIORITY_OWNER:
            raise ValueError(f"timer_expired_backup must be 1..254 (0: off), "
                             f"not {self.timer_expired_backup!r}")
        if not DOWN_TIMER_ADVERTS_MIN <= self.down_timer_adverts <= DOWN_TIMER_ADVERTS_MAX:
            raise ValueError(f"down_timer_adverts must be 1..100, not {self.down_timer_adverts!r}")
        if not 0 <= self.preempt_delay_us <= PREEMPT_DELAY_MAX_US:
            raise ValueError(f"preempt_delay must be 0..1000 s, not {self.preempt_delay_us} µs")
        for name in (
            "garp_master_delay_us",
            "garp_master_repeat",
            "garp_master_refresh_us",
            "garp_master_refresh_repeat",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        for name in ("garp_lower_prio_delay_us", "garp_lower_prio_repeat"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative")

    # -- derived values -----------------------------------------------------

    @property
    def is_owner(self) -> bool:
        """RFC 5798 §5.2.4: priority 255 means we own the virtual addresses."""
        return self.priority == PRIORITY_OWNER

    @property
    def src_key(self) -> int:
        return address_key(self.src_addr)

    @property
    def nopreempt_effective(self) -> bool:
        # keepalived clears nopreempt for the owner and for `state MASTER`.
        return self.nopreempt and not self.is_owner and not self.initial_master

    @property
    def preempt_delay_effective_us(self) -> int:
        # keepalived: preempt_delay is reset by strict mode, nopreempt and
        # `state MASTER`.
        if self.strict or self.nopreempt_effective or self.initial_master:
            return 0
        return self.preempt_delay_us

    @property
    def down_timer_adverts_effective(self) -> int:
        # keepalived: strict mode resets down_timer_adverts to the RFC's 3.
        return DOWN_TIMER_ADVERTS_DEFAULT if self.strict else self.down_timer_adverts

    @property
    def accept_effective(self) -> bool:
        """Whether the VIP layer lets packets addressed to the VIPs in while master.

        The model's rule (:func:`hafast.config.model.accept_mode`), so a config's
        ``VrrpInstance.accept`` and its instance never disagree; it is idempotent, so
        parameters built from a config keep the value the model holds.
        """
        return accept_mode(self.accept, priority=self.priority, version=self.version,
                           strict=self.strict)

    @property
    def lower_prio_no_advert_effective(self) -> bool:
        # Strict mode forces the RFC behaviour (discard a lower-priority advert).
        return self.lower_prio_no_advert or self.strict

    @property
    def higher_prio_send_advert_effective(self) -> bool:
        return self.higher_prio_send_advert and not self.strict

    @property
    def owner_ignore_adverts_effective(self) -> bool:
        # RFC 5798 §7.1 (strict): an address owner discards received adverts.
        return self.owner_ignore_adverts or self.strict

    @property
    def owner_starts_master(self) -> bool:
        """Whether the start (and a vrrp_startup_delay's end) makes us master at once.

        keepalived 2.2.7 (vrrp_init_state) shortcuts the owner to master only when
        its wantstate is MASTER: an unset state, ``state MASTER``, or strict mode
        (which forces the owner's state to MASTER).  An owner with ``state BACKUP``
        starts as backup and waits its Master_Down_Interval like anyone.

        >>> VrrpParams(priority=255).owner_starts_master
        True
        >>> VrrpParams(priority=255, initial_backup=True).owner_starts_master
        False
        """
        return self.is_owner and (not self.initial_backup or self.strict)

    @property
    def fast_start_backup(self) -> bool:
        """keepalived's `state MASTER` for a non-owner: backup with a short first timer."""
        return self.initial_master and not self.is_owner and not self.strict

    @property
    def garp_lower_prio_delay_effective_us(self) -> int:
        # keepalived: "Strict mode requires no repeat garp delay".
        if self.strict:
            return 0
        if self.garp_lower_prio_delay_us is None:
            return self.garp_master_delay_us
        return self.garp_lower_prio_delay_us

    @property
    def garp_lower_prio_repeat_effective(self) -> int:
        # keepalived: "Strict mode requires no repeat garps".
        if self.strict:
            return 0
        if self.garp_lower_prio_repeat is None:
            return self.garp_master_repeat
        return self.garp_lower_prio_repeat

    def config_warnings(self) -> tuple[str, ...]:
        """What keepalived would reset and warn about for these settings."""
        out: list[str] = []
        if self.nopreempt and (self.is_owner or self.initial_master):
            out.append("nopreempt does not work with priority 255 or state MASTER - clearing")
        if self.preempt_delay_us and self.preempt_delay_effective_us == 0:
            out.append(
                "preempt_delay is incompatible with strict mode, nopreempt or "
                "state MASTER - resetting"
            )
        if self.strict and self.down_timer_adverts != DOWN_TIMER_ADVERTS_DEFAULT:
            out.append("down_timer_adverts is incompatible with strict mode - resetting to 3")
        if self.strict and self.initial_master and not self.is_owner:
            out.append("strict mode: state MASTER needs priority 255 - starting as BACKUP")
        if self.strict and self.initial_backup and self.is_owner:
            out.append("strict mode: State MASTER must match being address owner - "
                       "starting as MASTER")
        if self.strict and self.higher_prio_send_advert:
            out.append("strict mode: higher_prio_send_advert is ignored")
        if self.strict and self.accept and self.version == VRRP_V2 and not self.is_owner:
            out.append("strict mode: accept mode is not allowed with VRRPv2 - ignoring")
        if self.strict and (self.garp_lower_prio_repeat or self.garp_lower_prio_delay_us):
            out.append("strict mode: no repeat GARPs after a lower-priority advert - resetting")
        return tuple(out)
