"""keepalived's labels for virtual and real servers (``FMT_VS`` / ``FMT_RS`` in
check_data.h), as its logs, notify FIFO lines, dumps and mails write them.  Here, in
the config layer, so the pool side (``hafast.lvs``) and the check side's mails
(``hafast.check.alerts``) share one spelling."""

from __future__ import annotations

from hafast.config import model as m


def vs_label(vs: m.VirtualServer) -> str:
    """``[ADDR]:proto:PORT``, ``FWM N`` or ``[GROUP]:PORT``.

    >>> vs_label(m.VirtualServer(address="192.168.201.15", port=80))
    '[192.168.201.15]:tcp:80'
    """
    if vs.group is not None:
        return f"[{vs.group}]:{vs.port or 0}"
    if vs.fwmark is not None:
        return f"FWM {vs.fwmark}"
    return f"[{vs.address or ''}]:{vs.protocol.lower()}:{vs.port or 0}"


def rs_label(vs: m.VirtualServer, rs: m.RealServer, port: int | None = None) -> str:
    """``[ADDR]:proto:PORT``: the real server's address, its virtual server's protocol
    and the port it is reached on (``port``, else its own, else the virtual server's)."""
    return rs_key_label(vs, (rs.address, rs.port if port is None else port))


def rs_key_label(vs: m.VirtualServer, key: tuple[str, int | None]) -> str:
    """:func:`rs_label` of the real server whose ``key`` (``RealServer.key``) this is.

    >>> rs_key_label(m.VirtualServer(address="10.0.0.1", port=80), ("10.0.1.1", None))
    '[10.0.1.1]:tcp:80'
    """
    address, port = key
    return f"[{address}]:{vs.protocol.lower()}:{port if port is not None else (vs.port or 0)}"
