"""pytest plugin: hand the figures a benchmark session recorded to the suite.

Loaded with ``-p benchmarks.suite.collect`` by :mod:`benchmarks.suite.pysections`;
at the end of the session it writes what ``benchmarks/conftest.py``'s ``figures``
fixture collected to the JSON file named by ``HAFAST_SUITE_FIGURES`` (so the suite
reads exactly this run's figures, whatever else writes benchmarks/out/figures.json).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ENV = "HAFAST_SUITE_FIGURES"


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    figures: list[dict[str, Any]] = []
    for name in ("benchmarks.conftest", "conftest"):
        mod = sys.modules.get(name)
        if mod is not None and hasattr(mod, "_FIGURES"):
            figures = list(mod._FIGURES)
            break
    Path(path).write_text(json.dumps({"exitstatus": int(exitstatus), "figures": figures}))
