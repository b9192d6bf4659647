"""The LVS side of the loader: virtual_server, its real servers and their checkers.

:class:`LvsBuilder` turns the pending ``virtual_server`` blocks the table walk
(:mod:`hafast.config.walk`) collected into model objects, handing settings down as
keepalived does (virtual_server -> real_server -> checker) and building each checker
through the kind registry (:data:`hafast.config.kinds.KINDS`), so this module names no
checker.  Each object is built once, when its parent is complete, so inheritance costs no
second construction; large configs (37,000 real servers) go through the shortcuts below
(a checker cache per block and inherited settings, shared checker tuples, a slot-filling
RealServer constructor; ``tests/unit/config/test_loader_fast_paths.py`` holds them equal
to the plain paths).

Example::

    >>> from hafast.config.loader import load_text
    >>> res = load_text("virtual_server 10.0.0.1 80 {\\n protocol TCP\\n lvs_sched rr\\n"
    ...                 " lvs_method DR\\n delay_loop 7\\n real_server 10.0.1.1 80 {\\n"
    ...                 "  TCP_CHECK {\\n  }\\n }\\n}\\n")
    >>> rs = res.config.virtual_servers[0].real_servers[0]
    >>> rs.address, rs.checkers[0].delay_loop_us, res.diagnostics
    ('10.0.1.1', 7000000, [])
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import MISSING, fields
from typing import Any

from hafast._core.slotfill import fill
from hafast.config import model as m
from hafast.config.grammar import IPV4_RE, BadValue, conv_int, conv_ip_port
from hafast.config.kinds import KINDS
from hafast.config.tokens import Diagnostic, Token
from hafast.config.walk import Pending, Walker, as_tuples
from hafast.lib.units import US_PER_S

S = US_PER_S

# Settings a real server inherits from its virtual server.  Not smtp_alert: in
# keepalived 2.2.7 (check_data.c) the virtual server's is for its quorum alerts only,
# and a real server's unset one follows global_defs (hafast.lib.smtp_alert.enabled).
_INHERITED_RS = ("inhibit_on_failure", "alpha", "virtualhost", "lvs_method")

# Scheduler flag keyword -> (the scheduler it is for, None: any; the canonical flag it
# sets, None: nothing).  include/uapi/linux/ip_vs.h IP_VS_SVC_F_SCHED1..3 are flag-1..3.
_SCHED_FLAGS: dict[str, tuple[str | None, str | None]] = {
    "flag-1": (None, "flag-1"),
    "flag-2": (None, "flag-2"),
    "flag-3": (None, "flag-3"),
    "sh-fallback": ("sh", "flag-1"),  # IP_VS_SVC_F_SCHED_SH_FALLBACK
    "sh-port": ("sh", "flag-2"),  # IP_VS_SVC_F_SCHED_SH_PORT
    "mh-fallback": ("mh", "flag-1"),  # IP_VS_SVC_F_SCHED_MH_FALLBACK
    "mh-port": ("mh", "flag-2"),  # IP_VS_SVC_F_SCHED_MH_PORT
    "hashed": (None, None),  # IP_VS_SVC_F_HASHED is the kernel's own bookkeeping
}
_VS_SHAPE = "expected: virtual_server IP [PORT] | fwmark N | group NAME"
# Settings only checkers use; a virtual or real server passes them down.
_VS_ONLY_CHECK = ("connect_timeout_us", "retry", "delay_before_retry_us", "warmup_us")
_RS_TO_CHECK = (*_VS_ONLY_CHECK, "delay_loop_us", "alpha", "virtualhost")
_RS_TO_CHECK_SET = frozenset(_RS_TO_CHECK)
_IPV4_MATCH = IPV4_RE.match


def _slot_filler(cls: type[Any]) -> Any:
    """A constructor for a hot, frozen, slotted model class from a dict of its fields.

    A frozen dataclass ``__init__`` sets each field through ``object.__setattr__`` (a
    lookup per field); this sets the slots through their descriptors directly, from C
    (:func:`hafast._core.slotfill.fill`: 0.34 us for RealServer's 14 fields, 1.4 us from
    Python), the missing ones to their defaults.  Only for classes whose fields have
    plain defaults (no factories) and no ``__post_init__``; the loader's dict holds model
    fields only (``test_loader_fast_constructor`` checks both against the dataclass).
    """
    names_l: list[str] = []
    descrs: list[Any] = []
    defaults: list[Any] = []
    for f in fields(cls):
        if f.default_factory is not MISSING or hasattr(cls, "__post_init__"):
            raise TypeError(f"{cls.__name__}.{f.name}: a factory default needs __init__")
        names_l.append(f.name)
        descrs.append(getattr(cls, f.name))
        defaults.append(f.default)
    required = frozenset(n for n, d in zip(names_l, defaults, strict=True) if d is MISSING)
    names = frozenset(names_l)
    descrs_t, names_t, defaults_t = tuple(descrs), tuple(names_l), tuple(defaults)

    def make(values: dict[str, Any]) -> Any:
        # the same TypeErrors as the dataclass __init__ (load_lines reports them)
        if not names.issuperset(values):
            raise TypeError(f"{cls.__name__}: unknown field(s) {sorted(set(values) - names)}")
        if not required.issubset(values):
            raise TypeError(f"{cls.__name__}: missing field(s) {sorted(required - set(values))}")
        return fill(cls, descrs_t, names_t, defaults_t, values)

    return make


_new_real_server = _slot_filler(m.RealServer)


class _Kept:
    """A walker's error()/warn() that keep the diagnostics aside, for a virtual server
    built before the VRRP side (:meth:`LvsBuilder.build_early`): they join the load's
    in the place the LVS side's come out in."""

    __slots__ = ("diags",)

    def __init__(self) -> None:
        self.diags: list[Diagnostic] = []

    def error(self, tok: Token, msg: str, code: str = "") -> None:
        self.diags.append(Diagnostic(tok.file, tok.line, tok.col, "error", msg, code))

    def warn(self, tok: Token, msg: str, code: str = "") -> None:
        self.diags.append(Diagnostic(tok.file, tok.line, tok.col, "warning", msg, code))


