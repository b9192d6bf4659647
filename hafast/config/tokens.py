"""The seam between the lexer and the loader.

The lexer turns keepalived.conf text (with includes, ``@id`` lines, ``$`` parameters
and ``~SEQ``/``~LST`` expansion already applied) into logical lines of tokens; every
token remembers where it came from, through includes and expansions, so the loader
can say ``FILE:LINE:COL: error: ...`` about any word.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

Severity = Literal["error", "warning"]


# Token and Line are NamedTuples, not frozen dataclasses: a 37,000-real-server config
# has half a million tokens, and a frozen dataclass costs about 4x a tuple to build
# (its __init__ goes through object.__setattr__).  Same fields, same immutability.
class Token(NamedTuple):
    """One word of a config line.  ``{`` and ``}`` are tokens of their own."""

    text: str
    file: str
    line: int
    col: int
    quoted: bool = False

    def where(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class Line(NamedTuple):
    """One logical line (after ``\\`` continuations and expansions), never empty.

    As in keepalived's reader, ``{`` and ``}`` are always lines of their own:
    ``vrrp_instance VI_1 {`` arrives as ``[vrrp_instance, VI_1]`` then ``[{]``.
    ``raw`` is the line's text after comments, ``@id`` and parameters (keepalived's
    ``buf``); script keywords re-split it with ``lexer.split_script``.
    """

    tokens: tuple[Token, ...]
    raw: str = ""

    @property
    def first(self) -> Token:
        return self.tokens[0]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """A problem found in the config: where it is, what is wrong, what would be right."""

    file: str
    line: int
    col: int
    severity: Severity
    message: str
    # what kind of problem, for tooling (hafast -t --json): "unsupported" for a keepalived
    # keyword hafast accepts without honouring it (hafast.config.support), else ""
    code: str = ""

    def format(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.severity}: {self.message}"

    @classmethod
    def at(cls, token: Token, severity: Severity, message: str) -> Diagnostic:
        return cls(token.file, token.line, token.col, severity, message)


class ConfigError(Exception):
    """The config cannot be used; ``diagnostics`` holds every error found (not just the first)."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        super().__init__("\n".join(d.format() for d in diagnostics))


@dataclass(slots=True)
class LexResult:
    lines: list[Line]
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # every file read, in order


def byte_length(text: str) -> int:
    """How many bytes ``text`` had in the config file (the kernel's limits on names
    count bytes).  The lexer keeps bytes that are not UTF-8 as surrogates
    (surrogateescape), which a plain ``encode()`` refuses.

    >>> raw = b"v\\xaa".decode("utf-8", "surrogateescape")
    >>> byte_length("eth0"), byte_length("é"), byte_length(raw)
    (4, 2, 2)
    """
    return len(text.encode("utf-8", "surrogateescape"))
