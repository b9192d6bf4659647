"""docs/compat.md is the grammar's own account of itself, never hand-kept."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hafast.config.compat import render, status
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
