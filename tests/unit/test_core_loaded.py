"""The compiled core must really load where it is expected (aio-libs' habit)."""

from __future__ import annotations

from hafast._core._select import CORE_MODULES, compiled_status, extensions_disabled
from tests.conftest import IN_CI


def test_core_choice_matches_the_environment() -> None:
    status = compiled_status()
    assert set(status) == set(CORE_MODULES)
    if extensions_disabled():
        assert all(state.startswith("twin (forced") for state in status.values()), status
    elif IN_CI:
        missing = {name: state for name, state in status.items() if state != "compiled"}
        assert not missing, f"compiled modules did not load in CI: {missing}"
