"""The typed model of a keepalived.conf: frozen, slotted dataclasses.

Conventions
- Every timer is an ``int`` of microseconds, field names end in ``_us`` (keepalived
  keeps µs internally; integer arithmetic keeps reload comparisons exact).
- Defaults are keepalived's documented ones; inherited settings (virtual_server ->
  real_server -> checker) are already resolved by the loader, so every checker carries
  concrete numbers and nobody downstream has to walk up the tree.
- ``where`` (``FILE:LINE:COL`` of the keyword that opened the object) is excluded from
  equality, so moving a block in the file is not a change for the reload diff.
- Scripts and notify commands are :class:`Script` (argv, user, group).

Example::

    >>> from hafast.config.loader import load_text
    >>> cfg = load_text("vrrp_instance V { interface lo\\n virtual_router_id 7\\n }\\n").config
    >>> cfg.vrrp_instances[0].priority, cfg.vrrp_instances[0].advert_int_us
    (100, 1000000)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from hafast.config import kinds as k
from hafast.config.kinds import CONN, TIMERS, CheckerKind, ChildBlock
from hafast.lib.units import US_PER_S


def accept_mode(accept: bool | None, *, priority: int, version: int, strict: bool) -> bool:
    """Whether a master lets packets addressed to its VIPs in (Accept_Mode).

    ``accept`` is what the file says (None: nothing).  RFC 5798 §6.4.3: the address
    owner (priority 255) always accepts.  keepalived: accept is on unless strict, and
    strict refuses it on VRRPv2 (RFC 3768 has no Accept_Mode).  The loader
    (:mod:`hafast.config.build_vrrp`) stores the result in ``VrrpInstance.accept``;
    :attr:`hafast.vrrp.params.VrrpParams.accept_effective` applies the same rule to
    parameters built without a config.

    >>> accept_mode(None, priority=100, version=2, strict=False)
    True
    >>> accept_mode(True, priority=100, version=2, strict=True)
    False
    >>> accept_mode(True, priority=100, version=3, strict=True)
    True
    """
    if priority == 255:
        return True
    if strict:
        return bool(accept) and version == 3
    return True if accept is None else accept


Argv = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Script:
    """A script to run: argv, and the user/group to run it as (None: keepalived's default,
    ``keepalived_script`` if that user exists, else root)."""

    argv: tuple[str, ...]
    user: str | None = None
    group: str | None = None


def _where() -> str:
    return field(default="", compare=False, repr=False)


# --------------------------------------------------------------------------- globals


@dataclass(frozen=True, slots=True)
class SslContext:
    """Top-level ``SSL { }`` for SSL_GET (keepalived makes a default context when absent)."""

    password: str | None = None
    ca: str | None = None
    certificate: str | None = None
    key: str | None = None


@dataclass(frozen=True, slots=True)
class LvsTimeouts:
    """``lvs_timeouts [tcp S] [tcpfin S] [udp S]``: IPVS connection timeouts in whole
    seconds; 0 leaves the kernel's value unchanged (ipvsadm --set semantics)."""

    tcp: int = 0
    tcpfin: int = 0
    udp: int = 0


@dataclass(frozen=True, slots=True)
class LvsSyncDaemon:
    """``lvs_sync_daemon INTERFACE [[inst] VRRP_INSTANCE] [id N] [maxlen N] [port N]
    [ttl N] [group IP]`` (:mod:`hafast.config.lvs_syncd`); 0 / None: the kernel's
    default (port 8848, group 224.0.0.81, TTL 1, maxlen from the MTU)."""

    interface: str
    instance: str | None = None
    syncid: int | None = None  # None: the instance's VRID (0 without an instance)
    maxlen: int = 0
    port: int = 0
    ttl: int = 0
    group: str | None = None


