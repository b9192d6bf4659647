"""Blanks between words and braces never change the tokens (issue 14: with exactly
two spaces before the brace, ``track_script  {`` lost its block on the fast path).

The reference is the plain rule keepalived's read_line/alloc_strvec follow: words are
runs of non-blanks, and each brace is a word of its own.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from hafast.config.lexer import lex_text

REFERENCE = re.compile(r"[{}]|[^ \t\f\v{}]+")
WORDS = st.sampled_from(["track_script", "virtual_ipaddress", "chk", "10.0.0.1/24",
                         "priority", "100", "x", "{", "}"])
BLANKS = st.sampled_from([" ", "  ", "   ", "\t", " \t ", "\f", "\v "])


def tokens(text: str) -> list[str]:
    return [t.text for line in lex_text(text).lines for t in line.tokens]


def reference(text: str) -> list[str]:
    return [w for line in text.split("\n") for w in REFERENCE.findall(line)]


def test_two_spaces_before_the_brace_keep_the_block() -> None:
    text = "vrrp_instance VI_1 {\n  track_script  {\n    chk\n  }\n}\n"
    assert tokens(text) == ["vrrp_instance", "VI_1", "{", "track_script", "{", "chk",
                            "}", "}"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.text(alphabet=" \t", max_size=3),
                          st.lists(st.tuples(WORDS, BLANKS), min_size=1, max_size=5)),
                min_size=1, max_size=6))
def test_any_spacing_tokenises_like_the_reference(
        lines: list[tuple[str, list[tuple[str, str]]]]) -> None:
    text = "\n".join(indent + "".join(w + b for w, b in pairs).rstrip(" \t\f\v")
                     for indent, pairs in lines) + "\n"
    assert tokens(text) == reference(text), repr(text)
