"""The runtime dependencies are exactly what the package imports (docs/dependencies.md):
nothing declared that no module imports, nothing imported that is not declared."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _runtime_imports() -> dict[str, set[str]]:
    """Third-party top-level module -> the files that import it, lazy imports
    included, ``if TYPE_CHECKING:`` blocks left out (never run)."""
    found: dict[str, set[str]] = {}

    def visit(node: ast.AST, path: str) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child, path)
            return
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            if top != "hafast" and top not in sys.stdlib_module_names:
                found.setdefault(top, set()).add(path)
        for child in ast.iter_child_nodes(node):
            visit(child, path)

    for path in sorted((ROOT / "hafast").rglob("*.py")):
        visit(ast.parse(path.read_text()), str(path.relative_to(ROOT)))
    return found


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # distribution name -> import name ("prometheus-client" -> prometheus_client)
    return {re.split(r"[<>=!~ ;\[]", d, maxsplit=1)[0].lower().replace("-", "_")
            for d in project["dependencies"]}


def test_runtime_dependencies_are_what_the_package_imports() -> None:
    imported = _runtime_imports()
    declared = _declared()
    assert not set(imported) - declared, f"imported, not declared: {imported}"
    assert not declared - set(imported), f"declared, imported nowhere: {declared}"


def test_benchmark_only_packages_stay_out_of_the_runtime() -> None:
    # pycurl serves benchmarks only (docs/dependencies.md has the figures).
    assert "pycurl" not in _declared()
    assert "pycurl" not in _runtime_imports()


def test_cffi_is_only_loaded_for_a_regex() -> None:
    # hafast.lib.pcre2 imports cffi when the first regex is compiled, not at import
    assert _runtime_imports()["cffi"] == {"hafast/lib/pcre2.py"}