@dataclass(frozen=True, slots=True)
class GlobalDefs:
    router_id: str | None = None
    notification_email: tuple[str, ...] = ()
    notification_email_from: str | None = None
    smtp_server: tuple[str, int | None] | None = None  # (IP or host name, port; None: 25)
    smtp_helo_name: str | None = None
    smtp_connect_timeout_us: int = 30 * US_PER_S
    # None: not set (keepalived's -1); hafast.lib.smtp_alert.enabled() applies the rule
    smtp_alert: bool | None = None
    smtp_alert_vrrp: bool | None = None
    smtp_alert_checker: bool | None = None
    no_email_faults: bool = False
    no_checker_emails: bool = False
    checker_log_all_failures: bool = False
    default_interface: str = "eth0"
    vrrp_mcast_group4: str = "224.0.0.18"  # RFC 5798 §5.1.1.2
    vrrp_mcast_group6: str = "ff02::12"  # RFC 5798 §5.1.2.2
    vmac_prefix: str = "vrrp"  # use_vmac without a name: PREFIX.VRID
    vrrp_version: int = 2
    vrrp_strict: bool = False
    # keepalived's table for masters without Accept_Mode (hafast.net.noaccept): its
    # name ("" or None: keepalived), chain priority, counters, link-local match by index;
    # vrrp_iptables (any words) stands for `nftables` on a build without iptables
    nftables: str | None = None
    nftables_priority: int = -1
    nftables_counters: bool = False
    nftables_ifindex: bool = False
    vrrp_iptables: tuple[str, ...] | None = None
    vrrp_check_unicast_src: bool = False
    vrrp_skip_check_adv_addr: bool = False
    vrrp_lower_prio_no_advert: bool = False
    vrrp_notify_priority_changes: bool = False
    fifo_write_vrrp_states_on_reload: bool = False
    vrrp_higher_prio_send_advert: bool = False
    vrrp_down_timer_adverts: int = 3
    vrrp_owner_ignore_adverts: bool = False
    vrrp_startup_delay_us: int = 0
    vrrp_delay_after_boot_us: int = 0  # keepalived 2.3: no VRRP start before this uptime
    vrrp_garp_master_delay_us: int = 5 * US_PER_S
    vrrp_garp_master_repeat: int = 5
    vrrp_garp_lower_prio_delay_us: int | None = None  # None: as garp_master_delay
    vrrp_garp_lower_prio_repeat: int | None = None  # None: as garp_master_repeat
    vrrp_garp_master_refresh_us: int = 0  # 0: no periodic refresh
    vrrp_garp_master_refresh_repeat: int = 1
    vrrp_garp_interval_us: int = 0
    vrrp_gna_interval_us: int = 0
    # (seconds, all): periodic gratuitous ARPs on the VIPs' other interfaces while
    # master; every instance's default (hafast.vrrp.build.extra_if_garp)
    vrrp_garp_extra_if: tuple[int, bool] | None = None
    enable_script_security: bool = False
    script_user: Argv | None = None
    notify_fifo: Argv | None = None
    notify_fifo_script: Script | None = None
    vrrp_notify_fifo: Argv | None = None
    vrrp_notify_fifo_script: Script | None = None
    lvs_notify_fifo: Argv | None = None
    lvs_notify_fifo_script: Script | None = None
    lvs_flush: bool = False
    # keepalived's lvs_flush_on_stop: None deletes each configured virtual server at
    # stop, "full" flushes the whole IPVS table, "VS" deletes each configured one
    lvs_flush_on_stop: str | None = None
    lvs_timeouts: LvsTimeouts = LvsTimeouts()
    lvs_sync_daemon: LvsSyncDaemon | None = None
    rs_init_notifies: bool = False  # report every real server's first state as a change
    v3_checksum_as_v2: bool = False  # default of every instance's v3_checksum_as_v2
    # VRRP sockets' SO_RCVBUF (hafast.vrrp.rxbufs): "MTU", "ADVERT", a byte count, or
    # None (not set: keepalived leaves the system default, hafast asks for 1 MiB)
    vrrp_rx_bufs_policy: str | int | None = None
    vrrp_rx_bufs_multiplier: int = 3
    # process options (hafast.lib.procopts): nice, SCHED_RR, RLIMIT_RTTIME (us; keepalived's
    # 10000 unless set), mlockall, CPU ids as written, prctl names
    vrrp_process_priority: int = 0
    checker_process_priority: int = 0
    vrrp_rt_priority: int = 0
    checker_rt_priority: int = 0
    vrrp_rlimit_rttime: int | None = None
    checker_rlimit_rttime: int | None = None
    vrrp_no_swap: bool = False
    checker_no_swap: bool = False
    vrrp_cpu_affinity: tuple[str, ...] = ()
    checker_cpu_affinity: tuple[str, ...] = ()
    process_names: bool = False
    process_name: str | None = None
    vrrp_process_name: str | None = None
    checker_process_name: str | None = None
    # keepalived's automatic real-time priority (lib/scheduler.c): a loop late by more
    # than the delay (µs) goes SCHED_RR, one level more each time, up to the maximum;
    # None is the keyword alone (SCHED_RR's maximum), 0 and -1 never
    max_auto_priority: int | None = 0
    min_auto_priority_delay: int = 1_000_000
    # run by the parent before anything starts / after everything stopped (app.startstop);
    # timeouts in seconds, None: keepalived's 10
    startup_script: Script | None = None
    startup_script_timeout: int | None = None
    shutdown_script: Script | None = None
    shutdown_script_timeout: int | None = None
    # where the SIGUSR1/SIGUSR2/JSON dumps go (app.desk.dump_path); None: --dump-prefix's
    state_dump_file: str | None = None
    stats_dump_file: str | None = None
    json_dump_file: str | None = None
    data_use_instance: bool = False  # the namespace (-s) in the .data file's name
    # the AgentX subagent (hafast.status.snmp); None: net-snmp's /var/agentx/master
    snmp_socket: str | None = None
    enable_snmp_vrrp: bool = False  # enable_snmp_keepalived too (keepalived's old name)
    enable_snmp_checker: bool = False  # KEEPALIVED-MIB's check subtree (snmp_check)
    enable_traps: bool = False  # the subagent sends vrrpInstanceStateChange
    enable_snmp_rfcv2: bool = False  # VRRP-MIB (RFC 2787) and its vrrpTrapNewMaster
    enable_snmp_rfcv3: bool = False  # VRRPV3-MIB (RFC 6527) and its vrrpv3NewMaster
    enable_snmp_rfc: bool = False  # both of the above
    # hafast extensions (keepalived rejects these keywords)
    # "ipvs", "nft" or "memory"; None (not set): ipvs, and the daemon falls back to the
    # memory backend when IPVS cannot be opened (an explicit choice never falls back)
    lvs_backend: str | None = None
    metrics_listen: str | None = None  # "ADDR:PORT" or "[IPv6]:PORT"; None: no /metrics
    check_workers: int = 0  # 0: one check worker per core


