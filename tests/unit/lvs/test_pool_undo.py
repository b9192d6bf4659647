"""Pool.apply_undoable (issue 16: the nftables backend changes its copy of the table
in place and puts it back when nft refuses): after any changes, undo gives back the
pool as it was, every service and destination, whatever the changes did in between
(a service deleted and added again, a destination edited twice)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hafast.lvs.backend import (
    ADD_DEST,
    ADD_SERVICE,
    DEL_DEST,
    DEL_SERVICE,
    EDIT_DEST,
    EDIT_SERVICE,
    Change,
    Dest,
    Pool,
    Service,
    ServiceKey,
)

KEYS = [ServiceKey(4, "TCP", f"10.0.0.{i}", 80) for i in range(1, 4)]
services = st.builds(Service, st.sampled_from(KEYS), st.sampled_from(["wlc", "rr", "mh"]),
                     timeout=st.sampled_from([0, 0, 300]))
dests = st.builds(Dest, st.sampled_from([f"10.1.0.{i}" for i in range(1, 6)]),
                  st.just(80), st.integers(0, 3), st.sampled_from(["NAT", "DR"]))
changes = st.one_of(
    st.builds(Change, st.sampled_from([ADD_SERVICE, EDIT_SERVICE, DEL_SERVICE]), services),
    st.builds(Change, st.sampled_from([ADD_DEST, EDIT_DEST, DEL_DEST]), services, dests))


def snapshot(pool: Pool) -> tuple[dict[ServiceKey, Service], dict[ServiceKey, dict]]:
    return dict(pool.services), {k: dict(v) for k, v in pool.dests.items()}


@settings(max_examples=300, deadline=None)
@given(st.lists(changes, max_size=12), st.lists(changes, max_size=12))
def test_undo_gives_the_pool_back(setup: list[Change], batch: list[Change]) -> None:
    pool = Pool()
    pool.apply(setup)
    before = snapshot(pool)
    held = {k: pool.dests[k] for k in pool.dests}  # the dict objects themselves
    undo = pool.apply_undoable(batch)
    redo = Pool(*snapshot(Pool(*before)))
    redo.apply(batch)
    assert snapshot(pool) == snapshot(redo)  # it applied as apply() does
    undo()
    assert snapshot(pool) == before
    # each service holds its own dict again (the backend's slot code keeps none of
    # them, but a dict made by the batch must not stay)
    assert all(pool.dests[k] is d for k, d in held.items())
