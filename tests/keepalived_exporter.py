"""The keepalived dump files read the way keepalived_exporter reads them.

A transcription of github.com/mehdy/keepalived-exporter's parsers
(internal/collector/parser.go: ParseVRRPData, ParseVRRPScript, ParseStats, ParseJSON
into the Go structs of its collector), keeping what makes it fail: a stats line
whose value is not an integer aborts the whole file (strconv.Atoi), an unknown
``State`` word aborts the data file, and Go's encoding/json refuses a JSON number
with a fraction (``1.0`` too) for an ``int`` field and anything but true/false for a
``bool``.  Stricter in one place: a VIP line the exporter cannot split (it logs
that and drops the VIP) is an error here.  Used by the unit and netns dump tests
to show hafast's files give the exporter what keepalived 2.2.7's give it.

Example::

    >>> parse_stats("VRRP Instance: VI_1\\n  Became master: 2\\n")
    {'VI_1': {'become_master': 2}}
"""

from __future__ import annotations

import json
from typing import Any

VRRP_STATES = ("INIT", "BACKUP", "MASTER", "FAULT")

# The exporter's Data struct: JSON name -> Go type (the fields it declares; others
# are ignored by encoding/json).
JSON_DATA = {
    "iname": str, "dont_track_primary": int, "skip_check_adv_addr": int,
    "strict_mode": int, "vmac_ifname": str, "ifp_ifname": str, "master_priority": int,
    "last_transition": float, "garp_delay": int, "garp_refresh": int, "garp_rep": int,
    "garp_refresh_rep": int, "garp_lower_prio_delay": int, "garp_lower_prio_rep": int,
    "lower_prio_no_advert": int, "higher_prio_send_advert": int, "vrid": int,
    "base_priority": int, "effective_priority": int, "vipset": bool,
    "promote_secondaries": bool, "adver_int": int, "master_adver_int": int, "accept": int,
    "nopreempt": bool, "preempt_delay": int, "state": int, "wantstate": int,
    "version": int, "smtp_alert": bool, "vips": list, "auth_type": int, "auth_data": str,
}
JSON_STATS = ("advert_rcvd", "advert_sent", "become_master", "release_master",
              "packet_len_err", "advert_interval_err", "ip_ttl_err", "invalid_type_rcvd",
              "addr_list_err", "invalid_authtype", "authtype_mismatch", "auth_failure",
              "pri_zero_rcvd", "pri_zero_sent")


class ExporterError(ValueError):
    """Where the exporter would give up on the file."""


def _go(value: Any, kind: type, where: str) -> Any:
    if kind is int:
        # encoding/json: a number with a fraction or exponent cannot go in an int
        if isinstance(value, bool) or not isinstance(value, int):
            raise ExporterError(f"{where}: cannot unmarshal {value!r} into int")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ExporterError(f"{where}: cannot unmarshal {value!r} into float64")
    elif kind is bool:
        if not isinstance(value, bool):
            raise ExporterError(f"{where}: cannot unmarshal {value!r} into bool")
    elif kind is str:
        if not isinstance(value, str):
            raise ExporterError(f"{where}: cannot unmarshal {value!r} into string")
    elif kind is list and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ExporterError(f"{where}: cannot unmarshal {value!r} into []string")
    return value


def parse_json(text: str) -> list[dict[str, Any]]:
    """ParseJSON: ``[]VRRP`` with the fields the exporter declares (absent: Go's zero)."""
    zero = {int: 0, float: 0.0, bool: False, str: "", list: None}
    out = []
    for i, entry in enumerate(json.loads(text)):
        data, stats = entry.get("data", {}), entry.get("stats", {})
        d = {k: _go(data[k], t, f"[{i}].data.{k}") if k in data else zero[t]
             for k, t in JSON_DATA.items()}
        s = {k: _go(stats[k], int, f"[{i}].stats.{k}") if k in stats else 0
             for k in JSON_STATS}
        out.append({"data": d, "stats": s})
    return out


