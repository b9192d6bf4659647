"""The VRRP side of the loader: vrrp_instance, vrrp_sync_group and their trackers.

:class:`VrrpBuilder` turns the pending blocks the table walk (:mod:`hafast.config.walk`)
collected into model objects: the trackers (``vrrp_script``, ``track_file``,
``vrrp_track_process``), then each ``vrrp_instance`` with the ``global_defs`` defaults it
inherits, then the sync groups.  Here live the RFC 5798 / RFC 3768 rules a config must
follow (VRID per LAN, advert_int range, strict mode, Accept_Mode) and keepalived's
corrections, each reported as a diagnostic at the word it is about.

Example::

    >>> from hafast.config.loader import load_text
    >>> res = load_text("vrrp_instance V {\\n virtual_router_id 1\\n advert_int 1.5\\n"
    ...                 " virtual_ipaddress {\\n 10.0.0.1\\n }\\n}\\n", file="k.conf")
    >>> res.config.vrrp_instances[0].advert_int_us, [d.format() for d in res.diagnostics]
    (2000000, ['k.conf:3:2: warning: VRRPv2 advert_int must be whole seconds; using 2'])
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from hafast.config import model as m
from hafast.config.iproute import RouteRefused, parse_route
from hafast.config.iprule import RuleError, RuleRefused, number_rules, parse_rule
from hafast.config.model import accept_mode
from hafast.config.support import UNSUPPORTED
from hafast.config.tokens import Token
from hafast.config.vmac import parse_use_ipvlan, parse_use_vmac
from hafast.config.walk import Pending, Walker, as_tuples
from hafast.lib.units import US_PER_S

S = US_PER_S
_NOWHERE = Token("", "?", 0, 0)  # every list line has its own position; never used


def _delay_us(word: str) -> int | None:
    """keepalived's read_timer for up/down delays: 0 to 255 s, microseconds.

    >>> _delay_us("0.5"), _delay_us("256"), _delay_us("x")
    (500000, None, None)
    """
    try:
        s = float(word)
    except ValueError:
        return None
    return round(s * S) if 0 <= s <= 255 else None


def _split_weight(fields: dict[str, Any]) -> None:
    w = fields.get("weight")
    if type(w) is tuple:
        fields["weight"], fields["weight_reverse"] = w


def _split_where(where: str) -> tuple[str, str, int, int]:
    """``FILE:LINE:COL`` back into Token fields (for a warning about a built object)."""
    file, line, col = where.rsplit(":", 2)
    return ("", file, int(line), int(col))


def authentication(
    ld: Walker, f: dict[str, Any], pos: dict[str, Token], kw: Token
) -> m.Authentication:
    """The ``authentication`` block of a vrrp_instance, built when it closes."""
    pw = f.get("auth_pass", "")
    if "auth_pass" not in pos:
        ld.error(
            kw, "authentication needs 'auth_pass' (expected: auth_pass WORD, up to 8 characters)"
        )
    elif len(pw) > 8:
        # RFC 2338 §5.3.10: the authentication data field holds 8 octets
        ld.warn(pos["auth_pass"], "auth_pass longer than 8 characters; keepalived uses the first 8")
        f["auth_pass"] = pw[:8]
    return m.Authentication(**f)


class VrrpBuilder:
    """Builds the VRRP side of one load; its diagnostics go to the load's walker."""

    def __init__(self, ld: Walker) -> None:
        self.ld = ld
        self._script_seq: dict[str, int] = {}
        # rules without a preference, in reading order: (line, family, owner, words)
        self._rules: list[tuple[Token, int, str, tuple[str, ...]]] = []

    def config_fields(self, top: dict[str, Any], gd: m.GlobalDefs) -> dict[str, Any]:
        """The :class:`~hafast.config.model.Config` fields of the VRRP side, from the
        top level's pending blocks; trackers first, so that instances can name them."""
        scripts = self._named(top.get("vrrp_scripts", ()), self.vrrp_script, "vrrp_script")
        tfiles = self._named(top.get("track_files", ()), self.track_file, "track_file")
        tprocs = self._named(
            top.get("track_processes", ()), self.track_process, "vrrp_track_process"
        )
        names = {
            "script": {s.name for s in scripts},
            "file": {f.name for f in tfiles},
            "process": {p.name for p in tprocs},
        }
        self._script_seq = {p.args[0].text: p.seq for p in top.get("vrrp_scripts", ())}
        top["static_rules"] = self._checked_rules(top.get("static_rules", ()), None, "")
        top["static_routes"] = self._checked_routes(top.get("static_routes", ()),
                                                    "static_routes")
        tgroups = list(self._unique(top.get("track_groups", ()), "track_group"))
        self._check_track_group_refs(top, {p.args[0].text for p in tgroups})
        insts = self._number_rules(
            self.vrrp_instances(top.get("vrrp_instances", ()), gd, names), top)
        groups = self.sync_groups(top.get("sync_groups", ()), insts, scripts)
        return {
            "vrrp_scripts": scripts,
            "track_files": tfiles,
            "track_processes": tprocs,
            "vrrp_instances": insts,
            "sync_groups": groups,
            "track_groups": self.track_groups(tgroups, insts),
            "interface_up_down_delays": self.up_down_delays(
                top.get("interface_up_down_delays", ())),
        }

    def _named(self, pendings: Iterable[Pending], build: Any, what: str) -> tuple[Any, ...]:
        # Lazily: each duplicate's error comes out between the builds around it.
        return tuple(build(p, p.args[0].text) for p in self._unique(pendings, what))

    # ----------------------------------------------------------------- trackers
    def vrrp_script(self, p: Pending, name: str) -> m.VrrpScript:
        f = as_tuples(p.fields)
        _split_weight(f)
        if "script" not in f:
            self.ld.error(
                p.last, f"vrrp_script '{name}' has no 'script' (expected: script COMMAND [ARGS])"
            )
        f.setdefault("timeout_us", f.get("interval_us", S))
        return m.VrrpScript(name=name, where=p.kw.where(), **f)

    def track_file(self, p: Pending, name: str) -> m.TrackFile:
        f = as_tuples(p.fields)
        _split_weight(f)
        if "file" not in f:
            self.ld.error(p.last, f"track_file '{name}' has no 'file' (expected: file PATH)")
        return m.TrackFile(name=name, where=p.kw.where(), **f)

    def track_process(self, p: Pending, name: str) -> m.TrackProcess:
        f = as_tuples(p.fields)
        _split_weight(f)
        if "process" not in f:
            self.ld.error(
                p.last,
                f"vrrp_track_process '{name}' has no 'process' (expected: process NAME [ARGS])",
            )
        qmax = f.get("quorum_max")
        # keepalived: quorum_max 0 (down while any runs) takes quorum to 0 with it,
        # unless a quorum above 1 was asked for
        if qmax is not None and (qmax or f.get("quorum", 1) > 1) and qmax < f.get("quorum", 1):
            self.ld.error(
                p.pos["quorum_max"], f"quorum_max {qmax} is below quorum {f.get('quorum', 1)}"
            )
        return m.TrackProcess(name=name, where=p.kw.where(), **f)

    # ----------------------------------------------------------------- VRRP
    def vrrp_instances(
        self, pendings: Iterable[Pending], gd: m.GlobalDefs, names: dict[str, set[str]]
    ) -> tuple[m.VrrpInstance, ...]:
        out: list[m.VrrpInstance] = []
        seen: set[str] = set()
        vrids: dict[tuple[str, int, int], str] = {}
        for p in pendings:
            name = p.args[0].text
            if name in seen:
                self.ld.error(
                    p.args[0], f"vrrp_instance '{name}' is defined twice (names must be unique)"
                )
                continue
            seen.add(name)
            inst = self.vrrp_instance(p, name, gd, names)
            out.append(inst)
            if inst.virtual_router_id:
                key = (inst.interface or "", inst.family, inst.virtual_router_id)
                other = vrids.get(key)
                if other is not None:
                    # RFC 5798 §5.2.3: the VRID identifies the router on its LAN, per family
                    self.ld.error(
                        p.pos["virtual_router_id"],
                        f"virtual_router_id {inst.virtual_router_id} is already used by "
                        f"'{other}' on interface {inst.interface} (IPv{inst.family}); "
                        f"use a different VRID",
                    )
                else:
                    vrids[key] = name
        return tuple(out)

    def vrrp_instance(
        self, p: Pending, name: str, gd: m.GlobalDefs, names: dict[str, set[str]]
    ) -> m.VrrpInstance:
        f = as_tuples(p.fields)
        pos = p.pos
        if "virtual_router_id" not in pos:
            self.ld.error(
                p.kw,
                f"vrrp_instance '{name}': the virtual router id must be set "
                f"(expected: virtual_router_id <1..255>)",
            )
        f.setdefault("interface", gd.default_interface)
        vips = f.get("virtual_ipaddress", ())
        if (
            not vips
            and not f.get("no_virtual_ipaddress")
            and not f.get("strict_mode", gd.vrrp_strict)
        ):
            self.ld.warn(
                p.kw,
                f"vrrp_instance '{name}' has no virtual_ipaddress; at least one is "
                "sensible (or say no_virtual_ipaddress)",
            )
        for key in ("virtual_ipaddress", "virtual_ipaddress_excluded"):
            for v in f.get(key, ()):
                if v.track_group is not None:
                    # keepalived reads track_group on static addresses only
                    self.ld.warn(self.ld.at(v, pos[key]),
                                 "Unknown configuration entry 'track_group' for ip "
                                 "address - ignoring (track_group is for static_ipaddress)")
        fams = {v.family for v in vips}
        if len(fams) > 1:
            odd = next(v for v in vips if v.family != vips[0].family)
            self.ld.error(
                self.ld.at(odd, pos["virtual_ipaddress"]),
                f"vrrp_instance '{name}' mixes IPv4 and IPv6 in "
                "virtual_ipaddress; put the other family in virtual_ipaddress_excluded",
            )
        family = 6 if (6 in fams or f.pop("native_ipv6", False)) else 4
        f["family"] = family
        version = f.get("version", gd.vrrp_version)
        if family == 6 and version == 2:
            if "version" in f:
                self.ld.error(
                    pos["version"], "VRRP version 2 cannot carry IPv6 (RFC 5798 §1); use version 3"
                )
            version = 3
        f["version"] = version
        adv = f.get("advert_int_us", S)
        if version == 3:
            # RFC 5798 §5.2.7: 12-bit Max Adver Int in centiseconds, 0.01 .. 40.95 s
            if not 10_000 <= adv <= 40_950_000:
                self.ld.error(
                    pos["advert_int_us"],
                    f"advert_int {adv / S:g} outside 0.01..40.95 s for VRRPv3 "
                    "(expected: advert_int 0.01..40.95)",
                )
            elif adv % 10_000:
                self.ld.warn(
                    pos["advert_int_us"],
                    f"advert_int {adv / S:g} rounded to centiseconds for VRRPv3",
                )
                f["advert_int_us"] = round(adv / 10_000) * 10_000
        elif adv % S or adv == 0:
            # RFC 3768 §5.3.7: Adver Int is a whole number of seconds, 1..255
            rounded = max(S, round(adv / S) * S)
            if "advert_int_us" in pos:
                self.ld.warn(
                    pos["advert_int_us"],
                    f"VRRPv2 advert_int must be whole seconds; using {rounded // S}",
                )
            f["advert_int_us"] = rounded
        strict = bool(f.get("strict_mode", gd.vrrp_strict))
        f["strict_mode"] = strict
        if "priority" not in f and f.get("state") == "MASTER":
            # keepalived vrrp_complete_instance: an unset priority follows the state,
            # so `state MASTER` alone is the address owner (MASTER at once, 255).
            self.ld.warn(pos["state"], f"({name}) state MASTER without a priority makes "
                         "this instance the address owner (priority 255), as keepalived "
                         "does; say priority to choose another")
            f["priority"] = 255
        prio = f.get("priority", 100)
        if "no_accept" in f:
            f["accept"] = not f.pop("no_accept")
        # The model holds what the instance does, so `status` and the FSM read one value.
        f["accept"] = accept_mode(f.get("accept"), priority=prio, version=version,
                                  strict=strict)
        # keepalived 2.3.3 vrrp_complete_instance: only an address owner drops
        # adverts; unset, strict mode or global vrrp_owner_ignore_adverts decide.
        oia = f.get("owner_ignore_adverts")
        if oia and prio != 255:
            self.ld.warn(pos["owner_ignore_adverts"],
                         f"({name}) ignoring owner_ignore_adverts since priority is not 255")
            oia = False
        elif oia is None:
            oia = prio == 255 and (strict or gd.vrrp_owner_ignore_adverts)
        elif prio == 255 and strict and not oia:
            # keepalived says so and forces it even without strict mode (its test
            # lacks the strict_mode its message names); hafast follows the message.
            self.ld.warn(pos["owner_ignore_adverts"],
                         f"({name}) strict_mode with priority 255 requires owner_ignore_adverts")
            oia = True
        f["owner_ignore_adverts"] = oia
        if "timer_expired_backup" in f:
            # keepalived 2.3: no value is 254, the quickest takeover; it needs
            # nopreempt, which priority 255 and state MASTER clear (VrrpParams).
            f["timer_expired_backup"] = f["timer_expired_backup"] or 254
            if not (f.get("nopreempt") and prio != 255 and f.get("state") != "MASTER"):
                self.ld.warn(pos["timer_expired_backup"],
                             f"({name}) expired_timer_backup requires nopreempt - resetting")
                f["timer_expired_backup"] = 0
        if strict:
            if f.get("unicast_peer"):
                self.ld.error(
                    pos["unicast_peer"],
                    "unicast_peer cannot be used with vrrp_strict/strict_mode "
                    "(RFC 5798 §5.1.1.2 multicast only); remove one of them",
                )
            if "authentication" in f:
                self.ld.error(
                    pos["authentication"],
                    "authentication cannot be used with vrrp_strict/strict_mode "
                    "(RFC 3768 removed it); remove one of them",
                )
            if not vips:
                self.ld.error(
                    p.kw,
                    f"vrrp_instance '{name}': strict mode needs at least one virtual_ipaddress",
                )
            if f.get("state") == "MASTER" and prio != 255:
                self.ld.warn(
                    pos["state"], "strict mode: state MASTER needs priority 255; starting as BACKUP"
                )
                f["state"] = "BACKUP"
        if prio == 255 and "state" not in f:
            # keepalived vrrp_complete_instance: an unset state follows the priority,
            # so the owner wants MASTER and vrrp_init_state makes it master at once.
            f["state"] = "MASTER"
        elif prio == 255 and f["state"] == "BACKUP":
            if strict:
                self.ld.warn(pos["state"], f"({name}) State MASTER must match being address "
                             "owner; starting as MASTER")
                f["state"] = "MASTER"
            else:
                # keepalived 2.2.7 says nothing; the owner waiting is a surprise worth a line.
                self.ld.warn(pos["state"], f"({name}) the address owner (priority 255) with "
                             "state BACKUP starts as BACKUP and takes over after its "
                             "Master_Down_Interval (3 adverts plus the skew), as keepalived "
                             "does; leave state out to become MASTER at once")
        auth = f.get("authentication")
        if auth is not None:
            if version == 3:
                self.ld.error(
                    pos["authentication"],
                    "authentication is not part of VRRPv3 (RFC 5798 §9); remove it",
                )
            elif auth.auth_type == "AH" and f.get("state") == "MASTER" and prio != 255:
                # keepalived (vrrp.c) clears an initial MASTER under AH: the AH sequence
                # numbers must be learnt from the current master first. The address owner
                # is exempt (keepalived 2.2.7 -t says nothing for priority 255, with or
                # without 'state MASTER'), and its state may come from the priority alone.
                self.ld.warn(
                    pos["state"],
                    f"({name}) Initial state master is incompatible with AH authentication"
                    " - clearing (starting as BACKUP; say state BACKUP)",
                )
                f["state"] = "BACKUP"
        peers = f.get("unicast_peer", ())
        for peer in peers:
            if (6 if ":" in peer.address else 4) != family:
                self.ld.error(
                    self.ld.at(peer, pos["unicast_peer"]),
                    f"unicast_peer {peer.address} is not IPv{family} like the instance "
                    f"(expected: an IPv{family} peer address)",
                )
            if peer.min_ttl > peer.max_ttl:
                self.ld.warn(
                    self.ld.at(peer, pos["unicast_peer"]),
                    f"({name}) min_ttl {peer.min_ttl} > max_ttl {peer.max_ttl} - all packets "
                    f"from {peer.address} will be discarded",
                )
        if not peers:
            # keepalived 2.2.7 (vrrp_parser.c, vrrp.c vrrp_complete_instance): these
            # speak of unicast mode, which needs a peer; the instance stays multicast.
            if "unicast_ttl" in pos:
                self.ld.warn(
                    pos["unicast_ttl"],
                    f"({name}): Cannot use unicast_ttl without unicast peers - ignored "
                    "(adverts go to the multicast group with TTL 255)",
                )
            no_peer = f.get("unicast_fault_no_peer", False)
            if no_peer:
                # keepalived logs it and counts a config fault (vrrp/from_config.py)
                self.ld.warn(pos["unicast_fault_no_peer"], f"({name}) Cannot use unicast "
                             "without any peers - going to fault state")
            for k in ("check_unicast_src", "unicast_src_ip"):
                if k in pos and not no_peer:
                    self.ld.warn(
                        pos[k],
                        f"({name}) A unicast keyword ({k}) has been specified without any "
                        "unicast peers. Defaulting to multicast.",
                    )
                    break
        if "use_vmac" in pos:
            # keepalived 2.2.7 (vrrp_parser.c vrrp_vmac_handler, vrrp.c): the words it
            # ignores, and unicast, whose adverts must leave by the parent.
            vmac_words = f.get("use_vmac") or ()
            for why in parse_use_vmac(vmac_words, f.get("virtual_router_id", 0))[2]:
                self.ld.warn(pos["use_vmac"], why)
            if peers and not f.get("vmac_xmit_base"):
                self.ld.warn(pos["use_vmac"], f"({name}) unicast with use_vmac requires "
                             "vmac_xmit_base - setting")
        if "use_ipvlan" in pos:
            self._ipvlan_said(name, f, pos["use_ipvlan"], family, bool(peers), "use_vmac" in pos)
        for k, gk in (
            ("garp_master_delay_us", gd.vrrp_garp_master_delay_us),
            ("garp_master_repeat", gd.vrrp_garp_master_repeat),
            ("garp_master_refresh_us", gd.vrrp_garp_master_refresh_us),
            ("garp_master_refresh_repeat", gd.vrrp_garp_master_refresh_repeat),
            ("down_timer_adverts", gd.vrrp_down_timer_adverts),
            # folded here (not only in vrrp.build) so a reload that changes the global
            # value changes the instance, and the running one takes it
            ("garp_extra_if", gd.vrrp_garp_extra_if),
        ):
            f.setdefault(k, gk)
        # keepalived 2.2.7 (global_data.c): an unset vrrp_garp_lower_prio_* takes the
        # GLOBAL vrrp_garp_master_* value, and an instance without its own takes that;
        # an instance's garp_master_delay/_repeat do not carry over
        f.setdefault(
            "garp_lower_prio_delay_us",
            gd.vrrp_garp_lower_prio_delay_us
            if gd.vrrp_garp_lower_prio_delay_us is not None
            else gd.vrrp_garp_master_delay_us,
        )
        f.setdefault(
            "garp_lower_prio_repeat",
            gd.vrrp_garp_lower_prio_repeat
            if gd.vrrp_garp_lower_prio_repeat is not None
            else gd.vrrp_garp_master_repeat,
        )
        for k, gflag in (
            ("v3_checksum_as_v2", gd.v3_checksum_as_v2),
            ("skip_check_adv_addr", gd.vrrp_skip_check_adv_addr),
            ("check_unicast_src", gd.vrrp_check_unicast_src),
            ("lower_prio_no_advert", gd.vrrp_lower_prio_no_advert),
            ("higher_prio_send_advert", gd.vrrp_higher_prio_send_advert),
        ):
            if gflag:
                f.setdefault(k, True)
        if "nopreempt" in f and f.get("state") == "MASTER" and "state" in pos:
            self.ld.warn(
                pos["nopreempt"],
                "nopreempt needs state BACKUP; keepalived ignores state MASTER here",
            )
        self._drop_late_scripts(p, name, f)
        if "virtual_routes" in f:
            f["virtual_routes"] = self._checked_routes(f["virtual_routes"], "virtual_routes")
        if "virtual_rules" in f:
            f["virtual_rules"] = self._checked_rules(f["virtual_rules"], pos["virtual_rules"],
                                                     name)
        own = f.get("interface")
        tifs = f.get("track_interface", ())
        if own and any(t.name == own for t in tifs):
            for t in tifs:
                if t.name == own:
                    # the instance already goes to FAULT when its own interface is down
                    self.ld.warn(
                        self.ld.at(t, pos["track_interface"]),
                        f"({name}) Ignoring track_interface {own} since own interface "
                        "(remove it from track_interface)",
                    )
            f["track_interface"] = tuple(t for t in tifs if t.name != own)
        for k, kind in (
            ("track_script", "script"),
            ("track_file", "file"),
            ("track_process", "process"),
        ):
            for ref in f.get(k, ()):
                if ref.name not in names[kind]:
                    self.ld.warn(
                        self.ld.at(ref, pos[k]),
                        f"{k} '{ref.name}' is not defined (define it with "
                        f"{'vrrp_script' if kind == 'script' else 'vrrp_track_' + kind} "
                        f"{ref.name} {{ ... }}); ignored",
                    )
        return m.VrrpInstance(name=name, where=p.kw.where(), **f)

    def _ipvlan_said(self, name: str, f: dict[str, Any], at: Token, family: int,
                     unicast: bool, vmac: bool) -> None:
        """What keepalived 2.2.7 says of ``use_ipvlan`` (vrrp_parser.c
        vrrp_ipvlan_handler and vrrp_end_handler, then vrrp.c vrrp_complete_instance),
        in its order; the FAULT it announces is vrrp/from_config.py config_faults."""
        _n, addr, _flags, said = parse_use_ipvlan(f.get("use_ipvlan") or (), name)
        if addr is not None and (6 if ":" in addr else 4) != family:
            # The VIPs set the family first (keepalived: when they come first).
            said.append(f"({name}) ipvlan address[{addr}] MUST match vrrp instance family "
                        "!!! Skipping...")
            addr = None
        if unicast and not vmac and not f.get("vmac_xmit_base"):
            said.append(f"({name}) unicast with use_vmac requires vmac_xmit_base - setting")
        if f.pop("promote_secondaries", False):
            # keepalived clears it, and sets it only on a macvlan, never on an ipvlan.
            said.append(f"({name}) promote_secondaries is automatically set for vmacs - "
                        "ignoring")
        if family == 4 and addr is None:
            said.append(f"({name}) IPv4 ipvlan requires a source ip address to be "
                        "configured. setting instance to fault state")
        if not vmac and (unicast or f.get("vmac_xmit_base")):
            said.append(f"({name}) vmac_xmit_base is only valid with a vmac")
            f["vmac_xmit_base"] = False
        for why in said:
            self.ld.warn(at, why)

    def _drop_late_scripts(self, p: Pending, name: str, f: dict[str, Any]) -> None:
        """keepalived 2.2.7 looks a tracked script up when it reads the track_script
        line, so a vrrp_script defined further down is not tracked: the failover would
        differ from keepalived's if we tracked it, so we drop it as keepalived does."""
        refs = f.get("track_script")
        if not refs:
            return
        kept = []
        for ref in refs:
            seq = self._script_seq.get(ref.name)
            if seq is not None and seq > p.seq:
                self.ld.warn(
                    self.ld.at(ref, p.pos["track_script"]),
                    f"({name}) track script {ref.name} not found, ignoring... (keepalived "
                    "reads a vrrp_script only if it is defined before the instance "
                    "tracking it; move it above)",
                )
            else:
                kept.append(ref)
        f["track_script"] = tuple(kept)

    # ----------------------------------------------------------------- routes, rules
    def _checked_routes(self, lines: Iterable[tuple[str, ...]], what: str
                        ) -> tuple[tuple[str, ...], ...]:
        """Route lines hafast installs; any other is an error at its line (else the VRRP
        worker would meet it only when building the instance)."""
        out = []
        for words in lines:
            try:
                parse_route(words, static=what == "static_routes")
            except RouteRefused as exc:
                self.ld.error(self.ld.at(words, _NOWHERE), f"{what}: {exc}")
                continue
            except ValueError as exc:
                self.ld.error(
                    self.ld.at(words, _NOWHERE),
                    f"{what}: '{' '.join(words)}' is not supported by hafast: {exc} "
                    "(hafast installs: [blackhole|unreachable|prohibit] DST [via|gw GW] "
                    "[dev IF] [src IP] [table N] [metric N] [scope S] [no_track])",
                    UNSUPPORTED)
                continue
            out.append(words)
        return tuple(out)

    def _check_track_group_refs(self, top: dict[str, Any], known: set[str]) -> None:
        """A static route or rule naming a track_group nobody defined: keepalived says
        "track_group NAME not found" and installs it untracked; refused here."""
        for key, parse in (("static_routes", lambda w: parse_route(w, static=True)),
                           ("static_rules", lambda w: parse_rule(w, static=True)[0]),
                           ("static_ipaddress", lambda v: v)):
            for words in top.get(key, ()):
                name = parse(words).track_group
                if name is not None and name not in known:
                    self.ld.error(self.ld.at(words, _NOWHERE),
                                  f"{key}: track_group {name} not found (define "
                                  f"'track_group {name} {{ group {{ INSTANCE ... }} }}')")

    def up_down_delays(self, lines: Iterable[tuple[str, ...]]) -> tuple[m.UpDownDelay, ...]:
        """``IF DOWN [UP]`` lines as keepalived 2.2.7 reads them (alloc_if_up_down_delay):
        seconds up to 255 with microseconds; a line it cannot read is skipped with its
        message, a later line for the same interface replaces an earlier one."""
        out: dict[str, m.UpDownDelay] = {}
        for words in lines:
            at = self.ld.at(words, _NOWHERE)
            name = words[0]
            if len(words) < 2:
                self.ld.warn(at, f"No timeouts specified for {name} up/down delays; "
                             "line ignored, as keepalived does")
                continue
            if len(words) > 3:
                self.ld.warn(at, f"Too many parameters for {name} up/down delays "
                             f"(keepalived reads IF DOWN_DELAY [UP_DELAY]; "
                             f"'{' '.join(words[3:])}' ignored)")
            delays = []
            for what, word in zip(("down", "up"), words[1:3], strict=False):
                us = _delay_us(word)
                if us is None:
                    self.ld.warn(at, f"Invalid {what} delay {word} for {name} (expected "
                                 "seconds, 0 to 255); line ignored, as keepalived does")
                    break
                delays.append(us)
            else:
                out[name] = m.UpDownDelay(name, *delays)
        return tuple(out.values())

    def track_groups(self, pendings: Iterable[Pending], insts: Sequence[m.VrrpInstance]
                     ) -> tuple[m.TrackGroup, ...]:
        """keepalived's static_track_group_set: members that are not instances are
        dropped with its message; a group left empty tracks nothing."""
        known = {i.name for i in insts}
        out = []
        for p in pendings:
            name = p.args[0].text
            members = tuple(p.fields.get("group", ()))
            for vi in members:
                if vi not in known:
                    self.ld.warn(p.pos.get("group", p.kw),
                                 f"vrrp instance {vi} specified in track group {name} "
                                 "doesn't exist - ignoring")
            kept = tuple(vi for vi in members if vi in known)
            if not kept:
                self.ld.warn(p.last, f"Static track group {name} has no VRRP instance(s)")
            out.append(m.TrackGroup(name=name, group=kept, where=p.kw.where()))
        return tuple(out)

    def _checked_rules(self, lines: Iterable[tuple[str, ...]], fallback: Token | None,
                       owner: str) -> tuple[tuple[str, ...], ...]:
        """virtual_rules (``owner`` the instance) or static_rules (``owner`` ""): a line
        keepalived skips is skipped with its reason as a warning, one it would install
        differently is an error (:mod:`hafast.config.iprule`), and each rule without a
        preference is remembered for :meth:`_number_rules`."""
        what = "virtual_rules" if owner else "static_rules"
        out = []
        for words in lines:
            at = self.ld.at(words, fallback or _NOWHERE)
            try:
                rule, notes = parse_rule(words, static=not owner)
            except RuleRefused as exc:
                self.ld.error(at, f"{what}: {exc}")
                continue
            except RuleError as exc:
                self.ld.warn(at, f"{what}: {exc}; rule ignored, as keepalived does")
                continue
            for note in notes:
                self.ld.warn(at, f"{what}: {note}")
            if rule.priority is None:
                self._rules.append((at, rule.family, owner, words))
            out.append(words)
        return tuple(out)

    def _number_rules(self, insts: tuple[m.VrrpInstance, ...], top: dict[str, Any]
                      ) -> tuple[m.VrrpInstance, ...]:
        """Give each rule written without a preference keepalived's number for it
        (:func:`hafast.config.iprule.number_rules`: down from 16384 per family, in the
        order the config is read), written into its line as ``preference N``, with
        keepalived's warning.  A rule's place in the kernel's list must not depend on
        which instance became master first.  The reading order is the files' (in the
        order they first hold a rule) and the lines' within a file."""
        if not self._rules:
            return insts
        files: dict[str, int] = {}
        for at, *_ in self._rules:
            files.setdefault(at.file, len(files))
        order = sorted(self._rules, key=lambda r: (files[r[0].file], r[0].line, r[0].col))
        numbered: dict[tuple[str, int], tuple[str, ...]] = {}  # (owner, id(line)) -> line
        for (at, _fam, owner, words), prio in zip(
                order, number_rules([r[1] for r in order]), strict=True):
            self.ld.warn(at, f"Rule has no preference specified - setting to {prio}. This is "
                         "probably not what you want (give it a preference)")
            numbered[(owner, id(words))] = (*words, "preference", str(prio))

        def renumber(owner: str, lines: Iterable[tuple[str, ...]]) -> tuple[tuple[str, ...], ...]:
            return tuple(numbered.get((owner, id(w)), w) for w in lines)

        top["static_rules"] = renumber("", top["static_rules"])
        return tuple(replace(i, virtual_rules=renumber(i.name, i.virtual_rules))
                     if i.virtual_rules else i for i in insts)

    def sync_groups(
        self,
        pendings: Iterable[Pending],
        insts: Sequence[m.VrrpInstance],
        scripts: Sequence[m.VrrpScript] = (),
    ) -> tuple[m.SyncGroup, ...]:
        known = {i.name for i in insts}
        member_of: dict[str, str] = {}
        out: list[m.SyncGroup] = []
        # Every duplicate group's error first, then the groups (the order -t prints).
        for p in list(self._unique(pendings, "vrrp_sync_group")):
            name = p.args[0].text
            f = p.fields
            group = f.get("group", ())
            for vi in group:
                if vi not in known:
                    self.ld.warn(
                        p.pos["group"],
                        f"vrrp_sync_group '{name}': instance '{vi}' is not defined; ignored",
                    )
                elif vi in member_of:
                    self.ld.error(
                        p.pos["group"],
                        f"instance '{vi}' is already in sync group '{member_of[vi]}'; "
                        "an instance may be in one group only",
                    )
                else:
                    member_of[vi] = name
            if not group:
                self.ld.error(
                    p.kw,
                    f"vrrp_sync_group '{name}' has no members (expected: group {{ INSTANCE ... }})",
                )
            elif len(group) == 1:
                self.ld.warn(
                    p.kw,
                    f"vrrp_sync_group '{name}' has only 1 instance; a sync group "
                    "keeps several instances in step (add the others to group)",
                )
            out.append(m.SyncGroup(name=name, where=p.kw.where(), **as_tuples(f)))
        self._sync_group_weights(out, insts, scripts)
        return tuple(out)

    def _sync_group_weights(
        self,
        groups: Sequence[m.SyncGroup],
        insts: Sequence[m.VrrpInstance],
        scripts: Sequence[m.VrrpScript],
    ) -> None:
        """keepalived ignores tracker weights of instances in a sync group unless the group
        says sync_group_tracking_weight (a weight would let members disagree on state)."""
        weights = {s.name: s.weight for s in scripts}
        by_name = {i.name: i for i in insts}
        for g in groups:
            if g.sync_group_tracking_weight:
                continue
            for vi in g.group:
                inst = by_name.get(vi)
                if inst is None:
                    continue
                for ref in inst.track_script:
                    w = ref.weight if ref.weight is not None else weights.get(ref.name, 0)
                    if w:
                        self.ld.warn(
                            Token(*_split_where(inst.where)),
                            f"vrrp_instance '{vi}': the weight of tracked script '{ref.name}' "
                            f"is ignored in sync group '{g.name}' (set sync_group_tracking_"
                            "weight in the group to use it)",
                        )

    def _unique(self, pendings: Iterable[Pending], what: str) -> Iterator[Pending]:
        """``pendings`` with each name's first definition only; a later one is an error."""
        seen: set[str] = set()
        for p in pendings:
            name = p.args[0].text
            if name in seen:
                self.ld.error(p.args[0], f"{what} '{name}' is defined twice (names must be unique)")
                continue
            seen.add(name)
            yield p

