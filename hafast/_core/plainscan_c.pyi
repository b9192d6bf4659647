"""Stub for the compiled plain-line scan of the config lexer (twin: plainscan_py)."""

from typing import Any

__all__ = ["scan_plain"]

def scan_plain(
    text: str,
    pos: int,
    end: int,
    file: str,
    lineno: int,
    lines: list[Any],
    open_braces: list[tuple[Any, Any]],
    words: dict[str, str],
    limit: int,
    token_t: type,
    line_t: type,
) -> tuple[int, int]: ...
