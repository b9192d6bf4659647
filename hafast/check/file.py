"""FILE_CHECK: a number another process writes into a file (a ``track_file``).

keepalived's rules (``check_file.c``, ``track_file.c``): the file holds an integer
(unreadable, missing or not a number reads as 0).  With ``weight 0`` a non-zero
value means DOWN (``reverse``: zero means DOWN).  Otherwise ``value × weight``
(negated with ``reverse``) is added to the real server's weight; a product at or
below IPVS_WEIGHT_FAULT means DOWN.

The file is read at every ``delay_loop`` (polling), not watched with inotify: a
change is seen within one delay_loop, which is the granularity of every other
checker too, and costs one small read per interval.

Example::

    >>> judge(0, 0, False, 5), judge(2, 0, False, 5).ok, judge(-2, 1, False, 5).weight
    (ProbeResult(ok=True, reason='', detail='', weight=None), False, 3)
"""

from __future__ import annotations

import re
from typing import Any

from hafast.check.api import NO_ATTEMPT, Attempt, Done, ProbeKind, ProbeResult

IPVS_WEIGHT_FAULT = -(2**31)  # keepalived: the product that means "fault"
IPVS_WEIGHT_MAX = 65535  # the kernel's u32 weight, kept to what ipvsadm accepts
_NUMBER = re.compile(rb"\s*([-+]?\d+)")


def read_value(path: str) -> int:
    """The integer at the start of ``path``; 0 when missing or not a number."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return 0
    m = _NUMBER.match(head)
    return int(m.group(1)) if m else 0


def judge(value: int, weight: int, reverse: bool, base_weight: int) -> ProbeResult:
    """The verdict for ``value`` under ``weight [reverse]`` on a server of ``base_weight``."""
    if weight == 0:
        if (value != 0) != reverse:
            return ProbeResult(False, "value", f"file value {value}")
        return ProbeResult(True)
    delta = value * weight * (-1 if reverse else 1)
    if delta <= IPVS_WEIGHT_FAULT:
        return ProbeResult(False, "value", f"file value {value} × weight {weight}: fault")
    if delta == 0:
        return ProbeResult(True)
    return ProbeResult(True, weight=max(0, min(IPVS_WEIGHT_MAX, base_weight + delta)))


class FileKind(ProbeKind):
    __slots__ = ("base_weight", "path")
    keyword = "FILE_CHECK"
    immediate = True

    def __init__(self, spec: Any, target: Any, loop: Any, *, path: str = "",
                 base_weight: int = 1) -> None:
        super().__init__(spec, target, loop)
        self.path = path
        self.base_weight = base_weight

    def start(self, done: Done) -> Attempt:
        done(judge(read_value(self.path), self.spec.weight, self.spec.weight_reverse,
                   self.base_weight))
        return NO_ATTEMPT
