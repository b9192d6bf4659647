"""SIGUSR1 / SIGUSR2 / SIGRTMIN+2 dumps, to keepalived's default files.

=========  ======================  ==================================================
signal     file                    content
=========  ======================  ==================================================
SIGUSR1    /tmp/keepalived.data    text: hafast's process lines, then keepalived
                                   2.2.7's VRRP sections byte for byte (VRRP
                                   Topology, Sockpool, Sync groups, Scripts: what
                                   keepalived_exporter and OpenShift's probe parse,
                                   ``State = FAULT``); its Global definitions and
                                   Interfaces sections are not written; then the
                                   pools (hafast's)
SIGUSR2    /tmp/keepalived.stats   text: per-instance VRRP counters, keepalived's
                                   layout (``VRRP Instance: NAME`` then indented
                                   counters); then, in the same layout, each VRRP
                                   socket's drops by reason and the kernel's drops
                                   (``VRRP Socket: eth0/v4``; keepalived has no such
                                   block: packets it drops before an instance is
                                   found are only logged); then checker and pool
                                   counters, one ``key: integer`` a line (the
                                   exporter's stats parser gives up on any other)
SIGRTMIN+2 /tmp/keepalived.json    keepalived's JSON: a list of ``{"data", "stats"}``
                                   per VRRP instance, byte for byte as keepalived
                                   2.2.7's vrrp_json.c writes it (its keys, their
                                   order, ``%g`` numbers: keepalived_exporter's Go
                                   structs refuse ``1.0`` for an int)
SIGRTMIN+2 /tmp/keepalived_check.json
                                   checkers and pools (keepalived has none; kept in
                                   their own file so keepalived.json stays parseable
                                   by the exporters, which expect a bare list)
=========  ======================  ==================================================

With ``-s NAME`` the files carry ``_NAME`` (two daemons in two namespaces must not
write one file).

How a dump is written: root writes these files into /tmp, where any local user can
plant names, so a predictable temporary name opened with a plain ``open()`` lets a
symlink there make root overwrite any file (keepalived's CVE-2018-19044, and issue 12).
Each file is therefore created by :func:`tempfile.mkstemp` beside its final name
(``O_CREAT|O_EXCL``, an unguessable name, never through a symlink), made 0644 like
keepalived's dumps, and renamed onto the final name, which replaces a symlink planted
there instead of writing through it; readers never see a half-written dump.  Before
that the directory is checked: one that others may write to without the sticky bit
(0777, 0770), or that belongs to a user other than root and us, is refused with
:class:`UnsafeDumpPath`, as is a final name that exists as something other than a
file or a symlink (a directory, a FIFO).  /tmp (root's, 1777) is accepted.

Example::

    >>> path_for("/tmp/keepalived", "json", None), path_for("/tmp/keepalived", "data", "ns1")
    ('/tmp/keepalived.json', '/tmp/keepalived_ns1.data')
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Callable
from typing import Any

from hafast.status.view import vrrp_sockets

EXTENSIONS = {"data": "data", "stats": "stats", "json": "json"}


def path_for(prefix: str, what: str, namespace: str | None) -> str:
    tail = f"_{namespace}" if namespace else ""
    return f"{prefix}{tail}.{EXTENSIONS[what]}"


class UnsafeDumpPath(PermissionError):
    """A dump refused because of where it would go (the message says why)."""


def _check_target(path: str) -> str:
    """The directory ``path`` goes in, after refusing one an attacker could use."""
    directory = os.path.dirname(os.path.abspath(path))
    st = os.stat(directory)
    # In a directory others may write to without the sticky bit, or that another
    # user owns (and may chmod so at will), anyone can delete, rename or replace
    # the dump and its temporary file at any moment: what root leaves there cannot
    # be trusted by its readers, and the write would be safe only as long as every
    # step of it stays so.  Refuse outright, as a wrong --dump-prefix.  In a sticky
    # directory (/tmp) only root and an entry's owner may touch the entry.
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX:
        raise UnsafeDumpPath(f"refusing to write {path}: directory {directory} is "
                             f"writable by others and not sticky")
    if st.st_uid not in (0, os.geteuid()):
        raise UnsafeDumpPath(f"refusing to write {path}: directory {directory} is "
                             f"owned by uid {st.st_uid}, not root or us")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return directory
    # Not ours to replace: a rename would silently swap a FIFO or a socket someone
    # put there for our file, and fail on a directory; say why instead.
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise UnsafeDumpPath(f"refusing to write {path}: it exists and is not a "
                             f"regular file or a symlink")
    return directory


def _atomic_write(path: str, text: str) -> None:
    # keepalived's CVE-2018-19044: a fixed temporary name opened with open() follows
    # a symlink a local user planted there, and root overwrites its target.  The
    # kernel's fs.protected_symlinks would stop that in /tmp, but it is a sysctl
    # that may be off (the CVE's very condition).  mkstemp is O_CREAT|O_EXCL (never
    # follows a symlink, never opens an existing name) with a random suffix, and the
    # rename replaces whatever sits at the final name rather than writing through
    # it.  Readers (exporters polling the file) never see a half-written dump.
    directory = _check_target(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            # mkstemp makes 0600; the dumps are meant to be read (keepalived's are
            # 0644), and fchmod does not go through the umask.
            os.fchmod(f.fileno(), 0o644)
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# keepalived 2.2.7 vrrp_json.c's stats fields, in its order
_KA_STATS = ("advert_rcvd", "advert_sent", "become_master", "release_master",
             "packet_len_err", "advert_interval_err", "ip_ttl_err", "invalid_type_rcvd",
             "addr_list_err", "invalid_authtype", "authtype_mismatch", "auth_failure",
             "pri_zero_rcvd", "pri_zero_sent")


def _g(value: float) -> int | float:
    """keepalived's jsonw_float_field (``%g``): 1.0 is written ``1``."""
    return int(value) if float(value).is_integer() else float(f"{value:g}")


