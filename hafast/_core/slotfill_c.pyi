"""Stub for the compiled slot filler of the config loader (twin: slotfill_py)."""

from typing import Any

__all__ = ["fill"]

def fill(
    cls: type,
    descrs: tuple[Any, ...],
    names: tuple[str, ...],
    defaults: tuple[Any, ...],
    values: dict[str, Any],
) -> Any: ...
