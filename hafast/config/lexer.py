"""keepalived.conf lexer: files -> logical lines of tokens that remember file:line:col.

It follows keepalived's own reader (``lib/parser.c``: ``read_line``, ``decomment``,
``alloc_strvec_r``) so a config means here what it means to keepalived:

* ``#`` and ``!`` start a comment anywhere outside ``"..."``; ``\\#`` and ``\\!`` outside
  quotes stand for the plain characters.  Single quotes do not protect comments
  (keepalived's ``decomment`` only tracks double quotes).
* ``{`` and ``}`` outside ``"..."`` always split the line: each brace becomes a
  :class:`Line` of its own, so ``vrrp_instance VI_1 {`` gives the lines
  ``[vrrp_instance, VI_1]`` and ``[{]``, and ``virtual_ipaddress { 10.0.0.1 }`` gives
  four lines.  That is exactly the sequence of buffers keepalived's parser sees.
* Words split on blanks; a word that starts with ``"`` runs to the next ``"`` (no escapes
  at this level, ``Token.quoted`` is set); a ``"`` inside a word ends the word.  Script
  strings get keepalived's second, shell-like split: :func:`split_script` on
  ``Line.raw`` (escapes ``\\a \\b \\E \\f \\n \\r \\t \\v \\nnn \\xXX \\cC``, both quote kinds).
* ``include`` (and ``includer/m/w/b/a``), ``include_check``, ``@id`` / ``@^id`` lines,
  ``$NAME=value`` parameters (multi-line with a trailing ``\\``), ``$NAME`` / ``${NAME}``
  use, the built-ins ``_PWD _INSTANCE _RANDOM _ENV _HASH _BANG``, ``~SEQ``/``~SEQx``/``~LST``
  expansion.  These never reach the loader: only the lines they produce do.

Nothing here raises except :class:`ConfigError` (the main file cannot be read); every
other problem is a :class:`Diagnostic` in :attr:`LexResult.diagnostics`.
"""

from __future__ import annotations

import glob as _glob
import os
import random
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from hafast.config.tokens import ConfigError, Diagnostic, LexResult, Line, Token

__all__ = ["lex_text", "read_config", "split_script"]

# keepalived's WHITE_SPACE_STR (lib/parser.c): the only characters that separate words.
_WS = " \t\f\n\r\v"
_BLANK = " \t"

# Safety limits: keepalived has a fixed 2 KiB line buffer and simply stops; we say why.
MAX_SUBSTITUTIONS = 10_000  # parameter replacements in one line before calling it a loop
MAX_LINE_CHARS = 1 << 20  # a line growing past this through substitution is a loop too
MAX_SEQ_VALUES = 1_000_000  # values of one ~SEQ/~LST
MAX_INCLUDE_DEPTH = 64

