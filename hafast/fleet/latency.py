"""How long an announcement or a withdrawal takes to leave the director (issue 18:
"announce/withdraw latency" in status and metrics).

The clock starts at the announcer's decision: the quorum change (a check verdict that
reached the announcer) that made it add or delete its kernel route.  It stops when
bgpd's Adj-RIB-Out (RFC 4271 §3.2: what bgpd has put out for each peer) agrees:

- an announcement: the prefix is advertised to every configured neighbor whose session
  is Established, and there is at least one;
- a withdrawal: it is advertised to none of them.

bgpd is asked both in one read on its vty socket (:mod:`hafast.fleet.bgpdvty`):
``show bgp neighbors json``, then ``show bgp ipv4 unicast PREFIX json`` for each prefix
being measured (so many changes at once cost one read): the sessions as
:mod:`hafast.fleet.sessions` reads them, and each prefix's ``advertisedTo``, the peers
it is out to (a prefix bgpd does not hold answers ``{}``).  Reads are made only while a
change is being measured: the first :data:`PROBE_GAP_S` after the change, each next
one twice as far from the last, at most :data:`PROBE_GAP_MAX_S` (about 24 reads for a
change that is never agreed).  The figure is the end of the first read that agreed, so
it is late by at most one read and one gap: 20-40 ms for the usual change, which bgpd
puts out in about 0.1 s (a read of three prefixes takes about a millisecond with FRR
8.4.4; 33 ms when each read started vtysh).  A change not agreed within
:data:`PROBE_LIMIT_S` is counted as ``unseen`` and logged (a bgpd that is not
running).  A change whose first read shows no configured neighbor Established (a
director starting up, its up-link down) is not measured further: there is nobody to
put it out to (``skipped``).

What it does not see: the wire and the router's own work.  The router's table is the
judge of the whole path in tests/netns/test_fleet_bgp.py and the fleet benchmark.

Example::

    >>> up = '{"10.0.1.1": {"bgpState": "Established"}, "10.0.9.1": {"bgpState": "Active"}}'
    >>> out = '{"prefix": "192.0.2.1/32", "advertisedTo": {"10.0.1.1": {}}}'
    >>> parse_read([up, out, '{}'])
    ({'10.0.1.1'}, [{'10.0.1.1'}, set()])
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hafast.config import model as m
from hafast.fleet import bgpdvty
from hafast.fleet.sessions import ESTABLISHED, NEIGHBORS, Read, parse_neighbors, read_bgpd

log = logging.getLogger("hafast.fleet")

ANNOUNCE, WITHDRAW = "announce", "withdraw"
PROBE_GAP_S = 0.02  # the first read after a change: the usual figure's resolution
PROBE_GAP_MAX_S = 0.5  # the gaps double up to this: a slow change costs few reads
PROBE_LIMIT_S = 10.0  # a change bgpd has not put out by then is counted unseen
MAX_PER_READ = 32  # prefixes asked in one read (one command each)


@dataclass(slots=True)
class Tally:
    """One prefix's measured changes in one direction."""

    count: int = 0
    sum_s: float = 0.0
    max_s: float = 0.0
    last_s: float = 0.0

    def add(self, took: float) -> None:
        self.count += 1
        self.sum_s += took
        self.max_s = max(self.max_s, took)
        self.last_s = took

    def status(self) -> dict[str, Any]:
        return {"last_s": round(self.last_s, 3), "count": self.count,
                "sum_s": round(self.sum_s, 3), "max_s": round(self.max_s, 3)}


@dataclass(frozen=True, slots=True)
class Pending:
    prefix: str
    direction: str  # ANNOUNCE or WITHDRAW
    decided_at: float  # loop time


def show_commands(prefixes: list[str]) -> list[str]:
    """One read's commands: bgpd's sessions, then each prefix."""
    out = [NEIGHBORS]
    for prefix in prefixes:
        afi = "ipv6" if ipaddress.ip_network(prefix, strict=False).version == 6 else "ipv4"
        out.append(f"show bgp {afi} unicast {prefix} json")
    return out


def parse_read(answers: list[str]) -> tuple[set[str], list[set[str]]]:
    """bgpd's answers to :func:`show_commands` -> the neighbors whose session is
    Established, and for each prefix the peers it is advertised to; raises ValueError
    on an answer that is not that."""
    established = {addr for addr, s in parse_neighbors(answers[0]).items()
                   if s.bgp == ESTABLISHED}
    out: list[set[str]] = []
    for text in answers[1:]:
        doc = json.loads(text)  # a JSONDecodeError is a ValueError
        if not isinstance(doc, dict):
            raise ValueError("show bgp ... json: not an object")
        peers = doc.get("advertisedTo")
        out.append(set(peers) if isinstance(peers, dict) else set())
    return established, out


