"""keepalived.conf lexer: files -> logical lines of tokens that remember file:line:col.

It follows keepalived's own reader (``lib/parser.c``: ``read_line``, ``decomment``,
``alloc_strvec_r``; behaviour checked against ``keepalived -t`` 2.2.7), so a config
means here what it means to keepalived:

* ``#`` and ``!`` start a comment anywhere outside ``"..."``; ``\\#`` and ``\\!`` outside
  quotes stand for the plain characters.  Single quotes protect nothing (keepalived's
  ``decomment`` only tracks double quotes).
* ``{`` and ``}`` outside ``"..."`` always split the line: each brace is a :class:`Line`
  of its own, so ``vrrp_instance VI_1 {`` gives ``[vrrp_instance, VI_1]`` and ``[{]``,
  and ``virtual_ipaddress { 10.0.0.1 }`` gives four lines: the buffers keepalived's
  parser sees.
* Words split on blanks; a word starting with ``"`` runs to the next ``"`` with no
  escapes (``Token.quoted`` is set); a ``"`` inside a word ends the word.  Script strings
  get keepalived's second, shell-like split: :func:`split_script` on ``Line.raw``
  (escapes ``\\a \\b \\E \\f \\n \\r \\t \\v \\nnn \\xXX \\cC``, both quote kinds).
* ``include`` and its variants, ``include_check``, ``@id`` / ``@^id`` lines, ``$NAME=``
  parameters (:mod:`hafast.config.params`), ``~SEQ`` / ``~LST`` blocks
  (:mod:`hafast.config.expand`) are applied here; the loader only sees the lines they
  produce.  ``include_check`` lines are consumed.

Nothing here raises except :class:`ConfigError` (the main file cannot be read); every
other problem is a :class:`Diagnostic` in :attr:`LexResult.diagnostics`.
"""

from __future__ import annotations

import gc
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from hafast._core.plainscan import scan_plain
from hafast.config import include as inc
from hafast.config.expand import ExpandError, parse_block
from hafast.config.params import DEF_RE, Def, Params, Src, SubstitutionLoop
from hafast.config.tokens import ConfigError, Diagnostic, LexResult, Line, Severity, Token

__all__ = ["default_config_id", "lex_text", "read_config", "split_script"]

_BLANK = " \t"
_WS = " \t\f\n\r\v"  # keepalived's WHITE_SPACE_STR: what separates words
MAX_INCLUDE_DEPTH = 64
MAX_RECHECK = 64  # substitution producing '@...' or '$X=' lines, again and again
# keepalived has no limits here; we must end.  The man page's own example makes 65,024
# vrrp_instances of 14 lines (~1M lines) from one ~SEQ line.
MAX_EXPANSION_DEPTH = 256  # nested multi-line parameters and blocks
MAX_EXPANDED_LINES = 5_000_000  # lines made by one configuration's expansions
_CHUNK = 4096  # lines handed to a sink at a time: enough to amortise the call

# decomment() looks at these; a line with none of them takes the fast path.
_DECOMMENT_SPECIAL = re.compile(r'[!#"\\]')
_BRACE = re.compile(r"[{}]")
_BRACE_OR_QUOTE = re.compile(r'[{}"]')
# keepalived's alloc_strvec_r(): a "..." word, a bare word (ends at a blank or a quote),
# or an unmatched quote, after which the rest of the line is lost.
_QUOTED_WORD = re.compile(r'"([^"]*)"|[^ \t\f\n\r\v"]+|(")')
_CONDITIONAL_END = re.compile(r"[ \t]")
# A comment before any quote or backslash, with no backslash in it (which could be a
# continuation): blanked out in bulk, keeping columns, so that the line can take the
# fast path.  keepalived's decomment() would drop it the same way.
_PLAIN_COMMENT = re.compile(r'^([^"\\\n#!]*)([#!][^\n\\]*)$', re.MULTILINE)


def _blank_comment(m: re.Match[str]) -> str:
    return m.group(1) + " " * len(m.group(2))


# A line with none of these (and no '@', '~' or include where a line starts) needs no
# decomment, parameters or expansion: it takes the fast path in _read_text().
_SLOW_LINE = re.compile(r'[#!"\\$]|(?:^|[{}])[ \t]*(?:[@~]|include)', re.MULTILINE)
_SLOW_CHARS = '#!"\\$'  # _SLOW_LINE's first branch
# After decomment: what a piece of a line still needs _one() or _tokenise() for
# (quotes, parameters, '@', '~', include); a backslash means nothing any more.
_NEEDS_FEED = re.compile(r'["$]|(?:^|[{}])[ \t]*(?:[@~]|include)')
_FAST_WORD = re.compile(r"[{}]|[^ \t\f\n\r\v{}]+")
# Token and Line are NamedTuples; tuple.__new__ skips their generated __new__.
_new = tuple.__new__


