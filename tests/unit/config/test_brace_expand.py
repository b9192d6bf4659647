"""include.brace_expand against the character-at-a-time scan it replaced (issue 17):
the same names, in the same order, and the same limit, on any text of braces, commas,
escapes and letters."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hafast.config import include as inc


def _old_expand(pattern: str, out: list[str], limit: int) -> None:
    depth = 0
    open_at = -1
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            if depth == 0:
                open_at = i
            depth += 1
        elif c == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                body = pattern[open_at + 1 : i]
                if body == "":
                    break
                head, tail = pattern[:open_at], pattern[i + 1 :]
                for alt in inc._split_top(body):
                    _old_expand(head + alt + tail, out, limit)
                return
        i += 1
    out.append(pattern)
    if len(out) > limit:
        raise inc.TooManyAlternatives(f"more than {limit}")


def _old(pattern: str, limit: int) -> list[str] | str:
    out: list[str] = []
    try:
        _old_expand(pattern, out, limit)
    except inc.TooManyAlternatives as exc:
        return str(exc)
    return out


def _new(pattern: str, limit: int) -> list[str] | str:
    try:
        return inc.brace_expand(pattern, limit)
    except inc.TooManyAlternatives as exc:
        return str(exc)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="{},\\ab/*\n", max_size=30), st.integers(1, 64))
def test_same_as_the_old_scan(pattern: str, limit: int) -> None:
    assert _new(pattern, limit) == _old(pattern, limit)


@pytest.mark.parametrize("pattern", [
    "a{b,c{d,e}}f", "a{}b", "\\{a,b}", "x\\\\{a,b}", "{a,b}\\", "}{a,b}", "{a,{}}",
    "{a,b}{c,{d,e}}" * 3, "{{a,b},c}}{", "a\\}{b,c}",
])
def test_examples(pattern: str) -> None:
    assert _new(pattern, 4096) == _old(pattern, 4096)
