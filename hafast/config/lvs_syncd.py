"""``lvs_sync_daemon`` (global_defs) and ``lvs_sync_daemon_interface`` (vrrp_instance),
read as keepalived 2.2.7 reads them (``global_parser.c`` lvs_syncd_handler,
``vrrp_parser.c`` vrrp_lvs_syncd_handler, ``vrrp.c`` where the instance is looked up).

``lvs_sync_daemon INTERFACE [[inst] VRRP_INSTANCE] [id SYNCID] [maxlen LEN] [port PORT]
[ttl TTL] [group IP]``; the old form ``lvs_sync_daemon INTERFACE VRRP_INSTANCE [SYNCID]``
still reads. :func:`resolve` gives the daemon the run time follows:

- with an instance: its VRID is the default sync id; the instance's state decides the
  daemon (master while MASTER, backup otherwise: :mod:`hafast.lvs.syncd`); an instance
  that does not exist clears the whole setting ("Unable to find vrrp instance");
- without one: sync id 0, and master and backup daemons both run for the daemon's life;
- ``lvs_sync_daemon_interface IF`` in an instance (deprecated) is the global form with
  that instance and sync id **0**, not its VRID: keepalived sets the instance directly and
  so never reaches the "no sync id: use the VRID" branch; the global form wins over it.

Example::

    >>> from hafast.config import model as m
    >>> cfg = m.Config(global_defs=m.GlobalDefs(lvs_sync_daemon=m.LvsSyncDaemon("eth1", "VI_1")),
    ...                vrrp_instances=(m.VrrpInstance("VI_1", virtual_router_id=51),))
    >>> resolve(cfg)
    LvsSyncDaemon(interface='eth1', instance='VI_1', syncid=51, maxlen=0, port=0, ttl=0, group=None)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from hafast.config import model as m
from hafast.config.tokens import Token, byte_length

IP_VS_IFNAME_MAXLEN = 16  # include/uapi/linux/ip_vs.h, with its NUL
# keepalived's bounds (global_parser.c): maxlen leaves room for the IP and UDP headers
_NUMBERS = {"id": (0, 255), "maxlen": (1, 65535 - 20 - 8), "port": (1, 65535), "ttl": (1, 255)}
_FIELDS = {"id": "syncid", "maxlen": "maxlen", "port": "port", "ttl": "ttl"}


def conv_lvs_syncd(args: Sequence[Token]) -> m.LvsSyncDaemon:
    """The words after ``lvs_sync_daemon``; a bad word is an error at that word."""
    from hafast.config.grammar import BadValue

    ifname = args[0]
    if byte_length(ifname.text) >= IP_VS_IFNAME_MAXLEN:
        raise BadValue(ifname, f"lvs_sync_daemon interface name '{ifname.text}' too long "
                               f"(at most {IP_VS_IFNAME_MAXLEN - 1} bytes)")
    fields: dict[str, Any] = {"interface": ifname.text}
    i = 1
    while i < len(args):
        t = args[i]
        w = t.text
        value = args[i + 1] if i + 1 < len(args) else None
        if w in ("inst", "group", *_NUMBERS):
            if value is None:
                raise BadValue(t, f"no value for lvs_sync_daemon {w}")
            if w == "inst":
                fields["instance"] = value.text
            elif w == "group":
                fields["group"] = _group(value)
            else:
                fields[_FIELDS[w]] = _number(value, w, *_NUMBERS[w])
            i += 2
            continue
        # keepalived's old positional form: INTERFACE VRRP_INSTANCE [SYNCID]
        if i == 1:
            fields["instance"] = w
        elif i == 2:
            fields["syncid"] = _number(t, "id", *_NUMBERS["id"])
        else:
            raise BadValue(t, f"unknown option '{w}' for lvs_sync_daemon "
                              "(expected inst|id|maxlen|port|ttl|group VALUE)")
        i += 1
    return m.LvsSyncDaemon(**fields)


def _number(t: Token, what: str, lo: int, hi: int) -> int:
    from hafast.config.grammar import BadValue

    if not t.text.isdigit() or not lo <= int(t.text) <= hi:
        raise BadValue(t, f"invalid lvs_sync_daemon {what} '{t.text}' (expected {lo}..{hi})")
    return int(t.text)


def _group(t: Token) -> str:
    from hafast.config.grammar import BadValue

    try:
        addr = ipaddress.ip_address(t.text)
    except ValueError:
        raise BadValue(t, f"invalid lvs_sync_daemon group '{t.text}' (expected an IP "
                          "address)") from None
    if not addr.is_multicast:
        raise BadValue(t, f"lvs_sync_daemon group address {t.text} is not multicast")
    return str(addr)


def resolve(config: m.Config,
            warn: Callable[[str, str], None] | None = None) -> m.LvsSyncDaemon | None:
    """The sync daemon the configuration asks for, its instance and sync id settled;
    None: none (or one naming an instance that does not exist).  ``warn(message,
    where)`` hears what keepalived would say; ``where`` is the instance's ``FILE:LINE:COL``
    or "" for global_defs' keyword."""
    by_name = {i.name: i for i in config.vrrp_instances}
    syncd = config.global_defs.lvs_sync_daemon
    legacy = [i for i in config.vrrp_instances if i.lvs_sync_daemon_interface]
    if syncd is None and legacy:
        first = legacy[0]
        assert first.lvs_sync_daemon_interface is not None
        syncd = m.LvsSyncDaemon(first.lvs_sync_daemon_interface, first.name, 0)
        legacy = legacy[1:]
    if syncd is None:
        return None
    if warn is not None:
        for inst in legacy:
            warn(f"({inst.name}) lvs_sync_daemon_interface has already been specified as "
                 f"{syncd.interface} - ignoring", inst.where)
    if syncd.instance is None:
        return replace(syncd, syncid=syncd.syncid or 0)
    target = by_name.get(syncd.instance)
    if target is None:
        if warn is not None:
            warn(f"Unable to find vrrp instance {syncd.instance} for lvs_syncd - clearing "
                 "lvs_syncd config", "")
        return None
    if syncd.syncid is None:
        return replace(syncd, syncid=target.virtual_router_id)
    return syncd


def diagnose(config: m.Config, global_pos: Mapping[str, Token] | None,
             warn: Callable[[Token, str], None]) -> None:
    """:func:`resolve`'s complaints as the loader's warnings, at the words they are about."""

    def at(message: str, where: str) -> None:
        tok: Token | None
        if where:
            file, line, col = where.rsplit(":", 2)
            tok = Token("lvs_sync_daemon_interface", file, int(line), int(col))
        else:
            tok = (global_pos or {}).get("lvs_sync_daemon")
        if tok is not None:
            warn(tok, message)

    resolve(config, at)