@dataclass(slots=True)
class _Frame:
    """One file being read: its folder (``${_PWD}``) and include_check level."""

    path: str
    folder: str
    include_check: inc.Check


@dataclass(slots=True)
class _State:
    params: Params
    lines: list[Line] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    frames: list[_Frame] = field(default_factory=list)
    active: list[str] = field(default_factory=list)  # real paths being read (loop guard)
    # Each open '{' with the statement before it (the block's keyword line), if any.
    open_braces: list[tuple[Token, Token | None]] = field(default_factory=list)
    seed_words: bool = False  # does the file being read mention random_seed at all?
    words: dict[str, str] = field(default_factory=dict)  # one str per distinct word
    # Takes the lines read so far, in chunks (the last line stays: '{' looks back at it)
    sink: Callable[[list[Line]], None] | None = None
    expanded: int = 0  # lines handled by _feed() so far (see MAX_EXPANDED_LINES)

    def error(self, src: Src, index: int, message: str, severity: Severity = "error") -> None:
        self.diagnostics.append(Diagnostic(src.file, src.line, src.col(index), severity, message))


def default_config_id() -> str:
    """keepalived's default config-id: the node name up to its first dot (uname -n)."""
    return os.uname().nodename.split(".")[0]


def read_config(
    path: str | os.PathLike[str],
    *,
    config_id: str | None = None,
    env: Mapping[str, str] | None = None,
    random_seed: int | None = None,
    sink: Callable[[list[Line]], None] | None = None,
) -> LexResult:
    """Read a keepalived.conf and everything it includes.

    ``config_id`` selects ``@id`` lines and is ``${_INSTANCE}`` (default: the short
    host name, as keepalived without ``-i``); ``env`` backs ``${_ENV X}``;
    ``random_seed`` makes ``${_RANDOM}`` repeatable (a ``random_seed N`` line does too).
    Raises :class:`ConfigError` only when the main file cannot be read.  With a
    ``sink``, lines are handed to it in chunks as they are read (the loader walks them
    at once) and :attr:`LexResult.lines` holds only the lines not yet handed over.

    >>> res = read_config("/etc/keepalived/keepalived.conf")  # doctest: +SKIP
    >>> [t.text for t in res.lines[0].tokens]  # doctest: +SKIP
    ['global_defs']
    """
    fspath = os.fspath(path)
    try:
        with open(fspath, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ConfigError(
            [
                Diagnostic(
                    fspath,
                    0,
                    0,
                    "error",
                    f"cannot read the configuration file ({exc.strerror or exc}); give the "
                    "path of a readable keepalived.conf",
                )
            ]
        ) from None
    return _lex(_decode(data), fspath, config_id, env, random_seed, sink)


def lex_text(
    text: str,
    *,
    file: str = "<string>",
    config_id: str | None = None,
    env: Mapping[str, str] | None = None,
    random_seed: int | None = None,
) -> LexResult:
    """Lex config text held in memory; includes start at ``file``'s folder.

    >>> [[t.text for t in line.tokens] for line in lex_text("vrrp_instance VI_1 {").lines]
    [['vrrp_instance', 'VI_1'], ['{']]
    """
    return _lex(text, file, config_id, env, random_seed)


def _decode(data: bytes) -> str:
    # keepalived reads bytes; keep undecodable bytes instead of failing on them.
    return data.decode("utf-8", errors="surrogateescape")


def _lex(
    text: str,
    file: str,
    config_id: str | None,
    env: Mapping[str, str] | None,
    random_seed: int | None,
    sink: Callable[[list[Line]], None] | None = None,
) -> LexResult:
    st: _State
    params = Params(
        config_id=default_config_id() if config_id is None else config_id,
        env=os.environ if env is None else env,
        seed=random_seed,
        pwd=lambda: st.frames[-1].folder if st.frames else os.getcwd(),
    )
    st = _State(params, sink=sink)
    st.active.append(os.path.realpath(file))
    # Half a million tuples make the cyclic GC run hundreds of times for nothing (a
    # token holds only str and int): lexing a 37,000-real-server config takes three
    # times as long with it on.  The lexer makes no cycles worth collecting.
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        # keepalived's include_check level starts empty; only explicit include_check
        # lines and the include variants ask for more.
        last_line = _read_text(st, text, file, inc.Check.NONE)
        _report_unclosed(st, file, last_line)
    except RecursionError:  # pragma: no cover - MAX_INCLUDE_DEPTH keeps us far from it
        st.diagnostics.append(
            Diagnostic(file, 0, 0, "error", "configuration nests too deeply; flatten it")
        )
    except Exception as exc:  # pragma: no cover - a lexer bug must not crash the daemon
        # The contract is "never raise but ConfigError": report the bug with what was
        # read so far rather than take a running daemon down on a reload.
        st.diagnostics.append(
            Diagnostic(
                file,
                0,
                0,
                "error",
                f"internal lexer error ({type(exc).__name__}: {exc}); please report it with "
                "this configuration",
            )
        )
    finally:
        params.pwd = os.getcwd  # drop the closure over st (a cycle otherwise)
        # An error inside a ~SEQ body or a parameter is met once per expansion: say it
        # once.  (Built before the GC is back on, so that its first pass over the new
        # objects falls to the caller's next allocation, not into the lexer.)
        result = LexResult(
            lines=st.lines, diagnostics=list(dict.fromkeys(st.diagnostics)), files=st.files
        )
        if gc_was_on:
            gc.enable()
    return result


def _report_unclosed(st: _State, file: str, last_line: int) -> None:
    # keepalived: "There are %d missing '}'s or extra '{'s", once, after all files are
    # read, naming no line; we put it at the end of the main file and name the block.
    if not st.open_braces:
        return
    n = len(st.open_braces)
    brace, keyword = st.open_braces[-1]
    block = f" of {keyword.text!r} ({keyword.where()})" if keyword is not None else ""
    st.diagnostics.append(
        Diagnostic(
            file,
            last_line,
            1,
            "error",
            f"{n} missing '}}' at end of file: the '{{' at {brace.where()}{block} is never "
            "closed; add the missing '}' (or remove an extra '{')",
        )
    )


# --------------------------------------------------------------------------- reading


def _read_text(st: _State, text: str, file: str, check: inc.Check) -> int:
    """Lex one file's text; returns its number of lines.

    Runs of plain lines (see ``_SLOW_LINE``) are tokenised in bulk by
    :func:`_fast_region`; every other line, and every line while a multi-line
    definition is being read, goes through :func:`_slow_line` one at a time.
    """
    folder = os.path.dirname(os.path.abspath(file)) if file != "<string>" else os.getcwd()
    st.frames.append(_Frame(file, folder, check))
    st.files.append(file)
    outer_seed_words = st.seed_words
    st.seed_words = "random_seed" in text
    n = len(text)
    n_lines = text.count("\n") + (1 if text and text[-1] != "\n" else 0)
    # Where the lines that need the slow path start: (offset, line number).
    slow: list[tuple[int, int]] = []
    slow_all = "\0" in text  # keepalived's C strings end at a NUL: go slowly then
    if not slow_all and ("#" in text or "!" in text):
        text = _PLAIN_COMMENT.sub(_blank_comment, text)
    if not slow_all:
        last_start, last_no = 0, 1
        for ls in _slow_line_starts(text):
            last_no += text.count("\n", last_start, ls)
            last_start = ls
            slow.append((ls, last_no))
    collecting: Def | None = None  # a multi-line $NAME= definition being read
    pos = 0
    lineno = 1
    si = 0
    try:
        while pos < n:
            if collecting is None and not slow_all:
                next_slow = slow[si][0] if si < len(slow) else n
                if pos < next_slow:
                    lineno = _fast_region(st, text, pos, next_slow, file, lineno)
                    pos = next_slow
                    continue
            end = text.find("\n", pos)
            if end < 0:
                end = n
            collecting = _slow_line(st, text[pos:end], file, lineno, collecting)
            if st.sink is not None and len(st.lines) > _CHUNK:
                _hand_over(st)
            pos = end + 1
            lineno += 1
            while si < len(slow) and slow[si][0] < pos:
                si += 1
    finally:
        st.frames.pop()
        st.seed_words = outer_seed_words
    return max(n_lines, 1)


def _slow_line_starts(text: str) -> list[int]:
    """Where the lines that ``_SLOW_LINE`` matches start, in order.

    The same lines as ``_SLOW_LINE.finditer``, found ten times faster: that regex tries
    its alternation at every character (0.17 s of the lexer's 0.6 s on a 4.6 MB file);
    ``str.find``, for each character and for the rarer words, scans in C.
    """
    rfind = text.rfind
    find = text.find
    starts: set[int] = set()
    # _SLOW_LINE's first branch, a character at a time: str.find skips a 4.6 MB file
    # with none of them in a few ms, where the character class's finditer took 20-40
    for ch in _SLOW_CHARS:
        at = find(ch)
        while at >= 0:
            starts.add(rfind("\n", 0, at) + 1)
            nl = find("\n", at)
            if nl < 0:
                break
            at = find(ch, nl)  # the rest of this line adds nothing
    for needle in ("@", "~", "include"):
        at = text.find(needle)
        while at >= 0:
            # _SLOW_LINE's second branch: a line start or a brace, blanks, then the word
            before = at
            while before > 0 and text[before - 1] in _BLANK:
                before -= 1
            if before == 0 or text[before - 1] in "\n{}":
                starts.add(rfind("\n", 0, at) + 1)
            at = text.find(needle, at + 1)
    return sorted(starts)


def _slow_line(st: _State, raw: str, file: str, lineno: int, collecting: Def | None) -> Def | None:
    """One line through decomment, multi-line definitions and :func:`_feed`.

    Returns the multi-line definition still being read, if any.
    """
    if "\0" in raw:
        raw = raw[: raw.index("\0")]
    if raw[-1:] == "\r":
        raw = raw.rstrip("\r")
    if not raw:
        # Only an empty line ends a multi-line definition (keepalived's read_line();
        # a comment or blank line inside it is skipped).
        if collecting is not None and not collecting.lines:
            collecting.multiline = False
        return None
    src, cont = _decomment(st, Src(raw, file, lineno))
    if collecting is not None:
        if src.text:
            collecting.lines.append(src)
            if not cont:
                return None
        return collecting
    if not src.text:
        return None
    if not cont and src.cols is None and _NEEDS_FEED.search(src.text) is None:
        # Only a comment made this line slow: the rest is plain words and braces.
        _fast_region(st, raw, 0, src.base - 1 + len(src.text), file, lineno)
        return None
    if cont:
        started = _start_multiline(st, src)
        if started is not None:
            return started
        # Elsewhere keepalived keeps the trailing '\' as text.
        src = _with_backslash(src)
    _feed(st, src)
    return None


def _fast_region(st: _State, text: str, start: int, end: int, file: str, lineno: int) -> int:
    """Plain lines (words and braces only) from ``start`` to ``end``.

    This is the hot loop for big configs.  The common shapes (``word word``,
    ``word word {``, ``}``, single blanks between words, printable ASCII) are read by
    :func:`hafast._core.plainscan.scan_plain` (compiled); the line it stops at is read
    here, where any other plain line goes through :func:`_plain_line`.  Returns the
    line number reached at ``end``.
    """
    new = _new
    token_t = Token
    line_t = Line
    lines = st.lines
    add_line = lines.append
    sink = st.sink
    open_braces = st.open_braces
    seed_words = st.seed_words
    # Most words and lines repeat ("real_server", "weight 1"): one str each, not one per
    # use (a tenth of the lexer's memory at 37,000 real servers).
    intern = st.words.setdefault
    find = text.find
    # random_seed lines reseed ${_RANDOM} as they are read: not the scan's business
    scan = None if seed_words else scan_plain
    # the scan stops when a chunk is full; handing it over keeps one line back
    limit = _CHUNK + 1 if sink is not None else sys.maxsize
    pos = start
    while pos <= end:
        if sink is not None and len(lines) > _CHUNK:
            _hand_over(st)
        if scan is not None:
            pos, lineno = scan(
                text, pos, end, file, lineno, lines, open_braces, st.words, limit, token_t, line_t
            )
            if pos > end:
                break
            if len(lines) >= limit:
                continue  # a full chunk, not a line the scan left to us
        # One line at a time, not text[start:end].split(): that list of every line of a
        # large file would be the lexer's peak memory.
        nl = find("\n", pos, end)
        if nl < 0:
            nl = end
        raw = text[pos:nl]
        pos = nl + 1
        body = raw.lstrip(_WS)
        if not body:
            lineno += 1
            continue
        col = len(raw) - len(body) + 1
        body = body.rstrip(_WS)
        last = body[-1]
        if len(body) == 1 and (last == "{" or last == "}"):
            tok = new(token_t, (last, file, lineno, col, False))
            if last == "}" and open_braces:
                open_braces.pop()
                add_line(new(line_t, ((tok,), "}")))
            else:
                _brace(st, tok)
            lineno += 1
            continue
        opens = last == "{" and body[-2] == " "
        head = body[:-2] if opens else body
        # head[-1] == " ": two blanks before the brace ("track_script  {"), which
        # cutting " {" leaves as an empty last word (issue 14: the block was lost).
        if ("{" in head or "}" in head or "  " in head or head[-1] == " "
                or not head.isprintable()):
            _plain_line(st, raw, file, lineno)
            lineno += 1
            continue
        head = intern(head, head)
        toks: list[Token] = []
        for w in head.split(" "):
            toks.append(new(token_t, (intern(w, w), file, lineno, col, False)))
            col += len(w) + 1
        add_line(new(line_t, (tuple(toks), head)))
        if seed_words:
            _seed(st, toks)
        if opens:
            tok = new(token_t, ("{", file, lineno, col, False))
            open_braces.append((tok, toks[0]))
            add_line(new(line_t, ((tok,), "{")))
        lineno += 1
    return lineno - 1


def _hand_over(st: _State) -> None:
    """Give the sink every line but the last (which a '{' may still look back at)."""
    lines = st.lines
    done = lines[:-1]
    del lines[:-1]
    st.sink(done)  # type: ignore[misc]


def _plain_line(st: _State, raw: str, file: str, lineno: int) -> None:
    """A plain line of any other shape: words split at blanks and braces."""
    _plain_words(st, raw, file, lineno, 1, None)


def _plain_words(
    st: _State, text: str, file: str, lineno: int, base: int, cols: list[int] | None
) -> None:
    """Words and braces of a line that needs nothing else (no quote, $, @, ~ or
    include after a brace): every segment between braces is a statement.  The column
    of index ``i`` is ``cols[i]``, or ``base + i`` when there is no list."""
    toks: list[Token] = []
    seg = 0
    new = _new
    for m in _FAST_WORD.finditer(text):
        w = m.group()
        s = m.start()
        col = base + s if cols is None else cols[s]
        if w == "{" or w == "}":
            if toks:
                _statement(st, toks, text[seg:s].rstrip(_WS))
                toks = []
            _brace(st, new(Token, (w, file, lineno, col, False)))
            continue
        if not toks:
            seg = s
        toks.append(new(Token, (w, file, lineno, col, False)))
    if toks:
        _statement(st, toks, text[seg:].rstrip(_WS))


def _with_backslash(src: Src) -> Src:
    cols = None if src.cols is None else [*src.cols, src.col(len(src.text))]
    return Src(src.text + "\\", src.file, src.line, src.base, cols)


def _start_multiline(st: _State, src: Src) -> Def | None:
    """``$NAME=first \\`` (the '\\' already cut off): start a multi-line definition."""
    if src.text[:1] == "@":
        cond = _conditional(st, src)
        if cond is None:
            return None
        src = cond
    m = DEF_RE.match(src.text)
    if m is None:
        return None
    first = src.slice(m.end()).strip_blanks()
    return st.params.define(m.group(1), [first] if first.text else [], multiline=True)


def _decomment(st: _State, src: Src) -> tuple[Src, bool]:
    """keepalived's decomment(): drop the comment and outer blanks; note a final '\\'."""
    raw = src.text
    if _DECOMMENT_SPECIAL.search(raw) is None:
        return src.strip_blanks(), False
    quote_at = -1  # index of the open '"', or -1
    skip = -1
    cont = False
    end = len(raw)
    drops: list[int] = []
    pos = 0
    search = _DECOMMENT_SPECIAL.search
    while True:
        m = search(raw, pos)
        if m is None:
            break
        p = m.start()
        c = raw[p]
        if c == '"':
            if skip < 0:
                quote_at = p if quote_at < 0 else -1
            pos = p + 1
        elif c == "\\":
            if p + 1 < len(raw):
                if quote_at < 0 and skip < 0 and raw[p + 1] in "#!":
                    drops.append(p)
                pos = p + 2
            else:
                cont = True
                end = p
                break
        else:
            if quote_at < 0 and skip < 0:
                skip = p
            pos = p + 1
    if quote_at >= 0:
        st.error(
            src,
            quote_at,
            "unterminated quote: this '\"' is not closed on its line; close the string "
            "with '\"' (a string cannot span lines)",
        )
    if skip >= 0:
        end = min(end, skip)
    if drops:
        keep = [i for i in range(end) if i not in drops]
        cols = [src.col(i) for i in keep]
        out = Src("".join(raw[i] for i in keep), src.file, src.line, cols[0] if cols else 1, cols)
    else:
        out = src.slice(0, end)
    return out.strip_blanks(), cont


# --------------------------------------------------------------------------- lines


def _feed(st: _State, src: Src) -> None:
    """Run one decommented line through @id, $, ~SEQ/~LST, include and brace splitting.

    Expansions push iterators of further lines, drained depth first: a ~SEQ's next
    value waits until every line its previous value produced is done, and the
    parameter a block sets is defined just before the line that uses it.
    """
    stack: list[Iterator[Src]] = [iter((src,))]
    while stack:
        nxt = next(stack[-1], None)
        if nxt is None:
            stack.pop()
            continue
        _one(st, nxt, stack)
        if len(stack) > MAX_EXPANSION_DEPTH:
            # keepalived would recurse until it runs out of memory.
            st.error(
                src,
                0,
                f"expansion nests more than {MAX_EXPANSION_DEPTH} deep (a multi-line "
                "parameter that uses itself?); make every parameter end in plain text",
            )
            return
        st.expanded += 1
        if st.expanded > MAX_EXPANDED_LINES:
            if st.expanded == MAX_EXPANDED_LINES + 1:
                st.error(
                    src,
                    0,
                    f"parameters and ~SEQ/~LST blocks made more than {MAX_EXPANDED_LINES} "
                    "lines; the rest is not read (use smaller ranges)",
                )
            return


def _one(st: _State, src: Src, stack: list[Iterator[Src]]) -> None:
    params = st.params
    for _ in range(MAX_RECHECK):
        text = src.text
        if not text:
            return
        first = text[0]
        if first == "@":
            cond = _conditional(st, src)
            if cond is None:
                return
            src = cond
            text = src.text
            first = text[:1]
        if first == "$":
            m = DEF_RE.match(text)
            if m is not None:
                params.define(m.group(1), [src.slice(m.end()).strip_blanks()])
                return
        if first == "~":
            if text.startswith(("~SEQ", "~LST")):
                it = _block(st, src)
                if it is not None:
                    stack.append(it)
                return
            break  # keepalived leaves other '~' lines alone, parameters included
        if not params.may_substitute(text):
            break
        try:
            new, tail = params.substitute(src)
        except SubstitutionLoop as loop:
            st.diagnostics.append(
                Diagnostic(
                    src.file,
                    src.line,
                    loop.col,
                    "error",
                    f"parameter ${loop.name} never stops expanding (it refers to itself, "
                    "directly or through another parameter); make its value end in plain "
                    "text",
                )
            )
            return
        if new is None:
            break
        if tail:
            stack.append(iter(tail))
        # keepalived decomments the substituted line again (so ${_HASH} only survives
        # inside "..."), then looks for '@' and '$' once more.
        src, _ = _decomment(st, new)
        if not (src.text[:1] == "@" or "$" in src.text):
            break
    if not src.text:
        return
    if src.text.startswith("include"):
        if _include_line(st, src):
            return
    _split_braces(st, src, stack)


def _conditional(st: _State, src: Src) -> Src | None:
    """``@ID rest`` / ``@^ID rest``: keep ``rest`` when ID is (is not) the config-id."""
    text = src.text
    negate = text[1:2] == "^"
    m = _CONDITIONAL_END.search(text)
    if m is None:
        return None  # keepalived needs something after the id
    ident = text[2 if negate else 1 : m.start()]
    if (ident == st.params.config_id) == negate:
        return None
    return src.slice(m.start()).strip_blanks()


def _block(st: _State, src: Src) -> Iterator[Src] | None:
    text = src.text
    close = text.find(")")
    head = text if close < 0 else text[: close + 1]
    if "$" in head and st.params.may_substitute(head):
        # keepalived substitutes parameters inside ~SEQ(...) before reading numbers.
        try:
            sub, _ = st.params.substitute(Src(head, src.file, src.line))
        except SubstitutionLoop:
            sub = None
        if sub is not None:
            src = Src(sub.text + text[len(head) :], src.file, src.line, src.col(0))
            text = src.text
    try:
        block = parse_block(text)
    except ExpandError as exc:
        st.error(src, 0, str(exc))
        return None
    rest = src.slice(block.rest)
    if not rest.text:
        return None
    return _block_lines(st.params, block.names, block.rows, block.hex, rest)


def _block_lines(
    params: Params,
    names: tuple[str, ...],
    rows: tuple[tuple[str, ...], ...] | range,
    hex_: bool,
    rest: Src,
) -> Iterator[Src]:
    where = (rest.file, rest.line, rest.base)
    for row in rows:
        if isinstance(row, int):
            value = format(row, "x") if hex_ else str(row)
            params.define(names[0], [Src(value, *where)])
        else:
            for name, value in zip(names, row, strict=True):
                params.define(name, [Src(value, *where)])
        yield rest


# --------------------------------------------------------------------------- include


def _include_line(st: _State, src: Src) -> bool:
    text = src.text
    frame = st.frames[-1]
    if text.startswith("include_check") and (len(text) == 13 or text[13] in _WS):
        level, complaints = inc.apply_include_check(frame.include_check, text.split()[1:])
        frame.include_check = level
        for complaint in complaints:
            st.error(src, 0, complaint)
        return True
    found = inc.split_include(text)
    if found is None:
        return False
    kw, pattern = found
    at = len(text) - len(pattern)
    if not pattern:
        st.error(src, 0, f"{kw} needs a file name; write '{kw} FILE' (glob and {{a,b}} allowed)")
        return True
    checks = frame.include_check | inc.VARIANTS[kw] | inc.Check.LIMIT
    result = inc.find_files(pattern, frame.folder)
    files = result.files
    for problem in result.problems:
        severity: Severity = "error" if problem.check & checks else "warning"
        if problem.check is inc.Check.WILDCARD and severity == "warning":
            continue  # keepalived says nothing about an empty wildcard unless asked
        st.error(src, at, f"{kw}: {problem.message}", severity)
        if problem.check is inc.Check.BRACE and files and severity == "error":
            files = []  # keepalived includes none of them then
    for path in files:
        _include_file(st, src, at, kw, path, checks)
    return True


def _include_file(st: _State, src: Src, at: int, kw: str, path: str, checks: inc.Check) -> None:
    real = os.path.realpath(path)
    if real in st.active or len(st.frames) >= MAX_INCLUDE_DEPTH:
        chain = " -> ".join([*st.active, real])
        st.error(
            src,
            at,
            f"{kw}: include loop: {path} is already being read ({chain}); remove the "
            "include that leads back to it",
        )
        return
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        severity: Severity = "error" if checks & inc.Check.READ else "warning"
        st.error(
            src, at, f"{kw}: cannot read {path} ({exc.strerror}); fix its permissions", severity
        )
        return
    st.active.append(real)
    try:
        # The include_check level is saved per file: an included file may change its
        # own, never its includer's (keepalived.conf(5) include_check).
        _read_text(st, _decode(data), path, st.frames[-1].include_check)
    finally:
        st.active.pop()


# --------------------------------------------------------------------------- tokens


def _split_braces(st: _State, src: Src, stack: list[Iterator[Src]]) -> None:
    """keepalived cuts a line at its first ``{`` or ``}`` outside ``"..."``; the rest is
    read again as a line of its own (so ``a { b }`` is four lines)."""
    text = src.text
    if _NEEDS_FEED.search(text) is None:
        # Nothing left for _one() in any piece: cut and tokenise the whole line here.
        _plain_words(st, text, src.file, src.line, src.base, src.cols)
        return
    if text[0] in "{}":
        _brace(st, Token(text[0], src.file, src.line, src.col(0)))
        rest = src.slice(1).strip_blanks()
        if rest.text:
            stack.append(iter((rest,)))
        return
    if '"' not in text:
        m = _BRACE.search(text)
    else:
        m = _BRACE_OR_QUOTE.search(text)
        while m is not None and m.group() == '"':
            close = text.find('"', m.end())
            if close < 0:
                m = None
                break
            m = _BRACE_OR_QUOTE.search(text, close + 1)
    if m is not None:
        stack.append(iter((src.slice(m.start()),)))
        src = src.slice(0, m.start()).strip_blanks()
    _tokenise(st, src)


def _tokenise(st: _State, src: Src) -> None:
    """The words of one brace-free piece of a line (keepalived's alloc_strvec_r())."""
    text = src.text
    file, lineno = src.file, src.line
    if '"' not in text:
        _plain_words(st, text, file, lineno, src.base, src.cols)
        return
    tokens: list[Token] = []
    for m in _QUOTED_WORD.finditer(text):
        if m.group(2) is not None:
            last = st.diagnostics[-1] if st.diagnostics else None
            col = src.col(m.start())
            if last is None or (last.file, last.line, last.col) != (file, lineno, col):
                st.error(
                    src,
                    m.start(),
                    "unmatched quote: the rest of the line after this '\"' is ignored; "
                    "close the string with '\"'",
                )
            break
        word = m.group(1)
        if word is None:
            tokens.append(Token(m.group(), file, lineno, src.col(m.start())))
        else:
            tokens.append(Token(word, file, lineno, src.col(m.start()), True))
    if tokens:
        _statement(st, tokens, text)


def _brace(st: _State, tok: Token) -> None:
    if tok.text == "{":
        # The block's keyword is the statement just before, unless that was a brace.
        prev = st.lines[-1] if st.lines else None
        keyword = prev.tokens[0] if prev is not None and prev.raw not in ("{", "}") else None
        st.open_braces.append((tok, keyword))
    elif st.open_braces:
        st.open_braces.pop()
    else:
        st.diagnostics.append(
            Diagnostic.at(
                tok,
                "error",
                "extra '}': no block is open here; remove it or add the '{' it closes",
            )
        )
    st.lines.append(_new(Line, ((tok,), tok.text)))


def _statement(st: _State, tokens: list[Token], raw: str) -> None:
    st.lines.append(_new(Line, (tuple(tokens), raw)))
    _seed(st, tokens)


def _seed(st: _State, tokens: list[Token]) -> None:
    if tokens[0].text == "random_seed" and len(tokens) > 1 and tokens[1].text.isdigit():
        # keepalived seeds random() for ${_RANDOM} from random_seed.
        st.params.reseed(int(tokens[1].text))


# --------------------------------------------------------------------------- scripts

_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "E": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
}
_SCRIPT_STOP = {
    "": re.compile(r"[ \t\f\n\r\v'\"\\]"),
    '"': re.compile(r'["\\]'),
    "'": re.compile(r"['\\]"),
}
_HEX = "0123456789abcdefABCDEF"


