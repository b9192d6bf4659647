"""Params.substitute against the list-of-columns version it replaced (issue 17): the
same line, columns and tail, or the same SubstitutionLoop (name and column), and the
same _RANDOM draws, on random definitions that refer to each other and to themselves."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hafast.config.params import (
    _BLANK,
    _USE_BARE,
    _USE_BRACED,
    MAX_LINE_CHARS,
    MAX_SUBSTITUTIONS,
    Params,
    Src,
    SubstitutionLoop,
)


class _OldParams(Params):
    def substitute(self, src: Src) -> tuple[Src | None, list[Src]]:
         """Replace ``$NAME`` / ``${NAME}`` recursively, as keepalived's replace_param().

         Returns the new line (``None`` when nothing was replaced) and the further lines
         of a multi-line parameter that ended the line.  Raises :class:`SubstitutionLoop`
         when the line never stops changing.
         """
         text = src.text
         cols: list[int] | None = None
         pos = text.find("$")
         count = 0
         tail: list[Src] = []
         changed = False
         defs = self.defs
         while 0 <= pos < len(text) - 1:
             braced = text[pos + 1] == "{"
             m = (_USE_BRACED if braced else _USE_BARE).match(text, pos + 1)
             if m is None:
                 pos = text.find("$", pos + 1)
                 continue
             name = m.group(1)
             params = m.group(2) if braced else ""
             d = defs.get(name)
             value: str | None
             lines: list[Src] = []
             if d is not None and not params:
                 if d.multiline and m.end() != len(text):
                     # keepalived only expands a multi-line parameter that ends the line.
                     pos = text.find("$", pos + 1)
                     continue
                 value = d.lines[0].text if d.lines else ""
                 lines = d.lines[1:] if d.multiline else []
             else:
                 value = self.builtin(name, params)
             if value is None:
                 pos = text.find("$", pos + 1)
                 continue
             if cols is None:
                 cols = src.col_list()
             use_col = cols[pos] if pos < len(cols) else src.col(pos)
             count += 1
             if count > MAX_SUBSTITUTIONS or len(text) > MAX_LINE_CHARS:
                 raise SubstitutionLoop(name, use_col)
             if lines and pos == 0 and m.end() == len(text):
                 # The whole line is a multi-line parameter: its lines keep the place
                 # they were defined at (the common "$VS" on a line of its own).
                 return d.lines[0] if d is not None else None, lines
             text = text[:pos] + value + text[m.end() :]
             cols = cols[:pos] + [use_col] * len(value) + cols[m.end() :]
             changed = True
             if lines:
                 tail = lines
                 break
             if value.lstrip(_BLANK)[:1] == "~":
                 break  # keepalived stops here so that a ~SEQ made by a value is seen whole
             # keep scanning at pos: the value itself is searched for more parameters
         if not changed:
             return None, []
         base = cols[0] if cols else src.base
         return Src(text, src.file, src.line, base, cols), tail


_NAMES = ("A", "B", "_RANDOM", "_PWD", "_HASH")
_piece = st.sampled_from(["$A", "${A}", "$B", "${B}", "${_RANDOM}", "${_RANDOM 1 3}", "$_PWD",
                          "${_HASH}", " ", "x", ",", ")", "~SEQ", "$", "{", "}", "$C", "A",
                          "aB"])
_text = st.lists(_piece, max_size=8).map("".join)


def _run(cls: type[Params], defs: list[tuple[str, str, bool]], line: str) -> object:
    p = cls(config_id="c", seed=7, pwd=lambda: "/etc")
    for i, (name, value, multi) in enumerate(defs):
        lines = [Src(value, "k.conf", i + 1, 3)] + ([Src("more", "k.conf", i + 2)] if multi else [])
        p.define(name, lines, multiline=multi)
    try:
        new, tail = p.substitute(Src(line, "k.conf", 99, 5))
    except SubstitutionLoop as loop:
        return ("loop", loop.name, loop.col, p.rng.random())
    got = None if new is None else (new.text, new.line, new.base, new.cols)
    return got, [(s.text, s.line, s.base, s.cols) for s in tail], p.rng.random()


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_NAMES), _text, st.booleans()), max_size=3), _text)
def test_same_as_the_list_version(defs: list[tuple[str, str, bool]], line: str) -> None:
    assert _run(Params, defs, line) == _run(_OldParams, defs, line)


def test_self_reference_is_the_same_loop() -> None:
    cases = [("${A}", "x ${A} y"), ("$A", "$A"), ("$A $A", "x $A y"), ("${A}${A}", "${A}"),
             ("a $A", "loop $A"), ("x$A", "x $A y"), ("${A}x${A}", "${A}"), ("a $A b", "$A"),
             ("aA $A", "$A")]
    for value, line in cases:
        defs = [("A", value, False)]
        assert _run(Params, defs, line) == _run(_OldParams, defs, line)
        got = _run(Params, defs, line)
        assert isinstance(got, tuple) and got[0] == "loop"
