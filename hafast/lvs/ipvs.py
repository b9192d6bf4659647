"""The kernel's IPVS (LVS) as a pool backend: pyroute2 over generic netlink.

Why a thread: pyroute2's ``AsyncIPVS`` cannot run on uvloop (uvloop's datagram
transport refuses ``AF_NETLINK``: "cannot open a UDP handle, invalid family 16"),
and the daemon's loops are uvloop.  So the synchronous ``pyroute2.IPVS`` socket
lives on ONE worker thread (a single-thread executor: netlink sockets are not
shared between threads) and every call hops there; a batch of changes is one hop.
The thread is made from the loop's thread, so it is in the same network namespace.

Kernel facts this relies on (pyroute2 0.9.7, Linux 6.1, see IPVS-VM.md):

- ``IPVSDest`` defaults to direct routing; the forwarding method is always passed;
- ``"update"`` maps to a delete in pyroute2: edits use ``"set"``;
- a service add/edit must carry scheduler, flags, timeout AND netmask
  (ip_vs_ctl.c ip_vs_genl_parse_service: a "full entry" or EINVAL), fwmark ones too;
- for IPv6 the netmask attribute is the prefix length as a host-order u32
  (the kernel compares the raw ``__be32`` with 128), for IPv4 a dotted mask;
- errors: EEXIST (17) on a duplicate add, ESRCH (3) no such service, ENOENT (2) no
  such destination or unknown scheduler;
- ``from_message()`` fills fields it does not map with its own defaults, so a dump
  is read from the raw ``IPVS_SVC_ATTR_*`` / ``IPVS_DEST_ATTR_*`` attributes;
- the generic-netlink family does not autoload: ``modprobe ip_vs`` when it is missing.

Example (inside the IPVS VM)::

    backend = IpvsBackend()
    await backend.open()
    await backend.apply(diff(await backend.dump(), desired))
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from hafast.lvs.backend import (
    ADD_DEST,
    ADD_SERVICE,
    DEL_DEST,
    DEL_SERVICE,
    EDIT_DEST,
    EDIT_SERVICE,
    FWD_METHODS,
    FWD_NAMES,
    PROTOCOL_NAMES,
    PROTOCOLS,
    SVC_F_HASHED,
    BackendError,
    Change,
    Dest,
    Pool,
    Service,
    ServiceKey,
    Timeouts,
)

T = TypeVar("T")

# include/uapi/linux/ip_vs.h: IP_VS_CONN_F_FWD_MASK, the forwarding bits of conn_flags.
IP_VS_CONN_F_FWD_MASK = 0x0007
PROC_IP_VS = Path("/proc/net/ip_vs")
# Flag bits the kernel sets by itself and we never ask for.
_KERNEL_FLAGS = SVC_F_HASHED


class IpvsUnavailable(BackendError):
    """No IPVS in this kernel (or no permission): the nft backend is the way out."""


def _netmask_attr(family: int, prefix: int) -> str:
    """IPVS_SVC_ATTR_NETMASK as pyroute2's ip4addr text."""
    if family == 4:
        return socket.inet_ntoa(struct.pack("!I", (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF))
    return socket.inet_ntoa(struct.pack("=I", prefix))


def _netmask_prefix(family: int, text: str | None) -> int:
    if text is None:
        return 32 if family == 4 else 128
    raw = socket.inet_aton(text)
    if family == 4:
        return bin(struct.unpack("!I", raw)[0]).count("1")
    return int(struct.unpack("=I", raw)[0])


def modprobe_ip_vs() -> None:
    """Load ip_vs if its proc file is missing (the netlink family does not autoload)."""
    if PROC_IP_VS.exists():
        return
    try:
        subprocess.run(["modprobe", "ip_vs"], capture_output=True, timeout=60, check=False,
                       stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        pass


class IpvsBackend:
    """IPVS through pyroute2 on one worker thread; ``messages`` counts netlink requests."""

    name = "ipvs"

    def __init__(self, *, modprobe: bool = True) -> None:
        self.modprobe = modprobe
        self.messages = 0
        self.seconds = 0.0  # time spent in kernel calls (on the worker thread)
        self._executor: ThreadPoolExecutor | None = None
        self._sock: Any = None
        self._svc_cls: Any = None
        self._dest_cls: Any = None

    # -- thread plumbing ----------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise BackendError("IPVS backend is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def open(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="hafast-ipvs")
        await self._call(self._open_sync)

    def _open_sync(self) -> None:
        if self._sock is not None:
            return
        if self.modprobe and os.geteuid() == 0:
            modprobe_ip_vs()
        from pyroute2 import IPVS, IPVSDest, IPVSService
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            self._sock = IPVS()
        except NetlinkError as exc:
            raise IpvsUnavailable(f"no IPVS generic-netlink family ({exc}); is ip_vs "
                                  "built for this kernel?") from exc
        self._svc_cls, self._dest_cls = IPVSService, IPVSDest

    async def close(self) -> None:
        if self._executor is None:
            return
        await self._call(self._close_sync)
        self._executor.shutdown(wait=True)
        self._executor = None

    def _close_sync(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # -- conversions --------------------------------------------------------------

    def _svc(self, svc: Service, *, full: bool = True) -> Any:
        k = svc.key
        fields: dict[str, Any] = {"af": socket.AF_INET6 if k.family == 6 else socket.AF_INET}
        if k.fwmark:
            fields["fwmark"] = k.fwmark
        else:
            fields.update(addr=k.address, port=k.port, protocol=PROTOCOLS[k.protocol])
        if full:
            fields.update(
                sched_name=svc.scheduler,
                flags={"flags": svc.flags, "mask": 0xFFFFFFFF},
                timeout=svc.timeout,
                netmask=_netmask_attr(k.family, svc.netmask),
            )
            if svc.pe_name:
                fields["pe_name"] = svc.pe_name
        return self._svc_cls(**fields)

    def _dest(self, d: Dest) -> Any:
        return self._dest_cls(
            addr=d.address, port=d.port, fwd_method=FWD_METHODS[d.method], weight=d.weight,
            u_thresh=d.uthreshold, l_thresh=d.lthreshold,
            addr_family=socket.AF_INET6 if ":" in d.address else socket.AF_INET)

    # -- one request, with the idempotent fallbacks -------------------------------

    def _req(self, fn: Callable[..., Any], *args: Any) -> Any:
        self.messages += 1
        return fn(*args)

    def _change_sync(self, c: Change) -> None:
        from pyroute2.netlink.exceptions import NetlinkError

        sock = self._sock
        try:
            if c.op in (ADD_SERVICE, EDIT_SERVICE):
                first, other = ("add", "set") if c.op == ADD_SERVICE else ("set", "add")
                try:
                    self._req(sock.service, first, self._svc(c.service))
                except NetlinkError as exc:
                    if exc.code not in (errno.EEXIST, errno.ESRCH):
                        raise
                    self._req(sock.service, other, self._svc(c.service))
            elif c.op == DEL_SERVICE:
                try:
                    self._req(sock.service, "del", self._svc(c.service, full=False))
                except NetlinkError as exc:
                    if exc.code not in (errno.ESRCH, errno.ENOENT):
                        raise
            elif c.op in (ADD_DEST, EDIT_DEST):
                assert c.dest is not None
                first, other = ("add", "set") if c.op == ADD_DEST else ("set", "add")
                svc = self._svc(c.service, full=False)
                try:
                    self._req(sock.dest, first, svc, self._dest(c.dest))
                except NetlinkError as exc:
                    if exc.code not in (errno.EEXIST, errno.ENOENT):
                        raise
                    self._req(sock.dest, other, svc, self._dest(c.dest))
            elif c.op == DEL_DEST:
                assert c.dest is not None
                try:
                    self._req(sock.dest, "del", self._svc(c.service, full=False),
                              self._dest(c.dest))
                except NetlinkError as exc:
                    if exc.code not in (errno.ENOENT, errno.ESRCH):
                        raise
        except NetlinkError as exc:
            hint = ""
            if exc.code == errno.ENOENT and c.op in (ADD_SERVICE, EDIT_SERVICE):
                # ip_vs_ctl.c: ip_vs_scheduler_get() failed (twos needs Linux 6.2).
                hint = f"; is there an ip_vs_{c.service.scheduler} module for this kernel?"
            raise BackendError(f"IPVS {c}: {os.strerror(exc.code)} (errno {exc.code}){hint}",
                               c) from exc

    def _apply_sync(self, changes: Sequence[Change]) -> int:
        t0 = time.perf_counter()
        try:
            for c in changes:
                self._change_sync(c)
        finally:
            self.seconds += time.perf_counter() - t0
        return len(changes)

    # -- the interface ------------------------------------------------------------

    async def apply(self, changes: Sequence[Change]) -> int:
        if not changes:
            return 0
        return await self._call(self._apply_sync, list(changes))

    async def ensure_service(self, service: Service) -> None:
        await self.apply([Change(ADD_SERVICE, service)])

    async def remove_service(self, service: Service) -> None:
        await self.apply([Change(DEL_SERVICE, service)])

    async def ensure_dest(self, service: Service, dest: Dest) -> None:
        await self.apply([Change(ADD_DEST, service, dest)])

    async def remove_dest(self, service: Service, dest: Dest) -> None:
        await self.apply([Change(DEL_DEST, service, dest)])

    async def dump(self) -> Pool:
        return await self._call(self._dump_sync)

    def _dump_sync(self) -> Pool:
        pool = Pool()
        for msg in self._req(self._sock.service, "dump"):
            svc = service_from_attrs(msg.get_attr("IPVS_CMD_ATTR_SERVICE"))
            if svc is None:
                continue
            dests = [dest_from_attrs(d.get_attr("IPVS_CMD_ATTR_DEST"))
                     for d in self._req(self._sock.dest, "dump", self._svc(svc, full=False))]
            pool.add(svc, dests)
        return pool

    async def flush(self) -> None:
        from pyroute2.netlink.generic.ipvs import IPVS_CMD_FLUSH

        await self._call(self._req, self._sock.service, IPVS_CMD_FLUSH)

    async def set_timeouts(self, timeouts: Timeouts) -> None:
        await self._call(self._timeouts_sync, timeouts)

    def _timeouts_sync(self, timeouts: Timeouts) -> None:
        from pyroute2.netlink.generic import ipvs as g

        # pyroute2 types the timeouts "hex" (raw bytes); the kernel reads u32 seconds
        # (ip_vs_ctl.c ip_vs_genl_set_config), so they go as host-order u32 bytes.
        msg = g.ipvsmsg()
        msg["cmd"] = g.IPVS_CMD_SET_CONFIG
        msg["version"] = g.GENL_VERSION
        msg["attrs"] = [(name, struct.pack("=I", value)) for name, value in (
            ("IPVS_CMD_ATTR_TIMEOUT_TCP", timeouts.tcp),
            ("IPVS_CMD_ATTR_TIMEOUT_TCP_FIN", timeouts.tcpfin),
            ("IPVS_CMD_ATTR_TIMEOUT_UDP", timeouts.udp)) if value]
        if not msg["attrs"]:
            return
        sock = self._sock
        self._req(sock._run_with_cleanup, sock.asyncore._do_request, msg, 0x5)  # REQUEST|ACK

    async def get_timeouts(self) -> Timeouts:
        return await self._call(self._get_timeouts_sync)

    def _get_timeouts_sync(self) -> Timeouts:
        from pyroute2.netlink.generic import ipvs as g

        msg = g.ipvsmsg()
        msg["cmd"] = g.IPVS_CMD_GET_CONFIG
        msg["version"] = g.GENL_VERSION
        sock = self._sock
        reply = self._req(sock._run_with_cleanup, sock.asyncore._do_request, msg, 0x1)
        values = []
        for name in ("IPVS_CMD_ATTR_TIMEOUT_TCP", "IPVS_CMD_ATTR_TIMEOUT_TCP_FIN",
                     "IPVS_CMD_ATTR_TIMEOUT_UDP"):
            raw = reply[0].get_attr(name) if reply else None
            values.append(_hex_u32(raw))
        return Timeouts(*values)


def _hex_u32(raw: Any) -> int:
    """pyroute2 gives "hex" attributes as '84:03:00:00'; host-order u32."""
    if not raw:
        return 0
    data = bytes(int(x, 16) for x in str(raw).split(":")) if ":" in str(raw) else bytes(raw)
    return int(struct.unpack("=I", data[:4])[0])


def service_from_attrs(attrs: Any) -> Service | None:
    """A dumped service from its raw IPVS_SVC_ATTR_* attributes (None: a protocol
    this model does not know)."""
    get = attrs.get_attr
    family = 6 if get("IPVS_SVC_ATTR_AF") == socket.AF_INET6 else 4
    fwmark = get("IPVS_SVC_ATTR_FWMARK") or 0
    if fwmark:
        key = ServiceKey(family, "", None, 0, fwmark)
    else:
        proto = PROTOCOL_NAMES.get(get("IPVS_SVC_ATTR_PROTOCOL") or 0)
        if proto is None:
            return None
        key = ServiceKey(family, proto, get("IPVS_SVC_ATTR_ADDR"), get("IPVS_SVC_ATTR_PORT") or 0)
    flags_attr = get("IPVS_SVC_ATTR_FLAGS") or {}
    flags = int(flags_attr.get("flags", 0)) & ~_KERNEL_FLAGS
    return Service(
        key,
        get("IPVS_SVC_ATTR_SCHED_NAME") or "",
        flags,
        get("IPVS_SVC_ATTR_TIMEOUT") or 0,
        _netmask_prefix(family, get("IPVS_SVC_ATTR_NETMASK")),
        get("IPVS_SVC_ATTR_PE_NAME") or None,
    )


def dest_from_attrs(attrs: Any) -> Dest:
    get = attrs.get_attr
    method = (get("IPVS_DEST_ATTR_FWD_METHOD") or 0) & IP_VS_CONN_F_FWD_MASK
    return Dest(
        get("IPVS_DEST_ATTR_ADDR"),
        get("IPVS_DEST_ATTR_PORT") or 0,
        get("IPVS_DEST_ATTR_WEIGHT") or 0,
        FWD_NAMES.get(method, "DR"),
        get("IPVS_DEST_ATTR_U_THRESH") or 0,
        get("IPVS_DEST_ATTR_L_THRESH") or 0,
    )
