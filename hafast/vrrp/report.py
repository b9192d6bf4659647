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


def instance_json(inst: Any, cfg: m.VrrpInstance | None,
                  sockets: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """One instance in keepalived's JSON shape: ``{"data": {...}, "stats": {...}}``,
    plus hafast's ``rejects`` (every reason this instance dropped an advert for,
    keepalived-named or not), ``faults`` (what holds it in FAULT) and ``socket``: the
    view of the socket it receives on (drops by reason, kernel drops;
    :meth:`hafast.vrrp.transport.VrrpSocket.view`) from ``sockets``.  The parent passes
    each instance on as it is, so the socket's counters travel with its instances (the
    dumps and /metrics take each socket once).
    """
    p = inst.spec.params
    s = inst.machine.state
    word = state_word(s.state)
    last = inst.transitions[-1][0] / 1e6 if inst.transitions else 0.0
    data: dict[str, Any] = {
        "iname": inst.name,
        "ifp_ifname": inst.spec.ifname,
        "vrid": cfg.virtual_router_id if cfg is not None else 0,
        "version": p.version,
        "base_priority": s.base_priority,
        "effective_priority": s.priority,
        "state": KA_STATES.get(word, 0),
        "wantstate": KA_STATES.get(word, 0),
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
                           "rejects": dict(inst.rejects),
                           # why it is in FAULT: "interface:eth1", "script:chk",
                           # "process:haproxy", "sync:G" (keepalived only logs it)
                           "faults": sorted(getattr(s, "faults", ()))}
    sock = getattr(getattr(inst, "sender", None), "sock", None)
    if sockets is not None and sock is not None and sock.name in sockets:
        out["socket"] = sockets[sock.name]
    return out