def cmd_str(script: Any) -> str:
    """keepalived's cmd_str (lib/notify.c cmd_str_r): each word in single quotes, but a
    first word that is a redirection (``<file``, ``>file``); the program by its real
    path (keepalived resolves it when it checks the script: /bin/false is
    '/usr/bin/false' on a merged-/usr system).  The dumps and the SNMP checker MIB's
    script columns (hafast.status.snmp_check) show it.

    >>> from hafast.config.model import Script
    >>> cmd_str(Script(argv=("/nonexistent/x", "a b"))), cmd_str(Script(argv=(">/tmp/f",)))
    ("'/nonexistent/x' 'a b'", '>/tmp/f')
    """
    argv = list(script.argv)
    if argv and argv[0].startswith("/") and os.path.exists(argv[0]):
        argv[0] = os.path.realpath(argv[0])
    return " ".join(w if i == 0 and w[:1] in "<>" else f"'{w}'" for i, w in enumerate(argv))


def ka_vip(vip: Any, ifname: str, vipset: bool) -> str:
    """One address as keepalived's format_ipaddress writes it.

    >>> from hafast.config.model import VirtualAddress as V
    >>> ka_vip(V("10.0.0.1", 24, 4), "eth0", True)
    '10.0.0.1/24 dev eth0 scope global set'
    >>> ka_vip(V("fd00::1", 64, 6, dev="e1"), "e0", False)
    'fd00::1/64 dev e1 scope global preferred_lft forever'
    >>> ka_vip(V("10.0.0.2", 32, 4), "eth0", False)
    '10.0.0.2 dev eth0 scope global'
    """
    # a host address goes without its prefix length, as keepalived writes it
    host = vip.prefix == (32 if vip.family == 4 else 128)
    text = vip.address if host else f"{vip.address}/{vip.prefix}"
    text += f" dev {vip.dev or ifname} scope {vip.scope or 'global'}"
    if vip.label:
        text += f" label {vip.label}"
    if vip.brd:
        text += f" brd {vip.brd}"
    if vip.family == 6:
        opts = list(vip.options)
        lft = opts[opts.index("preferred_lft") + 1] if "preferred_lft" in opts[:-1] else "forever"
        text += f" preferred_lft {lft}"
    return text + (" set" if vipset else "")


def _configs(config: Any) -> dict[str, Any]:
    return {i.name: i for i in getattr(config, "vrrp_instances", ())}


