"""hafast.lib.jsonstream: a reply with lazy arrays is the same text as json.dumps of
the document with the lists in place, and the control socket sends it so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hafast.app.control import query
from hafast.lib.jsonstream import JsonArray, pieces
from tests.unit.control_server import serving

SEP = (",", ":")

scalars = st.none() | st.booleans() | st.integers() | st.text() | st.floats(
    allow_nan=False, allow_infinity=False)


@st.composite
def docs(draw: Any, depth: int = 3) -> tuple[Any, Any]:
    """(a document that may hold JsonArrays, the same with plain lists)."""
    if depth == 0 or draw(st.booleans()):
        v = draw(scalars)
        return v, v
    kind = draw(st.sampled_from(["list", "lazy", "dict"]))
    items = [draw(docs(depth - 1)) for _ in range(draw(st.integers(0, 5)))]
    if kind == "dict":
        keys = draw(st.lists(st.text(), min_size=len(items), max_size=len(items),
                             unique=True))
        return ({k: a for k, (a, _) in zip(keys, items, strict=True)},
                {k: b for k, (_, b) in zip(keys, items, strict=True)})
    plain = [b for _, b in items]
    if kind == "list":
        return [a for a, _ in items], plain
    # a lazy array's items are plain (its rows are made when written)
    return JsonArray(lambda: iter(list(plain)), chunk=draw(st.integers(1, 3))), plain


@settings(max_examples=300, deadline=None)
@given(docs())
def test_pieces_are_the_text_of_the_plain_document(pair: tuple[Any, Any]) -> None:
    lazy, plain = pair
    assert "".join(pieces(lazy)) == json.dumps(plain, separators=SEP, default=str)


def test_a_string_like_the_stand_in_is_left_alone() -> None:
    doc = {"s": "\0abc:0\0", "rows": JsonArray(lambda: iter([1, 2]))}
    assert json.loads("".join(pieces(doc))) == {"s": "\0abc:0\0", "rows": [1, 2]}


def test_the_control_socket_writes_lazy_rows_whole(tmp_path: Path) -> None:
    """10,000 rows made as they are written: the client reads the same document."""
    path = str(tmp_path / "h.ctl")
    made: list[int] = []

    def rows() -> Any:
        for i in range(10_000):
            made.append(i)
            yield {"address": f"10.1.{i // 250}.{i % 250}", "port": 80, "alive": i % 3 > 0}

    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        return {"pid": 1, "pools": {"virtual_servers": [
            {"name": "vs", "real_servers": JsonArray(rows)}]}}

    with serving(path, handler):
        got = query(path, "status", timeout=10)
    rss = got["pools"]["virtual_servers"][0]["real_servers"]
    assert len(rss) == 10_000 == len(made)
    assert rss[9_999] == {"address": "10.1.39.249", "port": 80, "alive": False}