def agreed(direction: str, established: set[str], peers: set[str]) -> bool:
    """Has bgpd put the change out?  An announcement: to every configured neighbor
    whose session is Established (``established``), and there is one; a withdrawal:
    to none (a peer that is not Established has no Adj-RIB-Out to list).

    >>> agreed(ANNOUNCE, {"10.0.1.1"}, set()), agreed(ANNOUNCE, set(), set())
    (False, False)
    >>> agreed(WITHDRAW, {"10.0.1.1"}, set())
    True
    """
    if direction == ANNOUNCE:
        return bool(established) and established <= peers
    return not peers


class LatencyProbe:
    """Measures each change it is told of (:meth:`begin`) until bgpd agrees.

    ``read`` is the seam the unit tests fill with recorded answers.
    """

    def __init__(self, loop: Any, speaker: m.BgpSpeaker, read: Read = read_bgpd) -> None:
        self.loop = loop
        self.speaker = speaker
        self.read = read
        self.skipped: Counter[str] = Counter()  # changes made with no session up
        self.pending: dict[str, Pending] = {}
        self.tallies: dict[tuple[str, str], Tally] = {}
        self.unseen: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None
        self._error: str | None = None

    def reconfigure(self, speaker: m.BgpSpeaker) -> None:
        self.speaker = speaker

    def begin(self, prefix: str, direction: str) -> None:
        """The announcer has just added (ANNOUNCE) or deleted (WITHDRAW) the prefix's
        route; a change still being measured for it is superseded."""
        self.pending[prefix] = Pending(prefix, direction, self.loop.time())
        if self._task is None:
            self._task = self.loop.create_task(self._run())

    def cancel(self, prefix: str) -> None:
        """The prefix was drained or removed: its change is no longer measured."""
        self.pending.pop(prefix, None)

    def stop(self) -> None:
        self.pending.clear()
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        try:
            gap = PROBE_GAP_S
            await asyncio.sleep(gap)
            while self.pending:
                await self._read_once()
                if self.pending:
                    gap = min(gap * 2, PROBE_GAP_MAX_S)
                    await asyncio.sleep(gap)
        finally:
            self._task = None

    async def _read_once(self) -> None:
        batch = list(self.pending.values())[:MAX_PER_READ]
        try:
            established, answers = parse_read(await self.read(
                bgpdvty.socket_path(self.speaker), show_commands([p.prefix for p in batch])))
        except (OSError, ValueError) as exc:
            if str(exc) != self._error:
                log.warning("announce latency: cannot read bgpd's routes (%s)", exc)
            self._error = str(exc)
            self._expire(batch, "bgpd could not be read")
            return
        self._error = None
        configured = {n.address for n in self.speaker.neighbors}
        if not configured & established:  # nobody to put the changes out to
            for p in batch:
                if self.pending.get(p.prefix) is p:
                    del self.pending[p.prefix]
                    self.skipped[p.prefix] += 1
            return
        now = self.loop.time()
        for p, peers in zip(batch, answers, strict=True):
            if self.pending.get(p.prefix) is p and agreed(p.direction, configured
                                                          & established, peers):
                del self.pending[p.prefix]
                self.tallies.setdefault((p.prefix, p.direction), Tally()).add(
                    now - p.decided_at)
        self._expire(batch, "sessions Established: "
                     + (", ".join(sorted(configured & established)) or "none"))

    def _expire(self, batch: list[Pending], why: str) -> None:
        now = self.loop.time()
        for p in batch:
            if self.pending.get(p.prefix) is p and now - p.decided_at > PROBE_LIMIT_S:
                del self.pending[p.prefix]
                self.unseen[p.prefix] += 1
                log.warning("announce %s: bgpd had not put out the %s %.0f s after the "
                            "route changed (%s)", p.prefix, p.direction, PROBE_LIMIT_S, why)

    def status(self, prefix: str) -> dict[str, Any]:
        """The prefix's figures: per direction the last, count, sum and max seconds from
        the decision to bgpd's Adj-RIB-Out (None: none measured), ``unseen``,
        ``skipped`` (changes made while no session was Established: not measured), and
        ``measuring``: the direction being measured now, if any."""
        p = self.pending.get(prefix)
        return {**{d: (self.tallies[(prefix, d)].status()
                       if (prefix, d) in self.tallies else None)
                   for d in (ANNOUNCE, WITHDRAW)},
                "unseen": self.unseen[prefix],
                "skipped": self.skipped[prefix],
                "measuring": p.direction if p is not None else None}
