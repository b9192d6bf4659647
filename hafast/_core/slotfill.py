"""A new instance of a slotted class, its slots set from a dict: compiled or twin (see
``slotfill_py``).

>>> class P:
...     __slots__ = ("x",)
>>> fill(P, (P.x,), ("x",), (None,), {"x": 3}).x
3
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hafast._core._select import choose

if TYPE_CHECKING:
    from hafast._core.slotfill_c import fill
else:
    fill = choose("slotfill").fill

__all__ = ["fill"]
