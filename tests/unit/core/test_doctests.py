"""The examples in the daemon modules' docstrings run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["hafast.app.cmdline", "hafast.lib.logging", "hafast.app.ipc", "hafast.app.vipguard",
           "hafast.net.addrwatch",
           "hafast.status.dump", "hafast.status.metrics", "hafast.check.perloop",
           "hafast.check.runner", "hafast._core.checkq_py", "hafast._core.icmp_batch_py"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