def parse_vrrp_data(text: str) -> dict[str, dict[str, Any]]:
    """ParseVRRPData: per instance its state, wantstate, interface, garp delay, VRID
    and VIPs (each VIP as the exporter's ParseVIP splits it: address, device)."""
    data: dict[str, dict[str, Any]] = {}
    instance = key = val = ""
    for line in text.splitlines():
        if line.startswith(" VRRP Instance") and "=" in line:
            instance = line.strip().split("=")[1].strip()
            data[instance] = {"vips": []}
        elif line.startswith("   ") and instance:
            if line.startswith("     "):
                val = line.strip()
            else:
                if "=" in line:
                    args = line.strip().split("=")
                elif ":" in line:
                    args = line.strip().split(":")
                else:
                    continue
                key = args[0].strip()
                if key == "Virtual IP":
                    continue
                val = args[1].strip()
            rec = data[instance]
            if (key.startswith("Virtual IP (") or key == "Virtual IP") and val:
                parts = val.split(" ")
                if len(parts) < 3:
                    raise ExporterError(f"{instance}: VIP {val!r}")
                rec["vips"].append((parts[0], parts[2]))
            if key in ("State", "Wantstate"):
                if val not in VRRP_STATES:
                    raise ExporterError(f"{instance}: unknown {key} {val!r}")
                rec[key.lower()] = val
            elif key in ("Interface", "Listening device"):
                rec["intf"] = val
            elif key in ("Gratuitous ARP delay", "Virtual Router ID"):
                rec[key] = _atoi(val, f"{instance}: {key}")
        elif line.startswith((" VRRP Version", " VRRP Script")):
            continue
        else:
            instance = ""
    return data


def parse_vrrp_scripts(text: str) -> list[dict[str, str]]:
    """ParseVRRPScript: each script's name, Status (GOOD/BAD) and State."""
    scripts: list[dict[str, str]] = []
    script: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith(" VRRP Script") and "=" in line:
            if script.get("name"):
                scripts.append(script)
            script = {"name": line.strip().split("=")[1].strip()}
        elif line.startswith("   ") and script.get("name"):
            if "=" not in line:
                continue
            k, v = (p.strip() for p in line.strip().split("=")[:2])
            if k in ("Status", "State"):
                script[k.lower()] = v
        elif not line.startswith("    ") and script.get("name"):
            scripts.append(script)
            script = {}
    if script.get("name"):
        scripts.append(script)
    return scripts


_STATS_KEYS = {
    ("Advertisements", "Received"): "advert_rcvd", ("Advertisements", "Sent"): "advert_sent",
    ("Packet Errors", "Length"): "packet_len_err", ("Packet Errors", "TTL"): "ip_ttl_err",
    ("Packet Errors", "Invalid Type"): "invalid_type_rcvd",
    ("Packet Errors", "Advertisement Interval"): "advert_interval_err",
    ("Packet Errors", "Address List"): "addr_list_err",
    ("Authentication Errors", "Invalid Type"): "invalid_authtype",
    ("Authentication Errors", "Type Mismatch"): "authtype_mismatch",
    ("Authentication Errors", "Failure"): "auth_failure",
    ("Priority Zero", "Received"): "pri_zero_rcvd", ("Priority Zero", "Sent"): "pri_zero_sent",
    ("", "Became master"): "become_master", ("", "Released master"): "release_master",
}


def _atoi(val: str, where: str) -> int:
    try:
        return int(val, 10)
    except ValueError:
        raise ExporterError(f"{where}: strconv.Atoi({val!r})") from None


def parse_stats(text: str) -> dict[str, dict[str, int]]:
    """ParseStats: the counters of each ``VRRP Instance:`` block; any indented line
    whose value is not an integer fails the file, as in the exporter."""
    stats: dict[str, dict[str, int]] = {}
    instance = section = ""
    for line in text.splitlines():
        if line.startswith("VRRP Instance") and ":" in line:
            instance = line.strip().split(":")[1].strip()
            stats[instance] = {}
        elif line.startswith("  ") and line.endswith(":"):
            section = line.strip().split(":")[0].strip()
        elif line.startswith("    ") and section:
            sp = line.strip().split(":")
            value = _atoi(sp[1].strip() if len(sp) > 1 else "", line)
            name = _STATS_KEYS.get((section, sp[0].strip()))
            if name is not None:
                stats[instance][name] = value
        elif line.startswith("  ") and not line.endswith(":") and not line.startswith("    "):
            sp = line.strip().split(":")
            section = ""
            value = _atoi(sp[1].strip() if len(sp) > 1 else "", line)
            name = _STATS_KEYS.get(("", sp[0].strip()))
            if name is not None:
                stats[instance][name] = value
    return stats
