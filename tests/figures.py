"""Figures a chaos or hostile-input test hands to the reliability report.

The netns tests print their figures for a reader (``pytest -s``); they also call
:func:`record` with the same figures, which does nothing unless ``HAFAST_FIGURES``
names a file.  ``python -m benchmarks.suite --reliability`` sets it, runs the tests
and renders the file (:mod:`benchmarks.suite.reliability`), so the scenarios are
written once, here in the tests.

One JSON object a line, appended as each test gets its figures (before its asserts,
so a failing test still leaves what it measured)::

    record("hostile VRRP", "flood to the group", {
        "packets sent": 112000,
        "counted by reason": {"hafast": 112000, "keepalived": 69100},
    })

A value is a number or a string (hafast's figure), or a dict of them keyed by who
measured it (``"hafast"``, ``"keepalived"``) when both daemons ran side by side.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

ENV = "HAFAST_FIGURES"
WHO = ("hafast", "keepalived")


def _plain(v: Any) -> Any:
    """A JSON value for a figure: numbers and strings as they are, the rest as text."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int | float | str):
        return v
    if isinstance(v, Mapping) and v and set(v) <= set(WHO):
        return {k: _plain(x) for k, x in v.items()}
    return str(v)


def record(group: str, scenario: str, figures: Mapping[str, Any]) -> None:
    """Append one scenario's figures to the file ``$HAFAST_FIGURES`` names (if any).

    >>> record("g", "s", {"x": 1})  # HAFAST_FIGURES unset: nothing happens
    """
    path = os.environ.get(ENV)
    if not path:
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
    line = {"group": group, "scenario": scenario, "test": test,
            "figures": {str(k): _plain(v) for k, v in figures.items()}}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
