"""SIGUSR1 / SIGUSR2 / SIGRTMIN+2 dumps, to keepalived's default files.

=========  ======================  ==================================================
signal     file                    content
=========  ======================  ==================================================
SIGUSR1    /tmp/keepalived.data    text: configuration summary and state (keepalived
                                   says its format is not stable; neither is ours)
SIGUSR2    /tmp/keepalived.stats   text: per-instance VRRP counters, keepalived's
                                   layout (``VRRP Instance: NAME`` then indented
                                   counters); then, in the same layout, each VRRP
                                   socket's drops by reason and the kernel's drops
                                   (``VRRP Socket: eth0/v4``; keepalived has no such
                                   block: packets it drops before an instance is
                                   found are only logged); then checker and pool
                                   counters
SIGRTMIN+2 /tmp/keepalived.json    keepalived's JSON: a list of ``{"data", "stats"}``
                                   per VRRP instance, field names from vrrp_json.c
                                   (what keepalived_exporter reads)
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


def vrrp_json(status: dict[str, Any]) -> list[dict[str, Any]]:
    """keepalived's JSON list, one ``{"data": ..., "stats": ...}`` per instance."""
    out = []
    for inst in status.get("vrrp", ()):
        data = {k: v for k, v in inst["data"].items() if k != "state_name"}
        out.append({"data": data, "stats": dict(inst["stats"])})
    return out


def vrrp_sockets(status: dict[str, Any]) -> list[dict[str, Any]]:
    """Each VRRP socket's view once (instances on one interface share their socket).

    >>> st = {"vrrp": [{"socket": {"name": "eth0/v4"}}, {"socket": {"name": "eth0/v4"}},
    ...                {"data": {}}]}
    >>> vrrp_sockets(st)
    [{'name': 'eth0/v4'}]
    """
    seen: dict[str, dict[str, Any]] = {}
    for inst in status.get("vrrp", ()):
        sock = inst.get("socket")
        if sock is not None:
            seen.setdefault(sock["name"], sock)
    return list(seen.values())


def check_json(status: dict[str, Any]) -> dict[str, Any]:
    """Checkers (per worker shard) and pools (per virtual server), hafast's shape."""
    return {"checkers": status.get("checkers", []), "pools": status.get("pools"),
            "workers": status.get("workers", [])}


def write_json(path: str, status: dict[str, Any], config: Any = None) -> None:
    _atomic_write(path, json.dumps(vrrp_json(status), indent=1) + "\n")
    stem, _dot, _ext = path.rpartition(".")
    _atomic_write(f"{stem}_check.json", json.dumps(check_json(status), indent=1) + "\n")


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
        lines.append(f"  Checks: {chk['checks']}  Real servers: {chk['real_servers']} "
                     f"(up {chk['up']}, down {chk['down']})")
        for name, n in sorted(chk.get("counters", {}).items()):
            lines.append(f"  {name}: {n}")
    pools = status.get("pools")
    if pools:
        lines.append(f"Pool backend {pools['backend']}: changes "
                     + ", ".join(f"{k} {v}" for k, v in sorted(pools["changes"].items())))
    return "\n".join(lines) + "\n"


def write_stats(path: str, status: dict[str, Any], config: Any = None) -> None:
    _atomic_write(path, stats_text(status))


def data_text(status: dict[str, Any], config: Any = None) -> str:
    lines = ["------< hafast data >------",
             f" Parent pid = {status.get('pid')}, config = {status.get('config')}",
             f" Uptime = {status.get('uptime')} s, reloads = {status.get('reloads')}"]
    for w in status.get("workers", ()):
        lines.append(f" Worker {w['name']} pid {w['pid']} restarts {w['restarts']}")
    lines.append("------< VRRP Topology >------")
    for inst in status.get("vrrp", ()):
        d = inst["data"]
        lines.append(f" VRRP Instance = {d['iname']}")
        lines.append(f"   State = {d.get('state_name', d['state'])}")
        lines.append(f"   Interface = {d['ifp_ifname']}")
        lines.append(f"   Virtual Router ID = {d['vrid']}")
        lines.append(f"   Priority = {d['base_priority']}, effective {d['effective_priority']}")
        lines.append(f"   Advert interval = {d['adver_int']} sec")
        lines.append(f"   Virtual IP = {len(d['vips'])}")
        lines.extend(f"     {v}" for v in d["vips"])
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
