"""The config lexer's plain-line scan (issue 16), on both twins: each twin against the
pure one on every input, and the lexer with the scan against the lexer without it."""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hafast._core import plainscan_py
from hafast.config import lexer
from hafast.config.tokens import Line, Token
from tests.conftest import load_twin

_FIXTURE_OK = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None, max_examples=300
)


@pytest.fixture
def scan(twin_flavour: str) -> ModuleType:
    return load_twin("plainscan", twin_flavour)


PIECES = st.sampled_from(
    ["\n", " ", "  ", "\t", "\r", "\f", "\v", "{", "}", " {", "a", "weight", "1", "é", "\x7f",
     "real_server", "10.0.0.1", "\u00a0", "\u2028", "#", '"', "$X", "@id", "x\x00y", "~"]
)
TEXTS = st.lists(PIECES, max_size=80).map("".join)


def _run(impl: Any, text: str, start: int, end: int, limit: int, braces: int) -> Any:
    lines: list[Any] = []
    open_braces: list[Any] = [(Token("{", "f", 0, 1), None)] * braces
    words: dict[str, str] = {}
    out = impl.scan_plain(text, start, end, "k.conf", 7, lines, open_braces, words, limit,
                          Token, Line)
    return out, lines, open_braces, words


@_FIXTURE_OK
@given(text=TEXTS, cut=st.integers(0, 100), start=st.integers(0, 20), limit=st.integers(0, 6),
       braces=st.integers(0, 3))
def test_twin_matches_the_pure_scan(
    scan: ModuleType, text: str, cut: int, start: int, limit: int, braces: int
) -> None:
    end = min(cut, len(text))
    start = min(start, end)
    got = _run(scan, text, start, end, limit, braces)
    want = _run(plainscan_py, text, start, end, limit, braces)
    assert got == want
    for line in got[1]:
        assert type(line) is Line
        assert all(type(t) is Token for t in line.tokens)
        assert type(line.tokens) is tuple


def test_scan_examples(scan: ModuleType) -> None:
    text = "a b {\n  c 1\n\n}\n{\nd\n"
    (pos, lineno), lines, braces, words = _run(scan, text, 0, len(text), 100, 0)
    assert (pos, lineno) == (text.index("{\nd"), 11)
    assert [[(t.text, t.line, t.col) for t in ln.tokens] for ln in lines] == [
        [("a", 7, 1), ("b", 7, 3)], [("{", 7, 5)], [("c", 8, 3), ("1", 8, 5)], [("}", 10, 1)]
    ]
    assert [ln.raw for ln in lines] == ["a b", "{", "c 1", "}"]
    assert braces == []
    assert set(words) == {"a b", "a", "b", "c 1", "c", "1"}


def test_scan_stops_at_the_limit(scan: ModuleType) -> None:
    text = "a\nb\nc\n"
    (pos, lineno), lines, _, _ = _run(scan, text, 0, len(text), 2, 0)
    assert (pos, lineno, len(lines)) == (4, 9, 2)


def _refcounts(impl: Any) -> list[int]:
    text = "real_server 10.0.0.1 80 {\n weight 1\n}\n" * 50
    _, lines, _, _ = _run(impl, text, 0, len(text), 10**6, 0)
    counts = []
    for line in lines:
        counts.append(sys.getrefcount(line))
        counts.append(sys.getrefcount(line.tokens))
        counts.extend(sys.getrefcount(t) for t in line.tokens)
        counts.extend(sys.getrefcount(t.text) for t in line.tokens if len(t.text) > 1)
    return counts


def test_scan_keeps_no_stray_references(scan: ModuleType) -> None:
    # the compiled twin fills tuples in place: a missing or extra INCREF shows here
    assert _refcounts(scan) == _refcounts(plainscan_py)


def _null_scan(text: str, pos: int, end: int, *args: Any) -> tuple[int, int]:
    return pos, args[1]  # reads nothing: every line takes the lexer's own path


def _lex(text: str, impl: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as mp:
        mp.setattr(lexer, "scan_plain", impl)
        res = lexer.lex_text(text, file="k.conf", config_id="id", env={}, random_seed=1)
    return res.lines, res.diagnostics


CONFIG_LINES = st.sampled_from(
    ["virtual_server 10.0.0.1 80 {", "real_server 10.0.1.1 80 {", "weight 2", "}", "{", "} }",
     "  TCP_CHECK {", "\tconnect_timeout 3", "a  b", "a b  {", "x {y", "é word", "w # c",
     '"q w" x', "$P=weight 3", "$P", "@id a b", "@other c", "", "  ", "a\x7fb", "random_seed 3",
     "v \u00a0 w", "z {  "]
)


@_FIXTURE_OK
@given(lines=st.lists(CONFIG_LINES, max_size=40), newline=st.booleans())
def test_lexer_with_the_scan_is_the_lexer_without(
    scan: ModuleType, lines: list[str], newline: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "\n".join(lines) + ("\n" if newline else "")
    assert _lex(text, scan.scan_plain, monkeypatch) == _lex(text, _null_scan, monkeypatch)
