"""A JSON reply written in pieces: large arrays are encoded a chunk at a time.

``hafast status`` at 10,000 real servers is a 1.3 MB document whose bulk is one row
per real server.  Built whole, those rows were ~2.4 MB of short-lived dicts at once
in the parent; CPython keeps the pools such a peak leaves behind, so every farm
that was ever polled carried them for good (issue 16).  A :class:`JsonArray` stands
in for such a list: :func:`pieces` encodes the document around it with the C
encoder and the array's items :data:`CHUNK` at a time, from a function that makes
them only then.

The text is the same as ``json.dumps(doc, separators=(",", ":"), default=...)`` of
the document with the lists in place:

>>> doc = {"n": 1, "rows": JsonArray(lambda: ({"i": i} for i in range(3)), chunk=2)}
>>> "".join(pieces(doc))
'{"n":1,"rows":[{"i":0},{"i":1},{"i":2}]}'
>>> list(JsonArray(lambda: iter([1, 2])))
[1, 2]
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

CHUNK = 256  # items encoded at once: a few tens of KB of rows alive, not megabytes
_SEPARATORS = (",", ":")


class JsonArray:
    """A list made when it is written (``make()`` returns its items, each time anew).

    Iterating it makes the items too, for a reader that is not :func:`pieces`.
    """

    __slots__ = ("chunk", "make")

    def __init__(self, make: Callable[[], Iterable[Any]], chunk: int = CHUNK) -> None:
        self.make = make
        self.chunk = chunk

    def __iter__(self) -> Iterator[Any]:
        return iter(self.make())

    def texts(self, default: Callable[[Any], Any]) -> Iterator[str]:
        """The array as JSON text, in pieces of at most ``chunk`` items."""
        yield "["
        batch: list[Any] = []
        first = True
        for item in self.make():
            batch.append(item)
            if len(batch) >= self.chunk:
                yield ("" if first else ",") + _encoded(batch, default)
                first = False
                batch = []
        if batch:
            yield ("" if first else ",") + _encoded(batch, default)
        yield "]"


def _encoded(batch: list[Any], default: Callable[[Any], Any]) -> str:
    # the items of ``batch`` without its brackets
    return json.dumps(batch, separators=_SEPARATORS, default=default)[1:-1]


def pieces(doc: Any, default: Callable[[Any], Any] = str) -> Iterator[str]:
    """``doc`` as compact JSON text, in pieces; each :class:`JsonArray` in it is
    written chunk by chunk (``default`` as json.dumps's, for anything else)."""
    arrays: list[JsonArray] = []
    # A placeholder no status string holds: NULs and a nonce made for this reply.
    mark = f"\0{os.urandom(6).hex()}:"

    def stand_in(obj: Any) -> Any:
        if isinstance(obj, JsonArray):
            arrays.append(obj)
            return f"{mark}{len(arrays) - 1}\0"
        return default(obj)

    text = json.dumps(doc, separators=_SEPARATORS, default=stand_in)
    if not arrays:
        yield text
        return
    quoted = json.dumps(mark)[:-1]  # how the encoder wrote the mark, opening quote on
    rest = text
    for index, array in enumerate(arrays):
        token = f"{quoted}{index}\\u0000\""
        head, found, rest = rest.partition(token)
        if not found:  # cannot happen: every stand-in was written once, in order
            raise ValueError("a JSON array's place was not found in the reply")
        yield head
        yield from array.texts(default)
    yield rest