def _ka_data(inst: dict[str, Any], cfg: Any, config: Any) -> dict[str, Any]:
    """One instance's ``data`` object, keys and types as keepalived 2.2.7 writes them
    (vrrp_json.c: optional lists only when not empty, %g floats)."""
    from hafast.lib.smtp_alert import enabled

    d = inst["data"]
    gd = getattr(config, "global_defs", None)
    ifname = d["ifp_ifname"]
    out: dict[str, Any] = {
        "iname": d["iname"],
        "dont_track_primary": int(getattr(cfg, "dont_track_primary", False)),
        "skip_check_adv_addr": int(getattr(cfg, "skip_check_adv_addr", False)),
        "strict_mode": int(d.get("strict_mode", 0)),
        "vmac_ifname": "",
        "ifp_ifname": ifname,
        "master_priority": int(d.get("master_priority", 0)),
        "last_transition": round(float(d.get("last_transition", 0.0)), 6),
        "garp_delay": _g(getattr(cfg, "garp_master_delay_us", 5_000_000) / 1e6),
        "garp_refresh": getattr(cfg, "garp_master_refresh_us", 0) // 1_000_000,
        "garp_rep": getattr(cfg, "garp_master_repeat", 5),
        "garp_refresh_rep": getattr(cfg, "garp_master_refresh_repeat", 1),
        "garp_lower_prio_delay": getattr(cfg, "garp_lower_prio_delay_us", 5_000_000) // 1_000_000,
        "garp_lower_prio_rep": getattr(cfg, "garp_lower_prio_repeat", 5),
        "lower_prio_no_advert": int(d.get("lower_prio_no_advert", 0)),
        "higher_prio_send_advert": int(d.get("higher_prio_send_advert", 0)),
        "vrid": d["vrid"],
        "base_priority": d["base_priority"],
        "effective_priority": d["effective_priority"],
        "vipset": bool(d.get("vipset", False)),
        "promote_secondaries": bool(getattr(cfg, "promote_secondaries", False)),
        "adver_int": _g(d["adver_int"]),
        "master_adver_int": _g(d.get("master_adver_int", d["adver_int"])),
        "accept": int(d.get("accept", 1)),
        "nopreempt": bool(d.get("nopreempt", 0)),
        # keepalived clears preempt_delay under nopreempt (it could never apply)
        "preempt_delay": 0 if d.get("nopreempt") else int(d.get("preempt_delay", 0)),
        "state": d["state"],
        "wantstate": d.get("wantstate", d["state"]),
        "version": d["version"],
        "smtp_alert": enabled(getattr(cfg, "smtp_alert", None),
                              getattr(gd, "smtp_alert_vrrp", None),
                              getattr(gd, "smtp_alert", None)),
        # notify_deleted has no effect in hafast (config/support.py): keepalived's off
        "notify_deleted": False,
    }
    for key in ("notify_backup", "notify_master", "notify_fault", "notify_stop", "notify",
                "notify_master_rx_lower_pri"):
        script = getattr(cfg, key, None)
        if script is not None:
            out[key.replace("notify", "script", 1)] = cmd_str(script)
    vipset = out["vipset"]
    if cfg is not None:
        vips = [ka_vip(v, ifname, vipset) for v in cfg.virtual_ipaddress]
        evips = [ka_vip(v, ifname, vipset) for v in cfg.virtual_ipaddress_excluded]
    else:
        vips, evips = list(d.get("vips", ())), list(d.get("evips", ()))
    if vips:
        out["vips"] = vips
    if evips:
        out["evips"] = evips
    for key in ("virtual_routes", "virtual_rules"):
        lines = [" ".join(r) for r in getattr(cfg, key, ())]
        if lines:
            out["vroutes" if key == "virtual_routes" else "vrules"] = lines
    track_ifp = [t.name for t in getattr(cfg, "track_interface", ())]
    if track_ifp:
        out["track_ifp"] = track_ifp
    scripts = {s.name: s for s in getattr(config, "vrrp_scripts", ())}
    track_script = [cmd_str(scripts[t.name].script) for t in getattr(cfg, "track_script", ())
                    if t.name in scripts and scripts[t.name].script is not None]
    if track_script:
        out["track_script"] = track_script
    out["auth_type"] = int(d.get("auth_type", 0))
    auth = getattr(cfg, "authentication", None)
    if out["auth_type"] and auth is not None:
        out["auth_data"] = str(getattr(auth, "auth_pass", "") or "")[:8]
    return out


