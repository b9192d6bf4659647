"""Link state and interface facts for the VRRP worker.

Link state comes from RTNL link events: a plain NETLINK_ROUTE socket bound to
RTMGRP_LINK, read from the loop (pyroute2 0.9's asyncio sockets cannot run on
uvloop).  Each event re-reads the watched links' flags (SIOCGIFFLAGS: IFF_UP and
IFF_RUNNING), and a slow poll backs the events up.

The interface facts VRRP needs at start-up (index, MAC, primary IPv4 address,
IPv6 link-local) come from ioctl / procfs, again without netlink.

Example::

    watch = LinkWatch(loop)
    watch.watch("eth0", lambda up: print("eth0", "up" if up else "down"))
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import socket
import struct
from collections.abc import Callable
from pathlib import Path

from hafast.lib import netlink
from hafast.lib.netlink import RTM_DELLINK, RTM_NEWLINK

IFF_UP = 0x1  # linux/if.h
IFF_RUNNING = 0x40  # linux/if.h: operstate up (carrier)
SIOCGIFFLAGS = 0x8913  # linux/sockios.h
SIOCGIFHWADDR = 0x8927
SIOCGIFADDR = 0x8915  # linux/sockios.h: the interface's primary IPv4 address
# thread-self, not /proc/net (= the thread group leader's): correct also on a thread
# that entered another namespace with setns(2).
IF_INET6 = Path("/proc/thread-self/net/if_inet6")
RTMGRP_LINK = 0x1  # linux/rtnetlink.h

log = logging.getLogger("hafast.vrrp")


def _ifreq(ifname: str, request: int) -> bytes | None:
    # ioctls, not sysfs: /sys shows the namespace that mounted it, which under
    # `nsenter --net` is the host's, while an ioctl follows the socket's namespace.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16s24x", ifname.encode()[:15])
        try:
            return bytes(fcntl.ioctl(s.fileno(), request, req))
        except OSError:
            return None


def link_is_up(ifname: str) -> bool:
    """Administratively up and running (carrier); a missing interface is down.

    >>> link_is_up("lo")
    True
    """
    res = _ifreq(ifname, SIOCGIFFLAGS)
    if res is None:
        return False
    flags = struct.unpack_from("H", res, 16)[0]
    return bool(flags & IFF_UP) and bool(flags & IFF_RUNNING)


def mac_address(ifname: str) -> bytes:
    """The interface's hardware address (6 bytes); raises OSError when it has none."""
    res = _ifreq(ifname, SIOCGIFHWADDR)
    if res is None:
        raise OSError(f"no hardware address for {ifname}")
    return res[18:24]


