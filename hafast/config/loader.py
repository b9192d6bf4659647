"""Tokens -> model: structure, conversion, defaults, inheritance and cross checks.

Two passes, both table driven:

1. :func:`build_tree` groups the lexer's lines into statements and ``{ }`` blocks.
2. :class:`_Loader` walks the tree with :data:`hafast.config.grammar.TABLE`: the row of a
   keyword says whether it takes values, a block or a list, how to convert it and which
   model field it fills.  Objects that inherit settings (virtual_server -> real_server ->
   checker, global_defs -> vrrp_instance) are built once, when their parent is complete,
   so inheritance costs no second construction.

Every problem becomes a :class:`~hafast.config.tokens.Diagnostic` at the word it is about.
The loader never stops at the first error; :func:`load` raises one
:class:`~hafast.config.tokens.ConfigError` carrying all of them.

Example::

    >>> from hafast.config.tokens import Line, Token
    >>> def line(n, text):
    ...     return Line(tuple(Token(w, "k.conf", n, 1) for w in text.split()))
    >>> res = load_lines([line(1, "vrrp_instance V {"), line(2, "priority 300"), line(3, "}")])
    >>> [d.format() for d in res.diagnostics][0]
    "k.conf:2:1: error: number '300' outside range [1, 255] (expected: priority <integer 1..255>)"
"""

from __future__ import annotations

import difflib
import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from hafast.config import model as m
from hafast.config.grammar import (
    IPV4_RE,
    TABLE,
    BadValue,
    Keyword,
    conv_int,
    conv_ip_port,
    conv_script,
)
from hafast.config.kinds import CHILDREN, KINDS
from hafast.config.tokens import ConfigError, Diagnostic, Line, Token

S = m.S


def _script(raw: str, toks: tuple[Token, ...]) -> m.Script:
    """A script keyword, split from the raw line the way keepalived does
    (``notify_script_init``): the words after the keyword are split shell-like; the first
    is the command line and is split once more into argv; the next two are user, group.
    """
    from hafast.config.lexer import split_script

    parts = raw.split(None, 1)
    if len(parts) < 2:
        return conv_script(toks[1:])
    try:
        words = split_script(parts[1])
        argv = split_script(words[0]) if words else []
    except ConfigError as exc:
        msg = exc.diagnostics[0].message if exc.diagnostics else "unterminated quote"
        raise BadValue(toks[1], msg) from None
    if not argv:
        raise BadValue(toks[1], "empty script (expected: a command, quoted with its arguments)")
    if len(words) > 3:
        bad = toks[min(len(toks) - 1, 4)]
        raise BadValue(
            bad,
            f"unexpected '{words[3]}' after the script, user and group "
            '(quote a command with arguments: "/path/script arg")',
        )
    return m.Script(
        tuple(argv), words[1] if len(words) > 1 else None, words[2] if len(words) > 2 else None
    )


class Node:
    """One statement: its words, and its ``{ }`` children when it opened a block."""

    __slots__ = ("children", "close", "raw", "toks")

    def __init__(self, toks: tuple[Token, ...], raw: str = "") -> None:
        self.toks = toks
        self.raw = raw
        self.children: list[Node] | None = None
        self.close: Token | None = None


_MISSING = object()
_BRACES = frozenset({"{", "}"})


def build_tree(
    lines: Iterable[Line], diags: list[Diagnostic], *, report_braces: bool = True
) -> list[Node]:
    """Group lines into statements and blocks; brace errors go to ``diags``.

    ``report_braces=False`` when the lexer has already checked the balance (it does, with
    the file position of every unclosed ``{``), so a problem is reported once.
    """
    if not report_braces:
        diags = []
    root: list[Node] = []
    stack: list[list[Node]] = [root]
    openers: list[Node] = []
    level = root
    for line in lines:
        toks = line.tokens
        first = toks[0]
        t0 = first.text
        # The lexer gives every brace a line of its own (tokens.Line): those two cases
        # come first.  Lines built by other means may carry braces among their words;
        # the general loop below splits them.
        if t0 == "}" and len(toks) == 1 and not first.quoted and len(stack) > 1:
            openers.pop().close = first
            stack.pop()
            level = stack[-1]
            continue
        if t0 == "{" and len(toks) == 1 and not first.quoted and level:
            opener = level[-1]
            if opener.children is None:
                opener.children = level = []
                openers.append(opener)
                stack.append(level)
                continue
        if t0 != "{" and t0 != "}" and toks[-1].text not in _BRACES:
            level.append(Node(toks, line.raw))
            continue
        cur: list[Token] = []
        for t in toks:
            tx = t.text
            if t.quoted or (tx != "{" and tx != "}"):
                cur.append(t)
                continue
            if cur:
                level.append(Node(tuple(cur)))
                cur = []
            if tx == "{":
                # keepalived allows the "{" on the line after its keyword
                if not level or level[-1].children is not None:
                    diags.append(Diagnostic.at(t, "error", "'{' without a keyword before it"))
                    opener = Node((t,))
                    level.append(opener)
                else:
                    opener = level[-1]
                opener.children = []
                openers.append(opener)
                level = opener.children
                stack.append(level)
            elif len(stack) == 1:
                diags.append(Diagnostic.at(t, "error", "'}' does not close any block"))
            else:
                openers.pop().close = t
                stack.pop()
                level = stack[-1]
        if cur:
            level.append(Node(tuple(cur)))
    for opener in openers:
        kw = opener.toks[0]
        diags.append(
            Diagnostic.at(kw, "error", f"block '{kw.text}' is never closed (expected '}}')")
        )
    return root


