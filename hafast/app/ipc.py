"""The parent<->worker pipe: length-prefixed pickles of ``(kind, payload)``.

Both ends are this program (which is why pickles are safe here).  Messages are
``(kind, payload)`` tuples:

==========  ======================  ==============================================
direction   kind                    payload
==========  ======================  ==============================================
down        init                    role, shard, shards, Config, seed, options
down        ping / pong (up)        sequence number; the heartbeat (issue #2523);
                                    the VRRP worker's pong adds {instance: when
                                    its last advert went out} for each MASTER
down        status / status (up)    request id / (request id, status dict)
down        reload                  new Config, seed
down        stop                    none (SIGTERM does the same)
down        clear_stats             none (STATS_CLEAR: VRRP counters to zero)
up          ready                   pid (the worker's loop runs: start-up measured)
up          events                  list of ServerEvent
up          vrrp                    {instance: (state word, priority)}
up          vrrp_rx_error           an advert an instance rejected for a reason
                                    keepalived sends an SNMP trap for (dict,
                                    hafast.vrrp.side.VrrpSide._rx_error)
==========  ======================  ==============================================
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import struct
from typing import Any

log = logging.getLogger("hafast")


VRRP = "vrrp"
CHECK = "check"

_HEADER = struct.Struct("!I")
MAX_MESSAGE = 256 * 1024 * 1024  # a Config of 37,000 real servers is a few MB


def encode(kind: str, payload: object = None) -> bytes:
    """One message on the parent<->worker pipe.

    >>> decode_body(encode("ping", 3)[4:])
    ('ping', 3)
    """
    body = pickle.dumps((kind, payload), protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


def decode_body(body: bytes) -> tuple[str, Any]:
    kind, payload = pickle.loads(body)
    return str(kind), payload


async def read_message(reader: asyncio.StreamReader) -> tuple[str, Any] | None:
    """The next message, or None at end of stream."""
    try:
        head = await reader.readexactly(_HEADER.size)
        (n,) = _HEADER.unpack(head)
        if n > MAX_MESSAGE:
            raise ValueError(f"message of {n} bytes")
        return decode_body(await reader.readexactly(n))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
