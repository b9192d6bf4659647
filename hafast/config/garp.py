"""Gratuitous ARP settings that act while the config is built: ``vrrp_min_garp`` and
``garp_group``.

``vrrp_min_garp`` (keepalived 2.2.7 global_parser.c ``vrrp_min_garp_handler``): "only
send 1 gratuitous ARP/NA message with no repeat, but don't overwrite any parameters
already set".  Each of the four settings below that still holds keepalived's default
when the keyword is read takes the minimum; one written after it wins.  So
``vrrp_garp_master_repeat 5`` (the default) written *before* ``vrrp_min_garp`` becomes 1,
as in keepalived.  (keepalived zeroes ``vrrp_garp_master_refresh_repeat`` too: a refresh
turned on later then sends nothing, and so it does here.)

``garp_group`` (vrrp_parser.c ``garp_group_*_handler``): one pacer for the interfaces it
names, which :mod:`hafast.vrrp.pacing` shares between every instance sending there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

from hafast.config import model as m
from hafast.config.tokens import Token

# global_defs field -> what vrrp_min_garp sets; the model's defaults are keepalived's
# (vrrp.h VRRP_GARP_REP, _REFRESH, _REFRESH_REP, _DELAY)
MIN_GARP: dict[str, int] = {
    "vrrp_garp_master_repeat": 1,
    "vrrp_garp_master_refresh_us": 0,
    "vrrp_garp_master_refresh_repeat": 0,
    "vrrp_garp_master_delay_us": 0,
}
_DEFAULTS = {f.name: f.default for f in fields(m.GlobalDefs) if f.name in MIN_GARP}


def _after(tok: Token | None, than: Token) -> bool:
    if tok is None:
        return False
    if tok.file != than.file:
        # an include's order is not kept in the tokens: a value set in another file
        # is taken as written after (it only matters when it equals the default)
        return True
    return (tok.line, tok.col) > (than.line, than.col)


def fold_min_garp(f: dict[str, Any], pos: dict[str, Token]) -> None:
    """Apply ``vrrp_min_garp`` to the global_defs fields ``f`` (in place).

    >>> tok = lambda n: Token("x", "k.conf", n, 1)
    >>> f = {"vrrp_min_garp": True, "vrrp_garp_master_repeat": 5,
    ...      "vrrp_garp_master_delay_us": 5_000_000}
    >>> fold_min_garp(f, {"vrrp_min_garp": tok(2), "vrrp_garp_master_repeat": tok(1),
    ...                   "vrrp_garp_master_delay_us": tok(3)})
    >>> sorted(f.items())  # doctest: +NORMALIZE_WHITESPACE
    [('vrrp_garp_master_delay_us', 5000000), ('vrrp_garp_master_refresh_repeat', 0),
     ('vrrp_garp_master_refresh_us', 0), ('vrrp_garp_master_repeat', 1)]
    """
    if not f.pop("vrrp_min_garp", False):
        return
    at = pos["vrrp_min_garp"]
    for name, minimum in MIN_GARP.items():
        default = _DEFAULTS[name]
        if not _after(pos.get(name), at) and f.get(name, default) == default:
            f[name] = minimum


def garp_group(warn: Callable[[Token, str], None], f: dict[str, Any], kw: Token
               ) -> m.GarpGroup | None:
    """The ``garp_group`` block's model, or None (with keepalived's complaint) when it
    sets no interval: keepalived removes such a group."""
    if "garp_interval_us" not in f and "gna_interval_us" not in f:
        warn(kw, "garp_group sets neither garp_interval nor gna_interval: ignored, "
                 "as keepalived removes it")
        return None
    return m.GarpGroup(f.get("garp_interval_us"), f.get("gna_interval_us"),
                       tuple(f.get("interfaces", ())), kw.where())
