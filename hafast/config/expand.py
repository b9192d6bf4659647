"""``~SEQ`` / ``~SEQx`` / ``~LST`` blocks of keepalived.conf (keepalived.conf(5)
"Sequence blocks" and "List blocks").

A line starting ``~SEQ(VAR, START, STEP, END)`` repeats the rest of the line with the
parameter ``$VAR`` set to each value in turn (``~SEQx`` writes it in hex);
``~LST(VAR, V1, V2, ...)`` and ``~LST({A,B}, {1,2}, {3,4})`` take the values from a
list.  The rest of the line may start with another block, so blocks nest.  This module
only parses the head; the lexer sets the parameters and feeds the lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Block", "ExpandError", "parse_block"]

# Numbers are read with C strtol(..., 0), as keepalived's add_seq(): sign, then hex
# (0x..), octal (leading 0) or decimal.
_STRTOL = re.compile(r"[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
HEAD_RE = re.compile(r"~(SEQx|SEQ|LST)")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# keepalived's add_lst(): a name or a value ends at a blank, ',', '}' or ')'.
_LST_WORD = re.compile(r"[^ \t,})]*")

MAX_VALUES = 1_000_000  # one block's values; keepalived has no limit, but we must end


class ExpandError(ValueError):
    """A block head that cannot be read; the message says what would be right."""


@dataclass(frozen=True, slots=True)
class Block:
    """One parsed block: the variable names, their values, and where the rest starts."""

    names: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...] | range  # ~SEQ: the numbers; ~LST: one tuple a set
    hex: bool
    rest: int  # index in the line where the repeated text starts

    def __len__(self) -> int:
        return len(self.rows)


def _strtol(s: str, pos: int) -> tuple[int, int]:
    """C ``strtol(s + pos, &end, 0)``: (value, end); no digits gives (0, pos)."""
    m = _STRTOL.match(s, pos)
    if m is None:
        return 0, pos
    sign, digits = m.group(1), m.group(2)
    if digits[:2] in ("0x", "0X"):
        val = int(digits, 16)
    elif digits[0] == "0":
        val = int(digits, 8)  # a leading 0 means octal to strtol (and "0" is 0)
    else:
        val = int(digits)
    return (-val if sign == "-" else val), m.end()


def _skip_blanks(s: str, pos: int) -> int:
    while pos < len(s) and s[pos] in " \t":
        pos += 1
    return pos


def parse_block(text: str) -> Block:
    """Parse the ``~SEQ(...)`` / ``~LST(...)`` at the start of ``text``.

    >>> b = parse_block("~SEQ(N, 1, 2, 5) ip 10.0.0.$N")
    >>> list(b.rows), b.names, "~SEQ(N, 1, 2, 5) ip 10.0.0.$N"[b.rest:]
    ([1, 3, 5], ('N',), 'ip 10.0.0.$N')
    """
    m = HEAD_RE.match(text)
    if m is None:
        raise ExpandError("not a ~SEQ or ~LST block")
    kind = m.group(1)
    if kind == "LST":
        return _parse_lst(text, m.end())
    return _parse_seq(text, m.end(), hex_=kind == "SEQx")


def _parse_seq(text: str, pos: int, *, hex_: bool) -> Block:
    kw = "~SEQx" if hex_ else "~SEQ"
    usage = f"write {kw}(VAR, END), {kw}(VAR, START, END) or {kw}(VAR, START, STEP, END)"
    pos = _skip_blanks(text, pos)
    if text[pos : pos + 1] != "(":
        raise ExpandError(f"invalid {kw}: '(' must follow {kw}; {usage}")
    close = text.find(")", pos)
    if close < 0:
        raise ExpandError(f"invalid {kw}: no closing ')'; {usage}")
    inner = text[pos + 1 : close]
    vm = re.match(r"[ \t]*([^ \t,)]+)[ \t]*,", inner)
    if vm is None:
        raise ExpandError(f"invalid {kw}: a variable name and ',' must come first; {usage}")
    var = vm.group(1)
    nums: list[int] = []
    p = vm.end()
    while True:
        val, p = _strtol(inner, p)
        nums.append(val)
        p = _skip_blanks(inner, p)
        if p >= len(inner):
            break
        if inner[p] != "," or len(nums) >= 3:
            raise ExpandError(
                f"invalid {kw}({inner}): unexpected {inner[p]!r} (only numbers, in C syntax, "
                f"may follow the variable); {usage}"
            )
        p += 1
    if len(nums) == 1:
        # keepalived: ~SEQ(VAR, END) counts from 1 (or -1) towards END.
        end = nums[0]
        step = -1 if end < 1 else 1
        start = -1 if end < 0 else 1
    elif len(nums) == 2:
        start, end = nums
        step = 1 if start <= end else -1
    else:
        start, step, end = nums
        if step == 0 or (start < end and step < 0) or (start > end and step > 0):
            raise ExpandError(
                f"invalid {kw} values (start {start}, step {step}, end {end}): the step must "
                "be non-zero and lead from start towards end"
            )
    if hex_ and (start < 0 or end < 0):
        raise ExpandError(f"~SEQx only takes non-negative numbers (start {start}, end {end})")
    rows = range(start, end + (1 if step > 0 else -1), step)
    # counted in Python ints: len() of a range wider than sys.maxsize raises OverflowError
    count = abs(end - start) // abs(step) + 1
    if count > MAX_VALUES:
        raise ExpandError(
            f"{kw} would repeat the line {count} times (at most {MAX_VALUES}); use a "
            "smaller range"
        )
    return Block((var,), rows, hex_, _skip_blanks(text, close + 1))


def _parse_lst(text: str, pos: int) -> Block:
    usage = "write ~LST(VAR, V1, V2, ...) or ~LST({A,B}, {1,2}, {3,4})"
    pos = _skip_blanks(text, pos)
    if text[pos : pos + 1] != "(":
        raise ExpandError(f"invalid ~LST: '(' must follow ~LST; {usage}")
    pos = _skip_blanks(text, pos + 1)
    names: list[str] = []
    grouped = text[pos : pos + 1] == "{"
    if grouped:
        pos = _skip_blanks(text, pos + 1)
    end_char = "}" if grouped else ","
    # keepalived's add_lst(): names end at a blank, ',' or '}'.
    while True:
        m = _LST_WORD.match(text, pos)
        assert m is not None
        name = m.group()
        if not _NAME.fullmatch(name):
            raise ExpandError(f"invalid ~LST variable {name!r}; {usage}")
        names.append(name)
        pos = _skip_blanks(text, m.end())
        ch = text[pos : pos + 1]
        if ch == end_char:
            break
        if ch != ",":
            raise ExpandError(f"invalid ~LST: unexpected {ch or 'end of line'!r}; {usage}")
        pos = _skip_blanks(text, pos + 1)
    if grouped:
        pos = _skip_blanks(text, pos + 1)
    if text[pos : pos + 1] != ",":
        raise ExpandError(f"invalid ~LST: no values after the variable(s); {usage}")
    pos = _skip_blanks(text, pos + 1)
    rows: list[tuple[str, ...]] = []
    while True:
        grouped = text[pos : pos + 1] == "{"
        if grouped:
            pos = _skip_blanks(text, pos + 1)
        row: list[str] = []
        while True:
            m = _LST_WORD.match(text, pos)
            assert m is not None
            row.append(m.group())
            pos = _skip_blanks(text, m.end())
            ch = text[pos : pos + 1]
            if (grouped and ch == "}") or (not grouped and ch in (",", ")")):
                break
            if ch != ",":
                raise ExpandError(f"invalid ~LST: unexpected {ch or 'end of line'!r}; {usage}")
            pos = _skip_blanks(text, pos + 1)
            if len(row) >= len(names):
                raise ExpandError(
                    f"~LST has more values in a set than variables ({len(names)}); {usage}"
                )
        if len(row) > len(names):
            raise ExpandError(
                f"~LST has more values in a set than variables ({len(names)}); {usage}"
            )
        # keepalived: missing values of a set are empty.
        row.extend([""] * (len(names) - len(row)))
        rows.append(tuple(row))
        if len(rows) > MAX_VALUES:
            raise ExpandError(f"~LST has more than {MAX_VALUES} values")
        if grouped:
            pos = _skip_blanks(text, pos + 1)
        ch = text[pos : pos + 1]
        if ch == ")":
            break
        if ch != ",":
            raise ExpandError(f"invalid ~LST: unexpected {ch or 'end of line'!r}; {usage}")
        pos = _skip_blanks(text, pos + 1)
    return Block(tuple(names), tuple(rows), False, _skip_blanks(text, pos + 1))
