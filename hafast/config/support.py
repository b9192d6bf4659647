"""What hafast does with each keepalived keyword it accepts but does not honour.

The rule (issue 14): every keyword of keepalived's grammar either works as keepalived
documents it, or ``hafast -t`` says so.  A keyword listed here is diagnosed at its first
use in a configuration:

- ``warn``: leaving it out cannot change a failover, a check, a pool or an alert (DBus,
  process names, netlink buffer sizes): the config loads, with a warning;
- ``refuse``: it can (a tracker, a checker kind, a security control, an alert): the
  config is refused with an error, because running without it would differ from what
  the operator asked keepalived for.

Every other grammar row must have a run-time reader; ``tests/unit/config/
test_keyword_support.py`` walks the whole table and fails on a row with neither, and
``docs/compat.md`` (``python -m hafast.config.compat``) is generated from this table
and the grammar.

A keyword made to work: give its grammar row a field read at run time and delete its
line here.  Rows inside a block listed here (``bfd_instance``'s ``min_rx``...) need no
line of their own: the block's diagnostic covers them.
"""

# ruff: noqa: E501  (the table below keeps one keyword a line, reasons unwrapped)
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = Literal["warn", "refuse"]
UNSUPPORTED = "unsupported"  # the Diagnostic.code of every diagnostic from this table


@dataclass(frozen=True, slots=True)
class Gap:
    """A keyword hafast accepts without honouring it, and why that is (or is not) safe."""

    level: Level
    why: str

    @property
    def refuse(self) -> bool:
        return self.level == "refuse"

    def message(self, keyword: str) -> str:
        if self.refuse:
            return (f"'{keyword}' is not supported by hafast and would change what the "
                    f"config does: {self.why} (remove it to run without it)")
        return f"'{keyword}' has no effect in hafast: {self.why}"


# "CONTEXT KEYWORD LEVEL why"; CONTEXT "*" is every context the keyword appears in.
# The reason says what keepalived does with it, so the operator can judge.
_TABLE = """
top net_namespace_ipvs refuse keepalived manages IPVS in another namespace
top namespace_with_ipsets warn ipsets are not used by hafast
top instance warn only names keepalived's pid and dump files
top use_pid_dir warn only moves keepalived's pid files (hafast takes -p/-r/-c)
top child_wait_time warn keepalived's wait for its children at exit
* linkbeat_use_polling warn link state comes from netlink events; polling is for drivers without them
* include_check warn keepalived's check that included files exist in a namespace
top linkbeat_interfaces warn link state comes from netlink events; polling is for drivers without them
top bfd_instance refuse BFD sessions (RFC 5880) are not implemented
global_defs log_unknown_vrids warn only logs adverts for unknown VRIDs
global_defs vmac_addr_prefix warn names the VMAC interfaces of use_vmac_addr, which are not made
global_defs dynamic_interfaces warn keepalived waits for interfaces that do not exist yet; hafast reports them at start
global_defs disable_local_igmp warn IGMP reports for the VRRP group
global_defs use_symlink_paths warn how script paths are checked for security
global_defs set_supplementary_groups warn the script user's supplementary groups are not set
global_defs tmp_config_directory warn keepalived's temporary config copies
global_defs config_save_dir warn keepalived's saved config copies
global_defs reload_check_config warn keepalived's pre-reload check (run hafast -t)
global_defs reload_time_file warn keepalived's scheduled reload
global_defs reload_repeat warn keepalived's scheduled reload
global_defs reload_file warn keepalived's reload marker file
global_defs random_seed warn keepalived's random seed
global_defs umask warn the umask of keepalived's files (hafast takes --umask)
global_defs json_version warn the JSON dump's version
global_defs iproute_usr_dir warn where routing table names are read
global_defs iproute_etc_dir warn where routing table names are read
global_defs bfd_process_name warn process names
global_defs bfd_priority warn process scheduling
global_defs bfd_no_swap warn process memory locking
global_defs bfd_cpu_affinity warn process scheduling
global_defs bfd_rt_priority warn process scheduling
global_defs bfd_rlimit_rttime warn process scheduling
global_defs bfd_rlimit_rtime warn process scheduling
global_defs nftables_ipvs refuse keepalived's nftables marks for address-range virtual server groups
global_defs nftables_ipvs_priority refuse keepalived's nftables marks for address-range virtual server groups
global_defs nftables_ipvs_start_fwmark refuse keepalived's nftables marks for address-range virtual server groups
global_defs vrrp_ipsets warn keepalived 2.2.7 built without iptables (Debian's) does not know it either ('Unknown keyword'); the no_accept filter is an nftables table ('nftables')
global_defs vrrp_netlink_cmd_rcv_bufs warn netlink buffer sizes
global_defs vrrp_netlink_cmd_rcv_bufs_force warn netlink buffer sizes
global_defs vrrp_netlink_monitor_rcv_bufs warn netlink buffer sizes
global_defs vrrp_netlink_monitor_rcv_bufs_force warn netlink buffer sizes
global_defs lvs_netlink_cmd_rcv_bufs warn netlink buffer sizes
global_defs lvs_netlink_cmd_rcv_bufs_force warn netlink buffer sizes
global_defs lvs_netlink_monitor_rcv_bufs warn netlink buffer sizes
global_defs lvs_netlink_monitor_rcv_bufs_force warn netlink buffer sizes
global_defs process_monitor_rcv_bufs warn netlink buffer sizes
global_defs process_monitor_rcv_bufs_force warn netlink buffer sizes
global_defs snmp_vs_stats_update_interval warn the checker MIB reads the IPVS counters at most every 5 s, as keepalived 2.2.7 (this keepalived 2.3 setting is not read)
global_defs snmp_rs_stats_update_interval warn the checker MIB reads the IPVS counters at most every 5 s, as keepalived 2.2.7 (this keepalived 2.3 setting is not read)
global_defs enable_dbus warn DBus is not served
global_defs dbus_service_name warn DBus is not served
global_defs dbus_no_interface_name warn DBus is not served
* thread_timer_expired warn a keepalived debugging aid
vrrp_sync_group notify_deleted warn keepalived's "DELETED" notification at reload is not sent
* track_bfd refuse BFD sessions (RFC 5880) are not implemented
vrrp_instance vrf refuse binding the instance to a VRF
vrrp_instance debug warn a keepalived debugging aid
vrrp_instance use_vmac_addr warn no VMAC interface is made for the VIPs on another interface than the instance's: those move with that interface's own MAC (gratuitous ARPs still announce them)
vrrp_instance track_src_ip warn keepalived 2.2.7 never acts on it either (its check compares the address with the sockaddr's family and port bytes), so a missing mcast_src_ip/unicast_src_ip causes no FAULT there or here
vrrp_instance old_unicast_checksum refuse the pre-2.0 unicast checksum: peers that expect it drop hafast's adverts
vrrp_instance preempt warn preemption is the default already (nopreempt turns it off)
vrrp_instance auth_hmac refuse HMAC authentication of adverts is not implemented
real_server BFD_CHECK refuse BFD is not implemented: the real server would never be checked and would stay UP
HTTP_GET fast_recovery refuse the check's fast recovery after a failure
SSL_GET fast_recovery refuse the check's fast recovery after a failure
"""


