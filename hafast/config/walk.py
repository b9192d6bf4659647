"""Statement tree -> field dicts: the table walk of the loader (:mod:`hafast.config.loader`).

:class:`Walker` reads the tree of :mod:`hafast.config.tree` with
:data:`hafast.config.grammar.TABLE`: the row of a keyword says whether it takes values, a
block or a list, how to convert it and which model field it fills.  It never branches on
keyword names.  A block that inherits settings from its parent comes out as a
:class:`Pending`, built later by the VRRP or LVS side (:mod:`hafast.config.build_vrrp`,
:mod:`hafast.config.build_lvs`) once its parent is complete; a block with nothing to
inherit is built when it closes, by the driver's ``immediate`` builders.

The walker also collects the load's diagnostics: every problem becomes a
:class:`~hafast.config.tokens.Diagnostic` at the word it is about.

Example::

    >>> from hafast.config.tokens import Line, Token
    >>> from hafast.config.tree import build_tree
    >>> def line(n, text):
    ...     return Line(tuple(Token(w, "k.conf", n, 1) for w in text.split()))
    >>> w = Walker()
    >>> fields, pos = {}, {}
    >>> w.block("vrrp_instance", build_tree([line(1, "priority 300"), line(2, "prio 1")], []),
    ...         fields, pos)
    >>> fields, [d.format() for d in w.diags]  # doctest: +NORMALIZE_WHITESPACE
    ({}, ["k.conf:1:1: error: number '300' outside range [1, 255] (expected: priority
    <integer 1..255>)", "k.conf:2:1: error: unknown keyword 'prio' in vrrp_instance;
    did you mean 'priority'?"])
"""

from __future__ import annotations

import difflib
import functools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from hafast.config import model as m
from hafast.config.grammar import (
    TABLE,
    BadValue,
    Keyword,
    conv_regex,
    conv_script,
    line_email,
    line_name,
    regex_pattern,
)
from hafast.config.kinds import CHILDREN, KINDS
from hafast.config.support import UNSUPPORTED
from hafast.config.tokens import ConfigError, Diagnostic, Token
from hafast.config.tree import Node

# keepalived 2.2.7 reads these list blocks with read_value_block (lib/parser.c): every
# word is an item however the words are spread over lines, so "group { A B }" and a line
# "A B" are two members (vrrp_sync_group and track_group group, garp_group interfaces,
# notification_email).  Its other list blocks (alloc_value_block) take one item per line,
# the line's other words being the item's options.
_WORD_ITEMS = frozenset({line_name, line_email})


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


_MISSING = object()


@dataclass(slots=True)
class Pending:
    """A block read but not yet built (it waits for its parent's inherited settings)."""

    context: str
    args: tuple[Token, ...]
    fields: dict[str, Any]
    pos: dict[str, Token]
    kw: Token
    end: Token | None = None  # its closing brace: where keepalived reports what is missing
    # the order blocks were read in, across kinds: keepalived resolves a name when it
    # reads the reference, so a tracker defined after its user is unknown to it
    seq: int = 0

    @property
    def last(self) -> Token:
        return self.end if self.end is not None else self.kw


# Contexts whose blocks are built by their parent (inheritance), not when they close;
# so are the checker kinds' blocks (KINDS, which may grow after import).
_DEFERRED = frozenset(
    {
        "real_server",
        "vrrp_instance",
        "vrrp_sync_group",
        "track_group",
        "virtual_server",
        "vrrp_script",
        "track_file",
        "vrrp_track_process",
        # its address is the block's name, which only a Pending keeps (hafast.config.bgp)
        "bgp_neighbor",
    }
)


# Blocks keepalived reads into one global object however many times the file has
# them: a second ``global_defs`` adds to the first and overrides what both set (its
# root keyword has no handler that starts afresh; keepalived 2.2.7 -d shows the
# router_id of one block beside the smtp_server of another).  Replacing the first
# block's settings would drop them without a word.
_MERGED = frozenset({"global_defs"})


def as_tuples(fields: dict[str, Any]) -> dict[str, Any]:
    """Turn the list values of ``fields`` (repeated keywords gather in lists) into tuples,
    in place, for the frozen model classes; returns ``fields``."""
    for k, v in fields.items():
        if type(v) is list:
            fields[k] = tuple(v)
    return fields


# A builder for a block that has nothing to inherit: (walker, fields, positions, keyword).
ImmediateBuilder = Callable[["Walker", dict[str, Any], dict[str, Token], Token], Any]


@functools.cache
def _rows(ctx: str, n_rows: int) -> tuple[tuple[str, int, dict[str, int]], ...]:
    """Each row of ``ctx`` with its length and its characters' counts, for
    :func:`_closest`'s quick_ratio() bounds (``n_rows`` as there)."""
    return tuple((x, len(x), dict(Counter(x))) for x in TABLE[ctx])


