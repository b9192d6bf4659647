"""The director's BGP and BFD sessions, as its FRR sees them (issue 18: status).

An announced VIP only reaches the routers over a BGP session that is Established, and
a director that dies silently only leaves the routers' multipath quickly through BFD.
So the operator needs both next to the announcement states: ``hafast status`` lists
each configured neighbor under ``fleet_sessions``, ``/metrics`` has them, and every
change is logged (a session that drops is a warning).

FRR is asked, never told: ``show bgp neighbors json`` every :data:`POLL_S` seconds, on
bgpd's vty socket (:mod:`hafast.fleet.bgpdvty`; the loop never waits on it).
That one answer holds both: the session's FSM state (RFC 4271 §8.2.2) and, for a
neighbor with ``bfd``, bgpd's view of the BFD session (``peerBfdInfo.status``, RFC 5880
§6.2 states), so the two cannot disagree by having been read at different times.
Measured (FRR 8.4.4): under a millisecond on the socket, against 35 ms of wall time
(and about a second of CPU in the emulated IPVS VM) for starting vtysh to ask it.

A neighbor FRR does not list (bgpd not running yet, or a config it has not loaded) is
``None``; a failed read keeps nothing stale: every state goes ``None`` and the error is
logged once until a read succeeds again.

The parser is pure (tests/unit/fleet/test_sessions.py, on answers recorded from FRR
8.4.4); the netns test reads the status of a daemon beside a real FRR
(tests/netns/test_fleet_bgp.py).

Example::

    >>> text = '{"10.0.1.1": {"remoteAs": 65000, "bgpState": "Established",'
    >>> text += ' "bgpTimerUpMsec": 3000, "peerBfdInfo": {"status": "Up"}}}'
    >>> parse_neighbors(text)["10.0.1.1"]
    Session(bgp='Established', up_s=3.0, bfd='up', last_reset=None, drops=0)
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hafast.config import model as m
from hafast.fleet import bgpdvty

log = logging.getLogger("hafast.fleet")

POLL_S = 5.0  # a read's age at most; a scrape every 15 s sees it
READ_TIMEOUT_S = 10.0  # a bgpd that does not answer by then (stuck): the read failed
NEIGHBORS = "show bgp neighbors json"
ESTABLISHED = "Established"


@dataclass(frozen=True, slots=True)
class Session:
    """One neighbor as bgpd reported it."""

    bgp: str  # RFC 4271 §8.2.2: Idle, Connect, Active, OpenSent, OpenConfirm, Established
    up_s: float | None  # seconds Established, None when not
    bfd: str | None  # "up", "down", "init", "adminDown"; None when BFD is not on
    last_reset: str | None  # bgpd's reason for the last reset, None if never
    drops: int  # times the session left Established since bgpd started


def _bfd(info: Any) -> str | None:
    if not isinstance(info, dict) or not isinstance(info.get("status"), str):
        return None
    status = info["status"]
    # bgpd capitalises ("Up", "Down"); bfdd's own answers and RFC 5880 do not
    return {"Up": "up", "Down": "down", "Init": "init", "Unknown": None}.get(status, status)


def parse_neighbors(text: str) -> dict[str, Session]:
    """``show bgp neighbors json`` -> neighbor address -> :class:`Session`; raises
    ValueError on an answer that is not that command's JSON."""
    doc = json.loads(text)  # a JSONDecodeError is a ValueError
    if not isinstance(doc, dict):
        raise ValueError("show bgp neighbors json: not an object")
    out = {}
    for addr, n in doc.items():
        if not isinstance(n, dict) or not isinstance(n.get("bgpState"), str):
            continue  # not a neighbor entry
        up = n.get("bgpTimerUpMsec") if n["bgpState"] == ESTABLISHED else None
        reset, dropped = n.get("lastResetDueTo"), n.get("connectionsDropped")
        out[addr] = Session(
            bgp=n["bgpState"],
            up_s=up / 1000 if isinstance(up, int) else None,
            bfd=_bfd(n.get("peerBfdInfo")),
            last_reset=reset if isinstance(reset, str) else None,
            drops=dropped if isinstance(dropped, int) else 0)
    return out