def primary_ipv4(ifname: str) -> bytes | None:
    """The primary IPv4 address of ``ifname`` (packed), or None.

    >>> primary_ipv4("lo")
    b'\\x7f\\x00\\x00\\x01'
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16s16x", ifname.encode()[:15])
        try:
            res = fcntl.ioctl(s.fileno(), SIOCGIFADDR, req)
        except OSError:
            return None
    return bytes(res[20:24])


def ipv6_link_local(ifname: str) -> bytes | None:
    """The first non-tentative IPv6 link-local address of ``ifname`` (packed), or None."""
    try:
        lines = IF_INET6.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        # address ifindex prefixlen scope flags name; scope 0x20 = link, flag 0x40 = tentative
        if len(parts) == 6 and parts[5] == ifname and int(parts[3], 16) == 0x20:
            if not int(parts[4], 16) & 0x40:
                return bytes.fromhex(parts[0])
    return None


def _exists(ifname: str) -> bool:
    try:
        socket.if_nametoindex(ifname)
    except OSError:
        return False
    return True


class LinkWatch:
    """Reports link state changes of watched interfaces.

    RTNL link events (RTMGRP_LINK on a plain netlink socket read from the loop)
    trigger an immediate re-check of the watched interfaces; a slow poll every
    ``interval`` seconds backs it up, so a lost event (ENOBUFS) only delays a
    change, never hides it.  Without a netlink socket the poll alone runs.

    ``interface_up_down_delays`` (:meth:`set_delays`): as keepalived 2.2.7's
    update_interface_flags, a change of a link that has been up once is reported
    only after its delay (down or up), and not at all when the link is back as it
    was before the delay ends ("Delay timer for IF cancelled"); a link seen down
    since it appeared (or since it was deleted) changes at once.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = 1.0) -> None:
        self._loop = loop
        self._interval = interval
        self._watchers: dict[str, list[Callable[[bool], None]]] = {}
        self._state: dict[str, bool] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._nl: socket.socket | None = None
        self.events = 0
        self._delays: dict[str, tuple[float, float]] = {}  # ifname -> (down, up) seconds
        self._pending: dict[str, tuple[bool, asyncio.TimerHandle]] = {}
        self._seen_up: set[str] = set()

    def set_delays(self, delays: dict[str, tuple[float, float]]) -> None:
        """``{ifname: (down_delay, up_delay)}`` in seconds; replaces the previous
        ones (a change already waiting keeps the delay it was given)."""
        self._delays = dict(delays)

    def _open_events(self) -> None:
        try:
            nl = netlink.event_socket(RTMGRP_LINK)
        except OSError:
            return  # polling alone
        self._nl = nl
        self._loop.add_reader(nl.fileno(), self._on_event)

    def watch(self, ifname: str, callback: Callable[[bool], None]) -> bool:
        """Call ``callback(up)`` on every change of ``ifname``; returns the state now."""
        self._watchers.setdefault(ifname, []).append(callback)
        up = self._state.setdefault(ifname, link_is_up(ifname))
        if up:
            self._seen_up.add(ifname)
        if self._handle is None:
            self._open_events()
            self._handle = self._loop.call_later(self._interval, self._poll)
        return up

    def is_up(self, ifname: str) -> bool:
        return self._state.get(ifname, link_is_up(ifname))

    def _on_event(self) -> None:
        if self._nl is None:
            return

        def note(data: bytes) -> None:
            # Any RTM_NEWLINK/DELLINK: re-read the watched links (a handful of ioctls)
            # rather than decode which one it was.
            if {m.kind for m in netlink.messages(data)} & {RTM_NEWLINK, RTM_DELLINK}:
                self.events += 1

        # Lost events (ENOBUFS) or a read error: the re-check below covers them.
        netlink.drain(lambda: self._nl, note)
        self._check()

    def _check(self) -> None:
        for ifname in list(self._watchers):
            self._consider(ifname, link_is_up(ifname))

    def _consider(self, ifname: str, up: bool) -> None:
        pending = self._pending.get(ifname)
        if pending is not None:
            if pending[0] == up:
                return  # already on its way
            pending[1].cancel()
            del self._pending[ifname]
            log.info("Delay timer for %s cancelled", ifname)
        if up == self._state.get(ifname):
            return
        delay = self._delays.get(ifname, (0.0, 0.0))[1 if up else 0]
        if delay and ifname in self._seen_up and (up or _exists(ifname)):
            log.info("%s: link %s, acted on in %g s (interface_up_down_delays)", ifname,
                     "up" if up else "down", delay)
            self._pending[ifname] = (up, self._loop.call_later(delay, self._report,
                                                               ifname, up))
            return
        self._report(ifname, up)

    def _report(self, ifname: str, up: bool) -> None:
        self._pending.pop(ifname, None)
        self._state[ifname] = up
        if up:
            self._seen_up.add(ifname)
        elif not _exists(ifname):
            self._seen_up.discard(ifname)  # keepalived forgets a deleted link's past
        for cb in self._watchers.get(ifname, []):
            cb(up)

    def _poll(self) -> None:
        self._check()
        self._handle = self._loop.call_later(self._interval, self._poll)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        for _up, timer in self._pending.values():
            timer.cancel()
        self._pending.clear()
        if self._nl is not None:
            netlink.close_watched(self._loop, self._nl)
            self._nl = None