def _parse(text: str) -> dict[tuple[str, str], Gap]:
    gaps: dict[tuple[str, str], Gap] = {}
    for raw in text.strip().splitlines():
        context, keyword, level, why = raw.split(None, 3)
        if level not in ("warn", "refuse"):
            raise AssertionError(f"support: {keyword}: level {level!r} is not warn|refuse")
        if (context, keyword) in gaps:
            raise AssertionError(f"support: {context} {keyword} listed twice")
        gaps[(context, keyword)] = Gap(level, why)  # type: ignore[arg-type]
    return gaps


GAPS: dict[tuple[str, str], Gap] = _parse(_TABLE)


def gap(context: str, keyword: str) -> Gap | None:
    """The diagnostic owed for ``keyword`` in ``context``, or None if it works."""
    return GAPS.get((context, keyword)) or GAPS.get(("*", keyword))


# Fields whose effect happens while the config is built (a global default folded into
# every instance, a rule checked at load), mapped to the field they feed or "" when the
# effect is the check itself.  The keyword-table test accepts these instead of a
# run-time reader, and checks that a fold's target has one.
CONFIG_EFFECTS: dict[str, str] = {
    "vrrp_version": "version",
    "vrrp_skip_check_adv_addr": "skip_check_adv_addr",
    "vrrp_check_unicast_src": "check_unicast_src",
    "vrrp_lower_prio_no_advert": "lower_prio_no_advert",
    "vrrp_higher_prio_send_advert": "higher_prio_send_advert",
    "vrrp_owner_ignore_adverts": "owner_ignore_adverts",
    "vrrp_down_timer_adverts": "down_timer_adverts",
    "vrrp_garp_master_delay_us": "garp_master_delay_us",
    "vrrp_garp_master_repeat": "garp_master_repeat",
    "vrrp_garp_lower_prio_delay_us": "garp_lower_prio_delay_us",
    "vrrp_garp_lower_prio_repeat": "garp_lower_prio_repeat",
    "vrrp_garp_master_refresh_us": "garp_master_refresh_us",
    "vrrp_garp_master_refresh_repeat": "garp_master_refresh_repeat",
    # folded into the global garp repeat/delay/refresh at load (config.garp)
    "vrrp_min_garp": "garp_master_repeat",
    "vrrp_strict": "strict_mode",
    "no_accept": "accept",  # accept_mode (config.model) decides from both
    "native_ipv6": "family",  # an instance without addresses speaks VRRP over IPv6
    "no_virtual_ipaddress": "",  # allows an instance without addresses (checked at load)
    "sync_group_tracking_weight": "",  # allows tracker weights in a sync group (at load)
    "enable_script_security": "",  # unsafe scripts are dropped at load (config.scriptcheck)
    # both resolve to one daemon (config.lvs_syncd.resolve) that hafast.lvs.syncd runs
    "lvs_sync_daemon": "syncid",
    "lvs_sync_daemon_interface": "syncid",
    # not a load-time effect: the checker MIB (hafast.status.snmp_check) serves it as
    # virtualServerName/realServerName, and the reader scan skips hafast/status whole
    # (its renderers print fields they do not act on)
    "snmp_name": "",
}
