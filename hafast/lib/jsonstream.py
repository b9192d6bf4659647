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
from itertools import islice
from typing import Any

CHUNK = 256  # items encoded at once: a few tens of KB of rows alive, not megabytes
_SEPARATORS = (",", ":")


class JsonArray:
    """A list made when it is written (``make()`` returns its items, each time anew).

    Iterating it makes the items too, for a reader that is not :func:`pieces`.

    ``text`` and ``item``, given together: ``make()`` returns sources, ``text(source)``
    is an item's JSON text and ``item(source)`` the item itself (for iteration).  The
    status rows take this way: a row written by an f-string is a third of the cost of
    a dict and the C encoder (~15 against ~45 ms at 10,000 real servers, issue 16).
    Whoever passes ``text`` holds it to ``json.dumps(item(source))`` in a test.

    >>> a = JsonArray(lambda: range(3), text=lambda i: f'{{"i":{i}}}', item=lambda i: {"i": i})
    >>> "".join(a.texts(str)), list(a)
    ('[{"i":0},{"i":1},{"i":2}]', [{'i': 0}, {'i': 1}, {'i': 2}])
    """

    __slots__ = ("chunk", "item", "make", "text")

    def __init__(self, make: Callable[[], Iterable[Any]], chunk: int = CHUNK, *,
                 text: Callable[[Any], str] | None = None,
                 item: Callable[[Any], Any] | None = None) -> None:
        if (text is None) != (item is None):
            raise ValueError("JsonArray: text and item go together")
        self.make = make
        self.chunk = chunk
        self.text = text
        self.item = item

    def __iter__(self) -> Iterator[Any]:
        items = iter(self.make())
        return items if self.item is None else map(self.item, items)

    def texts(self, default: Callable[[Any], Any]) -> Iterator[str]:
        """The array as JSON text, in pieces of at most ``chunk`` items."""
        yield "["
        sources = iter(self.make())
        sep = ""
        while batch := list(islice(sources, self.chunk)):
            if self.text is None:
                yield sep + _encoded(batch, default)
            else:
                yield sep + ",".join(map(self.text, batch))
            sep = ","
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