# --------------------------------------------------------------------------- trackers


@dataclass(frozen=True, slots=True)
class TrackRef:
    """One line of a ``track_*`` list: the tracked thing's name and an optional weight."""

    name: str
    weight: int | None = None  # None: the tracker's own weight
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class VrrpScript:
    name: str
    script: Script | None = None
    interval_us: int = 1 * US_PER_S
    timeout_us: int = 1 * US_PER_S  # keepalived: defaults to interval
    weight: int = 0  # 0: the instance goes FAULT after `fall` failures
    weight_reverse: bool = False
    rise: int = 1
    fall: int = 1
    user: Argv | None = None
    init_fail: bool = False
    where: str = _where()


@dataclass(frozen=True, slots=True)
class GarpGroup:
    """``garp_group { }``: keepalived's garp_delay, shared by the interfaces it names.

    Gratuitous ARPs (NAs) sent on any of them keep ``garp_interval`` (``gna_interval``)
    apart, whichever instance sends them (hafast.vrrp.pacing).  None: not paced."""

    garp_interval_us: int | None = None
    gna_interval_us: int | None = None
    interfaces: tuple[str, ...] = ()
    where: str = _where()


@dataclass(frozen=True, slots=True)
class TrackFile:
    name: str
    file: str = ""
    weight: int = 1
    weight_reverse: bool = False
    init_file: tuple[str, ...] | None = None
    where: str = _where()


@dataclass(frozen=True, slots=True)
class TrackProcess:
    name: str
    process: Argv = ()
    param_match: str | None = None  # None: not given; "exact" (written alone), "initial", "partial"
    weight: int = 0
    weight_reverse: bool = False
    quorum: int = 1
    quorum_max: int | None = None
    fork_delay_us: int = 0
    terminate_delay_us: int = 0
    delay_us: int = 0
    full_command: bool = False
    where: str = _where()


# --------------------------------------------------------------------------- VRRP


@dataclass(frozen=True, slots=True)
class VirtualAddress:
    """One line of virtual_ipaddress / static_ipaddress: ``IP[/M] [dev X] [label X] ...``."""

    address: str
    prefix: int
    family: int  # 4 or 6
    dev: str | None = None
    label: str | None = None
    scope: str | None = None
    brd: str | None = None
    peer: str | None = None
    options: tuple[str, ...] = ()

    @property
    def track_group(self) -> str | None:
        """A static address's ``track_group NAME`` (keepalived reads it on
        static_ipaddress lines only).

        >>> VirtualAddress("10.0.0.1", 24, 4, options=("track_group TG",)).track_group
        'TG'
        """
        return next((o.split(" ", 1)[1] for o in self.options
                     if o.startswith("track_group ")), None)


@dataclass(frozen=True, slots=True)
class UnicastPeer:
    address: str
    min_ttl: int = 0
    max_ttl: int = 255


@dataclass(frozen=True, slots=True)
class Authentication:
    """RFC 2338 authentication (removed by RFC 3768, still spoken by keepalived v2)."""

    auth_type: str = "PASS"
    auth_pass: str = ""  # keepalived keeps the first 8 characters


