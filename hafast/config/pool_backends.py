"""The pool backends: the one list that ``--pool-backend``, the ``lvs_backend`` keyword
and :func:`hafast.lvs.manager.make_backend` read.

A row is a backend's name (the word the command line and the config take), its class,
how ``auto`` tells that this box has what the backend needs, and whether the backend
reaches the kernel.  Rows stand in ``auto``'s order: the first present one that can be
made wins, so the kernel's IPVS beats nftables; memory, which reaches no kernel, is
never ``auto``'s choice.

The class is named by import path (as :mod:`hafast.config.kinds` names a checker's
probe) and ``make_backend`` imports it: the config layer sits below :mod:`hafast.lvs`,
and ``hafast -t`` must know the names without importing pyroute2 or libnftables.

Example::

    >>> list(POOL_BACKENDS)
    ['ipvs', 'nft', 'memory']
    >>> POOL_BACKENDS["memory"].kernel, POOL_BACKENDS["memory"].present()
    (False, True)
    >>> choices()
    ('auto', 'ipvs', 'nft', 'memory')
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

AUTO = "auto"


@dataclass(frozen=True, slots=True)
class PoolBackendKind:
    """One pool backend."""

    name: str
    factory: str  # "module:attribute", called with make_backend's keyword arguments
    # False: nothing reaches the kernel (unit tests, a check-only daemon); only taken
    # when named, since its virtual servers are ones no packet will follow.
    kernel: bool
    # auto's cheap look before trying the backend; an explicit choice skips it, so a
    # missing module fails loudly at open instead of silently falling through.
    present: Callable[[], bool]
    help: str  # the backend in the lvs_backend help text


def _always() -> bool:
    return True


def ipvs_present(proc: str = "/proc/net/ip_vs", modules: str = "/lib/modules") -> bool:
    """IPVS is loaded, or this kernel can load it: the IPVS backend runs ``modprobe
    ip_vs`` when it opens (as keepalived does), so a director whose module is not
    loaded yet at boot still gets IPVS rather than nftables."""
    if os.path.exists(proc):
        return True
    release = os.uname().release
    for listing in ("modules.dep", "modules.builtin"):
        try:
            with open(os.path.join(modules, release, listing)) as f:
                if any(line.split(":", 1)[0].rsplit("/", 1)[-1].startswith("ip_vs.ko")
                       for line in f):
                    return True
        except OSError:
            continue
    return False


POOL_BACKENDS: Mapping[str, PoolBackendKind] = {
    k.name: k
    for k in (
        PoolBackendKind("ipvs", "hafast.lvs.ipvs:IpvsBackend", True, ipvs_present,
                        "ipvs (the kernel's IPVS, default)"),
        PoolBackendKind("nft", "hafast.lvs.nft:NftBackend", True,
                        lambda: shutil.which("nft") is not None, "nft (nftables)"),
        PoolBackendKind("memory", "hafast.lvs.memory:MemoryBackend", False, _always,
                        "memory"),
    )
}


def choices() -> tuple[str, ...]:
    """What ``--pool-backend`` accepts: ``auto`` and every backend."""
    return (AUTO, *POOL_BACKENDS)


class UnknownPoolBackend(ValueError, KeyError):
    """A name no row has.  Both a ValueError (a bad word) and a KeyError (a missed
    lookup): the two make_backend functions this list replaced raised one each."""

    __str__ = ValueError.__str__  # KeyError's would quote the message


def order(kind: str) -> tuple[PoolBackendKind, ...]:
    """The backends ``kind`` tries, in turn.  ``auto`` tries only those that reach the
    kernel: a daemon given virtual servers never keeps them in memory, where no packet
    follows them, unless memory is asked for by name (``lvs_backend memory``,
    ``--pool-backend memory``).

    >>> [k.name for k in order("auto")], [k.name for k in order("nft")]
    (['ipvs', 'nft'], ['nft'])
    """
    if kind == AUTO:
        return tuple(k for k in POOL_BACKENDS.values() if k.kernel)
    if kind not in POOL_BACKENDS:
        raise UnknownPoolBackend(f"pool backend '{kind}': expected one of "
                                 f"{', '.join(choices())}")
    return (POOL_BACKENDS[kind],)


def candidates(kind: str) -> Iterator[PoolBackendKind]:
    """The backends ``kind`` tries on this box, in turn: a named one whatever the box
    has (a missing module then fails loudly when it is made), auto's only those
    present.  The daemon makes the first that works; ``hafast -t`` names the first.

    >>> [k.name for k in candidates("memory")]
    ['memory']
    """
    rows = order(kind)  # an unknown name raises here, not at the first next()
    return (row for row in rows if kind != AUTO or row.present())


def help_text() -> str:
    """The backends, as the lvs_backend keyword's help names them.

    >>> help_text()
    "ipvs (the kernel's IPVS, default), nft (nftables) or memory"
    """
    words = [k.help for k in POOL_BACKENDS.values()]
    return f"{', '.join(words[:-1])} or {words[-1]}" if len(words) > 1 else words[0]
