"""A process and its descendants, found from the parent links in ``/proc/*/stat``.

The benchmarks sum CPU and memory over the daemon's tree (benchmarks/suite/daemon_run)
and the test suite renices the IPVS VM's qemu (tests/netns/ipvs_vm_job); both walk it
here, so there is one reading of the ``stat`` format (the name in parentheses may hold
spaces and ``)``, so fields are counted from the last ``)``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["children", "process_tree"]


def _children_of_all() -> dict[int, list[int]]:
    """Parent pid -> its children's, from one pass over ``/proc`` (a process that
    starts or exits during the pass may be missed, or listed though gone)."""
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # exited while we looked
        ppid = int(text[text.rindex(")") + 2:].split()[1])
        out.setdefault(ppid, []).append(int(entry))
    return out


def children(pid: int) -> list[int]:
    """The direct children of ``pid``."""
    return _children_of_all().get(pid, [])


def process_tree(root: int) -> list[int]:
    """``root`` first, then every descendant."""
    kids = _children_of_all()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, ()))
    return out