@dataclass(frozen=True, slots=True)
class VrrpInstance:
    name: str
    virtual_router_id: int = 0  # required; the loader reports it when missing
    interface: str | None = None  # None: global default_interface
    state: str = "BACKUP"
    priority: int = 100  # RFC 5798 §5.2.4: 255 = address owner
    advert_int_us: int = 1 * US_PER_S  # RFC 5798 §5.2.7
    version: int = 2
    family: int = 4
    native_ipv6: bool = False
    nopreempt: bool = False
    preempt_delay_us: int = 0
    accept: bool = True
    strict_mode: bool = False
    mcast_src_ip: str | None = None
    unicast_src_ip: str | None = None
    mcast_dst_ip: str | None = None
    unicast_peer: tuple[UnicastPeer, ...] = ()
    unicast_ttl: int = 255
    unicast_fault_no_peer: bool = False  # no unicast_peer: FAULT, not multicast
    check_unicast_src: bool = False
    # keepalived's interop switch: a VRRPv3 IPv4 checksum without the pseudo-header
    # (RFC 5798 §5.2.8 says with it); resolved from global_defs when not set here
    v3_checksum_as_v2: bool = False
    virtual_ipaddress: tuple[VirtualAddress, ...] = ()
    virtual_ipaddress_excluded: tuple[VirtualAddress, ...] = ()
    no_virtual_ipaddress: bool = False
    virtual_routes: tuple[tuple[str, ...], ...] = ()
    virtual_rules: tuple[tuple[str, ...], ...] = ()
    promote_secondaries: bool = False
    use_vmac: tuple[str, ...] | None = None
    vmac_xmit_base: bool = False  # adverts on the parent interface, VIPs on the macvlan
    use_ipvlan: tuple[str, ...] | None = None  # [NAME] [ADDRESS/PREFIX] [bridge|private|vepa]
    dont_track_primary: bool = False
    track_interface: tuple[TrackRef, ...] = ()
    track_script: tuple[TrackRef, ...] = ()
    track_file: tuple[TrackRef, ...] = ()
    track_process: tuple[TrackRef, ...] = ()
    track_bfd: tuple[TrackRef, ...] = ()
    skip_check_adv_addr: bool = False
    lower_prio_no_advert: bool = False
    higher_prio_send_advert: bool = False
    # keepalived 2.3.3: an address owner drops adverts (resolved at load: priority 255
    # and the keyword, or global vrrp_owner_ignore_adverts, or strict mode)
    owner_ignore_adverts: bool = False
    # keepalived 2.3: the highest priority of the other routers (0: off; needs nopreempt)
    timer_expired_backup: int = 0
    down_timer_adverts: int = 3
    garp_master_delay_us: int = 5 * US_PER_S
    garp_master_repeat: int = 5
    garp_lower_prio_delay_us: int = 5 * US_PER_S
    garp_lower_prio_repeat: int = 5
    garp_master_refresh_us: int = 0
    garp_master_refresh_repeat: int = 1
    garp_extra_if: tuple[int, bool] | None = None  # None: global_defs' vrrp_garp_extra_if
    authentication: Authentication | None = None
    kernel_rx_buf_size: int = 0  # this instance's SO_RCVBUF share (0: the global policy)
    notify_master: Script | None = None
    notify_backup: Script | None = None
    notify_fault: Script | None = None
    notify_stop: Script | None = None
    notify: Script | None = None
    notify_priority_changes: bool = False
    notify_master_rx_lower_pri: Script | None = None
    # keepalived notify_deleted [script]: removed by a reload, say DELETED (not FAULT);
    # an empty argv is the keyword alone
    notify_deleted: Script | None = None
    smtp_alert: bool | None = None  # None: unset (keepalived's -1), the global_defs decide
    # deprecated: global_defs' lvs_sync_daemon with this instance (hafast.config.lvs_syncd)
    lvs_sync_daemon_interface: str | None = None
    where: str = _where()


@dataclass(frozen=True, slots=True)
class SyncGroup:
    name: str
    group: tuple[str, ...] = ()
    track_interface: tuple[TrackRef, ...] = ()
    track_script: tuple[TrackRef, ...] = ()
    track_file: tuple[TrackRef, ...] = ()
    track_process: tuple[TrackRef, ...] = ()
    track_bfd: tuple[TrackRef, ...] = ()
    notify_master: Script | None = None
    notify_backup: Script | None = None
    notify_fault: Script | None = None
    notify_stop: Script | None = None
    notify: Script | None = None
    notify_priority_changes: bool = False
    smtp_alert: bool | None = None  # None: unset (keepalived's -1), the global_defs decide
    sync_group_tracking_weight: bool = False
    where: str = _where()


@dataclass(frozen=True, slots=True)
class UpDownDelay:
    """One ``interface_up_down_delays`` line: ``IF DOWN_DELAY [UP_DELAY]`` (keepalived
    2.2.7 vrrp_parser.c alloc_if_up_down_delay: no UP_DELAY is 0, not the down delay
    its man page says); what it does: :class:`hafast.net.linkwatch.LinkWatch`."""

    ifname: str
    down_us: int
    up_us: int = 0


@dataclass(frozen=True, slots=True)
class TrackGroup:
    """A top-level ``track_group NAME { group { VI ... } }`` (keepalived 2.2.7
    vrrp_static_track.c): its instances track the interface of each static route
    (``dev``) and static rule (``iif``) that names the group, and fault while it is
    down (:func:`hafast.vrrp.build.static_track_interfaces`)."""

    name: str
    group: tuple[str, ...] = ()
    where: str = _where()


# --------------------------------------------------------------------------- checkers


@dataclass(frozen=True, slots=True)
class Checker:
    """Settings every checker kind has; inherited values already resolved.

    A kind's spec derives from this (or :class:`ConnectChecker`) and is registered with
    its :class:`~hafast.config.kinds.CheckerKind`, which sets ``kind`` to its keyword.
    """

    kind: ClassVar[str] = ""
    alpha: bool = False
    connect_timeout_us: int = 5 * US_PER_S
    retry: int = 1
    delay_before_retry_us: int = 1 * US_PER_S
    warmup_us: int | None = None  # None: random up to delay_loop (keepalived)
    delay_loop_us: int = 60 * US_PER_S
    log_all_failures: bool = False

    def identity(self) -> tuple[object, ...]:
        """What makes two checkers "the same check" across a reload (target, not timers)."""
        return (self.kind,)


