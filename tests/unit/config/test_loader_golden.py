"""Golden tests: every loader error path, one small config each, expected diagnostics.

Each ``golden/loader/NAME.conf`` has a ``NAME.out`` with the exact diagnostics, file
names relative to the golden folder.  Regenerate after a deliberate message change with
``.venv/bin/python -m pytest tests/unit/config/test_loader_golden.py --regen`` and review
the diff.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hafast.config.loader import load_file

GOLDEN = Path(__file__).parent / "golden" / "loader"
CASES = sorted(p.stem for p in GOLDEN.glob("*.conf"))


def _render(name: str) -> str:
    res = load_file(str(GOLDEN / f"{name}.conf"))
    prefix = f"{GOLDEN}/"
    return "".join(d.format().replace(prefix, "") + "\n" for d in res.diagnostics)


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str, golden: Callable[[Path, str], None]) -> None:
    golden(GOLDEN / f"{name}.out", _render(name))


def test_every_error_names_what_would_be_right() -> None:
    """Each error says what is expected (a shape, a range, a fix), not only what is wrong."""
    hints = (
        "expected",
        "did you mean",
        "use ",
        "remove",
        "define",
        "add ",
        "needs",
        "must",
        "one entry",
        "names must be unique",
        "only",
        "is below",
        "already",
        "put ",
    )
    vague = [
        line
        for name in CASES
        for line in _render(name).splitlines()
        if ": error: " in line and not any(h in line for h in hints)
    ]
    assert vague == []


def test_clean_config_has_no_diagnostics() -> None:
    assert _render("clean_full") == ""
