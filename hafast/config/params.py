"""``$NAME`` parameters of keepalived.conf, and text that remembers its columns.

keepalived.conf(5) "Parameter substitution": ``$NAME=VALUE`` defines (no blank before
``=``), ``$NAME`` (followed by a blank, ``,``, ``)`` or the end of the line) or
``${NAME}`` uses; the value is substituted at use time and rescanned, so parameters may
refer to parameters defined later; undefined names stay as they are.  A value ending in
``\\`` continues on the next lines (a multi-line definition); such a parameter only
expands where it ends the line, and its further lines follow as lines of their own.

The built-ins are ``_PWD`` (folder of the file being read), ``_INSTANCE`` (the
config-id, as keepalived's ``get_instance``), ``_RANDOM [MIN [MAX]]`` (0..32767),
``_ENV NAME`` (keepalived 2.4), ``_HASH`` (``#``) and ``_BANG`` (``!``).  A definition of
the same name overrides a built-in, as in keepalived.
"""

from __future__ import annotations

import random
import re
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["Def", "Params", "Src", "SubstitutionLoop"]

_BLANK = " \t"

# keepalived's check_definition(): a letter or '_' then letters, digits, '_', then '='.
DEF_RE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)=[ \t]*")
# ${NAME} or ${NAME params} (params: for _RANDOM and _ENV; a user parameter takes none).
_USE_BRACED = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)((?:[ \t]+[^{}$ \t]+)*)\}")
# $NAME must be followed by a blank, ',', ')' or the end (keepalived's find_definition).
_USE_BARE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?=[ \t,)]|$)")

# keepalived stops at its fixed line buffer ("would exceed maximum line length"); we
# allow longer lines but still call a line that keeps growing, or keeps being
# rewritten, a loop.  Both bounds keep a self-referencing parameter cheap to detect.
MAX_SUBSTITUTIONS = 1_000
MAX_LINE_CHARS = 16 * 1024

RANDOM_MAX = 32767  # keepalived.conf(5): ${_RANDOM} defaults to [0, 32767]


@dataclass(slots=True)
class Src:
    """A line of text and where each of its characters came from.

    While the text is an untouched slice of one file line ``cols`` is ``None`` and the
    character at index ``i`` is at column ``base + i``; substitution switches to an
    explicit per-character list (a substituted value takes the column of its ``$``).
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

    def slice(self, start: int, end: int | None = None) -> Src:
        text = self.text[start:end]
        if self.cols is None:
            return Src(text, self.file, self.line, self.base + start)
        return Src(text, self.file, self.line, self.col(start), self.cols[start:end])

    def strip_blanks(self) -> Src:
        text = self.text
        lead = len(text) - len(text.lstrip(_BLANK))
        end = len(text.rstrip(_BLANK))
        if lead == 0 and end == len(text):
            return self
        return self.slice(lead, end)


@dataclass(slots=True)
class Def:
    """A parameter's value: one line, or several for a multi-line definition."""

    lines: list[Src]
    multiline: bool = False


class SubstitutionLoop(Exception):
    """A parameter keeps expanding; ``name`` and ``col`` say which use it was at."""

    def __init__(self, name: str, col: int) -> None:
        super().__init__(name)
        self.name = name
        self.col = col


