"""The lexer's plain-line scan (pure-Python twin of ``plainscan_c``).

:func:`scan_plain` tokenises keepalived.conf lines of the shapes that make up nearly all
of a large config (``word word``, ``word word {``, a lone ``}`` closing a block, blank
lines) and stops at the first line of any other shape, which the lexer
(:func:`hafast.config.lexer._fast_region`) then reads itself.  Nothing here knows a
keyword: the token and line types are passed in, so this layer needs no import from
``hafast.config``.

Example::

    >>> from typing import NamedTuple
    >>> class Tok(NamedTuple):
    ...     text: str
    ...     file: str
    ...     line: int
    ...     col: int
    ...     quoted: bool = False
    >>> class Ln(NamedTuple):
    ...     tokens: tuple
    ...     raw: str = ""
    >>> text = "a b {\\n  c 1\\n}\\n{\\n"
    >>> lines, braces = [], []
    >>> scan_plain(text, 0, len(text), "k.conf", 1, lines, braces, {}, 100, Tok, Ln)
    (14, 4)
    >>> [[t.text for t in ln.tokens] for ln in lines], braces
    ([['a', 'b'], ['{'], ['c', '1'], ['}']], [])
"""

from __future__ import annotations

from typing import Any

__all__ = ["scan_plain"]

_WS = " \t\f\n\r\v"  # keepalived's WHITE_SPACE_STR


def scan_plain(
    text: str,
    pos: int,
    end: int,
    file: str,
    lineno: int,
    lines: list[Any],
    open_braces: list[tuple[Any, Any]],
    words: dict[str, str],
    limit: int,
    token_t: type,
    line_t: type,
) -> tuple[int, int]:
    """Tokenise the plain lines of ``text[pos:end]`` from ``pos`` on.

    Appends ``line_t((token_t(word, file, line, col, False), ...), raw)`` to ``lines``
    for each statement and brace, pushes ``(brace token, keyword token)`` on
    ``open_braces`` for a ``{`` ending a line and pops it for a lone ``}``; words and
    statement texts go through ``words`` so that each distinct one is one str.  Stops
    before the first line it does not take (a lone ``{``, a ``}`` closing nothing,
    braces inside a line, doubled blanks, a tab or any character outside printable
    ASCII between words) or once ``lines`` holds ``limit`` lines.  Returns
    ``(pos, lineno)`` of the line it stopped at; ``pos > end`` when it read everything.
    """
    new = tuple.__new__
    intern = words.setdefault
    find = text.find
    while pos <= end:
        if len(lines) >= limit:
            break
        nl = find("\n", pos, end)
        if nl < 0:
            nl = end
        raw = text[pos:nl]
        body = raw.lstrip(_WS)
        if not body:
            pos = nl + 1
            lineno += 1
            continue
        col = len(raw) - len(body) + 1
        body = body.rstrip(_WS)
        last = body[-1]
        if len(body) == 1 and (last == "{" or last == "}"):
            if last == "{" or not open_braces:
                break  # the lexer's _brace(): keyword look-back, or an extra '}'
            open_braces.pop()
            lines.append(new(line_t, ((new(token_t, ("}", file, lineno, col, False)),), "}")))
            pos = nl + 1
            lineno += 1
            continue
        opens = last == "{" and body[-2] == " "
        head = body[:-2] if opens else body
        if ("{" in head or "}" in head or "  " in head or head[-1] == " "
                or not (head.isascii() and head.isprintable())):
            break
        head = intern(head, head)
        toks: list[Any] = []
        for w in head.split(" "):
            toks.append(new(token_t, (intern(w, w), file, lineno, col, False)))
            col += len(w) + 1
        lines.append(new(line_t, (tuple(toks), head)))
        if opens:
            tok: Any = new(token_t, ("{", file, lineno, col, False))
            open_braces.append((tok, toks[0]))
            lines.append(new(line_t, ((tok,), "{")))
        pos = nl + 1
        lineno += 1
    return pos, lineno
