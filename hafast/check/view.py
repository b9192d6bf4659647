"""What of a Config a check worker is sent: its shard (issue 16).

Each check worker checks the real servers :func:`shard_of` gives it, and nothing
else: the parent sends it :func:`check_view` of its Config, at start and at every
reload, so it unpickles and holds one share of the real servers instead of all of
them (at 10,000 real servers and two check workers that was two whole copies of
the model beside the parent's). The virtual servers all stay, each with its
shard's real servers only (their keys, the labels of alerts and the reload diff do
not change); global_defs, the SSL context and the track files stay whole. The seed
(the parent's last known health of each real server) is cut the same way.

The twin of :func:`hafast.vrrp.view.vrrp_view`; the check worker's reload diff
compares view with view.
"""

from __future__ import annotations

import zlib
from dataclasses import replace
from typing import Any

from hafast.config import model as m


def shard_of(rs: m.RealServer, shard_count: int) -> int:
    """Which worker checks ``rs`` (stable across processes and runs)."""
    return _shard_of_key(rs.key, shard_count)


def _shard_of_key(rs_key: tuple[str, int | None], shard_count: int) -> int:
    if shard_count <= 1:
        return 0
    return zlib.crc32(f"{rs_key[0]}|{rs_key[1]}".encode()) % shard_count


def seed_view(seed: dict[Any, Any], shard: int, shards: int) -> dict[Any, Any]:
    """The parent's last known health (``{(vs key, rs key): ...}``) of ``shard``'s real
    servers only: the rest would be unpickled for nothing.

    >>> seed = {(("10.0.0.1", 80), (f"10.0.1.{i}", 80)): (True, 1) for i in range(9)}
    >>> sum(len(seed_view(seed, k, 3)) for k in range(3)), seed_view(seed, 0, 1) is seed
    (9, True)
    """
    if shards <= 1:
        return seed
    return {k: v for k, v in seed.items() if _shard_of_key(k[1], shards) == shard}


def check_view(config: m.Config, shard: int, shards: int) -> m.Config:
    """``config`` with only the real servers of ``shard`` (of ``shards``).

    >>> from hafast.config.loader import load_text
    >>> c = load_text("virtual_server 10.0.0.1 80 {\\n" + "".join(
    ...     f" real_server 10.0.1.{i} 80 {{\\n }}\\n" for i in range(1, 9)) + "}\\n").config
    >>> views = [check_view(c, k, 3) for k in range(3)]
    >>> sorted(rs.address for v in views for rs in v.virtual_servers[0].real_servers) == \\
    ...     sorted(rs.address for rs in c.virtual_servers[0].real_servers)
    True
    >>> check_view(c, 0, 1) is c
    True
    """
    if shards <= 1:
        return config
    return replace(config, virtual_servers=tuple(
        replace(vs, real_servers=tuple(rs for rs in vs.real_servers
                                       if shard_of(rs, shards) == shard))
        for vs in config.virtual_servers))


def without_real_servers(config: m.Config) -> m.Config:
    """``config`` with no real server under any virtual server: what a check worker's
    engine and alerts keep once the checks are built (each check holds its own spec
    and target).  The shard's RealServer objects, about 0.3 KiB each, are then freed
    instead of kept for the worker's life (issue 16); a reload brings a whole view.

    >>> from hafast.config.loader import load_text
    >>> c = load_text("virtual_server 10.0.0.1 80 {\\n"
    ...               " real_server 10.0.1.1 80 {\\n }\\n}\\n").config
    >>> [(vs.address, vs.real_servers) for vs in without_real_servers(c).virtual_servers]
    [('10.0.0.1', ())]
    """
    return replace(config, virtual_servers=tuple(
        replace(vs, real_servers=()) for vs in config.virtual_servers))