def split_script(text: str) -> list[str]:
    """Split a script command the way keepalived does (alloc_strvec_quoted_escaped).

    Quotes of either kind group words and are removed; ``\\`` escapes work inside and
    outside quotes.  Raises :class:`ConfigError` on an unterminated quote or a ``\\`` at
    the very end, where keepalived drops the whole script.

    >>> split_script("/bin/notify.sh 'two words' \\"a\\\\tb\\"")
    ['/bin/notify.sh', 'two words', 'a\\tb']
    """
    words: list[str] = []
    pos = 0
    n = len(text)
    quote = ""
    while True:
        while pos < n and text[pos] in _WS:
            pos += 1
        if pos >= n:
            break
        out: list[str] = []
        while pos < n:
            m = _SCRIPT_STOP[quote].search(text, pos)
            if m is None:
                out.append(text[pos:])
                pos = n
                break
            out.append(text[pos : m.start()])
            pos = m.start()
            c = text[pos]
            if c == "\\":
                if pos + 1 >= n:
                    raise _script_error(text, "it ends in a lone '\\'; remove it or write '\\\\'")
                ch, pos = _unescape(text, pos + 1)
                out.append(ch)
            elif quote:
                quote = ""
                pos += 1
            elif c in "\"'":
                quote = c
                pos += 1
            else:
                break
        if quote:
            raise _script_error(text, f"a {quote} is never closed; close the quote")
        words.append("".join(out))
    return words


def _script_error(text: str, what: str) -> ConfigError:
    return ConfigError([Diagnostic("<script>", 0, 0, "error", f"script {text!r}: {what}")])


def _unescape(text: str, pos: int) -> tuple[str, int]:
    """One escape after a '\\' (keepalived's table); returns (character, next index)."""
    n = len(text)
    c = text[pos]
    if c == "x" and pos + 1 < n and text[pos + 1] in _HEX:
        end = pos + 1
        while end < n and text[end] in _HEX:
            end += 1
        # keepalived accumulates into a char: only the low 8 bits survive.
        return chr(int(text[pos + 1 : end], 16) & 0xFF), end
    if c == "c" and pos + 1 < n:
        return chr(ord(text[pos + 1]) & 0x1F), pos + 2
    if "0" <= c <= "7":
        end = pos + 1
        while end < n and end < pos + 3 and "0" <= text[end] <= "7":
            end += 1
        return chr(int(text[pos:end], 8) & 0xFF), end
    return _ESCAPES.get(c, c), pos + 1
