"""Stub for the compiled statement tree of the config loader (twin: treefeed_py)."""

from collections.abc import Callable, Iterable
from typing import Any

from typing_extensions import disjoint_base

__all__ = ["Node", "feed"]

@disjoint_base
class Node:
    toks: tuple[Any, ...]
    raw: str
    children: list[Node] | None
    close: Any
    def __init__(self, toks: tuple[Any, ...], raw: str = "") -> None: ...

def feed(
    lines: Iterable[Any],
    stack: list[list[Node]],
    openers: list[Node],
    level: list[Node],
    report: Callable[[Any, str], None],
) -> list[Node]: ...
