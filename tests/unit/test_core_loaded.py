"""The compiled core must really load where it is expected (aio-libs' habit), and
the one module list (hafast/_core/_modules.py) must name every module there is."""

from __future__ import annotations

from pathlib import Path

import hafast._core
from hafast._core._modules import LIBRARIES, MODULES
from hafast._core._select import compiled_status, extensions_disabled
from tests.conftest import IN_CI

CORE_DIR = Path(hafast._core.__file__).parent


def test_core_choice_matches_the_environment() -> None:
    status = compiled_status()
    assert list(status) == list(MODULES)
    if extensions_disabled():
        assert all(state.startswith("twin (forced") for state in status.values()), status
    elif IN_CI:
        missing = {name: state for name, state in status.items() if state != "compiled"}
        assert not missing, f"compiled modules did not load in CI: {missing}"


def test_the_module_list_names_every_pyx_and_each_has_its_files() -> None:
    # A .pyx left out of the list would never be built, stub-tested or reported.
    assert {p.name.removesuffix("_c.pyx") for p in CORE_DIR.glob("*_c.pyx")} == set(MODULES)
    assert len(set(MODULES)) == len(MODULES)
    for name in MODULES:
        for part in (f"{name}_c.pyi", f"{name}_py.py", f"{name}.py"):
            assert (CORE_DIR / part).is_file(), f"hafast/_core/{part} is missing"
    assert set(LIBRARIES) <= set(MODULES)