def vrrp_json(status: dict[str, Any], config: Any = None) -> list[dict[str, Any]]:
    """keepalived's JSON list, one ``{"data": ..., "stats": ...}`` per instance, the
    fields, their order and their JSON types as keepalived 2.2.7 writes them."""
    configs = _configs(config)
    out = []
    for inst in status.get("vrrp", ()):
        cfg = configs.get(inst["data"]["iname"])
        stats = inst["stats"]
        out.append({"data": _ka_data(inst, cfg, config),
                    "stats": {k: int(stats.get(k, 0)) for k in _KA_STATS}})
    return out


def check_json(status: dict[str, Any]) -> dict[str, Any]:
    """Checkers (per worker shard) and pools (per virtual server), hafast's shape."""
    return {"checkers": status.get("checkers", []), "pools": status.get("pools"),
            "workers": status.get("workers", [])}


def write_json(path: str, status: dict[str, Any], config: Any = None) -> None:
    # keepalived's json_writer: compact, one line, a newline at the end, UTF-8 as
    # is, and "/" escaped ("10.0.0.1\/24"); a "/" only ever occurs inside strings
    text = json.dumps(vrrp_json(status, config), separators=(",", ":"), ensure_ascii=False)
    # hafast's own _check.json first: whoever waits for the file keepalived names
    # finds both written (a test read the second one too early on a loaded machine)
    # splitext, not rpartition("."): a name without a dot must not lose its folder
    stem = os.path.splitext(path)[0]
    _atomic_write(f"{stem}_check.json", json.dumps(check_json(status), indent=1) + "\n")
    _atomic_write(path, text.replace("/", "\\/") + "\n")


def stats_text(status: dict[str, Any]) -> str:
    lines = []
    for inst in status.get("vrrp", ()):
        st = inst["stats"]
        lines.append(f"VRRP Instance: {inst['data']['iname']}")
        lines.append("  Advertisements:")
        lines.append(f"    Received: {st.get('advert_rcvd', 0)}")
        lines.append(f"    Sent: {st.get('advert_sent', 0)}")
        lines.append(f"  Became master: {st.get('become_master', 0)}")
        lines.append(f"  Released master: {st.get('release_master', 0)}")
        lines.append("  Packet Errors:")
        lines.append(f"    Length: {st.get('packet_len_err', 0)}")
        lines.append(f"    TTL: {st.get('ip_ttl_err', 0)}")
        lines.append(f"    Invalid Type: {st.get('invalid_type_rcvd', 0)}")
        lines.append(f"    Advertisement Interval: {st.get('advert_interval_err', 0)}")
        lines.append(f"    Address List: {st.get('addr_list_err', 0)}")
        lines.append("  Authentication Errors:")
        lines.append(f"    Invalid Type: {st.get('invalid_authtype', 0)}")
        lines.append(f"    Type Mismatch: {st.get('authtype_mismatch', 0)}")
        lines.append(f"    Failure: {st.get('auth_failure', 0)}")
        lines.append("  Priority Zero:")
        lines.append(f"    Received: {st.get('pri_zero_rcvd', 0)}")
        lines.append(f"    Sent: {st.get('pri_zero_sent', 0)}")
    for sock in vrrp_sockets(status):
        lines.append(f"VRRP Socket: {sock['name']}")
        lines.append(f"  Received: {sock['rx_packets']}")
        lines.append(f"  Receive buffer: {sock['rcvbuf']}")
        lines.append("  Dropped:")
        lines.extend(f"    {reason}: {n}" for reason, n in sock["drops"].items())
        lines.append(f"  Kernel drops: {sock['kernel_drops']}")
        lines.append(f"  Send failures: {sock['tx_dropped']}")
    for chk in status.get("checkers", ()):
        lines.append(f"Check worker shard {chk['shard']}/{chk['shards']}:")
        # One "key: integer" a line: keepalived_exporter's stats parser reads every
        # indented line so and gives up on the whole file at the first that is not.
        lines.append(f"  Checks: {chk['checks']}")
        lines.append(f"  Real servers: {chk['real_servers']}")
        lines.append(f"  Up: {chk['up']}")
        lines.append(f"  Down: {chk['down']}")
        for name, n in sorted(chk.get("counters", {}).items()):
            # "fail:timeout" would split at its own colon in that parser
            lines.append(f"  {name.replace(':', '.')}: {n}")
    pools = status.get("pools")
    if pools:
        lines.append(f"Pool backend {pools['backend']}: changes "
                     + ", ".join(f"{k} {v}" for k, v in sorted(pools["changes"].items())))
    return "\n".join(lines) + "\n"


