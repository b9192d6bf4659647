"""The loader's slot filler (issue 16), on both twins: each against the pure one, and
the model's RealServer made by it against the dataclass's own __init__."""

from __future__ import annotations

from dataclasses import MISSING, fields
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hafast._core import slotfill_py
from hafast.config import model as m
from tests.conftest import load_twin


@pytest.fixture
def twin(twin_flavour: str) -> ModuleType:
    return load_twin("slotfill", twin_flavour)


def _args(cls: type) -> tuple[Any, ...]:
    fs = fields(cls)
    return (cls, tuple(getattr(cls, f.name) for f in fs), tuple(f.name for f in fs),
            tuple(f.default for f in fs))


VALUES = st.fixed_dictionaries(
    {"address": st.text(max_size=8)},
    optional={"port": st.none() | st.integers(0, 65535), "weight": st.integers(0, 9),
              "lvs_method": st.sampled_from(["DR", "NAT"]), "alpha": st.booleans(),
              "virtualhost": st.none() | st.text(max_size=5), "where": st.text(max_size=9)},
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=200)
@given(values=VALUES)
def test_twin_fills_what_the_dataclass_builds(twin: ModuleType, values: dict[str, Any]) -> None:
    cls, descrs, names, defaults = _args(m.RealServer)
    got = twin.fill(cls, descrs, names, defaults, values)
    assert type(got) is m.RealServer
    assert got == slotfill_py.fill(cls, descrs, names, defaults, values) == m.RealServer(**values)
    assert [getattr(got, f.name) for f in fields(m.RealServer)] == [
        getattr(m.RealServer(**values), f.name) for f in fields(m.RealServer)]
    assert all(f.default is not MISSING or f.name in values for f in fields(m.RealServer))


def test_fill_refuses_what_cannot_be_set(twin: ModuleType) -> None:
    class P:
        __slots__ = ("x",)
        y = property(lambda self: 1)

    x: Any = P.__dict__["x"]
    with pytest.raises((TypeError, AttributeError)):
        twin.fill(P, (P.y,), ("y",), (0,), {})
    with pytest.raises((ValueError, TypeError)):
        twin.fill(P, (x,), ("x", "y"), (0,), {})
    assert twin.fill(P, (x,), ("x",), (7,), {}).x == 7
