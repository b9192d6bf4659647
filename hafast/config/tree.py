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