def write_stats(path: str, status: dict[str, Any], config: Any = None) -> None:
    _atomic_write(path, stats_text(status))


_STATE_NAMES = ("INIT", "BACKUP", "MASTER", "FAULT")


def _ka_time(t: float) -> str:
    """keepalived's timestamp in the data file: ``SECS.USECS (ctime with µs)``."""
    import time

    sec, usec = int(t), round((t - int(t)) * 1e6)
    if usec == 1_000_000:
        sec, usec = sec + 1, 0
    tm = time.localtime(sec)
    return (f"{sec}.{usec:06d} ({time.strftime('%a %b ', tm)}{tm.tm_mday:2d} "
            f"{time.strftime('%H:%M:%S', tm)}.{usec:06d} {tm.tm_year})")


def _yes(flag: Any, yes: str = "true", no: str = "false") -> str:
    return yes if flag else no


def _ka_instance(inst: dict[str, Any], cfg: Any, config: Any, groups: dict[str, str],
                 now: float) -> list[str]:
    """One ``VRRP Instance`` block of the data file, as keepalived 2.2.7's dump_vrrp
    writes it (the fields hafast has; see the module docstring)."""
    d = _ka_data(inst, cfg, config)
    ka = inst.get("ka", {})
    state = _STATE_NAMES[d["state"]] if 0 <= d["state"] < 4 else "INIT"
    name = d["iname"]
    unicast = bool(getattr(cfg, "unicast_peer", ()))
    family = int(getattr(cfg, "family", 4))
    out = [f" VRRP Instance = {name}", f"   VRRP Version = {d['version']}"]
    if name in groups:
        out.append(f"   Sync group = {groups[name]}")
    if family == 6:
        out.append("   Using Native IPv6")
    out.append(f"   State = {state}")
    if state == "BACKUP" and ka.get("master_router"):
        out.append(f"   Master router = {ka['master_router']}")
        out.append(f"   Master priority = {d['master_priority']}")
        if d["version"] == 3:
            out.append(f"   Master advert int = {d['master_adver_int']:.2f} sec")
    # keepalived writes "none" only when no bit of vrrp->flags is set; of its bits
    # only unicast has a line of its own
    flagged = unicast or any(getattr(cfg, f, False) for f in (
        "nopreempt", "dont_track_primary", "skip_check_adv_addr", "promote_secondaries",
        "notify_priority_changes", "unicast_fault_no_peer"))
    out.append("   Flags:" + ("" if flagged else " none"))
    if unicast:
        out.append("     Using unicast")
    want = d["wantstate"]
    out.append(f"   Wantstate = {_STATE_NAMES[want] if 0 <= want < 4 else 'INIT'}")
    out.append("   Number of config faults = 0")
    out.append(f"   Number of interface and track script faults = {ka.get('own_faults', 0)}")
    out.append("   Number of track scripts init = 0")
    out.append(f"   Last transition = {_ka_time(d['last_transition'])}")
    # keepalived's read timer: the next advert (MASTER) or master down (BACKUP)
    if state == "MASTER":
        out.append(f"   Read timeout = {_ka_time(now + d['adver_int'])}")
    elif state == "BACKUP":
        out.append(f"   Read timeout = {_ka_time(now + ka.get('master_down_us', 0) / 1e6)}")
    else:
        out.append("   Read timeout = DISABLED")
    out.append(f"   Master down timer = {ka.get('master_down_us', 0)} usecs")
    out.append(f"   Interface = {d['ifp_ifname']}")
    if d["dont_track_primary"]:
        out.append("   VRRP interface tracking disabled")
    if d["skip_check_adv_addr"]:
        out.append("   Skip checking advert IP addresses")
    if d["strict_mode"]:
        out.append("   Enforcing strict VRRP compliance")
    configured = getattr(cfg, "unicast_src_ip" if unicast else "mcast_src_ip", None)
    src = ka.get("src_ip") or configured or ""
    out.append(f"   Using src_ip = {src}" + (" (from configuration)" if configured else ""))
    if not unicast and ka.get("group"):
        # IPv6 names the interface too: a link-local group is per link
        scope = f", ifindex {ka.get('ifindex', 0)}" if family == 6 else ""
        out.append(f"   Multicast address {ka['group']}{scope}")
    out.append(f"   Gratuitous ARP delay = {d['garp_delay']}")
    out.append(f"   Gratuitous ARP repeat = {d['garp_rep']}")
    out.append(f"   Gratuitous ARP refresh = {d['garp_refresh']}")
    out.append(f"   Gratuitous ARP refresh repeat = {d['garp_refresh_rep']}")
    out.append(f"   Gratuitous ARP lower priority delay = {d['garp_lower_prio_delay']}")
    out.append(f"   Gratuitous ARP lower priority repeat = {d['garp_lower_prio_rep']}")
    out.append(f"   Down timer adverts = {getattr(cfg, 'down_timer_adverts', 3)}")
    out.append("   Send advert after receive lower priority advert = "
               + _yes(not d["lower_prio_no_advert"]))
    out.append("   Send advert after receive higher priority advert = "
               + _yes(d["higher_prio_send_advert"]))
    out.append(f"   Virtual Router ID = {d['vrid']}")
    out.append(f"   Priority = {d['base_priority']}")
    out.append(f"   Effective priority = {d['effective_priority']}")
    out.append(f"   Total priority = {d['effective_priority']}")
    if d["version"] == 2:
        out.append(f"   Advert interval = {int(d['adver_int'])} sec")
    else:
        out.append(f"   Advert interval = {round(d['adver_int'] * 1000)} milli-sec")
        if state == "BACKUP":
            out.append("   Master advert interval = "
                       f"{round(d['master_adver_int'] * 1000)} milli-sec")
    out.append(f"   Accept = {_yes(d['accept'], 'enabled', 'disabled')}")
    out.append(f"   Preempt = {_yes(not d['nopreempt'], 'enabled', 'disabled')}")
    if d["preempt_delay"]:
        out.append(f"   Preempt delay = {d['preempt_delay']:g} secs")
    out.append(f"   Promote_secondaries = {_yes(d['promote_secondaries'], 'enabled', 'disabled')}")
    if d["auth_type"]:
        auth = "IPSEC_AH" if d["auth_type"] == 2 else "SIMPLE_PASSWORD"
        out.append(f"   Authentication type = {auth}")
        if d["auth_type"] == 1:
            out.append(f"   Password = {d.get('auth_data', '')}")
    elif d["version"] == 2:  # VRRPv3 has no authentication to speak of
        out.append("   Authentication type = none")
    if d.get("vips"):
        out.append(f"   Virtual IP ({len(d['vips'])}):")
        out.extend(f"     {v}" for v in d["vips"])
    if d.get("evips"):
        out.append("   Virtual IP Excluded :")
        out.extend(f"     {v}" for v in d["evips"])
    if unicast:
        out.append(f"   Unicast TTL = {getattr(cfg, 'unicast_ttl', 255)}")
        check = _yes(getattr(cfg, "check_unicast_src", False), "yes", "no")
        out.append(f"   Check unicast src : {check}")
        out.append("   Unicast Peer :")
        out.extend(f"     {p.address} min_ttl {p.min_ttl} max_ttl {p.max_ttl}"
                   for p in cfg.unicast_peer)
        out.append("   Unicast checksum compatibility = "
                   + _yes(getattr(cfg, "v3_checksum_as_v2", False), "yes", "no"))
    fd = ka.get("fd", -1)
    out.append(f"   fd_in {fd}, fd_out {fd}")
    track_if = getattr(cfg, "track_interface", ())
    if track_if:
        out.append("   Tracked interfaces :")
        out.extend(f"     {t.name} weight {t.weight or 0}" + (" reverse" if t.reverse else "")
                   for t in track_if)
    weights = {s.name: s.weight for s in getattr(config, "vrrp_scripts", ())}
    tracked = [t for t in getattr(cfg, "track_script", ()) if t.name in weights]
    if tracked:
        out.append("   Tracked scripts :")
        out.extend(f"     {t.name} weight {weights[t.name] if t.weight is None else t.weight}"
                   for t in tracked)
    out.append(f"   Using smtp notification = {_yes(d['smtp_alert'], 'yes', 'no')}")
    out.append("   Notify deleted = Fault")
    for key, word in (("notify_backup", "Backup"), ("notify_master", "Master"),
                      ("notify_fault", "Fault"), ("notify_stop", "Stop"), ("notify", "Generic"),
                      ("notify_master_rx_lower_pri", "Master rx lower pri")):
        script = getattr(cfg, key, None)
        if script is not None:
            out.append(f"   {word} state transition script = {cmd_str(script)}, "
                       f"uid:gid {_script_ids(script, config)}")
    out.append("   Notify priority changes = "
               + _yes(getattr(cfg, "notify_priority_changes", False)))
    return out


