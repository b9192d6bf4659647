"""The config loader's statement tree: compiled or twin (see ``treefeed_py``).

>>> stack = [[]]
>>> _ = feed([((("a", "k.conf", 1, 1, False),), "a")], stack, [], stack[0], print)
>>> stack[0][0].raw
'a'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hafast._core._select import choose

if TYPE_CHECKING:
    from hafast._core.treefeed_c import Node, feed
else:
    _chosen = choose("treefeed")
    Node = _chosen.Node
    feed = _chosen.feed

__all__ = ["Node", "feed"]