@dataclass(frozen=True, slots=True)
class ConnectChecker(Checker):
    connect_ip: str | None = None  # None: the real server's address
    connect_port: int | None = None  # None: the real server's port
    bindto: str | None = None
    bind_if: str | None = None
    bind_port: int | None = None
    fwmark: int | None = None

    def identity(self) -> tuple[object, ...]:
        return (
            self.kind,
            self.connect_ip,
            self.connect_port,
            self.bindto,
            self.bind_port,
            self.fwmark,
        )


@dataclass(frozen=True, slots=True)
class Url:
    path: str = "/"
    digest: str | None = None
    status_code: tuple[tuple[int, int], ...] = ((200, 299),)
    virtualhost: str | None = None
    regex: str | None = None
    regex_no_match: bool = False
    regex_options: tuple[str, ...] = ()
    regex_min_offset: int = 0
    regex_max_offset: int | None = None  # None: unset (0 is offset 0, as in keepalived)
    regex_stack: tuple[int, int] | None = None  # JIT stack (start, max) in bytes


@dataclass(frozen=True, slots=True)
class HttpGetCheck(ConnectChecker):
    urls: tuple[Url, ...] = ()
    http_protocol: str = "1.0"
    fast_recovery: bool = False
    virtualhost: str | None = None
    enable_sni: bool = False
    sni_name: str | None = None
    tls_compliant: bool = False

    def identity(self) -> tuple[object, ...]:
        return (*ConnectChecker.identity(self), tuple(u.path for u in self.urls))


@dataclass(frozen=True, slots=True)
class SslGetCheck(HttpGetCheck):
    pass


def _url(f: dict[str, Any]) -> Url:
    if "regex_options" in f:
        f["regex_options"] = tuple(f["regex_options"])
    return Url(**f)


def _check_url(f: dict[str, Any], pos: dict[str, Any], ld: Any) -> None:
    """keepalived's ``url_check`` and ``prepare_regex`` on a url's regex settings; a
    pattern PCRE2 refuses is an error (keepalived logs it at start and then checks the
    url without the regex, and ``keepalived -t`` says nothing)."""
    from hafast.lib.pcre2 import OPTIONS, PcreError, compile_regex

    if "regex_options" in f:  # keepalived ORs every regex_options line of the url
        f["regex_options"] = tuple(w for line in f["regex_options"] for w in line)
    stack = f.get("regex_stack")
    if stack is not None:
        f["regex_stack"] = None
        if len(stack) != 2 or not all(w.isdigit() for w in stack):
            ld.warn(pos["regex_stack"], "regex_stack needs a start and a max size in bytes "
                    "(expected: regex_stack START MAX); ignored, as keepalived does")
        elif int(stack[0]) > int(stack[1]):
            ld.warn(pos["regex_stack"], f"regex_stack start {stack[0]} exceeds max "
                    f"{stack[1]}; ignored, as keepalived does")
        else:
            f["regex_stack"] = (int(stack[0]), int(stack[1]))
    for name in f.get("regex_options", ()):
        if name not in OPTIONS:
            ld.warn(pos["regex_options"], f"unknown regex option '{name}' is ignored, as "
                    f"keepalived does (expected: {' '.join(OPTIONS)})")
    pattern = f.get("regex")
    if pattern is None:
        extra = [k for k in ("regex_options", "regex_no_match", "regex_min_offset",
                             "regex_max_offset", "regex_stack") if k in f]
        if extra:
            ld.warn(pos[extra[0]], "regex parameters without a regex are ignored, as "
                    "keepalived does (expected: regex PATTERN in this url)")
            for k in extra:
                del f[k]
        return
    lo, hi = f.get("regex_min_offset", 0), f.get("regex_max_offset")
    if hi is not None and lo > hi:
        ld.warn(pos["regex_min_offset"], f"regex_min_offset {lo} is beyond regex_max_offset "
                f"{hi}: both are ignored, as keepalived does")
        f.pop("regex_min_offset")
        f.pop("regex_max_offset")
    try:
        compile_regex(pattern, f.get("regex_options", ()), f.get("regex_stack"))
    except PcreError as exc:
        ld.error(pos["regex"], f"regex '{pattern}' does not compile: {exc.message} at offset "
                 f"{exc.offset} (PCRE2); keepalived would log 'Invalid regex' and check "
                 "this url without it")