class _Early:
    """A virtual server built when its block closed: what building it gave (the model,
    or the exception, raised where the build would have run) and said."""

    __slots__ = ("diags", "exc", "kw", "vs")

    def __init__(self, kw: Token, vs: m.VirtualServer | None, diags: list[Diagnostic],
                 exc: Exception | None) -> None:
        self.kw = kw
        self.vs = vs
        self.diags = diags
        self.exc = exc


class LvsBuilder:
    """Builds the LVS side of one load; its diagnostics go to the load's walker.

    It keeps the checker caches of the load: a checker per distinct spec (``checkers``),
    per block and inherited settings (``by_block``), and one tuple per distinct list of
    checkers (``checker_tuples``).
    """

    def __init__(self, ld: Walker) -> None:
        self.ld: Walker | _Kept = ld
        self.early = 0  # how many of the top level's virtual servers build_early() saw
        self.checkers: dict[tuple[Any, ...], m.Checker] = {}
        self.by_block: dict[tuple[Any, ...], m.Checker] = {}
        self.checker_tuples: dict[tuple[int, ...], tuple[m.Checker, ...]] = {}

    def config_fields(self, top: dict[str, Any]) -> dict[str, Any]:
        """The :class:`~hafast.config.model.Config` fields of the LVS side, from the top
        level's virtual_server_group lists and pending virtual_server blocks."""
        vsgs = top.get("virtual_server_groups", [])
        vsg_names: dict[str, m.VirtualServerGroup] = {}
        for g in vsgs:
            vsg_names.setdefault(g.name, g)
        vss = self.virtual_servers(top.get("virtual_servers", ()), vsg_names)
        return {"virtual_server_groups": tuple(vsgs), "virtual_servers": vss}

    def build_early(self, top: dict[str, Any]) -> None:
        """Build the virtual servers the walk added to ``top`` since the last call.

        The streaming load (:func:`hafast.config.loader.load_file`) calls this after
        each walked chunk, so a virtual server's pending blocks, tokens and field dicts
        are dropped as soon as it is built, instead of all of them waiting for the end
        of the file (at 37,000 real servers those were 60 MB of the load's peak).  Only
        ``virtual_server group NAME`` waits: its groups may come later in the file.  The
        diagnostics are kept aside and come out where :meth:`virtual_servers` meets the
        block, after the VRRP side's, as before.
        """
        pendings: list[Any] | None = top.get("virtual_servers")
        if pendings is None:
            return
        ld = self.ld
        for i in range(self.early, len(pendings)):
            p = pendings[i]
            if not p.args or p.args[0].text == "group":
                continue
            kept = self.ld = _Kept()
            try:
                pendings[i] = _Early(p.kw, self.virtual_server(p, {}), kept.diags, None)
            except Exception as exc:  # raised again by virtual_servers(), in its place
                pendings[i] = _Early(p.kw, None, kept.diags, exc)
            finally:
                self.ld = ld
        self.early = len(pendings)

    def virtual_servers(
        self, pendings: Iterable[Pending | _Early], vsgs: dict[str, m.VirtualServerGroup]
    ) -> tuple[m.VirtualServer, ...]:
        out: list[m.VirtualServer] = []
        seen: dict[tuple[object, ...], Token] = {}
        for p in pendings:
            if type(p) is _Early:
                self.ld.diags.extend(p.diags)
                if p.exc is not None:
                    raise p.exc
                vs = p.vs
            else:
                vs = self.virtual_server(p, vsgs)  # type: ignore[arg-type]
            if vs is None:
                continue
            key = vs.key
            if key in seen:
                self.ld.error(
                    p.kw, f"virtual_server {vs.label} is already defined at {seen[key].where()}"
                )
                continue
            seen[key] = p.kw
            out.append(vs)
        return tuple(out)

    def virtual_server(
        self, p: Pending, vsgs: dict[str, m.VirtualServerGroup]
    ) -> m.VirtualServer | None:
        args = p.args
        f = p.fields
        ident: dict[str, Any] = {}
        a0 = args[0]
        try:
            if a0.text == "fwmark" and len(args) == 2:
                ident["fwmark"] = conv_int(1, 2**32 - 1)(args[1:2])
            elif a0.text == "group" and len(args) == 2:
                ident["group"] = args[1].text
                if args[1].text not in vsgs:
                    raise BadValue(
                        args[1],
                        f"virtual_server_group '{args[1].text}' is not defined "
                        f"(define: virtual_server_group {args[1].text} {{ IP PORT ... }})",
                    )
            elif a0.text in ("fwmark", "group"):
                raise BadValue(a0, f"'virtual_server {a0.text}' needs one value")
            else:
                ident["address"], ident["port"] = conv_ip_port(args)
        except BadValue as exc:
            self.ld.error(exc.token, f"{exc.message} ({_VS_SHAPE})")
            return None
        if "protocol" not in f and "address" in ident:
            self.ld.warn(
                p.kw,
                "virtual_server has no 'protocol'; keepalived defaults to UDP "
                "(write: protocol TCP)",
            )
            f["protocol"] = "UDP"
        # keepalived -t reports these defaults (and exits 5); say which one applies
        if "lvs_sched" not in f:
            self.ld.warn(
                p.kw, "virtual_server has no lvs_sched; keepalived uses wlc (write: lvs_sched wlc)"
            )
        if "lvs_method" not in f:
            self.ld.warn(
                p.kw,
                "virtual_server has no lvs_method; keepalived uses NAT (write: lvs_method NAT)",
            )
        quorum = f.get("quorum", 1)
        hyst = f.get("hysteresis", 0)
        if hyst >= quorum and "hysteresis" in f:
            self.ld.warn(
                p.pos["hysteresis"],
                f"hysteresis {hyst} >= quorum {quorum}; keepalived uses {quorum - 1}",
            )
            f["hysteresis"] = quorum - 1
        if "sched_flags" in f:
            f["sched_flags"] = self._sched_flags(p, f)
        rss = f.pop("real_servers", ())
        # What the real servers inherit, and (one level further) their checkers.
        inh_chk = {k: f.pop(k) for k in _VS_ONLY_CHECK if k in f}
        inh_chk["delay_loop_us"] = f.get("delay_loop_us", 60 * S)
        inh_rs = {k: f[k] for k in _INHERITED_RS if k in f}
        if "weight" in f:
            # keepalived 2.2.7 check_data.c: a real server with no weight of its own
            # takes the virtual server's ("rs->effective_weight = vs->weight;"); the
            # virtual server itself keeps none (IPVS has no service weight).
            inh_rs["weight"] = f.pop("weight")
        for k in ("alpha", "virtualhost"):
            if k in f:
                inh_chk[k] = f[k]
        inh_key = tuple(inh_chk.items())
        built: list[m.RealServer] = []
        seen: set[tuple[str, int | None]] = set()
        vs_port = ident.get("port")
        # (not vsgs.get(ident.get("group", "")): a virtual_server_group named "" would
        # have made every other virtual server look like its members)
        group = vsgs.get(ident["group"]) if "group" in ident else None
        by_mark = "fwmark" in ident or (
            group is not None and any(mem.fwmark is not None for mem in group.members)
        )
        for rp in rss:
            rs = self.real_server(rp, inh_rs, inh_chk, inh_key, vs_port)
            if rs is None:
                continue
            if by_mark and len(rp.args) > 1:
                # keepalived check_data.c: a fwmark service forwards to the packet's port
                self.ld.warn(
                    rp.args[1],
                    f"real_server {rs.address}: the port is ignored for a "
                    "fwmark virtual server (write: real_server IP)",
                )
            key = (rs.address, rs.port)
            if key in seen:
                self.ld.error(
                    rp.kw,
                    f"real_server {rs.address} {rs.port} is already in this "
                    "virtual_server (one entry per address and port)",
                )
                continue
            seen.add(key)
            built.append(rs)
        self._vs_warnings(p, ident, f, built)
        return m.VirtualServer(real_servers=tuple(built), where=p.kw.where(), **ident, **f)

    def _sched_flags(self, p: Pending, f: dict[str, Any]) -> tuple[str, ...]:
        """Scheduler flag keywords -> the canonical IP_VS_SVC_F_SCHED bits they set.

        keepalived check_parser.c (lbflags_handler): flag-N always set bit N; sh-* and
        mh-* only with their scheduler, where *-fallback is SCHED1 and *-port SCHED2
        (ip_vs_sh.c, ip_vs_mh.c); for another scheduler they are reported and ignored.
        """
        sched = f.get("lvs_sched", "wlc")
        out: set[str] = set()
        for word in f["sched_flags"]:
            if word is None:  # "flag-1 off"
                continue
            tok = p.pos[word]
            only, bit = _SCHED_FLAGS[word]
            if bit is None:
                self.ld.warn(
                    tok,
                    f"'{word}' is obsolete: the kernel marks every service hashed "
                    "itself; ignored (remove it)",
                )
            elif only is not None and only != sched:
                self.ld.warn(
                    tok,
                    f"'{word}' applies to the {only} scheduler only (lvs_sched is "
                    f"{sched}); keepalived ignores it (remove it or use lvs_sched {only})",
                )
            else:
                out.add(bit)
        return tuple(sorted(out))

    def _vs_warnings(
        self, p: Pending, ident: dict[str, Any], f: dict[str, Any], rss: list[m.RealServer]
    ) -> None:
        """keepalived's post-parse corrections (check_data.c), reported as warnings."""
        pos = p.pos
        if not rss and "sorry_server" not in f:
            self.ld.warn(
                p.kw,
                "virtual_server has no real_server and no sorry_server; "
                "keepalived ignores it (add: real_server IP PORT { ... })",
            )
        if f.get("ha_suspend") and "fwmark" in ident:
            self.ld.warn(
                pos["ha_suspend"],
                "ha_suspend cannot be used with a fwmark virtual "
                "server; keepalived clears it (remove ha_suspend)",
            )
        if f.get("ops") and f.get("protocol", "TCP") != "UDP" and "fwmark" not in ident:
            self.ld.warn(
                pos["ops"],
                "one-packet scheduling (ops) needs protocol UDP; keepalived turns it off",
            )
        if "sorry_server_lvs_method" in f and "sorry_server" not in f:
            self.ld.warn(
                pos["sorry_server_lvs_method"],
                "sorry_server_lvs_method without sorry_server has no effect",
            )
        total = sum(rs.weight for rs in rss)
        quorum = f.get("quorum", 1)
        if rss and quorum > total:
            self.ld.warn(
                pos.get("quorum", p.kw),
                f"quorum {quorum} exceeds the total weight "
                f"{total} of the real servers; keepalived lowers it to {total}",
            )

    def real_server(
        self,
        p: Pending,
        inh_rs: dict[str, Any],
        inh_chk: dict[str, Any],
        inh_key: tuple[Any, ...],
        vs_port: int | None,
    ) -> m.RealServer | None:
        args = p.args
        a = args[0].text
        pt = args[1].text if len(args) == 2 else ""
        port: int | None
        if _IPV4_MATCH(a) and pt.isdigit() and len(pt) < 6 and int(pt) < 65536:
            address, port = a, int(pt)  # the common "IPv4 PORT", checked inline
        else:
            try:
                address, port = conv_ip_port(args)
            except BadValue as exc:
                self.ld.error(exc.token, exc.message + " (expected: real_server IP [PORT] { ... })")
                return None
        f = p.fields
        chk, chk_key = inh_chk, inh_key
        if not _RS_TO_CHECK_SET.isdisjoint(f):
            chk = dict(inh_chk)
            for k in _RS_TO_CHECK:
                if k in f:
                    chk[k] = f.pop(k) if k.endswith("_us") or k == "retry" else f[k]
            chk_key = tuple(chk.items())
        if inh_rs:
            f = {**inh_rs, **f}
        chks = f.pop("checkers", None)
        checkers: tuple[m.Checker, ...] = ()
        if chks:
            checkers = tuple([self.checker(c, chk, chk_key) for c in chks])
            # Real servers checked alike share one tuple (memory, GC passes, and the
            # reload diff's == short-cuts on identity).  Keyed by the checkers' ids, not
            # their hash (a frozen dataclass hashes all its fields on every call): the
            # stored tuple keeps those very objects alive, so no other can reuse an id.
            checkers = self.checker_tuples.setdefault(tuple(map(id, checkers)), checkers)
        u = f.get("uthreshold", 0)
        if u and u < f.get("lthreshold", 0):
            self.ld.error(
                p.pos["uthreshold"], f"uthreshold {u} is below lthreshold {f['lthreshold']}"
            )
        kw = p.kw
        f["address"] = address
        f["port"] = port if port is not None else vs_port
        f["checkers"] = checkers
        f["where"] = f"{kw.file}:{kw.line}:{kw.col}"
        return _new_real_server(f)

    def checker(
        self, p: Pending, inherit: dict[str, Any], inherit_key: tuple[Any, ...] = ()
    ) -> m.Checker:
        """The checker of ``p`` with ``inherit`` (its real and virtual server's settings;
        ``inherit_key`` is ``tuple(inherit.items())``, made once per virtual server).

        The same block under the same inherited settings is the same checker: a block
        seen before (that raised no diagnostic) is answered from ``by_block`` without
        merging, fixing up or hashing the merged settings again.
        """
        kind = p.context
        try:
            raw: tuple[Any, ...] | None = (kind, inherit_key, *p.fields.items())
            seen = self.by_block.get(raw)  # type: ignore[arg-type]
        except TypeError:  # a list value (urls, hosts): the full path below
            raw = seen = None
        if seen is not None:
            return seen
        n_diags = len(self.ld.diags)
        built = self._checker(p, inherit)
        if raw is not None and len(self.ld.diags) == n_diags:
            self.by_block[raw] = built
        return built

    def _checker(self, p: Pending, inherit: dict[str, Any]) -> m.Checker:
        kind = KINDS[p.context]
        dflt = kind.defaults
        # precedence: the checker's own > real server / virtual server > kind default
        f = {**dflt, **inherit, **p.fields} if dflt else {**inherit, **p.fields}
        if "virtualhost" not in kind.names:  # inherited, but only HTTP_GET/SSL_GET use it
            f.pop("virtualhost", None)
        for name, what in kind.required:
            if name not in f:
                self.ld.error(p.last, f"{kind.keyword} has no {what}")
        if kind.fixup is not None:
            kind.fixup(f, p.fields)
        as_tuples(f)  # repeated blocks (url {}, host {}) were gathered in lists
        # Large configs repeat the same checker thousands of times: share one frozen
        # instance per distinct spec (saves time and most of the checkers' memory).
        try:
            key = (kind.keyword, *f.items())
            hit = self.checkers.get(key)
        except TypeError:  # an unhashable value (never from the table's converters)
            built: m.Checker = kind.spec(**f)
            return built
        if hit is None:
            hit = self.checkers[key] = kind.spec(**f)
        return hit
