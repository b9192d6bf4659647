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

from hafast._core.treefeed import Node, feed
from hafast.config.tokens import Diagnostic, Line, Token

# Node and the loop that nests lines into nodes are hafast._core.treefeed's (compiled, or
# its pure twin): at 37,000 real servers that loop makes 160,000 nodes from 235,000 lines.
__all__ = ["Node", "TreeBuilder", "build_tree"]


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
        self.level = feed(lines, self.stack, self.openers, self.level, self._report)

    def _report(self, tok: Token, message: str) -> None:
        self.diags.append(Diagnostic.at(tok, "error", message))