# Characters decomment() must look at; a line without any of them takes the fast path.
_DECOMMENT_SPECIAL = re.compile(r'[!#"\\]')
# Words of a line with no quote character: braces are words of their own.
_PLAIN_WORD = re.compile(r"[{}]|[^ \t\f\n\r\v{}]+")
# With quotes: a "..." word, a brace, a bare word (ends at blank, brace or quote), or an
# unmatched quote (the rest of the line is lost, as keepalived's alloc_strvec_r does).
_QUOTED_WORD = re.compile(r'"([^"]*)"|([{}])|([^ \t\f\n\r\v{}"]+)|(")')
_DEF_RE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)=[ \t]*")
# ${NAME} or ${NAME params}; $NAME must be followed by blank , ) or the end of the line.
_USE_BRACED = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)((?:[ \t]+[^{}$ \t]+)*)\}")
_USE_BARE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?=[ \t,)]|$)")
_SEQ_HEAD = re.compile(r"~(SEQx?|LST)[ \t]*\(")
# strtol(…, 0) as keepalived's add_seq uses it: sign, then hex, octal or decimal.
_STRTOL = re.compile(r"[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
_WILDCARD = re.compile(r"[*?\[]")

# include_check options (keepalived.conf(5) "include_check"); match, wildcard_match and
# brace_match imply readable.
READABLE = "readable"
MATCH = "match"
WILDCARD_MATCH = "wildcard_match"
BRACE_MATCH = "brace_match"
_ALL_CHECKS = frozenset({READABLE, MATCH, WILDCARD_MATCH, BRACE_MATCH})
# What keepalived 2.2.7 reports for a plain include (measured with `keepalived -t`): a
# missing plain file and a missing brace alternative, but not an empty wildcard.
DEFAULT_INCLUDE_CHECK = frozenset({READABLE, MATCH, BRACE_MATCH})
_INCLUDE_VARIANTS: dict[str, frozenset[str]] = {
    "include": frozenset(),
    "includer": frozenset({READABLE}),
    "includem": frozenset({MATCH, READABLE}),
    "includew": frozenset({WILDCARD_MATCH, READABLE}),
    "includeb": frozenset({BRACE_MATCH, READABLE}),
    "includea": _ALL_CHECKS,
}


@dataclass(slots=True)
class _Src:
    """A line of text and where each of its characters came from.

    ``cols`` is ``None`` while the text is an untouched slice of the file: then the
    character at index ``i`` sits at column ``base + i``.  Substitution and escape
    removal switch to an explicit per-character column list.
    """

    text: str
    file: str
    line: int
    base: int = 1
    cols: list[int] | None = None

    def col(self, i: int) -> int:
        cols = self.cols
        if cols is None:
            return self.base + i
        if not cols:
            return self.base
        return cols[i] if i < len(cols) else cols[-1] + 1

    def col_list(self) -> list[int]:
        if self.cols is not None:
            return self.cols
        return list(range(self.base, self.base + len(self.text)))

    def slice(self, start: int, end: int | None = None) -> _Src:
        text = self.text[start:end]
        if self.cols is None:
            return _Src(text, self.file, self.line, self.base + start)
        return _Src(text, self.file, self.line, self.col(start), self.cols[start:end])

    def strip_blanks(self) -> _Src:
        text = self.text
        lead = len(text) - len(text.lstrip(_BLANK))
        end = len(text.rstrip(_BLANK))
        if lead == 0 and end == len(text):
            return self
        return self.slice(lead, end)


@dataclass(slots=True)
class _Def:
    """A ``$NAME`` parameter: one line of text, or several (a multi-line definition)."""

    lines: list[_Src]
    multiline: bool = False


@dataclass(slots=True)
class _Frame:
    """One file being read: its folder (``${_PWD}``) and its include_check level."""

    path: str
    folder: str
    include_check: frozenset[str]


@dataclass(slots=True)
class _State:
    config_id: str | None
    env: Mapping[str, str]
    rng: random.Random
    lines: list[Line] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    defs: dict[str, _Def] = field(default_factory=dict)
    frames: list[_Frame] = field(default_factory=list)
    active: list[str] = field(default_factory=list)  # real paths being read (loop guard)
    open_braces: list[Token] = field(default_factory=list)
    last_statement: Token | None = None  # the line before a '{', to name the block


def default_config_id() -> str:
    """keepalived's default config-id: the node name up to its first dot (uname -n)."""
    return os.uname().nodename.split(".")[0]


def read_config(
    path: str | os.PathLike[str],
    *,
    config_id: str | None = None,
    env: Mapping[str, str] | None = None,
    random_seed: int | None = None,
) -> LexResult:
    """Read a keepalived.conf and everything it includes.

    ``config_id`` selects ``@id`` lines (default: the short host name, as keepalived's
    ``-i``).  Raises :class:`ConfigError` only when the main file itself cannot be read;
    everything else is reported in ``LexResult.diagnostics``.

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
                    f"cannot read the configuration file ({exc.strerror or exc}); "
                    "give the path of a readable keepalived.conf",
                )
            ]
        ) from None
    return _lex(_decode(data), fspath, config_id, env, random_seed)


def lex_text(
    text: str,
    *,
    file: str = "<string>",
    config_id: str | None = None,
    env: Mapping[str, str] | None = None,
    random_seed: int | None = None,
) -> LexResult:
    """Lex config text held in memory; includes are relative to ``file``'s folder.

    >>> [t.text for t in lex_text("vrrp_instance VI_1 {").lines[0].tokens]
    ['vrrp_instance', 'VI_1']
    """
    return _lex(text, file, config_id, env, random_seed)


def _decode(data: bytes) -> str:
    # keepalived reads bytes; keep undecodable bytes rather than failing on them.
    return data.decode("utf-8", errors="surrogateescape")


def _lex(
    text: str,
    file: str,
    config_id: str | None,
    env: Mapping[str, str] | None,
    random_seed: int | None,
) -> LexResult:
    st = _State(
        config_id=default_config_id() if config_id is None else config_id,
        env=os.environ if env is None else env,
        rng=random.Random(random_seed),
    )
    try:
        last_line = _read_text(st, text, file)
        _report_unclosed(st, file, last_line)
    except RecursionError:  # pragma: no cover - guarded by MAX_INCLUDE_DEPTH
        st.diagnostics.append(
            Diagnostic(file, 0, 0, "error", "configuration nests too deeply; flatten includes")
        )
    return LexResult(lines=st.lines, diagnostics=st.diagnostics, files=st.files)


def _error(st: _State, file: str, line: int, col: int, message: str) -> None:
    st.diagnostics.append(Diagnostic(file, line, col, "error", message))


def _report_unclosed(st: _State, file: str, last_line: int) -> None:
    # keepalived: "There are %d missing '}'s or extra '{'s", said once after reading all
    # files and naming no line; we say it at the end of the main file and name the block.
    if not st.open_braces:
        return
    n = len(st.open_braces)
    opener = st.open_braces[0]
    _error(
        st,
        file,
        last_line,
        1,
        f"{n} missing '}}' at end of file: the block opened at {opener.where()} is never "
        "closed; add the missing '}' (or remove an extra '{')",
    )


# --------------------------------------------------------------------------- reading


def _read_text(st: _State, text: str, file: str) -> int:
    """Lex one file's text; returns its last line number."""
    folder = os.path.dirname(os.path.abspath(file)) if file != "<string>" else os.getcwd()
    inherited = st.frames[-1].include_check if st.frames else DEFAULT_INCLUDE_CHECK
    st.frames.append(_Frame(file, folder, inherited))
    st.files.append(file)
    collecting: _Def | None = None  # a multi-line $NAME= definition being read
    lineno = 0
    try:
        for lineno, raw in enumerate(text.splitlines(), 1):
            if not raw:
                _end_multiline(collecting)
                collecting = None
                continue
            src, cont = _decomment(st, raw, file, lineno)
            if collecting is not None:
                if src.text:
                    collecting.lines.append(src)
                if not cont or not src.text:
                    _end_multiline(collecting)
                    collecting = None
                continue
            if not src.text:
                continue
            if cont:
                # A trailing '\' only means something on a $NAME= line; keepalived keeps
                # it as text elsewhere, and so do we.
                started = _start_multiline(st, src)
                if started is not None:
                    collecting = started
                    continue
                src = _Src(src.text + "\\", src.file, src.line, src.base, _extend_cols(src))
            _feed(st, src)
    finally:
        st.frames.pop()
    return max(lineno, 1)


def _extend_cols(src: _Src) -> list[int] | None:
    if src.cols is None:
        return None
    return [*src.cols, src.col(len(src.text))]


def _end_multiline(collecting: _Def | None) -> None:
    if collecting is not None and not collecting.lines:
        collecting.multiline = False
    return None


def _start_multiline(st: _State, src: _Src) -> _Def | None:
    """``$NAME=first \\`` (the '\\' already removed): start a multi-line definition."""
    text = src.text
    if text[:1] == "@":
        src = _conditional(st, src)  # type: ignore[assignment]
        if src is None:
            return None
        text = src.text
    m = _DEF_RE.match(text)
    if m is None:
        return None
    first = src.slice(m.end()).strip_blanks()
    d = _Def([first] if first.text else [], multiline=True)
    st.defs[m.group(1)] = d
    return d


def _decomment(st: _State, raw: str, file: str, lineno: int) -> tuple[_Src, bool]:
    """keepalived's decomment(): drop comments and blanks; report a trailing '\\'."""
    if raw[-1:] == "\r":
        raw = raw.rstrip("\r")
    if _DECOMMENT_SPECIAL.search(raw) is None:
        stripped = raw.lstrip(_BLANK)
        lead = len(raw) - len(stripped)
        return _Src(stripped.rstrip(_BLANK), file, lineno, lead + 1), False
    quote_at = -1  # index of the open '"', or -1
    skip = -1
    cont = False
    end = len(raw)
    drops: list[int] = []
    pos = 0
    while True:
        m = _DECOMMENT_SPECIAL.search(raw, pos)
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
                if quote_at < 0 and raw[p + 1] in "#!" and skip < 0:
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
        _error(
            st,
            file,
            lineno,
            quote_at + 1,
            'unterminated quote: this \'"\' has no closing \'"\' on the line; '
            'close the string with \'"\' (a string cannot span lines)',
        )
    if skip >= 0:
        end = min(end, skip)
    if drops:
        cols: list[int] = []
        chars: list[str] = []
        drop_set = set(drops)
        for i in range(end):
            if i not in drop_set:
                chars.append(raw[i])
                cols.append(i + 1)
        src = _Src("".join(chars), file, lineno, 1, cols)
    else:
        src = _Src(raw[:end], file, lineno, 1)
    return src.strip_blanks(), cont


# --------------------------------------------------------------------------- lines


def _feed(st: _State, src: _Src) -> None:
    """Run one decommented line through @id, $, ~SEQ/~LST and include handling.

    Expansions push iterators of further lines; they are drained depth first, so a
    ~SEQ's next value waits until every line its previous value produced is done, and a
    parameter set by a ~SEQ is defined just before the line that uses it.
    """
    stack: list[Iterator[_Src]] = [iter((src,))]
    while stack:
        nxt = next(stack[-1], None)
        if nxt is None:
            stack.pop()
            continue
        _one(st, nxt, stack)


def _one(st: _State, src: _Src, stack: list[Iterator[_Src]]) -> None:
    # keepalived recognises include before conditionals and parameters.
    if src.text.startswith("include") and _maybe_include(st, src):
        return
    for _ in range(64):  # substitution may produce a new '@', '$X=' or '~SEQ' line
        text = src.text
        if not text:
            return
        if text[0] == "@":
            cond = _conditional(st, src)
            if cond is None:
                return
            src = cond
            text = src.text
        if text[0] == "$":
            m = _DEF_RE.match(text)
            if m is not None:
                value = src.slice(m.end()).strip_blanks()
                st.defs[m.group(1)] = _Def([value])
                return
        if text[0] == "~":
            m = _SEQ_HEAD.match(text)
            if m is not None:
                it = _expansion(st, src, m)
                if it is not None:
                    stack.append(it)
                return
            break
        if "$" not in text or (not st.defs and "${_" not in text and "$_" not in text):
            break
        new, more = _substitute(st, src)
        if new is None:
            break
        src = new
        if more is not None:
            stack.append(more)
        if not (src.text[:1] in ("@", "~") or _DEF_RE.match(src.text)):
            break
    _emit(st, src)


def _conditional(st: _State, src: _Src) -> _Src | None:
    """``@ID rest`` / ``@^ID rest``: keep ``rest`` when ID is (is not) the config id."""
    text = src.text
    negate = text[1:2] == "^"
    start = 2 if negate else 1
    m = re.search(r"[ \t]", text)
    if m is None:
        return None  # keepalived needs something after the id
    ident = text[start : m.start()]
    if (ident == st.config_id) == negate:
        return None
    return src.slice(m.start()).strip_blanks()


# --------------------------------------------------------------------------- tokens


def _emit(st: _State, src: _Src) -> None:
    """Split at braces (outside "..."), tokenise, and append the lines."""
    text = src.text
    file, lineno = src.file, src.line
    regex = _QUOTED_WORD if '"' in text else _PLAIN_WORD
    current: list[Token] = []
    seg_start = 0
    for m in regex.finditer(text):
        if regex is _PLAIN_WORD:
            word = m.group()
            quoted = False
        else:
            if m.group(4) is not None:
                _error(
                    st,
                    file,
                    lineno,
                    src.col(m.start()),
                    "unmatched quote: the rest of the line after this '\"' is ignored; "
                    "close the string with '\"'",
                )
                break
            word = m.group(1)
            quoted = word is not None
            if word is None:
                word = m.group()
        start = m.start()
        if not quoted and (word == "{" or word == "}"):
            if current:
                _append(st, current, text[seg_start:start])
                current = []
            tok = Token(word, file, lineno, src.col(start))
            _append(st, [tok], word)
            seg_start = m.end()
            continue
        if not current:
            seg_start = start
        current.append(Token(word, file, lineno, src.col(start), quoted))
    if current:
        _append(st, current, text[seg_start:])


def _append(st: _State, tokens: list[Token], raw: str) -> None:
    first = tokens[0]
    if len(tokens) == 1 and not first.quoted:
        if first.text == "{":
            st.open_braces.append(st.last_statement or first)
        elif first.text == "}":
            if st.open_braces:
                st.open_braces.pop()
            else:
                st.diagnostics.append(
                    Diagnostic.at(
                        first,
                        "error",
                        "extra '}': no block is open here; remove it or add the '{' it closes",
                    )
                )
        else:
            st.last_statement = first
    else:
        st.last_statement = first
        if first.text == "random_seed" and len(tokens) > 1 and tokens[1].text.isdigit():
            # keepalived seeds random() for ${_RANDOM} from global_defs random_seed.
            st.rng.seed(int(tokens[1].text))
    st.lines.append(Line(tuple(tokens), raw.rstrip(_BLANK)))


# --------------------------------------------------------------------------- $ params


def _builtin(st: _State, name: str, params: str) -> str | None:
    if name == "_PWD":
        return st.frames[-1].folder if st.frames else os.getcwd()
    if name == "_INSTANCE":
        return st.config_id or ""
    if name == "_HASH":
        return "#"
    if name == "_BANG":
        return "!"
    if name == "_ENV":
        key = params.strip()
        return st.env.get(key, "") if key else None
    if name == "_RANDOM":
        nums = params.split()
        if len(nums) > 2 or not all(n.isdigit() for n in nums):
            return None
        lo = int(nums[0]) if nums else 0
        hi = int(nums[1]) if len(nums) > 1 else 32767
        if hi < lo:
            lo, hi = hi, lo
        return str(st.rng.randint(lo, hi))
    return None


def _substitute(st: _State, src: _Src) -> tuple[_Src | None, Iterator[_Src] | None]:
    """Replace ``$NAME`` / ``${NAME}`` recursively, as keepalived's replace_param().

    Returns the new line (``None`` when nothing was replaced) and, when a multi-line
    parameter ended the line, the iterator of its further lines.
    """
    text = src.text
    cols: list[int] | None = None
    pos = text.find("$")
    count = 0
    more: Iterator[_Src] | None = None
    changed = False
    while 0 <= pos < len(text) - 1:
        braced = text[pos + 1] == "{"
        m = (_USE_BRACED if braced else _USE_BARE).match(text, pos + 1)
        if m is None:
            pos = text.find("$", pos + 1)
            continue
        name = m.group(1)
        params = m.group(2) if braced else ""
        at_end = m.end() == len(text)
        d = st.defs.get(name)
        value: str | None
        tail: list[_Src] = []
        if d is not None and not params:
            if d.multiline and not at_end:
                # keepalived only expands a multi-line parameter that ends the line.
                pos = text.find("$", pos + 1)
                continue
            value = d.lines[0].text if d.lines else ""
            tail = d.lines[1:] if d.multiline else []
        else:
            value = _builtin(st, name, params or "")
        if value is None:
            pos = text.find("$", pos + 1)
            continue
        count += 1
        if count > MAX_SUBSTITUTIONS or len(text) > MAX_LINE_CHARS:
            _error(
                st,
                src.file,
                src.line,
                src.col(pos),
                f"parameter ${name} never stops expanding (it refers to itself, directly "
                "or through another parameter); make the definition end in plain text",
            )
            return None, None
        if cols is None:
            cols = src.col_list()
        use_col = cols[pos] if pos < len(cols) else src.col(pos)
        text = text[:pos] + value + text[m.end() :]
        cols = cols[:pos] + [use_col] * len(value) + cols[m.end() :]
        changed = True
        if tail:
            more = iter(tail)
            break
        if value.lstrip(_BLANK)[:1] == "~":
            break  # keepalived stops so that a ~SEQ produced here is seen as one
    if not changed:
        return None, None
    new = _Src(text, src.file, src.line, src.col(0) if text else src.base, cols)
    return new.strip_blanks(), more


# --------------------------------------------------------------------------- ~SEQ ~LST


def _expansion(st: _State, src: _Src, head: re.Match[str]) -> Iterator[_Src] | None:
    text = src.text
    close = text.find(")", head.end())
    kind = head.group(1)
    if kind == "LST":
        close = _lst_close(text, head.end())
    if close < 0:
        _error(
            st,
            src.file,
            src.line,
            src.col(0),
            f"~{kind}( has no closing ')'; write ~{kind}(VAR, ...) followed by the line "
            "to repeat",
        )
        return None
    inner = text[head.end() : close]
    # Parameters may be used inside ~SEQ(...) (keepalived runs replace_param on them).
    if "$" in inner:
        sub, _ = _substitute(st, _Src(inner, src.file, src.line, src.col(head.end())))
        if sub is not None:
            inner = sub.text
    rest = src.slice(close + 1).strip_blanks()
    if kind == "LST":
        parsed = _parse_lst(inner)
        if isinstance(parsed, str):
            _error(st, src.file, src.line, src.col(0), parsed)
            return None
        names, rows = parsed
        return _lst_lines(st, names, rows, rest)
    seq = _parse_seq(inner, hex_=kind == "SEQx")
    if isinstance(seq, str):
        _error(st, src.file, src.line, src.col(0), seq)
        return None
    var, start, step, end = seq
    count = (end - start) // step + 1
    if count > MAX_SEQ_VALUES:
        _error(
            st,
            src.file,
            src.line,
            src.col(0),
            f"~{kind} would repeat the line {count} times (limit {MAX_SEQ_VALUES}); "
            "use a smaller range",
        )
        return None
    return _seq_lines(st, var, start, step, end, kind == "SEQx", rest)


def _strtol(s: str, pos: int) -> tuple[int, int]:
    """C strtol(s+pos, &end, 0): (value, end); no digits gives (0, pos)."""
    m = _STRTOL.match(s, pos)
    if m is None:
        return 0, pos
    sign, digits = m.group(1), m.group(2)
    if digits[:2] in ("0x", "0X"):
        val = int(digits, 16)
    elif len(digits) > 1 and digits[0] == "0":
        val = int(digits, 8)
    else:
        val = int(digits)
    return (-val if sign == "-" else val), m.end()


def _parse_seq(inner: str, *, hex_: bool) -> tuple[str, int, int, int] | str:
    """``VAR, [START,] [STEP,] END`` as keepalived's add_seq(); a str is an error."""
    kw = "~SEQx" if hex_ else "~SEQ"
    usage = f"write {kw}(VAR, END), {kw}(VAR, START, END) or {kw}(VAR, START, STEP, END)"
    var_m = re.match(r"[ \t]*([^ \t,)]+)[ \t]*,", inner)
    if var_m is None:
        return f"invalid {kw} definition: a variable name and a ',' must come first; {usage}"
    var = var_m.group(1)
    nums: list[int] = []
    pos = var_m.end()
    while True:
        val, end = _strtol(inner, pos)
        if end == pos and not inner[pos:].strip(_BLANK).startswith(("-", "+")):
            # strtol of nothing is 0 in C; keepalived accepts an empty field as 0.
            pass
        nums.append(val)
        pos = end
        while pos < len(inner) and inner[pos] in _BLANK:
            pos += 1
        if pos >= len(inner):
            break
        if inner[pos] != "," or len(nums) >= 3:
            return f"invalid {kw} definition {inner!r}: unexpected {inner[pos]!r}; {usage}"
        pos += 1
    if len(nums) == 1:
        end_v = nums[0]
        step = -1 if end_v < 1 else 1
        start = -1 if end_v < 0 else 1
    elif len(nums) == 2:
        start, end_v = nums
        step = 1 if start <= end_v else -1
    else:
        start, step, end_v = nums
        if step == 0 or (start < end_v and step < 0) or (start > end_v and step > 0):
            return (
                f"invalid {kw} values (start {start}, step {step}, end {end_v}): the step "
                "must be non-zero and go from start towards end"
            )
    if hex_ and (start < 0 or end_v < 0):
        return f"~SEQx is only valid for non-negative numbers (start {start}, end {end_v})"
    return var, start, step, end_v


def _seq_lines(
    st: _State, var: str, start: int, step: int, end: int, hex_: bool, rest: _Src
) -> Iterator[_Src]:
    value = start
    while (step > 0 and value <= end) or (step < 0 and value >= end):
        text = format(value, "x") if hex_ else str(value)
        st.defs[var] = _Def([_Src(text, rest.file, rest.line, rest.base)])
        yield rest
        value += step


def _lst_close(text: str, pos: int) -> int:
    depth = 0
    for i in range(pos, len(text)):
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == ")" and depth <= 0:
            return i
    return -1


def _split_commas(s: str) -> list[str]:
    """Split at commas outside {...}, trimming blanks."""
    parts: list[str] = []
    depth = 0
    cur = 0
    for i, c in enumerate(s):
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(s[cur:i].strip(_BLANK))
            cur = i + 1
    parts.append(s[cur:].strip(_BLANK))
    return parts


def _parse_lst(inner: str) -> tuple[list[str], list[list[str]]] | str:
    usage = "write ~LST(VAR, V1, V2, ...) or ~LST({A,B}, {1,2}, {3,4})"
    parts = _split_commas(inner)
    if len(parts) < 2 or not parts[0]:
        return f"invalid ~LST: it needs a variable and at least one value; {usage}"

    def group(p: str) -> list[str] | None:
        if p.startswith("{"):
            if not p.endswith("}"):
                return None
            return [x.strip(_BLANK) for x in p[1:-1].split(",")]
        return [p]

    names = group(parts[0])
    if names is None or not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n) for n in names):
        return f"invalid ~LST variable list {parts[0]!r}; {usage}"
    rows: list[list[str]] = []
    for p in parts[1:]:
        row = group(p)
        if row is None or len(row) != len(names):
            return (
                f"invalid ~LST value {p!r}: {len(names)} value(s) needed to match "
                f"{parts[0]!r}; {usage}"
            )
        rows.append(row)
    if len(rows) > MAX_SEQ_VALUES:
        return f"~LST has {len(rows)} values (limit {MAX_SEQ_VALUES})"
    return names, rows


