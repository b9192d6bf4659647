"""MD5 of HTTP bodies fed chunk by chunk: the compiled core or its twin.

>>> s = MD5Stream(cap=1 << 20)
>>> s.update(b"<html>ok</html>")
True
>>> s.hexdigest() == md5_hex(b"<html>ok</html>")
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hafast._core._select import choose

# Callers are type-checked against the compiled module's stub (stubtest holds the
# stub to the .so); the twin has its own annotations and the tests run both.
if TYPE_CHECKING:
    from hafast._core.md5stream_c import (
        DEFAULT_CAP,
        MD5Stream,
        md5_hex,
    )
else:
    _impl = choose("md5stream")
    DEFAULT_CAP = _impl.DEFAULT_CAP
    MD5Stream = _impl.MD5Stream
    md5_hex = _impl.md5_hex

__all__ = ["DEFAULT_CAP", "MD5Stream", "md5_hex"]