def _ka_sockpool(status: dict[str, Any], config: Any) -> list[str]:
    """keepalived's ``VRRP Sockpool`` section: one entry per (interface, family,
    multicast or unicast source), the instances on it.  hafast receives on one
    socket per interface and family; the entries are keepalived's grouping of the
    same instances, the fd is that socket's."""
    configs = _configs(config)
    pool: dict[tuple[str, int, str | None], list[dict[str, Any]]] = {}
    for inst in status.get("vrrp", ()):
        cfg = configs.get(inst["data"]["iname"])
        unicast = bool(getattr(cfg, "unicast_peer", ()))
        src = (inst.get("ka", {}).get("src_ip") or getattr(cfg, "unicast_src_ip", None)
               if unicast else None)
        key = (inst["data"]["ifp_ifname"], int(getattr(cfg, "family", 4)), src)
        pool.setdefault(key, []).append(inst)
    if not pool:
        return []
    out = ["------< VRRP Sockpool >------"]
    for (ifname, family, src), members in pool.items():
        fd = members[0].get("ka", {}).get("fd", -1)
        out.append(f" fd_in {fd} fd_out = {fd}")
        out.append(f"   Interface = {ifname}")
        out.append(f"   Family = IPv{family}")
        out.append("   Protocol = VRRP")
        out.append(f"   Type = {'Unicast' if src is not None else 'Multicast'}")
        if src is not None:
            out.append(f"   Address = {src}")
        out.append("   Rx buf size = 0")
        out.append("   VRRP instances")
        out.extend(f"     {m['data']['iname']} vrid {m['data']['vrid']}" for m in members)
    return out