Read = Callable[[Any, list[str]], Any]  # (bgpd's socket, commands) -> awaitable answers


async def read_bgpd(path: Any, commands: list[str]) -> list[str]:
    """The answers of the bgpd on vty socket ``path``; raises OSError with what went
    wrong (:mod:`hafast.fleet.bgpdvty`)."""
    return await bgpdvty.ask(path, commands, READ_TIMEOUT_S)


class SessionWatch:
    """Reads the sessions every :data:`POLL_S` seconds while started; logs changes.

    ``read`` is the seam: the daemon and the runner use :func:`read_bgpd`, the unit
    tests a function that returns recorded answers."""

    def __init__(self, loop: Any, speaker: m.BgpSpeaker, read: Read = read_bgpd) -> None:
        self.loop = loop
        self.speaker = speaker
        self.read = read
        self.sessions: dict[str, Session] = {}
        self.error: str | None = None
        self.read_at: float | None = None  # loop time of the last good read
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = self.loop.create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def reconfigure(self, speaker: m.BgpSpeaker) -> None:
        """A reload: the next read uses the new pathspace and lists the new neighbors."""
        self.speaker = speaker

    async def _run(self) -> None:
        while True:
            await self.poll()
            await asyncio.sleep(POLL_S)

    async def poll(self) -> None:
        try:
            answers = await self.read(bgpdvty.socket_path(self.speaker), [NEIGHBORS])
            got = parse_neighbors(answers[0])
        except (OSError, ValueError) as exc:
            if str(exc) != self.error:
                log.warning("BGP sessions: cannot read them from FRR (%s)", exc)
            self.error, self.sessions = str(exc), {}
            return
        if self.error is not None:
            log.info("BGP sessions: read from FRR again")
        self.error, self.read_at = None, self.loop.time()
        self._log_changes(self.sessions, got)
        self.sessions = got

    def _log_changes(self, before: dict[str, Session], after: dict[str, Session]) -> None:
        for n in self.speaker.neighbors:
            old, new = before.get(n.address), after.get(n.address)
            if new is None or (old is not None and (old.bgp, old.bfd) == (new.bgp, new.bfd)):
                continue
            if old is None:
                log.info("BGP session %s: %s%s", n.address, new.bgp,
                         f", BFD {new.bfd}" if n.bfd else "")
                continue
            if old.bgp != new.bgp:
                leaving = old.bgp == ESTABLISHED
                (log.warning if leaving else log.info)(
                    "BGP session %s: %s -> %s%s", n.address, old.bgp, new.bgp,
                    f" ({new.last_reset})" if leaving and new.last_reset else "")
            if n.bfd and old.bfd != new.bfd:
                (log.warning if old.bfd == "up" else log.info)(
                    "BFD session %s: %s -> %s", n.address, old.bfd, new.bfd)

    def status(self) -> list[dict[str, Any]]:
        """Each configured neighbor: its BGP state, seconds Established, whether it has
        ``bfd`` and the BFD state, drops, and how old the read is (None: no good read);
        a state FRR did not report is None."""
        age = (round(self.loop.time() - self.read_at, 1)
               if self.read_at is not None and self.error is None else None)
        return [_neighbor_status(n, self.sessions.get(n.address), age, self.error)
                for n in self.speaker.neighbors]


def _neighbor_status(n: m.BgpNeighbor, s: Session | None, age: float | None,
                     error: str | None) -> dict[str, Any]:
    return {"neighbor": n.address, "remote_as": n.remote_as,
            "bgp": s.bgp if s else None,
            "up_s": s.up_s if s else None,
            "bfd_on": n.bfd, "bfd": s.bfd if s and n.bfd else None,
            "drops": s.drops if s else None,
            "read_age_s": age, "error": error}

