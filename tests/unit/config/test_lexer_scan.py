"""The lexer's pre-scan for lines that need the slow path (issue 16: it was a regex
tried at every character) finds exactly the lines ``_SLOW_LINE`` matches."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hafast.config import lexer


def _reference(text: str) -> list[int]:
    starts: list[int] = []
    for m in lexer._SLOW_LINE.finditer(text):
        ls = text.rfind("\n", 0, m.start()) + 1
        if not starts or starts[-1] != ls:
            starts.append(ls)
    return starts


PIECES = st.sampled_from(
    ["\n", " ", "\t", "{", "}", "@", "@^", "~", "~SEQ", "include", "includes", "#", "!",
     '"', "\\", "$", "a", "word", "\r", "\f"]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(PIECES, max_size=60).map("".join))
def test_slow_line_starts_match_the_regex(text: str) -> None:
    assert lexer._slow_line_starts(text) == _reference(text)


def test_slow_line_starts_examples() -> None:
    text = "a b\n  @id x\nc {include d\n~SEQ\nx@y\nq # c\n"
    assert lexer._slow_line_starts(text) == _reference(text) == [4, 12, 25, 34]