def _lst_lines(st: _State, names: list[str], rows: list[list[str]], rest: _Src) -> Iterator[_Src]:
    for row in rows:
        for name, val in zip(names, row, strict=True):
            st.defs[name] = _Def([_Src(val, rest.file, rest.line, rest.base)])
        yield rest


# --------------------------------------------------------------------------- include


def _maybe_include(st: _State, src: _Src) -> bool:
    words = src.text.split()
    if not words:
        return False
    kw = words[0]
    if kw == "include_check":
        _include_check(st, src, words[1:])
        return True
    extra = _INCLUDE_VARIANTS.get(kw)
    if extra is None:
        return False
    if len(words) != 2:
        if len(words) == 1:
            _error(
                st,
                src.file,
                src.line,
                src.col(0),
                f"{kw} needs a file name; write '{kw} FILE' (glob and {{a,b}} allowed)",
            )
            return True
        return False  # keepalived only takes 'include FILE' with exactly one word
    pattern = words[1]
    if len(pattern) >= 2 and pattern[0] == '"' and pattern[-1] == '"':
        pattern = pattern[1:-1]
    frame = st.frames[-1]
    checks = frame.include_check | extra
    _include(st, src, kw, pattern, checks)
    return True


def _include_check(st: _State, src: _Src, opts: list[str]) -> None:
    frame = st.frames[-1]
    if not opts:
        frame.include_check = _ALL_CHECKS
        return
    checks = set(frame.include_check)
    for opt in opts:
        sign = opt[0] if opt[0] in "+-" else ""
        name = opt[len(sign) :]
        if name not in _ALL_CHECKS:
            _error(
                st,
                src.file,
                src.line,
                src.col(src.text.find(opt)),
                f"unknown include_check option {opt!r}; use [+|-]readable, match, "
                "wildcard_match or brace_match",
            )
            continue
        if sign == "-":
            checks.discard(name)
        else:
            checks.add(name)
    frame.include_check = frozenset(checks)


