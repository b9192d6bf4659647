"""What of a Config the VRRP worker is sent (issue 16).

The supervised VRRP worker is started with, and reloaded with, :func:`vrrp_view` of
the parent's Config: the virtual servers (tens of thousands of real servers, each
with its checker), their groups, the SSL context and the BGP speaker belong to the
parent and the check workers.  Pickling, sending and unpickling them cost the VRRP
worker ~40 ms and ~3 MB at 10,000 real servers on every start, and its start-up is
what the parent's never-two-masters guard (``hafast.app.vipguard``) must fit in.

global_defs stays whole (notify FIFOs, scheduling, nftables, the mail alerts read
it).  Every start and every reload goes through this one function, so the
worker's reload diff compares view with view.
"""

from __future__ import annotations

from dataclasses import replace

from hafast.config.model import Config


def vrrp_view(config: Config) -> Config:
    """``config`` without what only the parent and the check side use.

    >>> from hafast.config.loader import load_text
    >>> c = load_text("virtual_server 10.0.0.1 80 {\\n real_server 10.0.1.1 80 {\\n}\\n}\\n").config
    >>> len(c.virtual_servers), len(vrrp_view(c).virtual_servers)
    (1, 0)
    >>> vrrp_view(c) == vrrp_view(vrrp_view(c))
    True
    """
    return replace(config, virtual_servers=(), virtual_server_groups=(), ssl=None,
                   bgp_speaker=None)
