"""What of a Config a check worker is sent: its shard (issue 16).

Each check worker checks the real servers :func:`shard_of` gives it, and nothing
else: the parent sends it :func:`check_view` of its Config, at start and at every
reload, so it unpickles and holds one share of the real servers instead of all of
them (at 10,000 real servers and two check workers that was two whole copies of
the model beside the parent's). The virtual servers all stay, each with its
shard's real servers only (their keys, the labels of alerts and the reload diff do
not change); global_defs, the SSL context and the track files stay whole. The seed
(the parent's last known health of each real server) is cut the same way.

The real servers go pickled in chunks of :data:`CHUNK` (a :class:`ShardView`), and the
worker unpickles one chunk at a time while it builds its checks: unpickled whole, the
shard's RealServer objects were all alive at once beside the checks being built, and
the pools they had filled stayed in the worker's memory after they were freed, among
the checks' objects (0.5-0.9 MiB of each check worker at 10,000 real servers, issue 16).

The twin of :func:`hafast.vrrp.view.vrrp_view`; the check worker's reload diff
compares view with view.
"""

from __future__ import annotations

import pickle
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
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


CHUNK = 256  # real servers per pickled chunk of a ShardView


@dataclass(frozen=True, slots=True)
class ShardView:
    """A check worker's share of a Config: the Config without any real server, and
    its shard's real servers as ``(index of their virtual server, pickled tuple of
    up to CHUNK of them)``, unpickled one chunk at a time by :meth:`pairs`."""

    config: m.Config
    chunks: tuple[tuple[int, bytes], ...] = ()

    @property
    def global_defs(self) -> m.GlobalDefs:
        return self.config.global_defs

    @property
    def virtual_servers(self) -> tuple[m.VirtualServer, ...]:
        """Without their real servers (:meth:`pairs` has those)."""
        return self.config.virtual_servers

    def pairs(self) -> Iterator[tuple[m.VirtualServer, m.RealServer]]:
        vss = self.config.virtual_servers
        for index, blob in self.chunks:
            vs = vss[index]
            for rs in pickle.loads(blob):  # our own parent's pickle, as every message
                yield vs, rs


Source = m.Config | ShardView  # what the check engine and its mails are built from


def pairs(source: Source) -> Iterator[tuple[m.VirtualServer, m.RealServer]]:
    """Every (virtual server, real server) of ``source``, a Config or a ShardView."""
    if isinstance(source, ShardView):
        yield from source.pairs()
        return
    for vs in source.virtual_servers:
        for rs in vs.real_servers:
            yield vs, rs


def slim(source: Source) -> m.Config:
    """``source``'s Config without its real servers."""
    return source.config if isinstance(source, ShardView) else without_real_servers(source)


def check_view(config: m.Config, shard: int, shards: int) -> ShardView:
    """``config`` with only the real servers of ``shard`` (of ``shards``), packed.

    >>> from hafast.config.loader import load_text
    >>> c = load_text("virtual_server 10.0.0.1 80 {\\n" + "".join(
    ...     f" real_server 10.0.1.{i} 80 {{\\n }}\\n" for i in range(1, 9)) + "}\\n").config
    >>> views = [check_view(c, k, 3) for k in range(3)]
    >>> sorted(rs.address for v in views for _vs, rs in v.pairs()) == \\
    ...     sorted(rs.address for rs in c.virtual_servers[0].real_servers)
    True
    >>> [len(v.real_servers) for v in views[0].virtual_servers]
    [0]
    """
    chunks = []
    for index, vs in enumerate(config.virtual_servers):
        mine = [rs for rs in vs.real_servers if shard_of(rs, shards) == shard]
        chunks += [(index, pickle.dumps(tuple(mine[i:i + CHUNK]), pickle.HIGHEST_PROTOCOL))
                   for i in range(0, len(mine), CHUNK)]
    return ShardView(without_real_servers(config), tuple(chunks))


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