def _ka_sync_groups(status: dict[str, Any], config: Any) -> list[str]:
    """keepalived's ``VRRP Sync groups`` section: a group is FAULT when a member is,
    MASTER when all are, else BACKUP (the state its members were synced to)."""
    states = {i["data"]["iname"]: i for i in status.get("vrrp", ())}
    groups = getattr(config, "sync_groups", ())
    if not groups:
        return []
    out = ["------< VRRP Sync groups >------"]
    for g in groups:
        members = [states[n] for n in g.group if n in states]
        words = [_STATE_NAMES[m["data"]["state"]] for m in members]
        word = ("FAULT" if "FAULT" in words else
                "MASTER" if words and all(w == "MASTER" for w in words) else "BACKUP")
        faulty = sum(1 for m in members if m.get("ka", {}).get("own_faults"))
        out.append(f" VRRP Sync Group = {g.name}, {word}")
        out.append(f"   Num member fault {faulty}, num member init 0")
        out.append("   VRRP member instances :")
        out.extend(f"     {n}" for n in g.group)
        gd = getattr(config, "global_defs", None)
        from hafast.lib.smtp_alert import enabled

        smtp = enabled(g.smtp_alert, getattr(gd, "smtp_alert_vrrp", None),
                       getattr(gd, "smtp_alert", None))
        out.append(f"   Using smtp notification = {_yes(smtp, 'yes', 'no')}")
    return out


