"""Pick the compiled module or its pure-Python twin.

The aio-libs pattern: the compiled module is preferred, the twin is the fallback,
and ``HAFAST_NO_EXTENSIONS=1`` forces the twin.  ``compiled_status()`` tells what
was chosen, so a test can fail the run when CI expected the compiled core.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from hafast._core._modules import MODULES

_chosen: dict[str, ModuleType] = {}
_errors: dict[str, str] = {}


def extensions_disabled() -> bool:
    return os.environ.get("HAFAST_NO_EXTENSIONS", "") not in ("", "0")


def choose(name: str) -> ModuleType:
    """Return ``hafast._core.<name>_c`` if it loads, else ``<name>_py``.

    >>> choose("checksum").__name__ in ("hafast._core.checksum_c", "hafast._core.checksum_py")
    True
    """
    if name in _chosen:
        return _chosen[name]
    module: ModuleType | None = None
    if not extensions_disabled():
        try:
            module = importlib.import_module(f"hafast._core.{name}_c")
        except ImportError as exc:  # not built: fall back, but remember why
            _errors[name] = str(exc)
    if module is None:
        module = importlib.import_module(f"hafast._core.{name}_py")
    _chosen[name] = module
    return module


def compiled_status() -> dict[str, str]:
    """``{name: "compiled" | "twin (forced)" | "twin (<import error>)"}`` for every core module."""
    status = {}
    for name in MODULES:
        mod = choose(name)
        if mod.__name__.endswith("_c"):
            status[name] = "compiled"
        elif extensions_disabled():
            status[name] = "twin (forced by HAFAST_NO_EXTENSIONS)"
        else:
            status[name] = f"twin ({_errors.get(name, 'unknown')})"
    return status
