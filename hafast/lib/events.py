"""Real-server transitions published by the check engine.

The pool policy (``lvs/policy.py``) consumes these; nothing here knows about IPVS.

Example::

    >>> e = ServerEvent(("addr", "10.0.0.1", 80, "TCP"), ("10.0.0.9", 80), DOWN, 1,
    ...                 "TCP_CHECK refused", 12.5)
    >>> e.up
    False
"""

from __future__ import annotations

from dataclasses import dataclass

UP = "UP"
DOWN = "DOWN"
WEIGHT = "WEIGHT"  # still up, its effective weight changed (misc_dynamic, FILE_CHECK)


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """One real server of one virtual server changed.

    ``virtual_server`` is ``VirtualServer.key``, ``real_server`` is
    ``RealServer.key``; ``weight`` is the weight the pool should now use (the
    configured one unless a dynamic checker set another); ``reason`` names the
    checker and its failure for DOWN (empty for UP); ``at`` is the loop's clock
    in seconds.
    """

    virtual_server: tuple[object, ...]
    real_server: tuple[str, int | None]
    state: str
    weight: int
    reason: str
    at: float

    @property
    def up(self) -> bool:
        return self.state != DOWN
