"""docs/compat.md is the grammar's own account of itself, never hand-kept."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hafast.config.compat import README_BEGIN, README_END, render, render_unsupported, status
from hafast.config.grammar import TABLE

DOC = Path(__file__).resolve().parents[3] / "docs" / "compat.md"


def test_compat_doc_is_current(golden: Callable[[Path, str], None]) -> None:
    golden(DOC, render())


def test_every_row_has_a_status() -> None:
    seen = {status(kw)[0] for rows in TABLE.values() for kw in rows.values()}
    assert seen <= {"works", "warned", "refused", "covered", "extension"}
    assert {"works", "warned", "refused", "covered", "extension"} <= seen


def test_statuses_of_known_keywords() -> None:
    assert status(TABLE["vrrp_instance"]["priority"])[0] == "works"
    assert status(TABLE["global_defs"]["enable_dbus"])[0] == "warned"
    assert status(TABLE["top"]["bfd_instance"])[0] == "refused"
    assert status(TABLE["bfd_instance"]["min_rx"])[0] == "covered"
    assert status(TABLE["global_defs"]["lvs_backend"])[0] == "extension"


def test_readme_unsupported_table_is_current() -> None:
    """The README's one table of what is not supported comes from the same table."""
    readme = (DOC.parents[1] / "README.md").read_text()
    assert README_BEGIN in readme and README_END in readme
    got = readme.split(README_BEGIN, 1)[1].split(README_END, 1)[0]
    assert got == render_unsupported(), (
        "README's unsupported table is stale: .venv/bin/python -m hafast.config.compat --write"
    )
