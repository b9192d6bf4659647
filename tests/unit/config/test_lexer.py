"""Lexer unit tests: blocks, comments, quotes, positions."""

from __future__ import annotations

from pathlib import Path

from hafast.config.lexer import lex_text, read_config
from hafast.config.tokens import Line


def words(lines: list[Line]) -> list[list[str]]:
    return [[t.text for t in line.tokens] for line in lines]


def test_braces_are_lines_of_their_own() -> None:
    res = lex_text("vrrp_instance VI_1 {\n state MASTER }\nvirtual_ipaddress { 1.2.3.4 }\n")
    assert words(res.lines) == [
        ["vrrp_instance", "VI_1"],
        ["{"],
        ["state", "MASTER"],
        ["}"],
        ["virtual_ipaddress"],
        ["{"],
        ["1.2.3.4"],
        ["}"],
    ]
    assert res.diagnostics == []


def test_positions_point_at_each_word(tmp_path: Path) -> None:
    conf = tmp_path / "k.conf"
    conf.write_text("global_defs {\n   router_id  \"my id\" # note\n}\n")
    res = read_config(conf)
    toks = [t for line in res.lines for t in line.tokens]
    assert [(t.text, t.line, t.col, t.quoted) for t in toks] == [
        ("global_defs", 1, 1, False),
        ("{", 1, 13, False),
        ("router_id", 2, 4, False),
        ("my id", 2, 15, True),
        ("}", 3, 1, False),
    ]
    assert {t.file for t in toks} == {str(conf)}
    assert res.files == [str(conf)]
