"""Tokens -> model: the loader's driver, and the API the daemon and the tools call.

A load reads the lexer's lines in passes, each in a module of its own:

1. :func:`hafast.config.tree.build_tree` groups the lines into statements and ``{ }``
   blocks.
2. :class:`hafast.config.walk.Walker` walks the tree with
   :data:`hafast.config.grammar.TABLE` (it never branches on keyword names) and converts
   every value; blocks with nothing to inherit (``global_defs``, ``authentication``,
   ``SSL``) are built when they close, by :data:`_IMMEDIATE` below.
3. The sides build what inherits settings, once its parent is complete, so inheritance
   costs no second construction: :mod:`hafast.config.build_vrrp` (global_defs ->
   vrrp_instance, trackers, sync groups) and :mod:`hafast.config.build_lvs`
   (virtual_server -> real_server -> checker).

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

import gc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hafast.config import lvs_syncd
from hafast.config import model as m
from hafast.config.bgp import announce, bgp_speaker
from hafast.config.bgp import diagnose as diagnose_fleet
from hafast.config.build_lvs import LvsBuilder
from hafast.config.build_vrrp import VrrpBuilder, authentication
from hafast.config.firewall import nftables_in_order
from hafast.config.garp import fold_min_garp, garp_group
from hafast.config.scriptcheck import secure_scripts

# Re-exported: hafast.vrrp.params applies the loader's Accept_Mode rule from here.
from hafast.config.tokens import ConfigError, Diagnostic, Line, Token
from hafast.config.tree import TreeBuilder, build_tree
from hafast.config.walk import ImmediateBuilder, Walker
from hafast.lib import oneshot


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


def _global_defs(ld: Walker, f: dict[str, Any], pos: dict[str, Token], kw: Token) -> Any:
    if isinstance(ld, _Loader):
        ld.global_pos = pos  # where script_user / notify_fifo were written
    nftables_in_order(f, pos, ld.warn)
    fold_min_garp(f, pos)
    return m.GlobalDefs(**f)


# Blocks built as soon as they close (nothing to inherit).
_IMMEDIATE: Mapping[str, ImmediateBuilder] = {
    "global_defs": _global_defs,
    "authentication": authentication,
    "SSL": lambda ld, f, pos, kw: m.SslContext(**f),
    "garp_group": lambda ld, f, pos, kw: garp_group(ld.warn, f, kw),
    "bgp_speaker": bgp_speaker,
    "announce": announce,
    # accepted without effect (hafast.config.support diagnoses them): the rows have no
    # field, the block is only checked
    "auth_hmac": lambda ld, f, pos, kw: None,
    "bfd_instance": lambda ld, f, pos, kw: None,
}


class _Loader(Walker):
    """One load: the table walk, the global_defs rules, then the VRRP and LVS sides."""

    immediate = _IMMEDIATE
    global_pos: dict[str, Token] | None = None
    lvs: LvsBuilder | None = None  # kept from the walk when it built virtual servers early

    def load(self, lines: Iterable[Line], report_braces: bool = True) -> m.Config:
        tree = build_tree(lines, self.diags, report_braces=report_braces)
        top: dict[str, Any] = {}
        pos: dict[str, Token] = {}
        self.block("top", tree, top, pos)
        return self.config(top, pos)

    def config(self, top: dict[str, Any], pos: dict[str, Token] | None = None) -> m.Config:
        """The model from the walked top level's fields."""
        gd: m.GlobalDefs = top.get("global_defs") or m.GlobalDefs()
        # VRRP before LVS: the order the diagnostics come out in (the golden files hold it)
        vrrp = VrrpBuilder(self).config_fields(top, gd)
        lvs = (self.lvs or LvsBuilder(self)).config_fields(top)
        config = m.Config(
            global_defs=gd,
            **vrrp,
            static_ipaddress=tuple(top.get("static_ipaddress", ())),
            static_routes=tuple(top.get("static_routes", ())),
            static_rules=tuple(top.get("static_rules", ())),
            garp_groups=tuple(g for g in top.get("garp_groups", ()) if g is not None),
            ssl=top.get("ssl"),
            **lvs,
            net_namespace=self._net_namespace(top, pos or {}),
            bgp_speaker=top.get("bgp_speaker"),
        )
        lvs_syncd.diagnose(config, self.global_pos, self.warn)
        diagnose_fleet(config, self.warn, self.error)
        # last: it needs the built model, and drops what keepalived would not run
        return secure_scripts(config, self.scripts, self.warn, self.global_pos)

    def _net_namespace(self, top: dict[str, Any], pos: dict[str, Token]) -> str | None:
        # keepalived keeps the first net_namespace and reports the others
        # (net_namespace_handler: "Duplicate net_namespace definition NAME - ignoring")
        names: list[str] = top.get("net_namespace") or []
        if len(names) > 1:
            self.warn(pos["net_namespace"], f"duplicate net_namespace {names[-1]}: ignored, "
                      f"the first one ({names[0]}) is used, as keepalived does")
        return names[0] if names else None


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
    try:
        with _no_gc():
            res = _load_streaming(path, config_id)
            if freeze:
                gc.freeze()
    except ConfigError as exc:
        return LoadResult(m.Config(), list(exc.diagnostics))
    return res