@dataclass(slots=True)
class Pending:
    """A block read but not yet built (it waits for its parent's inherited settings)."""

    context: str
    args: tuple[Token, ...]
    fields: dict[str, Any]
    pos: dict[str, Token]
    kw: Token
    end: Token | None = None  # its closing brace: where keepalived reports what is missing

    @property
    def last(self) -> Token:
        return self.end if self.end is not None else self.kw


@dataclass(slots=True)
class LoadResult:
    config: m.Config
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)


# Contexts whose blocks are built by their parent (inheritance), not when they close;
# so are the checker kinds' blocks (KINDS, which may grow after import).
_DEFERRED = frozenset(
    {
        "real_server",
        "vrrp_instance",
        "vrrp_sync_group",
        "virtual_server",
        "vrrp_script",
        "track_file",
        "vrrp_track_process",
    }
)

# Settings a real server inherits from its virtual server.
_INHERITED_RS = ("inhibit_on_failure", "smtp_alert", "alpha", "virtualhost", "lvs_method")


def accept_mode(accept: bool | None, *, priority: int, version: int, strict: bool) -> bool:
    """Whether a master lets packets addressed to its VIPs in (Accept_Mode).

    ``accept`` is what the file says (None: nothing).  RFC 5798 §6.4.3: the address
    owner (priority 255) always accepts.  keepalived: accept is on unless strict, and
    strict refuses it on VRRPv2 (RFC 3768 has no Accept_Mode).  The loader stores the
    result in ``VrrpInstance.accept``; :attr:`hafast.vrrp.params.VrrpParams.accept_effective`
    applies the same rule to parameters built without a config.

    >>> accept_mode(None, priority=100, version=2, strict=False)
    True
    >>> accept_mode(True, priority=100, version=2, strict=True)
    False
    >>> accept_mode(True, priority=100, version=3, strict=True)
    True
    """
    if priority == 255:
        return True
    if strict:
        return bool(accept) and version == 3
    return True if accept is None else accept


def _tuples(fields: dict[str, Any]) -> dict[str, Any]:
    for k, v in fields.items():
        if type(v) is list:
            fields[k] = tuple(v)
    return fields


def _split_weight(fields: dict[str, Any]) -> None:
    w = fields.get("weight")
    if type(w) is tuple:
        fields["weight"], fields["weight_reverse"] = w


