"""One VRRP instance in keepalived's JSON shape (vrrp_json.c), for the dumps,
`hafast status` and /metrics.
"""

from __future__ import annotations

import logging
from typing import Any

from hafast.config import model as m

log = logging.getLogger("hafast")


def state_word(state: Any) -> str:
    from hafast.vrrp.instance import STATE_WORDS

    word = STATE_WORDS.get(state)
    return "INIT" if word in (None, "STOP") else str(word)


# keepalived's vrrp_json.c state numbers.
KA_STATES = {"INIT": 0, "BACKUP": 1, "MASTER": 2, "FAULT": 3}


def _auth_type(inst: Any, cfg: m.VrrpInstance) -> int:
    """keepalived's ``auth_type`` number (vrrp_json.c: 0 none, 1 PASS, 2 AH) of what
    the instance speaks: its channel's, so VRRPv3 (RFC 5798 has no authentication)
    and AH over IPv6 say 0, as keepalived does after its own fix-ups."""
    from hafast.vrrp.from_config import channel_for

    wire = getattr(getattr(inst, "sender", None), "cfg", None)
    if wire is None:
        wire = channel_for(cfg, m.GlobalDefs())
    return int(wire.auth_type)


def _wall_time(inst: Any, at_us: int) -> float:
    """A transition's time on the wall clock (keepalived's ``last_transition`` is a
    gettimeofday value); the instance keeps CLOCK_MONOTONIC µs."""
    import time

    timers = getattr(inst, "timers", None)
    now_us = timers.now_us() if timers is not None else at_us
    return round(time.time() - (now_us - at_us) / 1e6, 6)


def _ntop(packed: Any) -> str | None:
    import ipaddress

    if isinstance(packed, int):
        return str(ipaddress.IPv4Address(packed)) if packed else None
    if isinstance(packed, (bytes, bytearray)) and len(packed) in (4, 16):
        return str(ipaddress.ip_address(bytes(packed)))
    return None


def _dump_extras(inst: Any, s: Any, word: str, own_faults: list[str]) -> dict[str, Any]:
    """What keepalived's SIGUSR1 data file shows beside the JSON fields
    (hafast.status.dump.data_text reads these; the JSON dump does not)."""
    from hafast.vrrp.timers import master_down_interval_us

    p = inst.spec.params
    wire = getattr(getattr(inst, "sender", None), "cfg", None)
    vsock = getattr(getattr(inst, "sender", None), "sock", None)
    try:
        fd = vsock.sock.fileno() if vsock is not None else -1
    except (AttributeError, OSError):
        fd = -1
    return {
        "fd": fd,
        "ifindex": getattr(vsock, "ifindex", 0),
        "master_router": _ntop(getattr(s, "master_src", None)) if word == "BACKUP" else None,
        "master_heard": _ntop(getattr(inst, "master_heard", None)),
        # RFC 6527 vrrpv3StatisticsProtoErrReason (keepalived's stats->proto_err_reason)
        "proto_err_reason": getattr(inst, "proto_err_reason", 0),
        "own_faults": len(own_faults),
        "src_ip": _ntop(wire.src) if wire is not None else None,
        "group": _ntop(wire.group) if wire is not None and not wire.unicast else None,
        "master_down_us": master_down_interval_us(
            p.version, s.priority, getattr(s, "master_adver_int_us", p.adver_int_us),
            getattr(p, "down_timer_adverts_effective", 3)),
    }


def instance_json(inst: Any, cfg: m.VrrpInstance | None,
                  sockets: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """One instance in keepalived's JSON shape: ``{"data": {...}, "stats": {...}}``,
    plus ``ka`` (what keepalived's data file shows beside the JSON fields: the master
    heard, the source address, the group, the master down timer...), hafast's
    ``rejects`` (every reason this instance dropped an advert for,
    keepalived-named or not), ``faults`` (what holds it in FAULT) and ``socket``: the
    view of the socket it receives on (drops by reason, kernel drops;
    :meth:`hafast.vrrp.transport.VrrpSocket.view`) from ``sockets``.  The parent passes
    each instance on as it is, so the socket's counters travel with its instances (the
    dumps and /metrics take each socket once).
    """
    p = inst.spec.params
    s = inst.machine.state
    word = state_word(s.state)
    last = _wall_time(inst, inst.transitions[-1][0]) if inst.transitions else 0.0
    own_faults = sorted(f for f in getattr(s, "faults", ()) if not f.startswith("sync:"))
    # keepalived's wantstate: where the instance would be on its own; a member held
    # in FAULT only by its sync group wants BACKUP (vrrp_sync.c).
    want = "BACKUP" if word == "FAULT" and not own_faults else word
    data: dict[str, Any] = {
        "iname": inst.name,
        "ifp_ifname": inst.spec.ifname,
        "vrid": cfg.virtual_router_id if cfg is not None else 0,
        "version": p.version,
        "base_priority": s.base_priority,
        "effective_priority": s.priority,
        "state": KA_STATES.get(word, 0),
        "wantstate": KA_STATES.get(want, 0),
        "master_priority": getattr(s, "master_priority", 0) if word == "BACKUP" else 0,
        "vipset": word == "MASTER",
        "adver_int": p.adver_int_us / 1e6,
        "master_adver_int": getattr(s, "master_adver_int_us", p.adver_int_us) / 1e6,
        # What the instance does (the same value as the model's VrrpInstance.accept).
        "accept": int(p.accept_effective),
        "nopreempt": int(p.nopreempt),
        "preempt_delay": p.preempt_delay_us / 1e6,
        "strict_mode": int(p.strict),
        "garp_delay": p.garp_master_delay_us / 1e6,
        "lower_prio_no_advert": int(p.lower_prio_no_advert),
        "higher_prio_send_advert": int(p.higher_prio_send_advert),
        "last_transition": last,
        "vips": [f"{v.address}/{v.prefix}" if getattr(v, "prefix", None) is not None
                 else v.address for v in inst.spec.vips],
        "evips": [v.address for v in inst.spec.excluded],
        "state_name": word,
    }
    if cfg is not None:
        data["auth_type"] = _auth_type(inst, cfg)
        data["track_script"] = [t.name for t in cfg.track_script]
    out: dict[str, Any] = {"data": data, "stats": dict(inst.counters),
                           "ka": _dump_extras(inst, s, word, own_faults),
                           "rejects": dict(inst.rejects),
                           # why it is in FAULT: "interface:eth1", "script:chk",
                           # "process:haproxy", "sync:G" (keepalived only logs it)
                           "faults": sorted(getattr(s, "faults", ()))}
    sock = getattr(getattr(inst, "sender", None), "sock", None)
    if sockets is not None and sock is not None and sock.name in sockets:
        out["socket"] = sockets[sock.name]
    return out