@functools.lru_cache(maxsize=1 << 14)
def _closest(ctx: str, word: str, n_rows: int) -> str | None:
    """The "did you mean" keyword: the row with the highest difflib ratio (ties: the
    greatest name), what ``get_close_matches(word, rows, 1, 0.6)`` and then, when that
    finds nothing, ``get_close_matches(word, rows, 1, 0.0)`` answer (``n_rows`` keys the
    cache to the table's current shape: checker kinds can be registered later).

    Those two passes cost ~1-2 ms a word, the second one a full ratio() for every row:
    a quarter of the config fuzzer's time (issue 17).  Here every row gets its
    quick_ratio() bound, and ratio() runs best bound first, only while a bound still
    reaches the best ratio so far, as get_close_matches itself prunes against its
    cutoff; the answer is the same (tests/unit/config/test_closest.py).  On the 3,888
    distinct words 1,945 fuzzer-found configs ask about: 1.69 s -> 0.77 s.  The bound
    is difflib's quick_ratio() (twice the characters the two have in common, multiset
    wise, over their total length), counted from each row's character counts, made
    once per context, instead of by quick_ratio() re-counting the row for every word
    (half of what was left).  The cache holds 16,384 words: a fuzzing run asks about
    many, and mutates the same ones again and again.

    >>> _closest("vrrp_instance", "prio", len(TABLE["vrrp_instance"]))
    'priority'
    """
    rows = _rows(ctx, n_rows)
    if not rows:
        return None
    wcount = Counter(word).items()
    lw = len(word)
    bounds = []
    for x, lx, xcount in rows:
        matches = 0
        get = xcount.get
        for c, k in wcount:
            have = get(c, 0)
            matches += k if k < have else have
        # difflib's _calculate_ratio, to the bit: ties sort as quick_ratio() made them
        bounds.append((2.0 * matches / (lx + lw) if lx + lw else 1.0, x))
    bounds.sort(reverse=True)
    s = difflib.SequenceMatcher()
    s.set_seq2(word)  # as get_close_matches: the word is b, each row a
    best_r, best = -1.0, ""
    for bound, x in bounds:
        if bound < best_r or (bound == best_r and x < best):
            # no later row can reach best_r, nor tie it with a greater name (rows of
            # equal bound come greatest name first)
            break
        s.set_seq1(x)
        r = s.ratio()
        if r > best_r or (r == best_r and x > best):
            best_r, best = r, x
    return best


class Walker:
    """One load's table walk and its diagnostics (a new one per load)."""

    # Blocks built as soon as they close, by context; the driver fills this in (those
    # builders belong to the sides of the config, which this walk does not know).
    immediate: ClassVar[Mapping[str, ImmediateBuilder]] = {}

    def __init__(self) -> None:
        self.diags: list[Diagnostic] = []
        self.warned: set[str] = set()
        self.cache: dict[tuple[Keyword, str], Any] = {}
        self.item_pos: dict[int, Token] = {}  # list items (addresses, tracks) -> their line
        self.scripts: list[tuple[Token, m.Script]] = []  # each distinct script line once
        self.lifted: list[tuple[str, Any, Token]] = []  # ChildBlock.lift, for the parent
        self.seq = 0
        self.merged: dict[str, tuple[dict[str, Any], dict[str, Token]]] = {}  # _MERGED

    # ----------------------------------------------------------------- reporting
    def error(self, tok: Token, msg: str, code: str = "") -> None:
        self.diags.append(Diagnostic(tok.file, tok.line, tok.col, "error", msg, code))

    def warn(self, tok: Token, msg: str, code: str = "") -> None:
        self.diags.append(Diagnostic(tok.file, tok.line, tok.col, "warning", msg, code))

    def at(self, item: object, fallback: Token) -> Token:
        """The line a list item (address, peer, tracked name) was written on."""
        return self.item_pos.get(id(item), fallback)

    def _unknown(self, ctx: str, tok: Token) -> None:
        best = _closest(ctx, tok.text, len(TABLE[ctx]))
        where = "at top level" if ctx == "top" else f"in {ctx}"
        hint = f"; did you mean '{best}'?" if best else ""
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
            if kind == "b" and self.lifted:
                for name, lv, lt in self.lifted:
                    fields[name] = lv
                    pos[name] = lt
                self.lifted = []
            if kw.deprecated and kt.text not in self.warned:
                # the fast path above skips this only for a word already seen (and warned)
                self.warned.add(kt.text)
                self.warn(kt, kw.deprecated)
            gap = kw.gap
            if gap is not None and kt.text not in self.warned:
                # once per keyword and load: the first use names the line
                self.warned.add(kt.text)
                (self.error if gap.refuse else self.warn)(kt, gap.message(kt.text), UNSUPPORTED)
            fname = kw.field
            if fname is None:
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
            if len(node.toks) == 1:  # notify_deleted alone: no script to check
                return conv_script(())
            script = _script(node.raw, node.toks) if node.raw else conv_script(node.toks[1:])
            self.scripts.append((node.toks[0], script))
            return script
        if kw.conv is conv_regex and node.raw and len(node.toks) > 1:
            # keepalived re-reads the raw line for a regex, quotes and escapes included
            parts = node.raw.split(None, 1)
            return regex_pattern(parts[1] if len(parts) > 1 else "", node.toks[1])
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
        items: list[Any] = []
        per_word = conv in _WORD_ITEMS
        for child in children:
            if child.children is not None:
                self.error(
                    child.toks[0],
                    f"unexpected block inside '{kw.name}' (expected lines of {kw.conv_name})",
                )
                continue
            if per_word:
                items.extend(conv((t,)) for t in child.toks)
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
        if ctx in _MERGED:
            earlier = self.merged.get(ctx)
            if earlier is not None:  # walked on top of what the earlier blocks set
                fields, pos = dict(earlier[0]), dict(earlier[1])
            self.block(ctx, children, fields, pos)
            self.merged[ctx] = (dict(fields), dict(pos))
        else:
            self.block(ctx, children, fields, pos)
        if ctx in _DEFERRED or ctx in KINDS:
            self.seq += 1
            return Pending(ctx, toks[1:], fields, pos, toks[0], close, self.seq)
        build = self.immediate.get(ctx)
        if build is None:  # a block inside a checker's (url {}, host {})
            block = CHILDREN[ctx]
            for name in block.lift:
                if name in fields:
                    self.lifted.append((name, fields.pop(name), pos.pop(name)))
            fields = as_tuples(fields)
            if block.check is not None:
                block.check(fields, pos, self)
            return block.build(fields)
        return build(self, as_tuples(fields), pos, toks[0])

