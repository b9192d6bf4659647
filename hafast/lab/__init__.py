"""The farm lab: real servers in network namespaces, one nginx, faults on command.

``python -m hafast.lab up 1000`` builds one for a person to try; tests and
benchmarks use :class:`Farm` as a context manager. See farm.py for the topology.
"""

from hafast.lab.farm import (
    BIG_PATH,
    FIXED_BODY,
    FIXED_PATH,
    Director,
    Farm,
    HttpReply,
    big_body,
    body_for,
    changed_body_for,
    cleanup_stale,
    http_get,
    md5_hex,
)
from hafast.lab.faults import FAULT_PORTS, KINDS, FaultError, Faults
from hafast.lab.netns import Registry, call_in, list_netns, run_in, socket_in

__all__ = [
    "BIG_PATH",
    "FAULT_PORTS",
    "FIXED_BODY",
    "FIXED_PATH",
    "KINDS",
    "Director",
    "Farm",
    "FaultError",
    "Faults",
    "HttpReply",
    "Registry",
    "big_body",
    "body_for",
    "call_in",
    "changed_body_for",
    "cleanup_stale",
    "http_get",
    "list_netns",
    "md5_hex",
    "run_in",
    "socket_in",
]
