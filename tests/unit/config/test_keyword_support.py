"""Every keepalived keyword hafast accepts either works or is diagnosed (issue 14).

The grammar (hafast.config.grammar.TABLE) is walked row by row.  A row passes when

- hafast.config.support lists it (a warning or a refusal at load), or
- it sits in a block that support lists (the block's diagnostic covers it), or
- the model field it fills is read by code outside hafast/config (the run-time
  reader), or
- support.CONFIG_EFFECTS says its effect happens at load (a global default folded into
  a field that itself has a run-time reader, or a rule checked at load).

"Read" is found with the ast module: an attribute access ``x.field``, a keyword
argument ``field=``, or a string constant equal to the name (getattr, dataclass
replace); words in docstrings and comments do not count.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

from hafast.config import support
from hafast.config.compat import status
from hafast.config.grammar import TABLE
from hafast.config.loader import load_text

PACKAGE = Path(__file__).resolve().parents[3] / "hafast"
# Modules that only render the config (keepalived's .data dump, status JSON) print
# fields they do not act on: a field shown there is not thereby honoured.
RENDERERS = {"status", "report.py"}


@cache
def runtime_names() -> frozenset[str]:
    """Every identifier the code outside hafast/config reads or passes by name."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).parts
        if "config" in parts or RENDERERS.intersection(parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.keyword) and node.arg:
                names.add(node.arg)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                if node.value.isidentifier():
                    names.add(node.value)
    for path in PACKAGE.rglob("*.pyx"):  # the compiled cores: attribute reads only
        names.update(re.findall(r"\.([A-Za-z_]\w*)", path.read_text()))
    return frozenset(names)


def _rows() -> list[tuple[str, str]]:
    return [(ctx, name) for ctx, rows in TABLE.items() for name in rows]


def _verdict(ctx: str, name: str) -> str:
    kw = TABLE[ctx][name]
    if kw.gap is not None:
        return kw.gap.level
    if status(kw)[0] == "covered":  # inside a warned or refused block
        return "covered"
    if kw.field is None:
        return "NEITHER: no field and no diagnostic"
    if kw.field in runtime_names():
        return "works"
    if kw.field in support.CONFIG_EFFECTS:
        return "works at load"
    return f"NEITHER: field {kw.field!r} has no run-time reader"


def test_no_keyword_without_effect_or_diagnostic() -> None:
    silent = [f"{ctx} {name}: {v}" for ctx, name in _rows()
              if (v := _verdict(ctx, name)).startswith("NEITHER")]
    assert silent == [], "\n".join(silent)


def test_every_support_entry_names_a_row() -> None:
    """A stale line (a keyword renamed or made to work elsewhere) fails here."""
    rows = set(_rows())
    names = {name for _, name in rows}
    stale = [
        f"{ctx} {name}" for ctx, name in support.GAPS
        if ((ctx, name) not in rows if ctx != "*" else name not in names)
    ]
    assert stale == []


def test_config_effects_feed_fields_with_readers() -> None:
    fields = {kw.field for rows in TABLE.values() for kw in rows.values()}
    for source, target in support.CONFIG_EFFECTS.items():
        assert source in fields, source
        if target:
            assert target in runtime_names(), f"{source} folds into {target}, never read"


@pytest.mark.parametrize(
    ("text", "severity"),
    [
        ("global_defs {\n enable_dbus\n}\n", "warning"),
        ("global_defs {\n nftables_ipvs\n}\n", "error"),
        ("bfd_instance b {\n neighbor_ip 10.0.0.2\n min_rx 10\n}\n", "error"),
    ],
)
def test_diagnostic_level_follows_the_table(text: str, severity: str) -> None:
    res = load_text(text, file="k.conf")
    got = [(d.severity, d.line) for d in res.diagnostics if d.code == support.UNSUPPORTED]
    assert got == [(severity, 1 if text.startswith("bfd") else 2)]


def test_the_scan_can_fail() -> None:
    """The reader scan is not vacuous: a made-up field has no reader."""
    assert "priority" in runtime_names()
    assert "no_such_field_anywhere" not in runtime_names()
