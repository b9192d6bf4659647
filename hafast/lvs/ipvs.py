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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hafast.lib import netlink, procopts
from hafast.lib.netlink import NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST
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
    """IPVS on one worker thread; ``messages`` counts netlink requests.

    ``engine="batch"`` (default) sends the changes and dumps through
    :class:`BatchLink` (hundreds of requests per sendmsg); ``engine="pyroute2"``
    makes one pyroute2 request per change.  Both read dumps from raw attributes.
    """

    name = "ipvs"
    ENGINES = ("batch", "pyroute2")

    def __init__(self, *, modprobe: bool = True, engine: str = "batch") -> None:
        if engine not in self.ENGINES:
            raise ValueError(f"IPVS engine '{engine}': expected one of {self.ENGINES}")
        self.modprobe = modprobe
        self.engine = engine
        self._link: BatchLink | None = None
        self._pr2_messages = 0
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
            # the kernel calls of every verdict: the parent's short slice
            # (hafast.lib.procopts.short_slice) on this thread too
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="hafast-ipvs",
                                                initializer=procopts.short_slice)
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
        if self.engine == "batch":
            self._link = BatchLink()

    @property
    def messages(self) -> int:
        return self._pr2_messages + (self._link.requests if self._link else 0)

    @property
    def sends(self) -> int:
        """sendmsg calls of the batch link (pyroute2 requests count one each)."""
        return self._pr2_messages + (self._link.sends if self._link else 0)

    async def release(self) -> None:
        """Nothing of ours beyond the services the manager removed: IPVS has no table."""

    async def close(self) -> None:
        if self._executor is None:
            return
        await self._call(self._close_sync)
        self._executor.shutdown(wait=True)
        self._executor = None

    def _close_sync(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None
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
        self._pr2_messages += 1
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
            if self._link is not None:
                self._link.apply(changes)
                return len(changes)
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
        # The kernel lists a service's destinations newest first; a Pool holds
        # them oldest first (its docstring), hence the reversed() below.
        pool = Pool()
        if self._link is not None:
            for attrs in self._link.dump(CMD_GET_SERVICE):
                nested = attrs.get(CMD_ATTR_SERVICE)
                svc = decode_service(netlink.parse_attrs(nested)) if nested is not None else None
                if svc is None:
                    continue
                payload = netlink.attr(CMD_ATTR_SERVICE, _svc_key_attrs(svc.key))
                dests = [decode_dest(netlink.parse_attrs(d[CMD_ATTR_DEST]))
                         for d in self._link.dump(CMD_GET_DEST, payload)
                         if CMD_ATTR_DEST in d]
                pool.add(svc, reversed(dests))
            return pool
        for msg in self._req(self._sock.service, "dump"):
            svc = service_from_attrs(msg.get_attr("IPVS_CMD_ATTR_SERVICE"))
            if svc is None:
                continue
            dests = [dest_from_attrs(d.get_attr("IPVS_CMD_ATTR_DEST"))
                     for d in self._req(self._sock.dest, "dump", self._svc(svc, full=False))]
            pool.add(svc, reversed(dests))
        return pool

    async def counters(self) -> dict[ServiceKey, ServiceCounters]:
        """Every service's IPVS counters and its destinations' (the checker MIB's
        statistics columns), dumped on the worker thread.  The pyroute2 engine reads
        none: an empty answer, which the MIB serves as zeros."""
        return await self._call(self._counters_sync)

    def _counters_sync(self) -> dict[ServiceKey, ServiceCounters]:
        out: dict[ServiceKey, ServiceCounters] = {}
        if self._link is None:
            return out
        for attrs in self._link.dump(CMD_GET_SERVICE):
            nested = attrs.get(CMD_ATTR_SERVICE)
            if nested is None:
                continue
            svc_attrs = netlink.parse_attrs(nested)
            svc = decode_service(svc_attrs)
            if svc is None:
                continue
            payload = netlink.attr(CMD_ATTR_SERVICE, _svc_key_attrs(svc.key))
            dests: dict[tuple[str, int], tuple[int, ...]] = {}
            for d in self._link.dump(CMD_GET_DEST, payload):
                if CMD_ATTR_DEST in d:
                    d_attrs = netlink.parse_attrs(d[CMD_ATTR_DEST])
                    dest = decode_dest(d_attrs)
                    dests[(dest.address, dest.port)] = decode_dest_counters(d_attrs)
            out[svc.key] = ServiceCounters(decode_stats(svc_attrs), dests)
        return out

    async def flush(self) -> None:
        if self._link is not None:
            await self._call(self._link.flush)
            return
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


# --------------------------------------------------------------------------- batches
#
# pyroute2's synchronous socket costs 9-13 ms a request inside the TCG VM (about
# 0.6 ms on the host): an asyncio loop turn per request.  A 37,000-destination pool
# would take 6-9 minutes to converge that way; measured at 1,600 destinations in one
# boot, this path converges 63-84x faster (benchmarks/test_bench_ipvs.py, step 4).
# The batch link below encodes the same generic-netlink requests with struct, sends
# hundreds of them in one sendmsg
# and reads the acks back, matching them by sequence number.  The attribute layout
# is include/uapi/linux/ip_vs.h; the family id is resolved through the genl
# controller (include/uapi/linux/genetlink.h).

GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
GENLMSGHDR = struct.Struct("=BBH")  # cmd, version, reserved (linux/genetlink.h)

# include/uapi/linux/ip_vs.h enum ipvs_cmd_attributes / svc / dest attributes.
CMD_ATTR_SERVICE, CMD_ATTR_DEST = 1, 2
CMD_ATTR_TIMEOUT_TCP, CMD_ATTR_TIMEOUT_TCP_FIN, CMD_ATTR_TIMEOUT_UDP = 4, 5, 6
SVC_AF, SVC_PROTOCOL, SVC_ADDR, SVC_PORT, SVC_FWMARK = 1, 2, 3, 4, 5
SVC_SCHED_NAME, SVC_FLAGS, SVC_TIMEOUT, SVC_NETMASK, SVC_PE_NAME = 6, 7, 8, 9, 11
DEST_ADDR, DEST_PORT, DEST_FWD_METHOD, DEST_WEIGHT = 1, 2, 3, 4
DEST_U_THRESH, DEST_L_THRESH, DEST_ADDR_FAMILY = 5, 6, 11
DEST_ACTIVE_CONNS, DEST_INACT_CONNS, DEST_PERSIST_CONNS = 7, 8, 9
# IPVS_SVC_ATTR_STATS / _STATS64 and IPVS_DEST_ATTR_STATS / _STATS64 share the numbers
ATTR_STATS, ATTR_STATS64 = 10, 12
# enum ipvs_stats_attributes 1..10 as IPVS_*_ATTR_STATS writes them: conns, in/out
# packets, in/out bytes, then the rates cps, in/out pps, in/out bps.  Under
# IPVS_*_ATTR_STATS64 every one is a u64.
_STATS32_FORMATS = ("=I", "=I", "=I", "=Q", "=Q", "=I", "=I", "=I", "=I", "=I")
CMD_NEW_SERVICE, CMD_SET_SERVICE, CMD_DEL_SERVICE, CMD_GET_SERVICE = 1, 2, 3, 4
CMD_NEW_DEST, CMD_SET_DEST, CMD_DEL_DEST, CMD_GET_DEST = 5, 6, 7, 8
CMD_SET_CONFIG, CMD_GET_CONFIG, CMD_FLUSH = 12, 13, 17
IPVS_GENL_VERSION = 1
# The connection sync daemon: enum ipvs_cmd, IPVS_CMD_ATTR_DAEMON and enum
# ipvs_daemon_attributes of include/uapi/linux/ip_vs.h.
CMD_NEW_DAEMON, CMD_DEL_DAEMON, CMD_GET_DAEMON = 9, 10, 11
CMD_ATTR_DAEMON = 3
DAEMON_STATE, DAEMON_MCAST_IFN, DAEMON_SYNC_ID, DAEMON_SYNC_MAXLEN = 1, 2, 3, 4
DAEMON_MCAST_GROUP, DAEMON_MCAST_GROUP6, DAEMON_MCAST_PORT, DAEMON_MCAST_TTL = 5, 6, 7, 8
IP_VS_STATE_MASTER, IP_VS_STATE_BACKUP = 1, 2
DAEMON_STATES = {"master": IP_VS_STATE_MASTER, "backup": IP_VS_STATE_BACKUP}
IP_VS_IFNAME_MAXLEN = 16  # with its NUL

# One table: (op, first try) -> the command, and the command to retry with on the
# error that says "the other one" (an add that exists becomes a set, and back).
_COMMANDS: dict[str, tuple[int, int | None, tuple[int, ...]]] = {
    ADD_SERVICE: (CMD_NEW_SERVICE, CMD_SET_SERVICE, (errno.EEXIST,)),
    EDIT_SERVICE: (CMD_SET_SERVICE, CMD_NEW_SERVICE, (errno.ESRCH,)),
    DEL_SERVICE: (CMD_DEL_SERVICE, None, (errno.ESRCH, errno.ENOENT)),
    ADD_DEST: (CMD_NEW_DEST, CMD_SET_DEST, (errno.EEXIST,)),
    EDIT_DEST: (CMD_SET_DEST, CMD_NEW_DEST, (errno.ENOENT,)),
    DEL_DEST: (CMD_DEL_DEST, None, (errno.ENOENT, errno.ESRCH)),
}
# Requests per sendmsg: the acks of one batch (36 bytes each) must fit the socket's
# receive buffer with room to spare.
BATCH = 256


# The framing is hafast.lib.netlink's; these two names stay for the VM benchmark's poller
# (benchmarks/suite/vm_checkers.py), which reads IPVS through this module.
_nla = netlink.attr
_parse_attrs = netlink.parse_attrs


def _addr16(address: str, family: int) -> bytes:
    raw = socket.inet_pton(socket.AF_INET6 if family == 6 else socket.AF_INET, address)
    return raw.ljust(16, b"\0")  # union nf_inet_addr


def _svc_key_attrs(key: ServiceKey) -> bytes:
    af = socket.AF_INET6 if key.family == 6 else socket.AF_INET
    out = netlink.attr(SVC_AF, struct.pack("=H", af))
    if key.fwmark:
        return out + netlink.attr(SVC_FWMARK, struct.pack("=I", key.fwmark))
    return (out + netlink.attr(SVC_PROTOCOL, struct.pack("=H", PROTOCOLS[key.protocol]))
            + netlink.attr(SVC_ADDR, _addr16(key.address or "", key.family))
            + netlink.attr(SVC_PORT, struct.pack("!H", key.port)))


def _svc_attrs(svc: Service, full: bool) -> bytes:
    out = _svc_key_attrs(svc.key)
    if not full:
        return out
    if svc.key.family == 4:
        mask = struct.pack("!I", (0xFFFFFFFF << (32 - svc.netmask)) & 0xFFFFFFFF)
    else:
        mask = struct.pack("=I", svc.netmask)  # a prefix length, compared raw (see top)
    out += (netlink.attr(SVC_SCHED_NAME, svc.scheduler.encode() + b"\0")
            + netlink.attr(SVC_FLAGS, struct.pack("=II", svc.flags, 0xFFFFFFFF))
            + netlink.attr(SVC_TIMEOUT, struct.pack("=I", svc.timeout))
            + netlink.attr(SVC_NETMASK, mask))
    if svc.pe_name:
        out += netlink.attr(SVC_PE_NAME, svc.pe_name.encode() + b"\0")
    return out


# The whole nested IPVS_CMD_ATTR_DEST in one struct: seven attributes of fixed size
# (a 37,000-destination converge spends its Python time here).  The port is
# big-endian inside a native-endian attribute, so it is packed as two bytes.
_DEST_NESTED = struct.Struct(
    "=HH"  # IPVS_CMD_ATTR_DEST header
    "HH16s"  # ADDR (union nf_inet_addr)
    "HH2s2x"  # PORT (be16) + pad
    "HHI"  # FWD_METHOD
    "HHI"  # WEIGHT
    "HHI"  # U_THRESH
    "HHI"  # L_THRESH
    "HHH2x"  # ADDR_FAMILY + pad
)


def _dest_nested(d: Dest) -> bytes:
    """``netlink.attr(CMD_ATTR_DEST, _dest_attrs(d))``, packed at once."""
    v6 = ":" in d.address
    af = socket.AF_INET6 if v6 else socket.AF_INET
    return _DEST_NESTED.pack(
        _DEST_NESTED.size, CMD_ATTR_DEST,
        20, DEST_ADDR, socket.inet_pton(af, d.address),
        6, DEST_PORT, d.port.to_bytes(2, "big"),
        8, DEST_FWD_METHOD, FWD_METHODS[d.method],
        8, DEST_WEIGHT, d.weight,
        8, DEST_U_THRESH, d.uthreshold,
        8, DEST_L_THRESH, d.lthreshold,
        6, DEST_ADDR_FAMILY, af)


def _dest_attrs(d: Dest) -> bytes:
    return _dest_nested(d)[4:]


def _u(fmt: str, raw: memoryview | None, default: int = 0) -> int:
    return int(struct.unpack_from(fmt, raw)[0]) if raw is not None and len(raw) else default


def _str(raw: memoryview | None) -> str:
    return bytes(raw).split(b"\0", 1)[0].decode() if raw is not None else ""


def _addr_text(raw: memoryview | None, family: int) -> str:
    assert raw is not None
    if family == 6:
        return socket.inet_ntop(socket.AF_INET6, bytes(raw[:16]))
    return socket.inet_ntop(socket.AF_INET, bytes(raw[:4]))


def decode_service(attrs: dict[int, memoryview]) -> Service | None:
    family = 6 if _u("=H", attrs.get(SVC_AF)) == socket.AF_INET6 else 4
    fwmark = _u("=I", attrs.get(SVC_FWMARK))
    if fwmark:
        key = ServiceKey(family, "", None, 0, fwmark)
    else:
        proto = PROTOCOL_NAMES.get(_u("=H", attrs.get(SVC_PROTOCOL)))
        if proto is None:
            return None
        key = ServiceKey(family, proto, _addr_text(attrs.get(SVC_ADDR), family),
                         _u("!H", attrs.get(SVC_PORT)))
    raw_mask = attrs.get(SVC_NETMASK)
    if family == 4:
        netmask = bin(_u("!I", raw_mask, 0xFFFFFFFF)).count("1")
    else:
        netmask = _u("=I", raw_mask, 128)
    return Service(key, _str(attrs.get(SVC_SCHED_NAME)),
                   _u("=I", attrs.get(SVC_FLAGS)) & ~_KERNEL_FLAGS,
                   _u("=I", attrs.get(SVC_TIMEOUT)), netmask,
                   _str(attrs.get(SVC_PE_NAME)) or None)


def decode_dest(attrs: dict[int, memoryview]) -> Dest:
    family = 6 if _u("=H", attrs.get(DEST_ADDR_FAMILY)) == socket.AF_INET6 else 4
    method = _u("=I", attrs.get(DEST_FWD_METHOD)) & IP_VS_CONN_F_FWD_MASK
    return Dest(_addr_text(attrs.get(DEST_ADDR), family), _u("!H", attrs.get(DEST_PORT)),
                _u("=I", attrs.get(DEST_WEIGHT)), FWD_NAMES.get(method, "DR"),
                _u("=I", attrs.get(DEST_U_THRESH)), _u("=I", attrs.get(DEST_L_THRESH)))


def decode_stats(attrs: dict[int, memoryview]) -> tuple[int, ...]:
    """A service's or destination's ten counters (conns, inpkts, outpkts, inbytes,
    outbytes, cps, inpps, outpps, inbps, outbps): the 64-bit set when the kernel sends
    it (4.1 and later), else the older one whose packet counts and rates are 32-bit."""
    raw = attrs.get(ATTR_STATS64)
    if raw is not None:
        nested = netlink.parse_attrs(raw)
        return tuple(_u("=Q", nested.get(i)) for i in range(1, 11))
    raw = attrs.get(ATTR_STATS)
    if raw is None:
        return (0,) * 10
    nested = netlink.parse_attrs(raw)
    return tuple(_u(fmt, nested.get(i)) for i, fmt in enumerate(_STATS32_FORMATS, 1))


def decode_dest_counters(attrs: dict[int, memoryview]) -> tuple[int, ...]:
    """A destination's ten counters (:func:`decode_stats`), then its active, inactive
    and persistent connections."""
    return (*decode_stats(attrs), _u("=I", attrs.get(DEST_ACTIVE_CONNS)),
            _u("=I", attrs.get(DEST_INACT_CONNS)), _u("=I", attrs.get(DEST_PERSIST_CONNS)))


@dataclass(frozen=True, slots=True)
class ServiceCounters:
    """One service's counters (:func:`decode_stats`) and its destinations', by
    (address, port) (:func:`decode_dest_counters`)."""

    stats: tuple[int, ...]
    dests: dict[tuple[str, int], tuple[int, ...]]


@dataclass(frozen=True, slots=True)
class SyncDaemon:
    """One of the kernel's IPVS connection sync daemons (``ipvsadm --start-daemon``).

    ``state`` is "master" (sends the connection table) or "backup" (receives it);
    0 and None mean the kernel's defaults: sync_maxlen from the interface's MTU,
    port 8848 (IP_VS_SYNC_PORT), TTL 1, group 224.0.0.81 (IP_VS_SYNC_GROUP).

    >>> SyncDaemon("backup", "eth0", 51).with_state("master").state
    'master'
    """

    state: str
    interface: str
    syncid: int = 0
    maxlen: int = 0
    port: int = 0
    ttl: int = 0
    group: str | None = None

    def with_state(self, state: str) -> SyncDaemon:
        return SyncDaemon(state, self.interface, self.syncid, self.maxlen, self.port,
                          self.ttl, self.group)


def daemon_attrs(d: SyncDaemon) -> bytes:
    """IPVS_CMD_NEW_DAEMON's nested IPVS_CMD_ATTR_DAEMON, as libipvs writes it: the
    optional attributes only when set (ip_vs_ctl.c ip_vs_genl_new_daemon keeps the
    defaults for the missing ones)."""
    ifn = d.interface.encode()
    if not ifn or len(ifn) >= IP_VS_IFNAME_MAXLEN:
        raise ValueError(f"sync daemon interface '{d.interface}': 1..15 bytes")
    out = (netlink.attr(DAEMON_STATE, struct.pack("=I", DAEMON_STATES[d.state]))
           + netlink.attr(DAEMON_MCAST_IFN, ifn + b"\0")
           + netlink.attr(DAEMON_SYNC_ID, struct.pack("=I", d.syncid)))
    if d.maxlen:
        out += netlink.attr(DAEMON_SYNC_MAXLEN, struct.pack("=H", d.maxlen))
    if d.port:
        # typed be16 in the kernel's policy, but stored and used as a host-order
        # number (ip_vs_sync.c: htons(c->mcast_port + id)): host order, as libipvs
        out += netlink.attr(DAEMON_MCAST_PORT, struct.pack("=H", d.port))
    if d.ttl:
        out += netlink.attr(DAEMON_MCAST_TTL, struct.pack("=B", d.ttl))
    if d.group is not None:
        if ":" in d.group:
            out += netlink.attr(DAEMON_MCAST_GROUP6, socket.inet_pton(socket.AF_INET6, d.group))
        else:
            out += netlink.attr(DAEMON_MCAST_GROUP, socket.inet_aton(d.group))
    return netlink.attr(CMD_ATTR_DAEMON, out)


def daemon_stop_attrs(state: str, syncid: int = 0) -> bytes:
    """IPVS_CMD_DEL_DAEMON's payload: the kernel reads the state only; the syncid goes
    too, as libipvs sends it."""
    return netlink.attr(CMD_ATTR_DAEMON,
                        netlink.attr(DAEMON_STATE, struct.pack("=I", DAEMON_STATES[state]))
                        + netlink.attr(DAEMON_SYNC_ID, struct.pack("=I", syncid)))


def decode_daemon(attrs: dict[int, memoryview]) -> SyncDaemon:
    """A daemon from IPVS_CMD_GET_DAEMON's nested attributes (the kernel sends every
    one, its defaults filled in)."""
    state = _u("=I", attrs.get(DAEMON_STATE))
    names = {v: k for k, v in DAEMON_STATES.items()}
    group: str | None = None
    if attrs.get(DAEMON_MCAST_GROUP6) is not None:
        group = socket.inet_ntop(socket.AF_INET6, bytes(attrs[DAEMON_MCAST_GROUP6][:16]))
    elif attrs.get(DAEMON_MCAST_GROUP) is not None:
        group = socket.inet_ntoa(bytes(attrs[DAEMON_MCAST_GROUP][:4]))
    return SyncDaemon(names.get(state, str(state)), _str(attrs.get(DAEMON_MCAST_IFN)),
                      _u("=I", attrs.get(DAEMON_SYNC_ID)),
                      _u("=H", attrs.get(DAEMON_SYNC_MAXLEN)),
                      _u("=H", attrs.get(DAEMON_MCAST_PORT)),
                      _u("=B", attrs.get(DAEMON_MCAST_TTL)), group)


class BatchLink:
    """A raw generic-netlink socket to the IPVS family; blocking, one thread only.

    ``requests`` counts netlink requests, ``sends`` the sendmsg calls carrying them.
    """

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, netlink.NETLINK_GENERIC)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((0, 0))
        self.seq = 0
        self.requests = 0
        self.sends = 0
        self.family = self._resolve(b"IPVS")

    def close(self) -> None:
        self.sock.close()

    def _msg(self, family: int, cmd: int, flags: int, payload: bytes) -> tuple[int, bytes]:
        self.seq += 1
        body = GENLMSGHDR.pack(cmd, IPVS_GENL_VERSION, 0) + payload
        return self.seq, netlink.pack_message(family, flags, self.seq, body)

    def _resolve(self, name: bytes) -> int:
        seq, msg = self._msg(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, NLM_F_REQUEST,
                             netlink.attr(CTRL_ATTR_FAMILY_NAME, name + b"\0"))
        # the controller's version field is 1 too; IPVS_GENL_VERSION happens to match
        replies = self._exchange([(seq, msg)], dump=False)
        for payload in replies:
            attrs = netlink.parse_attrs(payload, 4)
            if CTRL_ATTR_FAMILY_ID in attrs:
                return _u("=H", attrs[CTRL_ATTR_FAMILY_ID])
        raise IpvsUnavailable("no IPVS generic-netlink family; is ip_vs loaded?")

    def _exchange(self, msgs: list[tuple[int, bytes]], dump: bool,
                  errors: dict[int, int] | None = None) -> list[memoryview]:
        """Send ``msgs`` in one sendmsg; gather replies (genl payloads) until every
        one is acked (or, for a dump, done).  Errors land in ``errors[seq]``."""
        replies = netlink.exchange(self.sock, msgs, dump=dump, errors=errors, bufsize=1 << 20)
        self.sends += 1
        self.requests += len(msgs)
        return [m.body for m in replies]

    def request(self, cmd: int, payload: bytes) -> None:
        errors: dict[int, int] = {}
        self._exchange([self._msg(self.family, cmd, NLM_F_REQUEST | NLM_F_ACK, payload)],
                       dump=False, errors=errors)
        for code in errors.values():
            raise OSError(code, os.strerror(code))

    def dump(self, cmd: int, payload: bytes = b"") -> list[dict[int, memoryview]]:
        seq, msg = self._msg(self.family, cmd, NLM_F_REQUEST | NLM_F_DUMP, payload)
        replies = self._exchange([(seq, msg)], dump=True)
        return [netlink.parse_attrs(p, 4) for p in replies]

    def flush(self) -> None:
        """Every service and destination of this namespace (``ipvsadm -C``): the
        kernel's ip_vs_flush(), which needs no attribute."""
        self.request(CMD_FLUSH, b"")

    # -- the sync daemon (hafast.lvs.syncd drives these) ------------------------------

    def new_daemon(self, d: SyncDaemon) -> None:
        """Start ``d``; OSError EEXIST when a daemon of that state already runs."""
        self.request(CMD_NEW_DAEMON, daemon_attrs(d))

    def del_daemon(self, state: str, syncid: int = 0) -> None:
        """Stop the ``state`` daemon; OSError ESRCH when none runs."""
        self.request(CMD_DEL_DAEMON, daemon_stop_attrs(state, syncid))

    def daemons(self) -> list[SyncDaemon]:
        """The running daemons (a dump: the kernel has no GET_DAEMON doit)."""
        return [decode_daemon(netlink.parse_attrs(a[CMD_ATTR_DAEMON]))
                for a in self.dump(CMD_GET_DAEMON) if CMD_ATTR_DAEMON in a]

    @staticmethod
    def payload(cmd: int, c: Change, keys: dict[ServiceKey, bytes] | None = None) -> bytes:
        """The request's attributes; ``keys`` caches a service's key attribute, which
        every destination request of that service repeats."""
        if cmd in (CMD_NEW_SERVICE, CMD_SET_SERVICE):
            out = netlink.attr(CMD_ATTR_SERVICE, _svc_attrs(c.service, True))
        else:
            key = keys.get(c.service.key) if keys is not None else None
            if key is None:
                key = netlink.attr(CMD_ATTR_SERVICE, _svc_attrs(c.service, False))
                if keys is not None:
                    keys[c.service.key] = key
            out = key
        if c.dest is not None:
            out += _dest_nested(c.dest)
        return out

    def apply(self, changes: Sequence[Change]) -> None:
        """Carry out ``changes`` in order, BATCH per sendmsg; retry the ones the
        kernel answered "exists"/"missing" with the other command, one by one.

        A change to the destination the one before it changed (backend.put_dest: an
        add at a weight, then the edit to 0) goes in the same sendmsg, and again
        after a retry of the one before, so that the edit is still the last word."""
        start = 0
        while start < len(changes):
            end = min(start + BATCH, len(changes))
            if end < len(changes) and _same_dest(changes[end - 1], changes[end]):
                end += 1
            chunk, start = changes[start:end], end
            msgs, by_seq = [], {}
            keys: dict[ServiceKey, bytes] = {}
            for c in chunk:
                cmd = _COMMANDS[c.op][0]
                seq, msg = self._msg(self.family, cmd, NLM_F_REQUEST | NLM_F_ACK,
                                     self.payload(cmd, c, keys))
                msgs.append((seq, msg))
                by_seq[seq] = c
            errors: dict[int, int] = {}
            self._exchange(msgs, dump=False, errors=errors)
            for seq, code in sorted(errors.items()):
                c = by_seq[seq]
                _, other, benign = _COMMANDS[c.op]
                if code not in benign:
                    raise _failure(c, code)
                if other is None:
                    continue
                for again in [c] + [by_seq[n] for n in by_seq
                                    if n > seq and n not in errors and _same_dest(c, by_seq[n])]:
                    cmd = other if again is c else _COMMANDS[again.op][0]
                    try:
                        self.request(cmd, self.payload(cmd, again))
                    except OSError as exc:
                        raise _failure(again, exc.errno or 0) from exc


def _same_dest(a: Change, b: Change) -> bool:
    return (a.dest is not None and b.dest is not None and a.service.key == b.service.key
            and a.dest.key == b.dest.key)


def _failure(c: Change, code: int) -> BackendError:
    hint = ""
    if code == errno.ENOENT and c.op in (ADD_SERVICE, EDIT_SERVICE):
        hint = f"; is there an ip_vs_{c.service.scheduler} module for this kernel?"
    return BackendError(f"IPVS {c}: {os.strerror(code)} (errno {code}){hint}", c)
