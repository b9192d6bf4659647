"""``hafast status``'s filtered rows are cut where they are made (PoolKeeper.status
with ``down``/``limit``, issue 16: the table no longer makes a dict for every real
server); the reply must be the one the selection over the whole status gives."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hafast.config.loader import load_text
from hafast.lib.events import DOWN, ServerEvent
from hafast.lvs.keeper import PoolKeeper
from hafast.lvs.memory import MemoryBackend
from hafast.lvs.rows import cut
from hafast.status.select import select


def _conf(sizes: list[int]) -> str:
    out = []
    for v, n in enumerate(sizes):
        out.append(f"virtual_server 10.0.0.{v + 1} 80 {{\n lb_kind NAT\n protocol TCP\n"
                   f" quorum {max(1, n // 2)}\n")
        out += [f" real_server 10.1.{v}.{i + 1} 80 {{ weight {i % 3 + 1}\n"
                + (" inhibit_on_failure\n" if i % 4 == 0 else "")  # down: weight 0
                + "  TCP_CHECK { connect_timeout 1 }\n }\n" for i in range(n)]
        out.append("}\n")
    return "".join(out)


def _status(sizes: list[int], down: set[tuple[int, int]],
            filters: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the keeper's cut then select, select over the keeper's whole status)."""
    cfg = load_text(_conf(sizes)).config

    async def go() -> tuple[dict[str, Any], dict[str, Any]]:
        keeper = PoolKeeper(cfg, MemoryBackend(), keep=False)
        await keeper.open()
        events = [ServerEvent(cfg.virtual_servers[v].key, (f"10.1.{v}.{i + 1}", 80),
                              DOWN, 1, "x", 1.0) for v, i in sorted(down)]
        await keeper.on_events(events)
        base = {"vrrp": [], "checkers": []}
        cut_early = select({**base, "pools": keeper.status(
            down=filters.get("down", False), limit=filters.get("limit"))}, **filters)
        whole = select({**base, "pools": keeper.status()}, **filters)
        await keeper.close()
        return cut_early, whole

    return asyncio.run(go())


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 30), min_size=1, max_size=3), data=st.data())
def test_the_keepers_cut_is_the_selection_of_the_whole_status(sizes: list[int],
                                                            data: st.DataObject) -> None:
    pairs = [(v, i) for v, n in enumerate(sizes) for i in range(n)]
    down = set(data.draw(st.lists(st.sampled_from(pairs), max_size=len(pairs))))
    filters: dict[str, Any] = {}
    if data.draw(st.booleans()):
        filters["down"] = True
    limit = data.draw(st.one_of(st.none(), st.integers(0, 12)))
    if limit is not None:
        filters["limit"] = limit
    if not filters:
        filters["limit"] = 5
    early, whole = _status(sizes, down, filters)
    assert early == whole
    for vs in early["pools"]["virtual_servers"]:
        rows = vs["real_servers"]
        assert vs["counts"]["real_servers"] >= len(rows)
        if filters.get("down"):
            assert not any(r["alive"] for r in rows)


def test_cut_makes_rows_only_for_what_it_keeps() -> None:
    made: list[int] = []

    def make(i: int) -> int:
        made.append(i)
        return i

    got, counts = cut(range(10_000), lambda i: i % 1000 != 7, make, limit=3)
    assert got == [0, 1, 2, 7, 1007, 2007] and made == got
    assert counts == {"real_servers": 10_000, "alive": 9_990}


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(1, 20), min_size=1, max_size=3), data=st.data())
def test_the_streamed_rows_are_the_rows_as_json(sizes: list[int], data: st.DataObject) -> None:
    """``hafast status --json`` writes each row by an f-string (rows.row_text): the
    reply must be the JSON of the rows themselves, inhibited and down ones too."""
    import json

    from hafast.lib import jsonstream

    pairs = [(v, i) for v, n in enumerate(sizes) for i in range(n)]
    down = set(data.draw(st.lists(st.sampled_from(pairs), max_size=len(pairs))))
    cfg = load_text(_conf(sizes)).config

    async def go() -> tuple[str, dict[str, Any]]:
        keeper = PoolKeeper(cfg, MemoryBackend(), keep=False)
        await keeper.open()
        await keeper.on_events([ServerEvent(cfg.virtual_servers[v].key,
                                            (f"10.1.{v}.{i + 1}", 80), DOWN, 1, "x", 1.0)
                                for v, i in sorted(down)])
        streamed = "".join(jsonstream.pieces(keeper.status(lazy_rows=True)))
        whole = keeper.status()
        await keeper.close()
        return streamed, whole

    streamed, whole = asyncio.run(go())
    assert streamed == json.dumps(whole, separators=(",", ":"))
    assert json.loads(streamed) == whole