_HTTP_ROWS = (
    TIMERS
    + CONN
    + """
url                 b  0    url           +urls
nb_get_retry        v  1    int:0,2147483647  retry
http_protocol       v  1    choice:1.0,1.0C,1.1 http_protocol
fast_recovery       f  0-1  flag          fast_recovery
virtualhost         v  1    str           virtualhost
enable_sni          f  0-1  flag          enable_sni
sni_name            v  1    str           sni_name
tls_compliant       f  0-1  flag          tls_compliant
"""
)
_URL = ChildBlock(
    """
path                v  1    str           path
digest              v  1    digest        digest
status_code         v  1+   status        status_code
virtualhost         v  1    str           virtualhost
regex               v  1+   regex         regex
regex_no_match      f  0-1  flag          regex_no_match
regex_options       v  1+   any           +regex_options
regex_stack         v  1+   any           regex_stack
regex_min_offset    v  1    int:0,2147483647 regex_min_offset
regex_max_offset    v  1    int:0,2147483647 regex_max_offset
""",
    _url,
    _check_url,
)
_NO_URL = ("urls", "url block (expected: url { path /PATH [digest MD5] [status_code 200-299] })")


def _ssl_extras(config: Config, rs: RealServer, spec: Checker) -> dict[str, Any]:
    return {"ssl_conf": config.ssl}  # the top-level SSL {} block, for SSL_GET


_HTTP: dict[str, Any] = {
    "defaults": {"delay_before_retry_us": 3 * US_PER_S},
    "required": (_NO_URL,),
    "extras": _ssl_extras,
    "children": {"url": _URL},
}
k.register(CheckerKind("HTTP_GET", HttpGetCheck, _HTTP_ROWS, "hafast.check.http:HttpGetKind",
                       **_HTTP))
k.register(CheckerKind("SSL_GET", SslGetCheck, _HTTP_ROWS, "hafast.check.http:SslGetKind",
                       **_HTTP))


@dataclass(frozen=True, slots=True)
class TcpCheck(ConnectChecker):
    pass


k.register(CheckerKind("TCP_CHECK", TcpCheck, TIMERS + CONN, "hafast.check.tcp:TcpKind"))


@dataclass(frozen=True, slots=True)
class PingCheck(ConnectChecker):
    pass


k.register(CheckerKind("PING_CHECK", PingCheck, TIMERS + CONN, "hafast.check.icmp:PingKind"))


@dataclass(frozen=True, slots=True)
class SmtpHost:
    connect_ip: str | None = None
    connect_port: int | None = None
    bindto: str | None = None
    bind_if: str | None = None
    bind_port: int | None = None
    fwmark: int | None = None
    # None: the SMTP_CHECK's.  keepalived 2.2.7 leaves such a host's connection_to at 0
    # (its conn_opts is zero-allocated and only UINT_MAX gets the default), an attempt
    # that times out at once; hafast does not copy that.
    connect_timeout_us: int | None = None


# keepalived 2.2.7 check_api.c: inside host {}, connect_timeout sets the host's own
# conn_opts (CHECKER_GET_CO()), the other timers the SMTP_CHECK itself
# (CHECKER_GET_CURRENT()), which every host's checker then copies.
_SMTP_HOST_LIFT = (
    "alpha", "retry", "delay_before_retry_us", "warmup_us", "delay_loop_us", "log_all_failures"
)


@dataclass(frozen=True, slots=True)
class SmtpCheck(ConnectChecker):
    helo_name: str | None = None  # None: keepalived uses the local host name
    hosts: tuple[SmtpHost, ...] = ()


k.register(
    CheckerKind(
        "SMTP_CHECK",
        SmtpCheck,
        TIMERS
        + CONN
        + """
helo_name           v  1    str           helo_name
host                b  0    smtp_host     +hosts
""",
        "hafast.check.smtp:SmtpKind",
        port=25,
        children={
            "smtp_host": ChildBlock(CONN + TIMERS, lambda f: SmtpHost(**f), lift=_SMTP_HOST_LIFT)
        },
    )
)


@dataclass(frozen=True, slots=True)
class DnsCheck(ConnectChecker):
    type: str = "SOA"
    name: str = "."

    def identity(self) -> tuple[object, ...]:
        return (*ConnectChecker.identity(self), self.type, self.name)


def _fix_dns(f: dict[str, Any], given: Mapping[str, Any]) -> None:
    # keepalived check_dns.c: delay_before_retry defaults to delay_loop
    if "delay_before_retry_us" not in given:
        f["delay_before_retry_us"] = f.get("delay_loop_us", 60 * US_PER_S)


k.register(
    CheckerKind(
        "DNS_CHECK",
        DnsCheck,
        TIMERS
        + CONN
        + """
type                v  1    choice:A,NS,CNAME,SOA,MX,TXT,AAAA type
name                v  1    str           name
""",
        "hafast.check.dns:DnsKind",
        defaults={"retry": 3},
        port=53,
        fixup=_fix_dns,
    )
)


@dataclass(frozen=True, slots=True)
class MiscCheck(Checker):
    misc_path: Script | None = None
    misc_timeout_us: int | None = None  # None: delay_loop
    misc_dynamic: bool = False
    user: Argv | None = None

    def identity(self) -> tuple[object, ...]:
        return (self.kind, self.misc_path)


