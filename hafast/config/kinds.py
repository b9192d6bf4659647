"""The checker-kind registry: one descriptor per keyword (TCP_CHECK, HTTP_GET, ...).

A :class:`CheckerKind` says everything hafast needs to know about a checker kind: its
keyword, the frozen spec class the loader fills, the grammar rows of its block (and of
any child blocks), keepalived's per-kind defaults, the port it probes when neither
``connect_port`` nor the real server gives one, the fields it cannot do without, a
fix-up run after inheritance, what the engine passes its probe beyond (spec, target,
loop), and the probe class itself.  The grammar (:mod:`hafast.config.grammar`), the
loader and the check engine all read :data:`KINDS`; none of them spells a keyword.

The built-in descriptors sit beside their spec classes in :mod:`hafast.config.model`.
They name their probe by ``"module:Class"``: the probes live in ``hafast.check``, a
layer above this one (``.importlinter``), and only the engine imports them.

Example (a kind with one field of its own; ``unregister`` undoes it)::

    >>> from dataclasses import dataclass
    >>> from hafast.config import model as m
    >>> @dataclass(frozen=True, slots=True)
    ... class EchoCheck(m.ConnectChecker):
    ...     word: str = ""
    >>> _ = register(CheckerKind("ECHO_CHECK", EchoCheck, rows=TIMERS + CONN + '''
    ... word                v  1    str           word
    ... ''', required=(("word", "word (expected: word TEXT)"),), probe=None))
    >>> from hafast.config.loader import load_text
    >>> text = "virtual_server 10.0.0.1 7 { real_server 10.0.0.2 7 { ECHO_CHECK { word hi } } }"
    >>> spec = load_text(text).config.virtual_servers[0].real_servers[0].checkers[0]
    >>> spec.kind, spec.word
    ('ECHO_CHECK', 'hi')
    >>> unregister("ECHO_CHECK")
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

# Common checker rows (check_api.c install_checker_common_keywords): the timers every
# kind takes, the connection options every kind but MISC_CHECK/FILE_CHECK/BFD_CHECK takes
# (keepalived refuses them there).  Row format: see hafast.config.grammar.
# The timers a real_server also takes (and passes down to its checkers).
CHECK_TIMERS = """
connect_timeout     v  1    timer:0.001,86400 connect_timeout_us
retry               v  1    int:0,2147483647  retry
delay_before_retry  v  1    timer:0,86400 delay_before_retry_us
warmup              v  1    timer:0,86400 warmup_us
delay_loop          v  1    timer:0.001,86400 delay_loop_us
"""
TIMERS = (
    "\nalpha               f  0-1  flag          alpha"
    + CHECK_TIMERS
    + "log_all_failures    f  0-1  flag          log_all_failures\n"
)
CONN = """
connect_ip          v  1    ip            connect_ip
connect_port        v  1    cport         connect_port
bindto              v  1    ip            bindto
bind_if             v  1    str           bind_if
bind_port           v  1    port          bind_port
fwmark              v  1    int:0,4294967295 fwmark
"""


def accepted_only(rows: str) -> str:
    """The same rows with no field: accepted and checked, not acted on."""
    return re.sub(r"\S+\n", "-\n", rows)


def without(rows: str, keyword: str) -> str:
    """``rows`` less the row of ``keyword``."""
    return "".join(line for line in rows.splitlines(True) if line.split()[:1] != [keyword])


@dataclass(frozen=True, slots=True)
class ChildBlock:
    """A block inside a checker's (``url {}``, ``host {}``): its rows and how its fields
    become a model object once it closes; ``check(fields, positions, walker)``, when
    set, first judges the fields together (adjusting them in place, reporting through
    ``walker.warn``/``walker.error`` at a field's token)."""

    rows: str
    build: Callable[[dict[str, Any]], Any]
    check: Callable[[dict[str, Any], dict[str, Any], Any], None] | None = None
    # Fields keepalived writes to the enclosing checker even when written in this block
    # (its handler takes CHECKER_GET_CURRENT()): they become the checker's own, in file
    # order, so the last write wins, in this block, a sibling, or the checker's.
    lift: tuple[str, ...] = ()


# fixup(merged fields, the block's own fields): adjust after inheritance, in place
Fixup = Callable[[dict[str, Any], Mapping[str, Any]], None]
# extras(config, real server, spec): keyword arguments the probe takes beyond
# (spec, target, loop)
Extras = Callable[[Any, Any, Any], dict[str, Any]]


@dataclass(frozen=True, slots=True, eq=False)
class CheckerKind:
    """One checker kind.  ``spec`` is a frozen dataclass deriving from
    :class:`hafast.config.model.Checker` (``ConnectChecker`` when the kind connects);
    ``rows`` are the grammar rows of its block; ``probe`` is a
    :class:`hafast.check.api.ProbeKind` subclass or its ``"module:Class"`` name, None
    when hafast has no probe for it yet (the engine warns and leaves it unchecked)."""

    keyword: str
    spec: type[Any]
    rows: str
    probe: type[Any] | str | None
    defaults: Mapping[str, object] = field(default_factory=dict)  # keepalived's check_*.c
    port: int | None = None
    # (field, "what (expected: ...)"): "<KEYWORD> has no <what>" when the field is unset
    required: tuple[tuple[str, str], ...] = ()
    fixup: Fixup | None = None
    extras: Extras | None = None
    children: Mapping[str, ChildBlock] = field(default_factory=dict)
    # the spec's field names (the loader drops inherited settings the spec has no field for)
    names: frozenset[str] = field(default=frozenset(), init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", frozenset(f.name for f in fields(self.spec)))


KINDS: dict[str, CheckerKind] = {}
# Blocks inside checker blocks, by context name (several kinds may share one: url {}).
CHILDREN: dict[str, ChildBlock] = {}
# Called with (kind, added) after each register/unregister: the grammar installs rows.
_listeners: list[Callable[[CheckerKind, bool], None]] = []


def register(kind: CheckerKind) -> CheckerKind:
    """Make ``kind`` known to the grammar, the loader and the engine.

    Sets ``spec.kind`` to the keyword (the spec is the kind's, the keyword is written
    here once).  A keyword registered twice is refused: a kind replaced behind the
    grammar's back would keep its old rows.
    """
    if kind.keyword in KINDS:
        raise ValueError(f"checker kind {kind.keyword} is already registered")
    if not kind.keyword.replace("_", "").isalnum():
        raise ValueError(f"checker keyword {kind.keyword!r}: letters, digits and _ only")
    kind.spec.kind = kind.keyword
    KINDS[kind.keyword] = kind
    for name, child in kind.children.items():
        CHILDREN.setdefault(name, child)
    for listener in _listeners:
        listener(kind, True)
    return kind


def unregister(keyword: str) -> None:
    """Forget a kind (tests, plugins): its rows leave the grammar too."""
    kind = KINDS.pop(keyword)
    used = {name for k in KINDS.values() for name in k.children}
    for name in kind.children:
        if name not in used:
            CHILDREN.pop(name, None)
    for listener in _listeners:
        listener(kind, False)


def subscribe(listener: Callable[[CheckerKind, bool], None]) -> None:
    """Call ``listener(kind, True)`` for every kind registered now and later, and
    ``listener(kind, False)`` when one is unregistered."""
    _listeners.append(listener)
    for kind in list(KINDS.values()):
        listener(kind, True)