def brace_expand(pattern: str) -> list[str]:
    """csh-style ``{a,b}`` expansion as glob(GLOB_BRACE): ``x{a,b{1,2}}`` -> 3 words.

    >>> brace_expand("conf.d/{a,b{1,2}}.conf")
    ['conf.d/a.conf', 'conf.d/b1.conf', 'conf.d/b2.conf']
    """
    depth = 0
    open_at = -1
    for i, c in enumerate(pattern):
        if c == "{":
            if depth == 0:
                open_at = i
            depth += 1
        elif c == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                body = pattern[open_at + 1 : i]
                if body == "":
                    break  # glob treats "{}" literally
                alts = _split_commas(body) if "," in body else [body]
                head, tail = pattern[:open_at], pattern[i + 1 :]
                out: list[str] = []
                for alt in alts:
                    out.extend(brace_expand(head + alt + tail))
                return out
    return [pattern]


def _include(st: _State, src: _Src, kw: str, pattern: str, checks: frozenset[str]) -> None:
    folder = st.frames[-1].folder
    col = src.col(src.text.find(pattern) if pattern in src.text else 0)
    where = (src.file, src.line, col)
    full = pattern if os.path.isabs(pattern) else os.path.join(folder, pattern)
    alts = brace_expand(full)
    matched: list[str] = []
    missing_alts: list[str] = []
    for alt in alts:
        if _WILDCARD.search(alt):
            found = sorted(_glob.glob(alt))
        else:
            found = [alt] if os.path.lexists(alt) else []
            if not found:
                missing_alts.append(alt)
        matched.extend(found)
    if not matched:
        wildcard = any(_WILDCARD.search(a) for a in alts)
        if (wildcard and WILDCARD_MATCH in checks) or (not wildcard and MATCH in checks):
            _error(
                st,
                *where,
                f"{kw} {pattern}: no file matches; create it, fix the path (relative paths "
                f"start at {folder}), or use 'includer' / include_check -match if it is "
                "optional",
            )
        return
    if missing_alts and len(alts) > 1 and BRACE_MATCH in checks:
        _error(
            st,
            *where,
            f"{kw} {pattern}: some files are missing ({', '.join(missing_alts)}); create "
            "them or drop them from the {...} list",
        )
    for path in matched:
        _include_file(st, src, kw, path, checks, where)


