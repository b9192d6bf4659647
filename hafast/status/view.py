"""Small readers of the parent's status dict that the table (``hafast status``),
the dumps and ``/metrics`` share.  It imports nothing: the ``hafast status`` client
imports it, and :mod:`hafast.status.dump`'s imports (tempfile, json and what they
pull) were ~40 ms of that command's start on a busy director (issue 16).
"""

from __future__ import annotations

TYPE_CHECKING = False  # (the client's start: see hafast.app.ctlproto)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["vrrp_sockets"]


def vrrp_sockets(status: dict[str, Any]) -> list[dict[str, Any]]:
    """Each VRRP socket's view once (instances on one interface share their socket).

    >>> st = {"vrrp": [{"socket": {"name": "eth0/v4"}}, {"socket": {"name": "eth0/v4"}},
    ...                {"data": {}}]}
    >>> vrrp_sockets(st)
    [{'name': 'eth0/v4'}]
    """
    seen: dict[str, dict[str, Any]] = {}
    for inst in status.get("vrrp", ()):
        sock = inst.get("socket")
        if sock is not None:
            seen.setdefault(sock["name"], sock)
    return list(seen.values())
