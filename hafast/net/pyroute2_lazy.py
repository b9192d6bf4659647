"""pyroute2's message classes without its package ``__init__`` (issue 16).

``import pyroute2.netlink.rtnl.ifaddrmsg`` runs ``pyroute2/__init__.py`` first, and
pyroute2 0.9's imports every public class of the library: NDB, IPDB, IPRoute,
conntrack, nl80211, plan9...  That is 110-130 ms and ~155 modules in the VRRP
worker's start-up (measured with ``benchmarks/vrrp_worker_startup.py``), which the
parent's never-two-masters guard must fit a restart into, for the four message
classes (ifaddrmsg, rtmsg, fibmsg, ifinfmsg) it actually encodes.

:func:`skip_package_init` puts the package module in ``sys.modules`` unexecuted, so
submodules import on their own; the first access to a package-level name
(``from pyroute2 import IPVS``) runs the real ``__init__`` then, so code that wants
the public API still gets it.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any


def skip_package_init() -> None:
    """Before importing pyroute2 submodules: leave the package ``__init__`` until a
    package-level name is asked for.  A no-op once pyroute2 is imported.

    Example::

        skip_package_init()
        from pyroute2.netlink.rtnl.rtmsg import rtmsg   # ~15 ms, not ~130 ms
    """
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.loader is None:
        return  # not installed: the import that follows fails as it would have
    loader = spec.loader
    package = importlib.util.module_from_spec(spec)

    def __getattr__(name: str) -> Any:  # PEP 562: only for names not yet set
        # A submodule asked for by name (ifinfmsg's ``from pyroute2 import config``)
        # is imported as one: running the whole __init__ from inside a submodule's
        # import re-enters that submodule half made (use_vmac failed to start).
        if importlib.util.find_spec(f"pyroute2.{name}") is not None:
            return importlib.import_module(f"pyroute2.{name}")
        del package.__dict__["__getattr__"]
        loader.exec_module(package)
        return getattr(package, name)

    package.__dict__["__getattr__"] = __getattr__
    sys.modules["pyroute2"] = package