class _Loader:
    def __init__(self) -> None:
        self.diags: list[Diagnostic] = []
        self.warned: set[str] = set()
        self.cache: dict[tuple[Keyword, str], Any] = {}
        self.item_pos: dict[int, Token] = {}  # list items (addresses, tracks) -> their line
        self.first_script: Token | None = None
        self.checkers: dict[tuple[Any, ...], m.Checker] = {}
        self.by_block: dict[tuple[Any, ...], m.Checker] = {}
        self.checker_tuples: dict[tuple[int, ...], tuple[m.Checker, ...]] = {}

    # ----------------------------------------------------------------- reporting
    def error(self, tok: Token, msg: str) -> None:
        self.diags.append(Diagnostic(tok.file, tok.line, tok.col, "error", msg))

    def warn(self, tok: Token, msg: str) -> None:
        self.diags.append(Diagnostic(tok.file, tok.line, tok.col, "warning", msg))

    def at(self, item: object, fallback: Token) -> Token:
        """The line a list item (address, peer, tracked name) was written on."""
        return self.item_pos.get(id(item), fallback)

    def _unknown(self, ctx: str, tok: Token) -> None:
        names = list(TABLE[ctx])
        best = difflib.get_close_matches(tok.text, names, n=1, cutoff=0.6)
        if not best:
            best = difflib.get_close_matches(tok.text, names, n=1, cutoff=0.0)
        where = "at top level" if ctx == "top" else f"in {ctx}"
        hint = f"; did you mean '{best[0]}'?" if best else ""
        self.error(tok, f"unknown keyword '{tok.text}' {where}{hint}")

    # ----------------------------------------------------------------- the walk
    def block(
        self, ctx: str, nodes: Sequence[Node], fields: dict[str, Any], pos: dict[str, Token]
    ) -> None:
        rows = TABLE[ctx]
        cache = self.cache
        for node in nodes:
            toks = node.toks
            kt = toks[0]
            kw = rows.get(kt.text)
            if kw is None:
                self._unknown(ctx, kt)
                continue
            if kw.one_word and len(toks) == 2 and node.children is None:
                # "weight 1" x 37,000: the word was converted before, without error
                value = cache.get((kw, toks[1].text), _MISSING)
                if value is not _MISSING:
                    fname = kw.field
                    fields[fname] = value  # type: ignore[index]
                    pos[fname] = kt  # type: ignore[index]
                    continue
            n = len(toks) - 1
            kind = kw.kind
            children = node.children
            # the shape first (block or value), then the count of words
            if (children is None) is (kind == "b" or kind == "l"):
                if children is None:
                    self.error(kt, f"'{kt.text}' needs a block: {kw.shape()}")
                else:
                    self.error(
                        kt, f"'{kt.text}' takes a value, not a block (expected: {kw.shape()})"
                    )
                continue
            if n < kw.min_args or (kw.max_args >= 0 and n > kw.max_args):
                self._arity(kw, toks)
                continue
            try:
                if kind == "b":
                    value = self.child(kw, toks, children, node.close)  # type: ignore[arg-type]
                elif kind == "l":
                    value = self.list_block(kw, toks, children)  # type: ignore[arg-type]
                elif n == 1:
                    # one-word values repeat a lot ("weight 1" x 37,000): convert once
                    ck = (kw, toks[1].text)
                    value = cache.get(ck, _MISSING)
                    if value is _MISSING:
                        value = self.convert(kw, node)
                        cache[ck] = value
                else:
                    value = self.convert(kw, node)
            except BadValue as exc:
                self.error(exc.token, f"{exc.message} (expected: {kw.shape()})")
                if kw.field is not None:
                    pos.setdefault(kw.field, kt)  # given, though wrong: no "missing" error
                continue
            fname = kw.field
            if fname is None:
                if kt.text not in self.warned:
                    self.warned.add(kt.text)
                    self.warn(kt, f"'{kt.text}' accepted, not yet supported (ignored)")
                continue
            if kw.append:
                lst = fields.get(fname)
                if kind == "l" and not kw.min_args:  # several list blocks add up
                    if lst is None:
                        fields[fname] = value
                    else:
                        lst.extend(value)
                else:
                    if lst is None:
                        fields[fname] = lst = []
                    lst.append(value)
                    if kind == "f":  # repeatable flags (scheduler flags): each one's place
                        pos[value] = kt
            else:
                fields[fname] = value
            pos[fname] = kt

    def convert(self, kw: Keyword, node: Node) -> Any:
        if kw.conv is conv_script:
            if self.first_script is None:
                self.first_script = node.toks[0]
            if node.raw:
                return _script(node.raw, node.toks)
        return kw.conv(node.toks[1:])  # type: ignore[misc]

    def _arity(self, kw: Keyword, toks: tuple[Token, ...]) -> None:
        kt = toks[0]
        n = len(toks) - 1
        if n < kw.min_args:
            what = "a name" if kw.kind in "bl" else "a value"
            self.error(kt, f"'{kt.text}' needs {what}: {kw.shape()}")
        else:
            extra = toks[kw.max_args + 1]
            if kw.max_args == 0:
                self.error(
                    extra,
                    f"'{kt.text}' takes no value, got '{extra.text}' (expected: {kw.shape()})",
                )
            else:
                self.error(
                    extra,
                    f"'{kt.text}' takes at most {kw.max_args} value(s), "
                    f"got '{extra.text}' too (expected: {kw.shape()})",
                )

    def list_block(self, kw: Keyword, toks: tuple[Token, ...], children: list[Node]) -> Any:
        conv = kw.conv
        assert conv is not None
        items = []
        for child in children:
            if child.children is not None:
                self.error(
                    child.toks[0],
                    f"unexpected block inside '{kw.name}' (expected lines of {kw.conv_name})",
                )
                continue
            try:
                item = conv(child.toks)
            except BadValue as exc:
                self.error(exc.token, f"{exc.message} (expected in {kw.name}: {kw.conv_name})")
                continue
            items.append(item)
            if not isinstance(item, str):  # an object of its own: remember its line
                self.item_pos[id(item)] = child.toks[0]
        if kw.min_args:  # a named list: virtual_server_group NAME { ... }
            return m.VirtualServerGroup(toks[1].text, tuple(items), toks[0].where())
        return items if kw.append else tuple(items)

    def child(
        self, kw: Keyword, toks: tuple[Token, ...], children: list[Node], close: Token | None
    ) -> Any:
        ctx = kw.child
        assert ctx is not None
        fields: dict[str, Any] = {}
        pos: dict[str, Token] = {}
        self.block(ctx, children, fields, pos)
        if ctx in _DEFERRED or ctx in KINDS:
            return Pending(ctx, toks[1:], fields, pos, toks[0], close)
        build = _IMMEDIATE.get(ctx)
        if build is None:  # a block inside a checker's (url {}, host {})
            return CHILDREN[ctx].build(_tuples(fields))
        return build(self, _tuples(fields), pos, toks[0])

    # ----------------------------------------------------------------- top level
    def load(self, lines: Iterable[Line], report_braces: bool = True) -> m.Config:
        tree = build_tree(lines, self.diags, report_braces=report_braces)
        top: dict[str, Any] = {}
        pos: dict[str, Token] = {}
        self.block("top", tree, top, pos)
        gd: m.GlobalDefs = top.get("global_defs") or m.GlobalDefs()
        if self.first_script is not None and not gd.enable_script_security:
            # keepalived -t exits 5/6 ("SECURITY VIOLATION") for this; it still runs them
            self.warn(
                self.first_script,
                "scripts are configured but enable_script_security is not set (add it to "
                "global_defs, and keep the scripts writable by root only)",
            )
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
        insts = self.vrrp_instances(top.get("vrrp_instances", ()), gd, names)
        groups = self.sync_groups(top.get("sync_groups", ()), insts, scripts)
        vsgs = top.get("virtual_server_groups", [])
        vsg_names: dict[str, m.VirtualServerGroup] = {}
        for g in vsgs:
            vsg_names.setdefault(g.name, g)
        vss = self.virtual_servers(top.get("virtual_servers", ()), vsg_names)
        return m.Config(
            global_defs=gd,
            vrrp_scripts=scripts,
            track_files=tfiles,
            track_processes=tprocs,
            vrrp_instances=insts,
            sync_groups=groups,
            static_ipaddress=tuple(top.get("static_ipaddress", ())),
            static_routes=tuple(top.get("static_routes", ())),
            static_rules=tuple(top.get("static_rules", ())),
            ssl=top.get("ssl"),
            virtual_server_groups=tuple(vsgs),
            virtual_servers=vss,
        )

    def _named(self, pendings: Iterable[Pending], build: Any, what: str) -> tuple[Any, ...]:
        out: list[Any] = []
        seen: set[str] = set()
        for p in pendings:
            name = p.args[0].text
            if name in seen:
                self.error(p.args[0], f"{what} '{name}' is defined twice (names must be unique)")
                continue
            seen.add(name)
            out.append(build(p, name))
        return tuple(out)

    # ----------------------------------------------------------------- trackers
    def vrrp_script(self, p: Pending, name: str) -> m.VrrpScript:
        f = _tuples(p.fields)
        _split_weight(f)
        if "script" not in f:
            self.error(
                p.last, f"vrrp_script '{name}' has no 'script' (expected: script COMMAND [ARGS])"
            )
        f.setdefault("timeout_us", f.get("interval_us", S))
        return m.VrrpScript(name=name, where=p.kw.where(), **f)

    def track_file(self, p: Pending, name: str) -> m.TrackFile:
        f = _tuples(p.fields)
        _split_weight(f)
        if "file" not in f:
            self.error(p.last, f"track_file '{name}' has no 'file' (expected: file PATH)")
        return m.TrackFile(name=name, where=p.kw.where(), **f)

    def track_process(self, p: Pending, name: str) -> m.TrackProcess:
        f = _tuples(p.fields)
        _split_weight(f)
        if "process" not in f:
            self.error(
                p.last,
                f"vrrp_track_process '{name}' has no 'process' (expected: process NAME [ARGS])",
            )
        qmax = f.get("quorum_max")
        if qmax is not None and qmax < f.get("quorum", 1):
            self.error(
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
                self.error(
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
                    self.error(
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
        f = _tuples(p.fields)
        pos = p.pos
        if "virtual_router_id" not in pos:
            self.error(
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
            self.warn(
                p.kw,
                f"vrrp_instance '{name}' has no virtual_ipaddress; at least one is "
                "sensible (or say no_virtual_ipaddress)",
            )
        fams = {v.family for v in vips}
        if len(fams) > 1:
            odd = next(v for v in vips if v.family != vips[0].family)
            self.error(
                self.at(odd, pos["virtual_ipaddress"]),
                f"vrrp_instance '{name}' mixes IPv4 and IPv6 in "
                "virtual_ipaddress; put the other family in virtual_ipaddress_excluded",
            )
        family = 6 if (6 in fams or f.pop("native_ipv6", False)) else 4
        f["family"] = family
        version = f.get("version", gd.vrrp_version)
        if family == 6 and version == 2:
            if "version" in f:
                self.error(
                    pos["version"], "VRRP version 2 cannot carry IPv6 (RFC 5798 §1); use version 3"
                )
            version = 3
        f["version"] = version
        adv = f.get("advert_int_us", S)
        if version == 3:
            # RFC 5798 §5.2.7: 12-bit Max Adver Int in centiseconds, 0.01 .. 40.95 s
            if not 10_000 <= adv <= 40_950_000:
                self.error(
                    pos["advert_int_us"],
                    f"advert_int {adv / S:g} outside 0.01..40.95 s for VRRPv3 "
                    "(expected: advert_int 0.01..40.95)",
                )
            elif adv % 10_000:
                self.warn(
                    pos["advert_int_us"],
                    f"advert_int {adv / S:g} rounded to centiseconds for VRRPv3",
                )
                f["advert_int_us"] = round(adv / 10_000) * 10_000
        elif adv % S or adv == 0:
            # RFC 3768 §5.3.7: Adver Int is a whole number of seconds, 1..255
            rounded = max(S, round(adv / S) * S)
            if "advert_int_us" in pos:
                self.warn(
                    pos["advert_int_us"],
                    f"VRRPv2 advert_int must be whole seconds; using {rounded // S}",
                )
            f["advert_int_us"] = rounded
        strict = bool(f.get("strict_mode", gd.vrrp_strict))
        f["strict_mode"] = strict
        prio = f.get("priority", 100)
        if "no_accept" in f:
            f["accept"] = not f.pop("no_accept")
        # The model holds what the instance does, so `status` and the FSM read one value.
        f["accept"] = accept_mode(f.get("accept"), priority=prio, version=version,
                                  strict=strict)
        if strict:
            if f.get("unicast_peer"):
                self.error(
                    pos["unicast_peer"],
                    "unicast_peer cannot be used with vrrp_strict/strict_mode "
                    "(RFC 5798 §5.1.1.2 multicast only); remove one of them",
                )
            if "authentication" in f:
                self.error(
                    pos["authentication"],
                    "authentication cannot be used with vrrp_strict/strict_mode "
                    "(RFC 3768 removed it); remove one of them",
                )
            if not vips:
                self.error(
                    p.kw,
                    f"vrrp_instance '{name}': strict mode needs at least one virtual_ipaddress",
                )
            if f.get("state") == "MASTER" and prio != 255:
                self.warn(
                    pos["state"], "strict mode: state MASTER needs priority 255; starting as BACKUP"
                )
                f["state"] = "BACKUP"
        if prio == 255 and f.get("state", "BACKUP") == "BACKUP" and "state" in f:
            self.warn(pos["state"], "priority 255 (address owner) always starts as MASTER")
        auth = f.get("authentication")
        if auth is not None:
            if version == 3:
                self.error(
                    pos["authentication"],
                    "authentication is not part of VRRPv3 (RFC 5798 §9); remove it",
                )
        peers = f.get("unicast_peer", ())
        for peer in peers:
            if (6 if ":" in peer.address else 4) != family:
                self.error(
                    self.at(peer, pos["unicast_peer"]),
                    f"unicast_peer {peer.address} is not IPv{family} like the instance "
                    f"(expected: an IPv{family} peer address)",
                )
        for k, gk in (
            ("garp_master_delay_us", gd.vrrp_garp_master_delay_us),
            ("garp_master_repeat", gd.vrrp_garp_master_repeat),
            ("garp_master_refresh_us", gd.vrrp_garp_master_refresh_us),
            ("garp_master_refresh_repeat", gd.vrrp_garp_master_refresh_repeat),
            ("down_timer_adverts", gd.vrrp_down_timer_adverts),
        ):
            f.setdefault(k, gk)
        f.setdefault(
            "garp_lower_prio_delay_us",
            gd.vrrp_garp_lower_prio_delay_us
            if gd.vrrp_garp_lower_prio_delay_us is not None
            else f["garp_master_delay_us"],
        )
        f.setdefault(
            "garp_lower_prio_repeat",
            gd.vrrp_garp_lower_prio_repeat
            if gd.vrrp_garp_lower_prio_repeat is not None
            else f["garp_master_repeat"],
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
        if "nopreempt" in f and f.get("state") == "MASTER":
            self.warn(
                pos["nopreempt"],
                "nopreempt needs state BACKUP; keepalived ignores state MASTER here",
            )
        for k, kind in (
            ("track_script", "script"),
            ("track_file", "file"),
            ("track_process", "process"),
        ):
            for ref in f.get(k, ()):
                if ref.name not in names[kind]:
                    self.warn(
                        self.at(ref, pos[k]),
                        f"{k} '{ref.name}' is not defined (define it with "
                        f"{'vrrp_script' if kind == 'script' else 'vrrp_track_' + kind} "
                        f"{ref.name} {{ ... }}); ignored",
                    )
        return m.VrrpInstance(name=name, where=p.kw.where(), **f)

    def sync_groups(
        self,
        pendings: Iterable[Pending],
        insts: Sequence[m.VrrpInstance],
        scripts: Sequence[m.VrrpScript] = (),
    ) -> tuple[m.SyncGroup, ...]:
        known = {i.name for i in insts}
        member_of: dict[str, str] = {}
        out: list[m.SyncGroup] = []
        for p in self._named_pendings(pendings, "vrrp_sync_group"):
            name = p.args[0].text
            f = p.fields
            group = f.get("group", ())
            for vi in group:
                if vi not in known:
                    self.warn(
                        p.pos["group"],
                        f"vrrp_sync_group '{name}': instance '{vi}' is not defined; ignored",
                    )
                elif vi in member_of:
                    self.error(
                        p.pos["group"],
                        f"instance '{vi}' is already in sync group '{member_of[vi]}'; "
                        "an instance may be in one group only",
                    )
                else:
                    member_of[vi] = name
            if not group:
                self.error(
                    p.kw,
                    f"vrrp_sync_group '{name}' has no members (expected: group {{ INSTANCE ... }})",
                )
            elif len(group) == 1:
                self.warn(
                    p.kw,
                    f"vrrp_sync_group '{name}' has only 1 instance; a sync group "
                    "keeps several instances in step (add the others to group)",
                )
            out.append(m.SyncGroup(name=name, where=p.kw.where(), **_tuples(f)))
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
                        self.warn(
                            Token(*_split_where(inst.where)),
                            f"vrrp_instance '{vi}': the weight of tracked script '{ref.name}' "
                            f"is ignored in sync group '{g.name}' (set sync_group_tracking_"
                            "weight in the group to use it)",
                        )

    def _named_pendings(self, pendings: Iterable[Pending], what: str) -> list[Pending]:
        seen: set[str] = set()
        out = []
        for p in pendings:
            name = p.args[0].text
            if name in seen:
                self.error(p.args[0], f"{what} '{name}' is defined twice (names must be unique)")
                continue
            seen.add(name)
            out.append(p)
        return out

    # ----------------------------------------------------------------- LVS
    def virtual_servers(
        self, pendings: Iterable[Pending], vsgs: dict[str, m.VirtualServerGroup]
    ) -> tuple[m.VirtualServer, ...]:
        out: list[m.VirtualServer] = []
        seen: dict[tuple[object, ...], Token] = {}
        for p in pendings:
            vs = self.virtual_server(p, vsgs)
            if vs is None:
                continue
            key = vs.key
            if key in seen:
                self.error(
                    p.kw, f"virtual_server {_vs_name(vs)} is already defined at {seen[key].where()}"
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
            self.error(exc.token, f"{exc.message} ({_VS_SHAPE})")
            return None
        if "protocol" not in f and "address" in ident:
            self.warn(
                p.kw,
                "virtual_server has no 'protocol'; keepalived defaults to UDP "
                "(write: protocol TCP)",
            )
            f["protocol"] = "UDP"
        # keepalived -t reports these defaults (and exits 5); say which one applies
        if "lvs_sched" not in f:
            self.warn(
                p.kw, "virtual_server has no lvs_sched; keepalived uses wlc (write: lvs_sched wlc)"
            )
        if "lvs_method" not in f:
            self.warn(
                p.kw,
                "virtual_server has no lvs_method; keepalived uses NAT (write: lvs_method NAT)",
            )
        quorum = f.get("quorum", 1)
        hyst = f.get("hysteresis", 0)
        if hyst >= quorum and "hysteresis" in f:
            self.warn(
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
        for k in ("alpha", "virtualhost"):
            if k in f:
                inh_chk[k] = f[k]
        inh_key = tuple(inh_chk.items())
        built: list[m.RealServer] = []
        seen: set[tuple[str, int | None]] = set()
        vs_port = ident.get("port")
        group = vsgs.get(ident.get("group", ""))
        by_mark = "fwmark" in ident or (
            group is not None and any(mem.fwmark is not None for mem in group.members)
        )
        for rp in rss:
            rs = self.real_server(rp, inh_rs, inh_chk, inh_key, vs_port)
            if rs is None:
                continue
            if by_mark and len(rp.args) > 1:
                # keepalived check_data.c: a fwmark service forwards to the packet's port
                self.warn(
                    rp.args[1],
                    f"real_server {rs.address}: the port is ignored for a "
                    "fwmark virtual server (write: real_server IP)",
                )
            key = (rs.address, rs.port)
            if key in seen:
                self.error(
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
                self.warn(
                    tok,
                    f"'{word}' is obsolete: the kernel marks every service hashed "
                    "itself; ignored (remove it)",
                )
            elif only is not None and only != sched:
                self.warn(
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
            self.warn(
                p.kw,
                "virtual_server has no real_server and no sorry_server; "
                "keepalived ignores it (add: real_server IP PORT { ... })",
            )
        if f.get("ha_suspend") and "fwmark" in ident:
            self.warn(
                pos["ha_suspend"],
                "ha_suspend cannot be used with a fwmark virtual "
                "server; keepalived clears it (remove ha_suspend)",
            )
        if f.get("ops") and f.get("protocol", "TCP") != "UDP" and "fwmark" not in ident:
            self.warn(
                pos["ops"],
                "one-packet scheduling (ops) needs protocol UDP; keepalived turns it off",
            )
        if "sorry_server_lvs_method" in f and "sorry_server" not in f:
            self.warn(
                pos["sorry_server_lvs_method"],
                "sorry_server_lvs_method without sorry_server has no effect",
            )
        total = sum(rs.weight for rs in rss)
        quorum = f.get("quorum", 1)
        if rss and quorum > total:
            self.warn(
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
                self.error(exc.token, exc.message + " (expected: real_server IP [PORT] { ... })")
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
            self.error(p.pos["uthreshold"], f"uthreshold {u} is below lthreshold {f['lthreshold']}")
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
        n_diags = len(self.diags)
        built = self._checker(p, inherit)
        if raw is not None and len(self.diags) == n_diags:
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
                self.error(p.last, f"{kind.keyword} has no {what}")
        if kind.fixup is not None:
            kind.fixup(f, p.fields)
        _tuples(f)  # repeated blocks (url {}, host {}) were gathered in lists
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
    lookup per field); this sets the slots through their descriptors directly, the
    missing ones to their defaults.  Only for classes whose fields have plain defaults
    (no factories) and no ``__post_init__``; the loader's dict holds model fields only
    (``test_loader_fast_constructor`` checks both against the dataclass).
    """
    setters: list[tuple[str, Any, Any]] = []
    for f in fields(cls):
        if f.default_factory is not MISSING or hasattr(cls, "__post_init__"):
            raise TypeError(f"{cls.__name__}.{f.name}: a factory default needs __init__")
        setters.append((f.name, getattr(cls, f.name).__set__, f.default))
    required = frozenset(name for name, _, default in setters if default is MISSING)
    names = frozenset(name for name, _, _ in setters)
    new = object.__new__

    def make(values: dict[str, Any]) -> Any:
        # the same TypeErrors as the dataclass __init__ (load_lines reports them)
        if not names.issuperset(values):
            raise TypeError(f"{cls.__name__}: unknown field(s) {sorted(set(values) - names)}")
        if not required.issubset(values):
            raise TypeError(f"{cls.__name__}: missing field(s) {sorted(required - set(values))}")
        obj = new(cls)
        get = values.get
        for name, put, default in setters:
            put(obj, get(name, default))
        return obj

    return make


_new_real_server = _slot_filler(m.RealServer)


def _split_where(where: str) -> tuple[str, str, int, int]:
    """``FILE:LINE:COL`` back into Token fields (for a warning about a built object)."""
    file, line, col = where.rsplit(":", 2)
    return ("", file, int(line), int(col))


def _vs_name(vs: m.VirtualServer) -> str:
    if vs.group is not None:
        return f"group {vs.group}"
    if vs.fwmark is not None:
        return f"fwmark {vs.fwmark}"
    return f"{vs.address} {vs.port if vs.port is not None else ''}".rstrip()


def _authentication(
    ld: _Loader, f: dict[str, Any], pos: dict[str, Token], kw: Token
) -> m.Authentication:
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


# Blocks built as soon as they close (nothing to inherit).
_IMMEDIATE: dict[str, Any] = {
    "global_defs": lambda ld, f, pos, kw: m.GlobalDefs(**f),
    "authentication": _authentication,
    "SSL": lambda ld, f, pos, kw: m.SslContext(**f),
    # accepted, not yet supported: the rows have no field, the block is only checked
    "auth_hmac": lambda ld, f, pos, kw: None,
    "garp_group": lambda ld, f, pos, kw: None,
    "track_group": lambda ld, f, pos, kw: None,
    "bfd_instance": lambda ld, f, pos, kw: None,
}


@contextmanager
def _no_gc() -> Iterator[None]:
    """The model is acyclic: collecting while building 100k objects only costs time."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def load_lines(
    lines: Iterable[Line],
    *,
    lex_diagnostics: Sequence[Diagnostic] = (),
    report_braces: bool = True,
) -> LoadResult:
    """Build the model from the lexer's lines; never raises for a bad config.

    >>> load_lines([]).config.vrrp_instances
    ()
    """
    loader = _Loader()
    loader.diags.extend(lex_diagnostics)
    lines = lines if isinstance(lines, list) else list(lines)
    try:
        with _no_gc():
            config = loader.load(lines, report_braces)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        # a gap in the checks must still come out as a diagnostic, never a traceback
        tok = lines[0].first if lines else Token("", "<config>", 0, 0)
        loader.error(
            tok, f"internal loader error ({type(exc).__name__}: {exc}); please report this config"
        )
        config = m.Config()
    return LoadResult(config, loader.diags)


def load_text(text: str, *, file: str = "<string>", config_id: str | None = None) -> LoadResult:
    """Lex and load config text held in memory (includes relative to ``file``'s folder).

    >>> load_text("global_defs {\\n router_id r1\\n}\\n").config.global_defs.router_id
    'r1'
    """
    from hafast.config.lexer import lex_text

    with _no_gc():
        lex = lex_text(text, file=file, config_id=config_id)
    res = load_lines(lex.lines, lex_diagnostics=lex.diagnostics, report_braces=False)
    res.files = list(lex.files)
    return res


def load_file(path: str, *, config_id: str | None = None, freeze: bool = False) -> LoadResult:
    """Lex and load ``path`` (includes, ``@`` lines, ``$`` parameters applied).

    ``freeze=True`` is for the daemon: it ``gc.freeze()``s what the load built, so the
    cyclic collector never walks the (acyclic) model: that saves its first pass over
    ~10^6 fresh objects (about a fifth of the load time at 37,000 real servers) and keeps
    pages shared after fork, the documented use of ``gc.freeze``.  Objects are still freed
    by reference counting; only cyclic garbage that happens to be pending at that moment
    is kept until ``gc.unfreeze()``, so call it where little else is going on (startup,
    reload), not in a loop.
    """
    from hafast.config.lexer import read_config

    try:
        with _no_gc():
            lex = read_config(path, config_id=config_id)
            res = load_lines(lex.lines, lex_diagnostics=lex.diagnostics, report_braces=False)
            res.files = list(lex.files)
            del lex
            if freeze:
                gc.freeze()
    except ConfigError as exc:
        return LoadResult(m.Config(), list(exc.diagnostics))
    return res


def load(path: str, *, config_id: str | None = None) -> m.Config:
    """Load ``path``; raise ConfigError carrying every error (warnings are dropped).

    >>> load("/etc/keepalived/keepalived.conf")  # doctest: +SKIP
    Config(global_defs=GlobalDefs(...), ...)
    """
    res = load_file(path, config_id=config_id)
    if not res.ok:
        raise ConfigError(res.errors)
    return res.config