def _ka_scripts(status: dict[str, Any], config: Any) -> list[str]:
    """keepalived's ``VRRP Scripts`` section.  hafast's status has no per-script
    result: a script is BAD when an instance tracking it is held in FAULT by it."""
    scripts = getattr(config, "vrrp_scripts", ())
    if not scripts:
        return []
    faults = {f for i in status.get("vrrp", ()) for f in i.get("faults", ())}
    out = ["------< VRRP Scripts >------"]
    for sc in scripts:
        bad = f"script:{sc.name}" in faults
        out.append(f" VRRP Script = {sc.name}")
        out.append(f"   Command = {cmd_str(sc.script) if sc.script is not None else ''}")
        out.append(f"   Interval = {sc.interval_us // 1_000_000} sec")
        out.append(f"   Timeout = {sc.timeout_us // 1_000_000} sec")
        out.append(f"   Weight = {sc.weight}" + (" reverse" if sc.weight_reverse else ""))
        out.append(f"   Rise = {sc.rise}")
        out.append(f"   Fall = {sc.fall}")
        # keepalived's result runs 0..rise+fall-1; GOOD from rise up
        out.append(f"   Result = {0 if bad else sc.rise + sc.fall - 1}")
        out.append("   Insecure = no")
        out.append("   Init state = unknown")
        out.append(f"   Status = {'BAD' if bad else 'GOOD'}")
        out.append(f"   Script uid:gid = {_script_ids(sc.script, config)}")
        out.append("   VRRP instances :")
        out.append("   Tracking instances :")
        for inst in getattr(config, "vrrp_instances", ()):
            for t in inst.track_script:
                if t.name == sc.name:
                    weight = sc.weight if t.weight is None else t.weight
                    out.append(f"     {inst.name}, weight {weight}")
        out.append("   State = idle")
    return out


def _script_ids(script: Any, config: Any) -> str:
    """``uid:gid`` a script runs as (its own user, else script_user, else root)."""
    import grp
    import pwd

    user = getattr(script, "user", None)
    group = getattr(script, "group", None)
    default = getattr(getattr(config, "global_defs", None), "script_user", None)
    if user is None and default:
        user, group = default[0], (default[1] if len(default) > 1 else None)
    if user is None:
        user = "keepalived_script"  # keepalived's default user, when it exists
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            return "0:0"
    try:
        pw = pwd.getpwnam(user)
        gid = grp.getgrnam(group).gr_gid if group else pw.pw_gid
        return f"{pw.pw_uid}:{gid}"
    except (KeyError, ValueError):  # ValueError: a name with a NUL byte
        return "0:0"


def data_text(status: dict[str, Any], config: Any = None) -> str:
    """The SIGUSR1 file: hafast's process lines, then keepalived 2.2.7's VRRP
    sections (``VRRP Topology``, ``VRRP Sockpool``, ``VRRP Sync groups``,
    ``VRRP Scripts``, byte for
    byte where the state is the same; tests/netns/test_dump_compat.py), then
    hafast's pools."""
    import time

    lines = ["------< hafast data >------",
             f" Parent pid = {status.get('pid')}, config = {status.get('config')}",
             f" Uptime = {status.get('uptime')} s, reloads = {status.get('reloads')}"]
    for w in status.get("workers", ()):
        lines.append(f" Worker {w['name']} pid {w['pid']} restarts {w['restarts']}")
    lines.append("------< VRRP Topology >------")
    configs = _configs(config)
    groups = {n: g.name for g in getattr(config, "sync_groups", ()) for n in g.group}
    now = time.time()
    for inst in status.get("vrrp", ()):
        lines.extend(_ka_instance(inst, configs.get(inst["data"]["iname"]), config, groups, now))
    lines.extend(_ka_sockpool(status, config))
    lines.extend(_ka_sync_groups(status, config))
    lines.extend(_ka_scripts(status, config))
    pools = status.get("pools")
    if pools:
        lines.append("------< LVS Topology >------")
        for vs in pools["virtual_servers"]:
            q = "up" if vs["quorum_up"] else "DOWN"
            lines.append(f" VS {vs['name']} quorum {q}")
            for rs in vs["real_servers"]:
                alive = "alive" if rs["alive"] else "dead"
                lines.append(f"   RS [{rs['address']}]:{rs['port']} {alive} weight "
                             f"{rs['weight']} pool {rs['pool_weight']}")
    return "\n".join(lines) + "\n"


def write_data(path: str, status: dict[str, Any], config: Any = None) -> None:
    _atomic_write(path, data_text(status, config))


WRITERS: dict[str, Callable[[str, dict[str, Any], Any], None]] = {
    "data": write_data,
    "stats": write_stats,
    "json": write_json,
}
