"""Benchmarks report figures; they never assert them.

``figures`` collects named ratios measured side by side in one run; they are printed
at the end of the session and written to ``benchmarks/out/figures.json`` so the
README's benchmark section and the report can quote them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

OUT = Path(__file__).resolve().parent / "out"
_FIGURES: list[dict[str, Any]] = []


class Figures:
    def add(
        self, name: str, value: float, unit: str = "", *, goal: str = "", **detail: Any
    ) -> None:
        """Record one figure, e.g. ``add("vrrp decode speed-up", 31.2, "x", goal=">= 20x")``."""
        _FIGURES.append(
            {"name": name, "value": value, "unit": unit, "goal": goal, "detail": detail,
             "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        )


@pytest.fixture(scope="session")
def figures() -> Figures:
    return Figures()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("hafast figures (measured side by side in this run)")
    for f in _FIGURES:
        goal = f"   (goal {f['goal']})" if f["goal"] else ""
        terminalreporter.write_line(f"{f['name']:60s} {f['value']:12.3f} {f['unit']}{goal}")
    OUT.mkdir(exist_ok=True)
    path = OUT / "figures.json"
    previous: list[dict[str, Any]] = []
    if path.exists():
        try:
            previous = json.loads(path.read_text())
        except ValueError:
            previous = []
    names = {f["name"] for f in _FIGURES}
    merged = [f for f in previous if f.get("name") not in names] + _FIGURES
    path.write_text(json.dumps(merged, indent=2) + "\n")
