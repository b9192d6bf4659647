"""Lines -> statement tree: the first pass of the loader (:mod:`hafast.config.loader`).

:func:`build_tree` groups the lexer's lines into :class:`Node` statements, nesting the
ones inside ``{ }`` under the statement that opened the block.  It knows no keyword;
what a statement means is the table walk's business (:mod:`hafast.config.walk`).

Example::

    >>> from hafast.config.tokens import Line, Token
    >>> def line(n, text):
    ...     return Line(tuple(Token(w, "k.conf", n, 1) for w in text.split()))
    >>> diags = []
    >>> tree = build_tree([line(1, "vrrp_instance V {"), line(2, "priority 100"), line(3, "}")],
    ...                   diags)
    >>> [t.text for t in tree[0].toks], [t.text for t in tree[0].children[0].toks], diags
    (['vrrp_instance', 'V'], ['priority', '100'], [])
"""

from __future__ import annotations

from collections.abc import Iterable

from hafast.config.tokens import Diagnostic, Line, Token


class Node:
    """One statement: its words, and its ``{ }`` children when it opened a block."""

    __slots__ = ("children", "close", "raw", "toks")

    def __init__(self, toks: tuple[Token, ...], raw: str = "") -> None:
        self.toks = toks
        self.raw = raw
        self.children: list[Node] | None = None
        self.close: Token | None = None



_BRACES = frozenset({"{", "}"})


def build_tree(
    lines: Iterable[Line], diags: list[Diagnostic], *, report_braces: bool = True
) -> list[Node]:
    """Group lines into statements and blocks; brace errors go to ``diags``.

    ``report_braces=False`` when the lexer has already checked the balance (it does, with
    the file position of every unclosed ``{``), so a problem is reported once.
    """
    builder = TreeBuilder(diags if report_braces else [])
    builder.feed(lines)
    return builder.finish()


class TreeBuilder:
    """:func:`build_tree` fed a chunk of lines at a time, handing out each top-level
    statement once it is complete: the loader walks a large config while it is being
    read, so no more than a chunk of lines and one top-level block are held at once.

    >>> from hafast.config.tokens import Line, Token
    >>> tb = TreeBuilder([])
    >>> tb.feed([Line((Token(w, "k.conf", 1, 1),)) for w in ("a", "{", "}", "b")])
    >>> [n.toks[0].text for n in tb.take_done()], [n.toks[0].text for n in tb.finish()]
    (['a'], ['b'])
    """

    __slots__ = ("diags", "level", "openers", "root", "stack")

    def __init__(self, diags: list[Diagnostic]) -> None:
        self.diags = diags
        self.root: list[Node] = []
        self.stack: list[list[Node]] = [self.root]
        self.openers: list[Node] = []
        self.level = self.root

    def take_done(self) -> list[Node]:
        """The top-level statements that no later line can change, in order.

        All but the last: a ``{`` on the next line may still open its block.
        """
        root = self.root
        if len(root) < 2:
            return []
        done = root[:-1]
        del root[:-1]
        return done

    def finish(self) -> list[Node]:
        """Every top-level statement not yet taken; unclosed blocks are reported."""
        for opener in self.openers:
            kw = opener.toks[0]
            self.diags.append(
                Diagnostic.at(kw, "error", f"block '{kw.text}' is never closed (expected '}}')")
            )
        self.openers = []
        done = self.root
        self.root = self.level = []
        self.stack = [self.root]
        return done

    def feed(self, lines: Iterable[Line]) -> None:
        """Add lines (in order) to the tree."""
        diags = self.diags
        stack = self.stack
        openers = self.openers
        level = self.level
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
        self.level = level
