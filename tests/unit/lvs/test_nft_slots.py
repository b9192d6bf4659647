"""SlotTable (hafast.lvs.nft_slots): after any sequence of updates, the map the
kernel would hold (its answers applied as nftables applies them: deletes of
elements that exist, then adds of elements that do not) is dense, ``0 .. width - 1``,
each destination owning ``weight`` slots of its target; and an update touches a
number of elements bounded by the weights that changed, not by the width."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given, settings

from hafast.lvs.nft_slots import SlotTable, element_lines

KEYS = [(f"10.1.0.{i}", 80) for i in range(8)]

_update = st.dictionaries(st.sampled_from(KEYS), st.integers(0, 5), max_size=4)


@settings(max_examples=300, deadline=None)
@given(updates=st.lists(_update, max_size=25))
def test_the_map_stays_dense_and_each_update_touches_only_what_changed(
        updates: list[dict[tuple[str, int], int]]) -> None:
    table = SlotTable()
    kernel: dict[int, str] = {}
    weights: dict[tuple[str, int], int] = {}
    for changed in updates:
        before = {k: weights.get(k, 0) for k in changed}
        deletes, adds = table.update(changed)
        for slot in deletes:
            assert slot in kernel, ("deleting an element that is not there", slot)
            del kernel[slot]
        for slot, key in adds:
            assert slot not in kernel, ("adding over an element", slot)
            kernel[slot] = f"{key[0]} . {key[1]}"
        for k, w in changed.items():
            if w:
                weights[k] = w
            else:
                weights.pop(k, None)
        assert sorted(kernel) == list(range(table.width))
        assert table.width == sum(weights.values())
        owned: dict[str, int] = {}
        for text in kernel.values():
            owned[text] = owned.get(text, 0) + 1
        assert owned == {f"{k[0]} . {k[1]}": w for k, w in weights.items()}
        assert all(table.weight(k) == weights.get(k, 0) for k in KEYS)
        # moves fill the freed slots: at most twice the weight that changed hands
        churn = sum(before[k] + changed[k] for k in changed)
        assert len(deletes) <= 2 * churn and len(adds) <= 2 * churn


def test_one_server_leaving_a_wide_map_moves_one_element() -> None:
    """10,000 destinations of weight 1: one leaving is one element moved into its
    slot and the last one cut; the rest of the map is not written."""
    table = SlotTable()
    keys = [(f"10.{i // 250}.{i % 250}.1", 80) for i in range(10000)]
    table.update({k: 1 for k in keys})
    deletes, adds = table.update({keys[17]: 0})
    assert deletes == [17, 9999] and adds == [(17, keys[-1])]
    assert table.width == 9999
    deletes, adds = table.update({keys[17]: 1})
    assert deletes == [] and adds == [(9999, keys[17])]


def test_element_lines_leave_out_empty_statements() -> None:
    assert element_lines("t", "m", [], [], str) == []
    assert element_lines("t", "m", [1, 2], [], str) == ["delete element inet t m { 1, 2 }"]
