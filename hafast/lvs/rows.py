"""``hafast status``'s real-server rows: how one is made (:func:`rows`) and which of a
virtual server's are kept when the operator filters (:func:`cut`: ``--down``,
``--limit``), once for the parent's pools and for a status dict already made
(:func:`hafast.status.select.select`).

Why the cut lives beside the rows: the table (``hafast status``, 50 rows a virtual
server) and ``--down`` made a dict for every real server and then kept a few; at
10,000 real servers that was ~20 ms of the parent's loop per question (issue 16).
:func:`cut` reads each item's health through ``alive`` and makes a row only for
what it keeps.

Example::

    >>> items = [("a", True), ("b", False), ("c", True), ("d", False)]
    >>> cut(items, lambda i: i[1], lambda i: i[0], limit=1)
    (['a', 'b'], {'real_servers': 4, 'alive': 2})
    >>> cut(items, lambda i: i[1], lambda i: i[0], down=True)
    (['b', 'd'], {'real_servers': 4, 'alive': 2})
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from itertools import filterfalse, islice
from json.encoder import encode_basestring_ascii as _string
from typing import Any, TypeVar

__all__ = ["cut", "row", "row_text", "rows"]

T = TypeVar("T")
R = TypeVar("R")


def rows(st: Any, dests: dict[Any, Any]) -> Iterator[dict[str, Any]]:
    """The row of each real server of the virtual server ``st`` (a policy
    ``VsState``); ``dests`` what the pool holds for it, by (address, port)."""
    for r in st.rss.values():
        yield row(r, dests)


def row(r: Any, dests: dict[Any, Any]) -> dict[str, Any]:
    """One real server's row (``r`` a policy ``RsState``)."""
    d = dests.get((r.rs.address, r.dest_port))
    return {"address": r.rs.address, "port": r.dest_port, "alive": r.alive,
            "weight": r.weight, "pool_weight": None if d is None else d.weight}


def row_text(r: Any, dests: dict[Any, Any]) -> str:
    """:func:`row` as compact JSON, written directly (the streamed ``hafast status
    --json``; ``tests/unit/lvs/test_status_rows.py`` holds the two equal).  Inline
    conditionals, not a helper per number: this runs 10,000 times a reply."""
    port = r.dest_port
    d = dests.get((r.rs.address, port))
    return (f'{{"address":{_string(r.rs.address)},"port":{"null" if port is None else port},'
            f'"alive":{"true" if r.alive else "false"},"weight":{r.weight},'
            f'"pool_weight":{"null" if d is None else d.weight}}}')


def cut(items: Collection[T], alive: Callable[[T], bool], make: Callable[[T], R], *,
        down: bool = False, limit: int | None = None) -> tuple[list[R], dict[str, int]]:
    """The rows the filters keep of one virtual server's ``items``, and its counts
    (``real_servers``, ``alive``: of all its items, not of the rows kept).

    ``down``: only the items not ``alive``.  ``limit``: the first ``limit`` of those,
    then up to ``limit`` more of the rest that are down (what the table shows: a
    long pool's failures are not hidden behind its first rows).  ``make`` is called
    for the kept items only, and the walks over all items are itertools' (with an
    ``operator`` getter for ``alive``: ~1 ms at 10,000, where a Python loop was ~8).
    """
    counts = {"real_servers": len(items), "alive": sum(map(alive, items))}
    pool = filterfalse(alive, items) if down else iter(items)
    if limit is None:
        kept = list(pool)
    else:
        kept = list(islice(pool, limit))
        kept += islice(pool if down else filterfalse(alive, pool), limit)
    return [make(i) for i in kept], counts