k.register(
    CheckerKind(
        "MISC_CHECK",
        MiscCheck,
        k.without(TIMERS, "connect_timeout")
        + """
misc_path           v  1+   script         misc_path
misc_timeout        v  1    timer:0.001,86400 misc_timeout_us
misc_dynamic        f  0-1  flag          misc_dynamic
user                v  1-2  words         user
""",
        "hafast.check.misc:MiscKind",
        defaults={"retry": 0},
        required=(("misc_path", "misc_path (expected: misc_path SCRIPT [ARGS])"),),
        extras=lambda config, rs, spec: {"default_user": config.global_defs.script_user},
    )
)


@dataclass(frozen=True, slots=True)
class UdpCheck(ConnectChecker):
    payload: str | None = None  # hex
    require_reply: str | None = None  # hex, X wildcards; "" = any reply
    min_reply_length: int = 0
    max_reply_length: int = 255


k.register(
    CheckerKind(
        "UDP_CHECK",
        UdpCheck,
        TIMERS
        + CONN
        + """
payload             v  1    hex           payload
require_reply       v  0-1  str           require_reply
min_reply_length    v  1    int:0,65535   min_reply_length
max_reply_length    v  1    int:0,65535   max_reply_length
""",
        "hafast.check.udp:UdpKind",
    )
)


@dataclass(frozen=True, slots=True)
class FileCheck(Checker):
    track_file: str = ""
    weight: int = 1
    weight_reverse: bool = False

    def identity(self) -> tuple[object, ...]:
        return (self.kind, self.track_file)


def _fix_file(f: dict[str, Any], given: Mapping[str, Any]) -> None:
    w = f.get("weight")
    if type(w) is tuple:  # "weight W reverse"
        f["weight"], f["weight_reverse"] = w


def _file_extras(config: Config, rs: RealServer, spec: Checker) -> dict[str, Any]:
    files = {t.name: t.file for t in config.track_files}
    return {"path": files.get(getattr(spec, "track_file", ""), ""), "base_weight": rs.weight}


k.register(
    CheckerKind(
        "FILE_CHECK",
        FileCheck,
        """
track_file          v  1    str           track_file
weight              v  1-2  wref:-2147483647,2147483647 weight
""",
        "hafast.check.file:FileKind",
        required=(("track_file", "track_file (expected: track_file NAME)"),),
        fixup=_fix_file,
        extras=_file_extras,
    )
)


@dataclass(frozen=True, slots=True)
class BfdCheck(Checker):
    name: str = ""

    def identity(self) -> tuple[object, ...]:
        return (self.kind, self.name)


k.register(
    CheckerKind(
        "BFD_CHECK",
        BfdCheck,
        """
name                v  1    str           name
alpha               f  0-1  flag          alpha
""",
        None,  # no probe yet: the engine warns and leaves the real server unchecked
        required=(("name", "name (expected: name BFD_INSTANCE)"),),
    )
)


# --------------------------------------------------------------------------- LVS


@dataclass(frozen=True, slots=True)
class RealServer:
    address: str
    port: int | None = None
    weight: int = 1
    lvs_method: str = "NAT"  # inherited from the virtual server
    notify_up: Script | None = None
    notify_down: Script | None = None
    uthreshold: int = 0
    lthreshold: int = 0
    inhibit_on_failure: bool = False
    smtp_alert: bool | None = None  # None: unset (keepalived's -1), the global_defs decide
    alpha: bool = False
    virtualhost: str | None = None
    checkers: tuple[Checker, ...] = ()
    snmp_name: str | None = None  # the checker MIB's realServerName
    where: str = _where()

    @property
    def key(self) -> tuple[str, int | None]:
        return (self.address, self.port)


@dataclass(frozen=True, slots=True)
class VsgMember:
    """``IP [PORT]``, ``IP-LAST [PORT]`` (range end in ``last``) or ``fwmark N``."""

    address: str | None
    last: str | None
    port: int | None
    fwmark: int | None
    family: str | None


# ------------------------------------------------ hafast extensions: fleet mode (BGP)


@dataclass(frozen=True, slots=True)
class BgpNeighbor:
    """``neighbor ADDR { remote_as N; bfd }`` inside ``bgp_speaker`` (hafast.fleet)."""

    address: str
    remote_as: int
    bfd: bool = False
    where: str = _where()


@dataclass(frozen=True, slots=True)
class BgpSpeaker:
    """The ``bgp_speaker`` block: the director's own BGP speaker (FRR) that hafast
    configures.  Timers are whole seconds, as BGP carries them (RFC 4271 §4.2); the
    defaults (3/9) are a fleet's, not FRR's 60/180, which would take three minutes to
    notice a dead director without BFD."""

    daemon: str = "frr"
    local_as: int = 0
    router_id: str | None = None
    neighbors: tuple[BgpNeighbor, ...] = ()
    hold_time: int = 9
    keepalive: int = 3
    frr_pathspace: str | None = None  # FRR's -N NAME; None: the default instance
    frr_control: str = "none"  # none | reload | run (hafast.fleet.frrlife)
    frr_dir: str | None = None  # None: /etc/frr[/PATHSPACE]
    where: str = _where()