def load_file_once(path: str, *, config_id: str | None = None) -> LoadResult:
    """:func:`load_file` for a command that exits once it has used the model (``-t``,
    ``--dump-conf``, the daemon's configuration child): in the hafast program itself
    (:func:`hafast.lib.oneshot.begin`) the model is frozen and kept to the process's
    end, so neither the collector nor a teardown walks it; called in-process (the
    tests), it is :func:`load_file`."""
    res = load_file(path, config_id=config_id, freeze=oneshot.program())
    oneshot.keep(res)
    return res


class _Stream:
    """The lexer's sink: each chunk of lines goes into the tree, and each complete
    top-level statement is walked at once and dropped.  The lines, tokens and tree of
    a large config are never all held together (at 37,000 real servers they were 90 MB
    of the load's 150 MB peak; the walk keeps only the words it needs)."""

    __slots__ = ("failed", "first", "loader", "pos", "top", "tree")

    def __init__(self, loader: _Loader) -> None:
        self.loader = loader
        self.tree = TreeBuilder([])  # the lexer reports unbalanced braces
        self.top: dict[str, Any] = {}
        self.pos: dict[str, Token] = {}
        self.first: Token | None = None
        self.failed: Exception | None = None

    def __call__(self, lines: list[Line]) -> None:
        if self.failed is not None or not lines:
            return
        if self.first is None:
            self.first = lines[0].first
        try:
            self.tree.feed(lines)
            loader = self.loader
            loader.block("top", self.tree.take_done(), self.top, self.pos)
            if loader.lvs is None:
                loader.lvs = LvsBuilder(loader)
            loader.lvs.build_early(self.top)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            # raised again by _load_streaming, after the lexer: the same "internal loader
            # error" as load_lines, not the lexer's own catch-all
            self.failed = exc

    def finish(self) -> m.Config:
        if self.failed is not None:
            raise self.failed
        self.loader.block("top", self.tree.finish(), self.top, self.pos)
        return self.loader.config(self.top, self.pos)


def _load_streaming(path: str, config_id: str | None) -> LoadResult:
    """:func:`load_file`'s work: what ``load_lines(read_config(path).lines)`` gives, with
    the same diagnostics in the same order, walking the config while it is read."""
    from hafast.config.lexer import read_config

    loader = _Loader()
    stream = _Stream(loader)
    lex = read_config(path, config_id=config_id, sink=stream)
    stream(lex.lines)
    walked = loader.diags
    loader.diags = [*lex.diagnostics, *walked]  # as load_lines: the lexer's come first
    try:
        config = stream.finish()
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        tok = stream.first if stream.first is not None else Token("", "<config>", 0, 0)
        loader.error(
            tok, f"internal loader error ({type(exc).__name__}: {exc}); please report this config"
        )
        config = m.Config()
    return LoadResult(config, loader.diags, list(lex.files))


def load(path: str, *, config_id: str | None = None) -> m.Config:
    """Load ``path``; raise ConfigError carrying every error (warnings are dropped).

    >>> load("/etc/keepalived/keepalived.conf")  # doctest: +SKIP
    Config(global_defs=GlobalDefs(...), ...)
    """
    res = load_file(path, config_id=config_id)
    if not res.ok:
        raise ConfigError(res.errors)
    return res.config