def _include_file(
    st: _State,
    src: _Src,
    kw: str,
    path: str,
    checks: frozenset[str],
    where: tuple[str, int, int],
) -> None:
    try:
        info = os.stat(path)
    except OSError as exc:
        if READABLE in checks:
            _error(st, *where, f"{kw}: cannot read {path} ({exc.strerror}); fix the path")
        return
    if stat.S_ISDIR(info.st_mode):
        return  # glob(GLOB_MARK) lists folders; keepalived skips them silently
    if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o111:
        if READABLE in checks:
            _error(
                st,
                *where,
                f"{kw}: {path} is not a regular non-executable file (keepalived skips "
                "it); include only plain config files (chmod -x)",
            )
        return
    real = os.path.realpath(path)
    if real in st.active or len(st.frames) >= MAX_INCLUDE_DEPTH:
        chain = " -> ".join([*st.active, real])
        _error(
            st,
            *where,
            f"{kw}: include loop: {path} is already being read ({chain}); remove the "
            "include that leads back to it",
        )
        return
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        if READABLE in checks:
            _error(st, *where, f"{kw}: cannot read {path} ({exc.strerror}); fix permissions")
        return
    st.active.append(real)
    try:
        _read_text(st, _decode(data), path)
    finally:
        st.active.pop()


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


def split_script(text: str) -> list[str]:
    """Split a script line the way keepalived does (alloc_strvec_quoted_escaped).

    Quotes of either kind group words and are removed; ``\\`` escapes work inside and
    outside quotes.  Raises ConfigError on an unterminated quote.

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
            raise ConfigError(
                [
                    Diagnostic(
                        "<script>",
                        0,
                        0,
                        "error",
                        f"missing terminating {quote} in {text!r}; close the quote",
                    )
                ]
            )
        words.append("".join(out))
    return words


def _unescape(text: str, pos: int) -> tuple[str, int]:
    """One escape after a '\\': returns (character, next position)."""
    n = len(text)
    if pos >= n:
        return "", pos
    c = text[pos]
    if c == "x" and pos + 1 < n and text[pos + 1] in "0123456789abcdefABCDEF":
        end = pos + 1
        while end < n and text[end] in "0123456789abcdefABCDEF":
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