@dataclass(frozen=True, slots=True)
class Announce:
    """``announce { prefix VIP/32; announce_delay S }`` inside a virtual_server: the VIPs
    this director announces by BGP while the virtual server has its quorum."""

    prefix: str = ""  # the first prefix line, "A/32" or "A/128", normalised: the label
    prefixes: tuple[str, ...] = ()  # every prefix line, the first included, in order
    announce_delay_us: int = 0
    drain_method: str = "withdraw"  # withdraw | med N | prepend N | graceful_shutdown
    shutdown_drain_time_us: int = 0
    announce_hold_down_us: int = 0
    announce_max_changes_per_minute: int = 0  # 0: no cap
    communities: tuple[str, ...] = ()  # RFC 1997, normalised ("65000:100", "no-export")
    large_communities: tuple[str, ...] = ()  # RFC 8092, normalised ("65001:1:2")
    # the director's own checks (hafast.fleet.owncheck): all up, or the VIP is withdrawn
    track_script: tuple[TrackRef, ...] = ()
    track_file: tuple[TrackRef, ...] = ()
    track_interface: tuple[TrackRef, ...] = ()
    track_process: tuple[TrackRef, ...] = ()
    where: str = _where()


@dataclass(frozen=True, slots=True)
class VirtualServerGroup:
    name: str
    members: tuple[VsgMember, ...] = ()
    where: str = _where()


@dataclass(frozen=True, slots=True)
class VirtualServer:
    # identity: exactly one of (address, port), fwmark, group
    address: str | None = None
    port: int | None = None
    fwmark: int | None = None
    group: str | None = None
    protocol: str = "TCP"
    ip_family: str | None = None
    lvs_sched: str = "wlc"
    lvs_method: str = "NAT"
    persistence_engine: str | None = None
    persistence_timeout: int = 0  # seconds; 0: not persistent
    persistence_granularity: str | None = None
    delay_loop_us: int = 60 * US_PER_S
    alpha: bool = False
    omega: bool = False
    quorum: int = 1
    hysteresis: int = 0
    quorum_up: Script | None = None
    quorum_down: Script | None = None
    sorry_server: tuple[str, int | None] | None = None
    sorry_server_inhibit: bool = False
    sorry_server_lvs_method: str | None = None
    inhibit_on_failure: bool = False
    ha_suspend: bool = False
    virtualhost: str | None = None
    smtp_alert: bool | None = None  # None: unset (keepalived's -1), the global_defs decide
    ops: bool = False  # IP_VS_SVC_F_ONEPACKET (kept apart from the scheduler flags)
    # scheduler flags, canonical: a sorted subset of ("flag-1", "flag-2", "flag-3");
    # sh-fallback/mh-fallback are flag-1, sh-port/mh-port flag-2 (ip_vs_sh.c, ip_vs_mh.c)
    sched_flags: tuple[str, ...] = ()
    real_servers: tuple[RealServer, ...] = ()
    announce: Announce | None = None  # hafast extension (fleet mode)
    snmp_name: str | None = None  # the checker MIB's virtualServerName
    where: str = _where()

    @property
    def key(self) -> tuple[object, ...]:
        """Identity across a reload: address/port/protocol, fwmark, or group name."""
        if self.group is not None:
            return ("group", self.group, self.protocol)
        if self.fwmark is not None:
            return ("fwmark", self.fwmark, self.ip_family)
        return ("addr", self.address, self.port, self.protocol)

    @property
    def label(self) -> str:
        """How messages name it, after ``virtual_server``: ``ADDR PORT``,
        ``fwmark N`` or ``group NAME``."""
        if self.group is not None:
            return f"group {self.group}"
        if self.fwmark is not None:
            return f"fwmark {self.fwmark}"
        return f"{self.address} {self.port if self.port is not None else ''}".rstrip()


# --------------------------------------------------------------------------- the whole


@dataclass(frozen=True, slots=True)
class Config:
    global_defs: GlobalDefs = GlobalDefs()
    vrrp_scripts: tuple[VrrpScript, ...] = ()
    track_files: tuple[TrackFile, ...] = ()
    track_processes: tuple[TrackProcess, ...] = ()
    vrrp_instances: tuple[VrrpInstance, ...] = ()
    sync_groups: tuple[SyncGroup, ...] = ()
    track_groups: tuple[TrackGroup, ...] = ()
    interface_up_down_delays: tuple[UpDownDelay, ...] = ()
    static_ipaddress: tuple[VirtualAddress, ...] = ()
    static_routes: tuple[tuple[str, ...], ...] = ()
    static_rules: tuple[tuple[str, ...], ...] = ()
    garp_groups: tuple[GarpGroup, ...] = ()
    ssl: SslContext | None = None
    virtual_server_groups: tuple[VirtualServerGroup, ...] = ()
    virtual_servers: tuple[VirtualServer, ...] = ()
    # top-level net_namespace: the parent enters it at start (hafast.app.netns); a
    # reload cannot change it, as in keepalived
    net_namespace: str | None = None
    bgp_speaker: BgpSpeaker | None = None  # hafast extension (fleet mode)
