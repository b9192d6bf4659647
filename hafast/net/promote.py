"""``promote_secondaries``: the interface sysctl keepalived sets for an instance.

Without ``net.ipv4.conf.IF.promote_secondaries``, deleting the primary IPv4 address
of a subnet deletes every secondary one in it: a VIP in the interface's own subnet
that goes when its instance leaves MASTER can take the other VIPs of that subnet
with it.  keepalived 2.2.7 (``vrrp_if_config.c set_promote_secondaries``) sets it
to 1 when it builds an instance that asks for it (not under ``-t``, not for a VMAC,
which gets it anyway), unless it is 1 already; at exit
(``shutdown_vrrp_instances``) it sets it back to 0 on the interfaces it changed,
and only those.  :class:`PromoteSecondaries` does the same.

The sysctl is a file of the network namespace the process runs in; writing it costs
a few microseconds, once per interface at start and at stop, off any advert path.

Example (root)::

    promote = PromoteSecondaries()
    promote.want("eth0")   # 1 now, unless it was already
    promote.restore()      # back to 0, if we set it
"""

from __future__ import annotations

import logging

log = logging.getLogger("hafast.vrrp")

SYSCTL = "/proc/sys/net/ipv4/conf/{}/promote_secondaries"


class PromoteSecondaries:
    """The interfaces whose promote_secondaries this process turned on."""

    def __init__(self, path: str = SYSCTL) -> None:
        self.path = path
        self.changed: list[str] = []

    def want(self, ifname: str) -> None:
        """Turn promote_secondaries on for ``ifname`` (an instance asked for it)."""
        if ifname in self.changed:
            return
        path = self.path.format(ifname)
        try:
            with open(path) as f:
                if f.read().strip() == "1":
                    return  # the administrator's: left as it is at exit too
            with open(path, "w") as f:
                f.write("1\n")
        except OSError as exc:
            log.warning("%s: cannot set promote_secondaries: %s", ifname, exc)
            return
        self.changed.append(ifname)

    def restore(self) -> None:
        """Set it back to 0 where :meth:`want` turned it on (the VRRP side's stop)."""
        for ifname in self.changed:
            try:
                with open(self.path.format(ifname), "w") as f:
                    f.write("0\n")
            except OSError as exc:  # the interface went away: nothing to restore
                log.info("%s: promote_secondaries not restored: %s", ifname, exc)
        self.changed.clear()
