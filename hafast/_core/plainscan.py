"""The config lexer's plain-line scan: compiled or twin (see ``plainscan_py``).

>>> scan_plain("\\n", 0, 1, "k.conf", 1, [], [], {}, 10, tuple, tuple)
(2, 3)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hafast._core._select import choose

if TYPE_CHECKING:
    from hafast._core.plainscan_c import scan_plain
else:
    scan_plain = choose("plainscan").scan_plain

__all__ = ["scan_plain"]
