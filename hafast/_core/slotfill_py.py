"""A new instance of a slotted class, its slots set from a dict (pure-Python twin of
``slotfill_c``).

The loader builds 37,000 real servers for issue 16's config; a frozen dataclass's
``__init__`` sets each field through ``object.__setattr__``, and even setting the slot
descriptors from Python (what :func:`fill` does here) costs 1.4 us for 14 fields.  The
compiled twin calls each descriptor's setter from C.  Nothing here knows a model class:
the caller (:func:`hafast.config.build_lvs._slot_filler`) checks the dict's keys first.

Example::

    >>> class P:
    ...     __slots__ = ("x", "y")
    >>> p = fill(P, (P.x, P.y), ("x", "y"), (0, 5), {"x": 1})
    >>> p.x, p.y
    (1, 5)
"""

from __future__ import annotations

from typing import Any

__all__ = ["fill"]


def fill(
    cls: type,
    descrs: tuple[Any, ...],
    names: tuple[str, ...],
    defaults: tuple[Any, ...],
    values: dict[str, Any],
) -> Any:
    """``cls`` made without ``__init__``: ``descrs[i]`` (a slot descriptor of ``cls``)
    set to ``values[names[i]]``, or ``defaults[i]`` when the name is not in ``values``."""
    obj: Any = object.__new__(cls)
    get = values.get
    for descr, name, default in zip(descrs, names, defaults, strict=True):
        descr.__set__(obj, get(name, default))
    return obj