class Params:
    """The parameter table of one configuration read.

    >>> p = Params(config_id="lb1")
    >>> _ = p.define("NET", [Src("10.0.${SUB}", "k.conf", 1)])
    >>> _ = p.define("SUB", [Src("7", "k.conf", 2)])
    >>> p.substitute(Src("ip ${NET}.1/24", "k.conf", 3))[0].text
    'ip 10.0.7.1/24'
    """

    def __init__(
        self,
        *,
        config_id: str,
        env: Mapping[str, str] | None = None,
        seed: int | None = None,
        pwd: Callable[[], str] = lambda: ".",
    ) -> None:
        self.defs: dict[str, Def] = {}
        self.config_id = config_id
        self.env: Mapping[str, str] = {} if env is None else env
        self.rng = random.Random(seed)
        self.pwd = pwd

    def define(self, name: str, lines: list[Src], multiline: bool = False) -> Def:
        d = Def(lines, multiline)
        self.defs[name] = d
        return d

    def reseed(self, seed: int) -> None:
        self.rng.seed(seed)

    def builtin(self, name: str, params: str) -> str | None:
        """The value of a built-in parameter, or ``None`` when it does not apply."""
        if name == "_PWD":
            return self.pwd()
        if name == "_INSTANCE":
            return self.config_id
        if name == "_HASH":
            return "#"
        if name == "_BANG":
            return "!"
        if name == "_ENV":
            key = params.strip()
            return self.env.get(key, "") if key else None
        if name == "_RANDOM":
            nums = params.split()
            if len(nums) > 2 or not all(n.isdigit() for n in nums):
                return None  # keepalived only takes digits here
            lo = int(nums[0]) if nums else 0
            hi = int(nums[1]) if len(nums) > 1 else RANDOM_MAX
            if hi < lo:
                lo, hi = hi, lo
            return str(self.rng.randint(lo, hi))
        return None

    def may_substitute(self, text: str) -> bool:
        """Cheap test: could :meth:`substitute` change this line at all?"""
        if "$" not in text:
            return False
        return bool(self.defs) or "$_" in text or "${_" in text

    def substitute(self, src: Src) -> tuple[Src | None, list[Src]]:
        """Replace ``$NAME`` / ``${NAME}`` recursively, as keepalived's replace_param().

        Returns the new line (``None`` when nothing was replaced) and the further lines
        of a multi-line parameter that ended the line.  Raises :class:`SubstitutionLoop`
        when the line never stops changing.
        """
        text = src.text
        cols: array[int] | None = None
        pos = text.find("$")
        count = 0
        tail: list[Src] = []
        changed = False
        defs = self.defs
        # the last round's place, use and definition, when it was a user parameter
        last: tuple[int, str, Def] | None = None
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
                # an array, not a list: a looping parameter rewrites the columns of a
                # line up to MAX_LINE_CHARS long a thousand times, and an array's
                # slices are copied without touching each int (issue 17: substitute
                # was a quarter of the config fuzzer's time)
                cols = array("q", src.col_list())
            use_col = cols[pos] if pos < len(cols) else src.col(pos)
            count += 1
            if count > MAX_SUBSTITUTIONS or len(text) > MAX_LINE_CHARS:
                raise SubstitutionLoop(name, use_col)
            use = text[pos : m.end()]
            if (last is not None and d is last[2] and not params and use == last[1]
                    and value[pos - last[0] : pos - last[0] + len(use)] == use):
                # "$A=a $A": this use is the one the last round wrote (it lies inside
                # the value put in then), found after the same scan over the value's
                # first characters, so every later round finds it again further on and
                # adds the same text, until MAX_SUBSTITUTIONS or MAX_LINE_CHARS ends it
                # with this name and column (the value's characters all have it)
                raise SubstitutionLoop(name, use_col)
            if lines and pos == 0 and m.end() == len(text):
                # The whole line is a multi-line parameter: its lines keep the place
                # they were defined at (the common "$VS" on a line of its own).
                return d.lines[0] if d is not None else None, lines
            new_text = text[:pos] + value + text[m.end() :]
            new_cols = cols[:pos] + array("q", (use_col,)) * len(value) + cols[m.end() :]
            changed = True
            if lines:
                text, cols = new_text, new_cols
                tail = lines
                break
            if value.lstrip(_BLANK)[:1] == "~":
                text, cols = new_text, new_cols
                break  # keepalived stops here so that a ~SEQ made by a value is seen whole
            if new_text == text and new_cols == cols:
                # "$A=${A}": the line, its columns and the place are what they were, so
                # every round until MAX_SUBSTITUTIONS would be this one (only _RANDOM
                # has a side effect, and its digits never equal its use): the same
                # loop, found at once instead of a thousand rounds later
                raise SubstitutionLoop(name, use_col)
            if (d is not None and not params and not d.multiline
                    and value.startswith(text[pos : m.end()])):
                # "$A=$A x": the value starts with its own use, so the next round meets
                # the same use at the same place (when it still reads as that use) and
                # adds the same text again, each round, until MAX_SUBSTITUTIONS or
                # MAX_LINE_CHARS ends it with this name and column: raised now
                again = (_USE_BRACED if braced else _USE_BARE).match(new_text, pos + 1)
                if again is not None and again.group() == m.group():
                    raise SubstitutionLoop(name, use_col)
            text, cols = new_text, new_cols
            last = (pos, use, d) if d is not None and not params and not d.multiline else None
            # keep scanning at pos: the value itself is searched for more parameters
        if not changed:
            return None, []
        assert cols is not None
        base = cols[0] if cols else src.base
        return Src(text, src.file, src.line, base, cols.tolist()), tail
