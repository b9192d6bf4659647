"""The checker seam: a checker kind makes one probe attempt against one target and
reports one result.  Timing (delay_loop, warmup, retry, delay_before_retry), deadlines
and UP/DOWN state belong to ``check/runner.py``; a checker never touches IPVS.

Why callbacks and not coroutines: at 10,000 real servers with ``delay_loop 1`` a
sleeping Task costs about 1.9 KB and each ``asyncio.timeout`` wrapper 35-60 µs, while
a self-re-arming loop timer costs about 620 B.  So an attempt is started with a
``done`` callback, the runner owns the one deadline timer, and cancels the attempt
when the deadline passes.

A kind is registered once, with its descriptor
(:class:`hafast.config.kinds.CheckerKind`, docs/extending.md); :data:`REGISTRY` reads
the probes from there.

Example (a kind that always succeeds)::

    >>> class Always(ProbeKind):
    ...     keyword = "ALWAYS_UP"
    ...     def start(self, done):
    ...         done(ProbeResult(True))
    ...         return NO_ATTEMPT
    >>> got = []
    >>> _ = Always(None, Target("127.0.0.1", 80), None).start(got.append)
    >>> got[0].ok
    True
"""

from __future__ import annotations

import abc
import importlib
import logging
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from hafast._core import checkq
from hafast.config.kinds import KINDS, CheckerKind

log = logging.getLogger("hafast.check")


@dataclass(frozen=True, slots=True)
class Target:
    """Where a probe goes: the real server, with the checker's ``connect_*``/``bind*``
    options already applied (``connect_ip`` replaces the address, ...)."""

    address: str
    port: int | None = None
    bindto: str | None = None
    bind_port: int | None = None
    bind_if: str | None = None
    fwmark: int | None = None

    @property
    def family(self) -> int:
        return socket.AF_INET6 if ":" in self.address else socket.AF_INET

    @property
    def plain(self) -> bool:
        """No bind, mark or device option: a connect needs the address and port alone.

        >>> Target("10.0.0.1", 80).plain, Target("10.0.0.1", 80, fwmark=7).plain
        (True, False)
        """
        return (self.bindto is None and self.bind_port is None
                and self.bind_if is None and self.fwmark is None)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One attempt's outcome.

    ``reason`` is a stable short name (``timeout``, ``refused``, ``status``,
    ``digest``, ``exit``, ...) that becomes a failure counter; ``detail`` is the
    human text for the log.  ``weight`` is set by MISC_CHECK's ``misc_dynamic``.
    """

    ok: bool
    reason: str = ""
    detail: str = ""
    weight: int | None = None


TIMEOUT = ProbeResult(False, "timeout", "no answer before the deadline")

Done = Callable[[ProbeResult], None]


class Attempt(Protocol):
    """A probe in flight.  ``cancel()`` releases its resources and guarantees that
    ``done`` is not called afterwards; calling it twice is harmless."""

    def cancel(self) -> None: ...


# The attempt of a kind that finished at once: nothing to cancel (one object, made
# where the check that holds it lives).
NO_ATTEMPT: Attempt = checkq.NO_ATTEMPT


class ProbeKind(abc.ABC):
    """A checker kind bound to one checker spec and one target.

    ``start`` must not block the loop and must not raise: every failure becomes a
    ``ProbeResult(ok=False, ...)`` passed to ``done`` (exactly once, unless the
    attempt was cancelled first).
    """

    # Slots: a kind lives as long as its check, ten thousand of them per worker, and a
    # __dict__ would be the biggest part of each (subclasses may still add one).
    __slots__ = ("loop", "spec", "target")

    keyword: ClassVar[str]
    # True for kinds that read a state rather than probe (FILE_CHECK): no retries and
    # no alpha, the first reading is the truth (keepalived clears both for them).
    immediate: ClassVar[bool] = False

    def __init__(self, spec: Any, target: Target, loop: Any) -> None:
        # ``loop``: the worker's event loop (uvloop, asyncio), or a test's fake with
        # the same call_at/add_reader/add_writer methods; None for kinds that need none.
        self.spec = spec
        self.target = target
        self.loop = loop

    @abc.abstractmethod
    def start(self, done: Done) -> Attempt:
        """Begin one attempt; ``done`` is called exactly once unless cancelled."""

    def deadline_us(self) -> int:
        """How long the runner lets one attempt run (``connect_timeout`` by default)."""
        timeout: int = getattr(self.spec, "connect_timeout_us", 5_000_000)
        return timeout

    def on_deadline(self) -> ProbeResult:
        """The outcome of an attempt the runner cancelled at its deadline.

        A failure for almost every kind; UDP_CHECK without ``require_reply`` counts
        silence as success (keepalived: only an ICMP error means the port is shut).
        """
        return TIMEOUT

    def close(self) -> None:
        """Release what the kind holds across attempts (sockets, contexts)."""
        return None


class _Probes(Mapping[str, type[ProbeKind]]):
    """keyword -> probe class, read from the one registry of checker kinds
    (:data:`hafast.config.kinds.KINDS`), whose descriptors name their probe.

    A ``"module:Class"`` name is imported on first use, so a kind whose module cannot
    load (HTTP_GET without pycurl, say) costs a warning and leaves only its own real
    servers unchecked.  A probe class that does not set ``keyword`` gets the
    descriptor's.  Kinds without a probe (BFD_CHECK) are not in the mapping.
    """

    def __init__(self) -> None:
        self._resolved: dict[str, tuple[CheckerKind, type[ProbeKind] | None]] = {}

    def __getitem__(self, keyword: str) -> type[ProbeKind]:
        kind = KINDS[keyword]
        hit = self._resolved.get(keyword)
        if hit is None or hit[0] is not kind:  # first use, or the kind was re-registered
            hit = self._resolved[keyword] = (kind, _load(kind))
        if hit[1] is None:
            raise KeyError(keyword)
        return hit[1]

    def __iter__(self) -> Iterator[str]:
        return (keyword for keyword in list(KINDS) if keyword in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, keyword: object) -> bool:
        try:
            self[keyword]  # type: ignore[index]
        except KeyError:
            return False
        return True


def _load(kind: CheckerKind) -> type[ProbeKind] | None:
    probe = kind.probe
    if isinstance(probe, str):
        module, _, name = probe.partition(":")
        try:
            probe = getattr(importlib.import_module(module), name)
        except Exception as exc:  # a broken kind must not stop the others
            log.warning("%s unavailable: %s", kind.keyword, exc)
            return None
    if probe is None:
        return None
    if not (isinstance(probe, type) and issubclass(probe, ProbeKind)):
        raise TypeError(f"{kind.keyword}: probe {probe!r} is not a ProbeKind")
    declared = getattr(probe, "keyword", None)
    if declared is None:
        probe.keyword = kind.keyword
    elif declared != kind.keyword:
        raise ValueError(f"{kind.keyword}: probe {probe.__name__} says it is {declared}")
    return probe


# The probes of the registered checker kinds (the engine's default).
REGISTRY: Mapping[str, type[ProbeKind]] = _Probes()
