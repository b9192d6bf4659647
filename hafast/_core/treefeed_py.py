"""The config loader's statement tree: lines -> nested statements (pure-Python twin of
``treefeed_c``).

:func:`feed` groups the lexer's lines into :class:`Node` statements, nesting the ones
inside ``{ }`` under the statement that opened the block (the loop of
:class:`hafast.config.tree.TreeBuilder`, which holds the state between calls and turns
what ``report`` is told into diagnostics).  Nothing here knows a keyword, a token type or
a diagnostic: a line is a ``(tokens, raw)`` tuple and a token a ``(text, file, line,
col, quoted)`` tuple (the config's NamedTuples), so this layer imports nothing from
``hafast.config``.

Example::

    >>> tok = lambda w: (w, "k.conf", 1, 1, False)
    >>> stack = [[]]
    >>> level = feed([((tok("a"), tok("b")), "a b"), ((tok("{"),), "{"),
    ...               ((tok("c"),), "c"), ((tok("}"),), "}")], stack, [], stack[0], print)
    >>> node = stack[0][0]
    >>> [t[0] for t in node.toks], [n.raw for n in node.children], node.close[0], level is stack[0]
    (['a', 'b'], ['c'], '}', True)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["Node", "feed"]

_BRACES = frozenset({"{", "}"})


class Node:
    """One statement: its words, and its ``{ }`` children when it opened a block."""

    __slots__ = ("children", "close", "raw", "toks")

    def __init__(self, toks: tuple[Any, ...], raw: str = "") -> None:
        self.toks = toks
        self.raw = raw
        self.children: list[Node] | None = None
        self.close: Any = None


def feed(
    lines: Iterable[Any],
    stack: list[list[Node]],
    openers: list[Node],
    level: list[Node],
    report: Callable[[Any, str], None],
) -> list[Node]:
    """Add ``lines`` (in order) to the tree whose open levels are ``stack`` (the root
    first, ``level`` its last) and whose open blocks are ``openers``; returns the level
    the next line goes to.  Brace errors go to ``report(token, message)``."""
    for line in lines:
        toks = line[0]
        first = toks[0]
        t0 = first[0]
        # The lexer gives every brace a line of its own (tokens.Line): those two cases
        # come first.  Lines built by other means may carry braces among their words;
        # the general loop below splits them.
        if t0 == "}" and len(toks) == 1 and not first[4] and len(stack) > 1:
            openers.pop().close = first
            stack.pop()
            level = stack[-1]
            continue
        if t0 == "{" and len(toks) == 1 and not first[4] and level:
            opener = level[-1]
            if opener.children is None:
                opener.children = level = []
                openers.append(opener)
                stack.append(level)
                continue
        if t0 != "{" and t0 != "}" and toks[-1][0] not in _BRACES:
            level.append(Node(toks, line[1]))
            continue
        cur: list[Any] = []
        for t in toks:
            tx = t[0]
            if t[4] or (tx != "{" and tx != "}"):
                cur.append(t)
                continue
            if cur:
                level.append(Node(tuple(cur)))
                cur = []
            if tx == "{":
                # keepalived allows the "{" on the line after its keyword
                if not level or level[-1].children is not None:
                    report(t, "'{' without a keyword before it")
                    opener = Node((t,))
                    level.append(opener)
                else:
                    opener = level[-1]
                opener.children = []
                openers.append(opener)
                level = opener.children
                stack.append(level)
            elif len(stack) == 1:
                report(t, "'}' does not close any block")
            else:
                openers.pop().close = t
                stack.pop()
                level = stack[-1]
        if cur:
            level.append(Node(tuple(cur)))
    return level
