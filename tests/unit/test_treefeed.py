"""The config loader's statement tree (issue 16), on both twins: the compiled feed
against the pure one on random lines cut into random chunks, and on the lexer's lines of
the corpus and golden configs."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hafast._core import treefeed_py
from hafast.config.lexer import lex_text
from hafast.config.tokens import Line, Token
from tests.conftest import load_twin

REPO = Path(__file__).resolve().parents[2]
_FIXTURE_OK = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None, max_examples=400
)


@pytest.fixture
def twin(twin_flavour: str) -> ModuleType:
    return load_twin("treefeed", twin_flavour)


def _shape(nodes: list[Any]) -> list[Any]:
    return [
        (n.toks, n.raw, n.close, None if n.children is None else _shape(n.children))
        for n in nodes
    ]


def _run(impl: Any, chunks: list[list[Line]]) -> Any:
    root: list[Any] = []
    stack: list[list[Any]] = [root]
    openers: list[Any] = []
    level = root
    said: list[tuple[Token, str]] = []
    for chunk in chunks:
        level = impl.feed(chunk, stack, openers, level, lambda t, m: said.append((t, m)))
    return _shape(root), len(stack), [o.toks for o in openers], level is stack[-1], said


WORDS = st.sampled_from(["{", "}", "a", "b", "weight", "1", "real_server"])
TOKENS = st.tuples(WORDS, st.booleans())  # (text, quoted): a quoted brace is a word


@st.composite
def _chunks(draw: Any) -> list[list[Line]]:
    lines = []
    for n, words in enumerate(draw(st.lists(st.lists(TOKENS, min_size=1, max_size=4),
                                            max_size=40)), start=1):
        toks = tuple(Token(w, "k.conf", n, i + 1, q) for i, (w, q) in enumerate(words))
        lines.append(Line(toks, " ".join(w for w, _ in words)))
    cuts = sorted(draw(st.lists(st.integers(0, len(lines)), max_size=4)))
    out, at = [], 0
    for c in [*cuts, len(lines)]:
        out.append(lines[at:c])
        at = c
    return out


@_FIXTURE_OK
@given(chunks=_chunks())
def test_twin_matches_the_pure_feed(twin: ModuleType, chunks: list[list[Line]]) -> None:
    assert _run(twin, chunks) == _run(treefeed_py, chunks)


def test_twin_matches_on_the_corpus(twin: ModuleType) -> None:
    paths = [*sorted((REPO / "tests" / "fuzz" / "corpus" / "config").iterdir()),
             *sorted((REPO / "tests" / "unit" / "config" / "golden").rglob("*.conf"))]
    assert len(paths) > 40
    for path in paths:
        lines = lex_text(path.read_bytes().decode("utf-8", "surrogateescape"),
                         file=str(path)).lines
        chunks = [lines[i:i + 7] for i in range(0, len(lines), 7)]
        assert _run(twin, chunks) == _run(treefeed_py, chunks), path


def test_feed_examples(twin: ModuleType) -> None:
    def line(n: int, *words: str) -> Line:
        return Line(tuple(Token(w, "k.conf", n, 1) for w in words), " ".join(words))

    root: list[Any] = []
    said: list[Any] = []
    level = twin.feed([line(1, "}"), line(2, "a", "{", "b", "}"), line(3, "c"), line(4, "{"),
                       line(5, "{"), line(6, "d")],
                      [root], [], root, lambda t, m: said.append((t.line, m)))
    assert [(n.toks[0].text, n.close) for n in root] == [("a", Token("}", "k.conf", 2, 1)),
                                                          ("c", None)]
    assert [n.toks[0].text for n in root[0].children] == ["b"]
    assert [n.toks[0].text for n in root[1].children] == ["{"]
    assert [n.toks[0].text for n in level] == ["d"]
    assert said == [(1, "'}' does not close any block"), (5, "'{' without a keyword before it")]
    node = twin.Node((Token("x", "f", 1, 1),))
    assert (node.raw, node.children, node.close) == ("", None, None)
