"""Every docstring example in the hafast package runs, one test per docstring.

The modules come from walking the package, not from a list: a new module's examples
are collected the day it lands (the pure cores, ``hafast/config``, ``hafast/lib``,
the ``_core`` twins and choosers, the compiled modules' docstrings too).  This is
``--doctest-modules`` over ``hafast/`` as a test file, so ``pytest tests`` runs it
with no option and the pure-twin pass (``HAFAST_NO_EXTENSIONS=1``) reruns the
choosers' examples on the twins.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import hafast

# Running ``hafast.__main__`` is running the daemon's command line.
NOT_IMPORTED = {"hafast.__main__"}


def _module_names() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(hafast.__path__, "hafast."):
        if info.name not in NOT_IMPORTED:
            names.append(info.name)
    return sorted(names)


def _collect() -> tuple[list[doctest.DocTest], dict[str, str]]:
    finder = doctest.DocTestFinder()
    found = []
    broken = {}
    for name in _module_names():
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # reported by test_every_module_imports, not a file error
            broken[name] = f"{type(exc).__name__}: {exc}"
            continue
        found.extend(t for t in finder.find(module) if t.examples)
    return sorted(found, key=lambda t: t.name), broken


DOCTESTS, UNIMPORTABLE = _collect()


def test_every_module_imports() -> None:
    """A module that does not import has examples that never ran."""
    assert UNIMPORTABLE == {}


@pytest.mark.parametrize("test", DOCTESTS, ids=[t.name for t in DOCTESTS])
def test_docstring_examples(test: doctest.DocTest) -> None:
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    result = runner.run(test, out=report.append, clear_globs=False)
    if result.failed:
        pytest.fail("".join(report), pytrace=False)


def test_the_walk_finds_the_package() -> None:
    """Guard against a walk that quietly finds nothing (a moved package, a bad path)."""
    modules = {t.name.split(".")[1] for t in DOCTESTS}
    assert {"_core", "config", "lib", "vrrp", "lvs", "check", "app"} <= modules
    assert len(DOCTESTS) > 100
