"""Golden files: every language feature and error path of the lexer.

Each folder under ``golden/lexer/`` holds a ``keepalived.conf`` (plus what it includes)
and ``expected.txt``: one line per lexer Line, each token as ``[FILE:]LINE:COL TEXT``
(quoted tokens in ``"..."``), then the diagnostics.  Regenerate after a deliberate
change with ``pytest tests/unit/config --regen`` and review the diff.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from hafast.config.lexer import read_config
from hafast.config.tokens import LexResult, Token

GOLDEN = Path(__file__).parent / "golden" / "lexer"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "keepalived.conf").is_file())
ENV = {"HAFAST_TEST": "yes"}


def _where(tok: Token, case: Path) -> str:
    file = os.path.relpath(tok.file, case)
    prefix = "" if file == "keepalived.conf" else f"{file}:"
    return f"{prefix}{tok.line}:{tok.col}"


def _text(tok: Token) -> str:
    text = tok.text.encode("unicode_escape").decode("ascii")
    return f'"{text}"' if tok.quoted else text


def dump(res: LexResult, case: Path) -> str:
    """The golden text of one lex result; absolute paths of the case become <case>."""
    out = ["  ".join(f"{_where(t, case)} {_text(t)}" for t in line.tokens) for line in res.lines]
    out.append("-- files")
    out.extend(os.path.relpath(f, case) for f in res.files)
    out.append("-- diagnostics")
    for d in res.diagnostics:
        file = os.path.relpath(d.file, case)
        out.append(f"{file}:{d.line}:{d.col}: {d.severity}: {d.message}")
    return "\n".join(out).replace(str(case.resolve()), "<case>").replace(str(case), "<case>") + "\n"


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, golden: Callable[[Path, str], None]) -> None:
    folder = GOLDEN / case
    res = read_config(folder / "keepalived.conf", config_id="lb1", env=ENV, random_seed=7)
    golden(folder / "expected.txt", dump(res, folder))


def test_every_case_has_expectations() -> None:
    assert len(CASES) >= 10
    for case in CASES:
        assert (GOLDEN / case / "expected.txt").is_file(), case
