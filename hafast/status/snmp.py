"""The AgentX subagent: KEEPALIVED-MIB (global_defs ``enable_snmp_vrrp`` for its VRRP
part, ``enable_snmp_checker`` for its checker part), VRRP-MIB (``enable_snmp_rfcv2``)
and VRRPV3-MIB (``enable_snmp_rfcv3``) over ``snmpd``.

It runs on the parent's loop, never in the VRRP worker: every answer comes from the
parent's status (which asks the workers over their pipes), so a slow or absent
``snmpd`` cannot delay an advert.  keepalived links net-snmp's agent library into
its VRRP process instead.

The checker MIB's IPVS counters are dumped (on the IPVS backend's thread, never on
this loop) only when a request needs a snapshot and the last dump is
:data:`STATS_REFRESH_S` old, as keepalived's checker refreshes them.

``snmp_socket`` takes net-snmp's forms: ``unix:/path``, a bare ``/path``,
``tcp:HOST:PORT`` or ``HOST:PORT``; the default is net-snmp's (and so keepalived's)
``/var/agentx/master``.  The agent connects, opens a session and registers the
subtrees it serves; when the master is not there or drops the session it tries again
every :data:`RETRY_S` seconds, logging the first failure of a run only.

With ``enable_traps`` each VRRP state change the parent hears of
(:meth:`SnmpAgent.vrrp_states`) goes to the master as a Notify PDU carrying
KEEPALIVED-MIB's vrrpInstanceStateChange (and vrrpSyncGroupStateChange once a sync
group's members share a state), and with ``enable_snmp_rfcv2`` RFC 2787's
vrrpTrapNewMaster for a new master (and with ``enable_snmp_rfcv3`` RFC 6527's
vrrpv3NewMaster); with ``enable_snmp_checker`` each real server's and virtual
server's quorum notify (:meth:`SnmpAgent.pool_transitions`) becomes a
realServerStateChange or virtualServerQuorumStateChange; the master turns them into
the traps its ``trap2sink``/``trapsess`` lines ask for.  An advert the VRRP worker
rejects for a reason keepalived sends a trap for (:meth:`SnmpAgent.rx_error`) becomes
RFC 2787's vrrpTrapAuthFailure or RFC 6527's vrrpv3ProtoError.  Like net-snmp's
subagent in keepalived, a trap due while no session is open is not sent later.

Example::

    agent = SnmpAgent("unix:/var/agentx/master", desk.status, lambda: sup.config)
    agent.start()   # ... await agent.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from hafast.lvs.policy import QuorumMoved, RsMoved
from hafast.status import agentx as ax
from hafast.status.snmp_check import CHECK, check_rows, quorum_trap, rs_trap
from hafast.status.snmp_mib import (
    GLOBAL,
    KEEPALIVED,
    VRRP,
    answer,
    auth_failure_trap,
    group_trap,
    instance_trap,
    keepalived_rows,
    new_master_trap,
    proto_error_trap,
    v3_new_master_trap,
)
from hafast.status.snmp_rfc import VRRP_MIB, VRRPV3_MIB, rfc2787_rows, rfc6527_rows

log = logging.getLogger("hafast.snmp")

DEFAULT_SOCKET = "unix:/var/agentx/master"  # net-snmp's AGENTX_SOCKET default
RETRY_S = 5.0
# A walk sends one GetNext per row: they share one snapshot of this age at most.
FRESH_S = 1.0
# net-snmp's master waits agentXTimeout (1 s by default) for an answer: a refresh
# slower than this (a worker late on its pipe) is answered from the last snapshot.
WAIT_S = 0.8
OPEN_TIMEOUT_S = 5.0
# keepalived's STATS_REFRESH: the IPVS counters are dumped again, when asked, after
# this long at least (a dump is two netlink requests per service)
STATS_REFRESH_S = 5.0


def parse_socket(spec: str | None) -> tuple[str, str, int]:
    """``("unix", path, 0)`` or ``("tcp", host, port)``.

    >>> parse_socket("unix:/tmp/ax"), parse_socket("tcp:localhost:705")
    (('unix', '/tmp/ax', 0), ('tcp', 'localhost', 705))
    """
    text = spec or DEFAULT_SOCKET
    if text.startswith("unix:"):
        return "unix", text[5:], 0
    if text.startswith("/"):
        return "unix", text, 0
    if text.startswith("tcp:"):
        text = text[4:]
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"snmp_socket {spec!r}: expected unix:PATH or tcp:HOST:PORT")
    return "tcp", host.strip("[]") or "localhost", int(port)


class SnmpAgent:
    def __init__(self, spec: str | None, status: Callable[[], Awaitable[dict[str, Any]]],
                 config: Callable[[], Any], *, keepalived_mib: bool = True,
                 rfcv2_mib: bool = False, rfcv3_mib: bool = False,
                 checker_mib: bool = False,
                 ipvs_counters: Callable[[], Awaitable[Any]] | None = None) -> None:
        self.where = parse_socket(spec)
        # enable_snmp_vrrp: KEEPALIVED-MIB served and its traps sent; without it (an
        # agent for the RFC MIBs only) neither, as in keepalived
        self.keepalived_mib = keepalived_mib
        self.rfcv2_mib = rfcv2_mib  # enable_snmp_rfcv2: VRRP-MIB (RFC 2787) served
        self.rfcv3_mib = rfcv3_mib  # enable_snmp_rfcv3: VRRPV3-MIB (RFC 6527) served
        # enable_snmp_checker: KEEPALIVED-MIB's check subtree served, its traps sent
        self.checker_mib = checker_mib
        # the checker MIB's statistics columns: the IPVS backend's counters
        # (hafast.lvs.ipvs.IpvsBackend.counters, None for another backend)
        self.ipvs_counters = ipvs_counters
        self._counters: Any = None
        self._counters_at: float | None = None
        self.started_wall = time.time()
        self.status = status
        self.config = config
        self.started = time.monotonic()
        self.connected = False
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._session = 0
        self._packet = 0
        self._rows: list[ax.VarBind] | None = None
        self._rows_at = 0.0
        self._refresh: asyncio.Task[None] | None = None
        # Each instance's last state heard: a report that repeats it (a worker
        # resumed or reloaded in the same state) is no transition.
        self._vrrp: dict[str, str] = {}
        self._groups: dict[str, str] = {}
        self._pending: set[asyncio.Task[None]] = set()
        # Set once the first connection is open or has failed (:meth:`first_try`).
        self._tried = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="snmp-agentx")

    async def close(self) -> None:
        w = self._writer
        if w is not None and self.connected:
            # RFC 2741 §7.1.8: say goodbye so the master drops our registrations now
            with contextlib.suppress(Exception):
                w.write(ax.encode(ax.Close(session_id=self._session,
                                           packet_id=self._next_id())))
                await asyncio.wait_for(w.drain(), 1.0)
        for t in (self._task, self._refresh, *self._pending):
            if t is not None:
                t.cancel()
                with contextlib.suppress(BaseException):
                    await t
        if w is not None:
            w.close()

    def vrrp_states(self, states: dict[str, tuple[str, int]], traps: bool,
                    rfcv2: bool = False, rfcv3: bool = False) -> None:
        """The VRRP worker's report ``{name: (state, priority)}``: a vrrpInstanceStateChange
        for each instance whose state moved, when ``traps`` (``enable_traps``), and
        with ``rfcv2`` (``enable_snmp_rfcv2``) RFC 2787's vrrpTrapNewMaster after it
        for a new master, then with ``rfcv3`` RFC 6527's vrrpv3NewMaster.

        keepalived sends none for INIT (an instance starting, or stopping)."""
        config = self.config()
        for name, (state, _prio) in states.items():
            if self._vrrp.get(name) == state:
                continue
            self._vrrp[name] = state
            if not traps or state == "INIT":
                continue
            if self.keepalived_mib:
                self._notify(instance_trap(name, state, config, self.uptime()), name)
            if (rfcv2 or rfcv3) and state == "MASTER":
                task = asyncio.get_running_loop().create_task(
                    self._new_master(name, rfcv2, rfcv3))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
        if traps and self.keepalived_mib:
            self._group_traps(states, config)

    def _group_traps(self, states: dict[str, tuple[str, int]], config: Any) -> None:
        # The worker's sync group moves once all its members are in one state
        # (hafast.vrrp.sync_group); keepalived sends the group's trap then, after
        # its members' (vrrp_sync.c, checked with snmptrapd).
        for group in getattr(config, "sync_groups", ()):
            if not set(group.group) & states.keys():
                continue
            seen = {self._vrrp.get(m) for m in group.group}
            if len(seen) != 1:
                continue
            (state,) = seen
            if state is None or state == "INIT" or self._groups.get(group.name) == state:
                continue
            self._groups[group.name] = state
            self._notify(group_trap(group.name, state, config, self.uptime()),
                         f"VRRP_Group({group.name})")

    async def _new_master(self, name: str, rfcv2: bool, rfcv3: bool) -> None:
        # The trap names the interface's index and the source address: the
        # worker's status has both (the parent's report does not).
        try:
            status = await self.status()
        except Exception:
            log.exception("SNMP: status for %s's vrrpTrapNewMaster failed", name)
            return
        for inst in status.get("vrrp") or ():
            if (inst.get("data") or {}).get("iname") != name:
                continue
            if rfcv2 and (varbinds := new_master_trap(inst, self.uptime())) is not None:
                self._notify(varbinds, f"{name} vrrpTrapNewMaster")
            if rfcv3 and (varbinds := v3_new_master_trap(inst, self.uptime())) is not None:
                self._notify(varbinds, f"{name} vrrpv3NewMaster")

    def pool_transitions(self, actions: Iterable[Any], policy: Any, traps: bool) -> None:
        """The pool keeper's transitions (:class:`hafast.lvs.policy.RsMoved`,
        :class:`~hafast.lvs.policy.QuorumMoved`), with ``traps`` (``enable_traps``) and
        the checker MIB: one realServerStateChange per real server notify and one
        virtualServerQuorumStateChange per quorum notify, where keepalived 2.2.7 sends
        them (do_rs_notifies, do_vs_notifies).  ``policy``: the keeper's, for each
        virtual server's real servers up and each real server's port."""
        if not traps or not self.checker_mib:
            return
        config = self.config()
        for t in actions:
            if not isinstance(t, (RsMoved, QuorumMoved)):
                continue
            st = policy.vss.get(t.vs.key)
            up = sum(1 for r in st.rss.values() if r.alive) if st is not None else 0
            if isinstance(t, RsMoved):
                rst = st.rss.get(t.rs.key) if st is not None else None
                port = rst.dest_port if rst is not None else (t.rs.port or t.vs.port or 0)
                self._notify(rs_trap(config, t.vs, t.rs.address, port, t.alive, up,
                                     self.uptime()), t.rs_label)
            else:
                self._notify(quorum_trap(config, t.vs, t.up, up, self.uptime()),
                             f"{t.label} quorum")

    def rx_error(self, err: dict[str, Any], traps: bool, rfcv2: bool = False,
                 rfcv3: bool = False) -> None:
        """An advert the VRRP worker rejected (:meth:`hafast.vrrp.side.VrrpSide._rx_error`,
        which bounds how many a second): with ``traps``, RFC 2787's vrrpTrapAuthFailure
        for an authentication error when ``rfcv2``, RFC 6527's vrrpv3ProtoError for a
        protocol error when ``rfcv3``, as keepalived sends them from vrrp_check_packet.

        The report carries all a trap needs but the interface's index, read here
        (an ioctl, no wait): no status round trip per trap."""
        if not traps or not (rfcv2 or rfcv3):
            return
        ifindex = ifindex_of(err.get("ifname"))
        name = err.get("iname")
        if rfcv2 and (varbinds := auth_failure_trap(err, ifindex, self.uptime())) is not None:
            self._notify(varbinds, f"{name} vrrpTrapAuthFailure", logging.DEBUG)
        if rfcv3 and (varbinds := proto_error_trap(err, ifindex, self.uptime())) is not None:
            self._notify(varbinds, f"{name} vrrpv3ProtoError", logging.DEBUG)

    def _notify(self, varbinds: tuple[ax.VarBind, ...], what: str,
                level: int = logging.INFO) -> None:
        w = self._writer
        if w is None or not self.connected or w.is_closing():
            log.debug("SNMP: no AgentX session; trap for %s not sent", what)
            return
        # RFC 2741 §6.2.10: the master answers with a Response (_handle ignores it)
        w.write(ax.encode(ax.Notify(session_id=self._session, packet_id=self._next_id(),
                                    varbinds=varbinds)))
        # (the error traps at DEBUG: there is one per rejected advert)
        log.log(level, "%s: sending SNMP notification", what)

    async def first_try(self, timeout: float = 2.0) -> bool:
        """Wait until the first session is open (True) or its attempt failed.

        keepalived opens its subagent before its VRRP instances start, so the
        traps of their first transitions reach the master; the parent waits here
        before it starts the VRRP worker.  A master that is not there fails at once
        (no socket, refused); ``timeout`` bounds a master that does not answer.
        """
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._tried.wait(), timeout)
        return self.connected

    def subtrees(self) -> list[ax.Oid]:
        """The subtrees registered, as keepalived registers them."""
        # keepalived's checker process registers the global scalars too
        return [*((GLOBAL,) if self.keepalived_mib or self.checker_mib else ()),
                *((VRRP,) if self.keepalived_mib else ()),
                *((CHECK,) if self.checker_mib else ()),
                *((VRRP_MIB,) if self.rfcv2_mib else ()),
                *((VRRPV3_MIB,) if self.rfcv3_mib else ())]

    def uptime(self) -> int:
        return int((time.monotonic() - self.started) * 100)  # TimeTicks

    def _next_id(self) -> int:
        self._packet = (self._packet + 1) & 0xFFFFFFFF
        return self._packet

    # -- session --------------------------------------------------------------------

    async def _run(self) -> None:
        quiet = False
        while True:
            try:
                await self._session_once()
                quiet = False
                log.warning("AgentX master %s closed the session; retrying", self._where())
            except (OSError, EOFError, ax.AgentXError, TimeoutError) as exc:
                if not quiet:
                    log.warning("AgentX master %s: %s; retrying every %.0f s",
                                self._where(), exc, RETRY_S)
                    quiet = True
            finally:
                self._tried.set()
                self.connected = False
                if self._writer is not None:
                    self._writer.close()
                    self._writer = None
            await asyncio.sleep(RETRY_S)

    def _where(self) -> str:
        kind, host, port = self.where
        return f"unix:{host}" if kind == "unix" else f"tcp:{host}:{port}"

    async def _session_once(self) -> None:
        kind, host, port = self.where
        if kind == "unix":
            reader, writer = await asyncio.open_unix_connection(host)
        else:
            reader, writer = await asyncio.open_connection(host, port)
        self._writer = writer
        dec = ax.Decoder()
        pending: list[ax.Pdu] = []

        async def reply(pdu: ax.Pdu) -> ax.Response:
            writer.write(ax.encode(pdu))
            await writer.drain()
            deadline = time.monotonic() + OPEN_TIMEOUT_S
            while True:
                data = await asyncio.wait_for(reader.read(65536),
                                              max(0.01, deadline - time.monotonic()))
                if not data:
                    raise EOFError("the master closed the connection")
                for got in dec.feed(data):
                    if isinstance(got, ax.Response) and got.packet_id == pdu.packet_id:
                        return got
                    pending.append(got)

        res = await reply(ax.Open(packet_id=self._next_id(), oid=KEEPALIVED,
                                  descr=b"hafast KEEPALIVED-MIB subagent"))
        if res.error != ax.NO_AGENTX_ERROR:
            raise ax.AgentXError(f"Open refused (error {res.error})")
        self._session = res.session_id
        for subtree in self.subtrees():
            res = await reply(ax.Register(session_id=self._session,
                                          packet_id=self._next_id(), subtree=subtree))
            if res.error != ax.NO_AGENTX_ERROR:
                # RFC 2741 §7.1.4.1: duplicateRegistration (263) when another agent
                # (a keepalived) already serves it
                log.warning("AgentX master %s refused %s (error %d)", self._where(),
                            ".".join(map(str, subtree)), res.error)
        self.connected = True
        self._tried.set()
        log.info("AgentX session %d with %s", self._session, self._where())
        for pdu in pending:
            if not await self._handle(writer, pdu):
                return
        while True:
            data = await reader.read(65536)
            if not data:
                return
            for pdu in dec.feed(data):
                if not await self._handle(writer, pdu):
                    return

    async def _handle(self, writer: asyncio.StreamWriter, pdu: ax.Pdu) -> bool:
        if isinstance(pdu, ax.Close):
            return False
        if isinstance(pdu, ax.Response):
            return True  # to a Ping or a Notify
        if isinstance(pdu, ax.Other) and pdu.type == ax.CLEANUPSET:
            return True  # RFC 2741 §7.2.4.4: no response
        rows = await self._current_rows() if isinstance(
            pdu, (ax.Get, ax.GetNext, ax.GetBulk)) else []
        writer.write(ax.encode(answer(pdu, rows, self.uptime())))
        await writer.drain()
        return True

    # -- data -----------------------------------------------------------------------

    async def _current_rows(self) -> list[ax.VarBind]:
        if self._rows is not None and time.monotonic() - self._rows_at < FRESH_S:
            return self._rows
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.get_running_loop().create_task(self._load())
        await asyncio.wait({self._refresh}, timeout=WAIT_S if self._rows is not None
                           else None)
        return self._rows or []

    async def _load(self) -> None:
        try:
            status = await self.status()
            counters = await self._ipvs() if self.checker_mib else None
            self._rows = self.rows(status, self.config(), counters)
        except Exception:  # the next request tries again; the session goes on
            log.exception("SNMP: status snapshot failed")
            self._rows = self._rows or []
        self._rows_at = time.monotonic()

    async def _ipvs(self) -> Any:
        # Only a walk asks for them, and at most every STATS_REFRESH_S; the dump runs
        # on the backend's own thread, off this loop.  A failed one serves the last.
        if self.ipvs_counters is None:
            return None
        now = time.monotonic()
        if self._counters_at is None or now - self._counters_at >= STATS_REFRESH_S:
            self._counters_at = now
            try:
                self._counters = await self.ipvs_counters()
            except Exception as exc:
                log.warning("SNMP: reading the IPVS counters failed: %s", exc)
        return self._counters

    def rows(self, status: dict[str, Any], config: Any,
             counters: Any = None) -> list[ax.VarBind]:
        """Every served varbind, in OID order, from one status snapshot (and the IPVS
        counters, for the checker MIB)."""
        rows = (keepalived_rows(status, config) if self.keepalived_mib
                else keepalived_rows({}, config) if self.checker_mib else [])
        if self.checker_mib:
            rows += check_rows(config, status.get("pools"), counters)
            rows.sort(key=lambda vb: vb.name)
        if self.rfcv2_mib or self.rfcv3_mib:
            hw = hw_addrs((inst.get("data") or {}).get("ifp_ifname")
                          for inst in status.get("vrrp") or ())
            now = time.time()
            if self.rfcv2_mib:
                traps = bool(getattr(getattr(config, "global_defs", None), "enable_traps", False))
                rows += rfc2787_rows(status, traps=traps, hw_addrs=hw, now=now,
                                     started=self.started_wall)
            if self.rfcv3_mib:
                rows += rfc6527_rows(status, hw_addrs=hw, now=now, started=self.started_wall)
            rows.sort(key=lambda vb: vb.name)
        return rows


def ifindex_of(name: str | None) -> int:
    """The interface's index (keepalived's IF_INDEX), 0 when it is gone.

    >>> ifindex_of("lo"), ifindex_of(None)
    (1, 0)
    """
    try:
        return socket.if_nametoindex(name) if name else 0
    except OSError:
        return 0


def hw_addrs(names: Iterable[str | None]) -> dict[str, bytes]:
    """Each interface's hardware address (vrrpOperVirtualMacAddr), from sysfs: the
    parent shares the VRRP worker's namespace, and a sysfs read does not wait on the
    network; an interface that is gone has none."""
    out: dict[str, bytes] = {}
    for name in set(names):
        if not name or "/" in name or name.startswith("."):
            continue
        try:
            with open(f"/sys/class/net/{name}/address") as f:
                out[name] = bytes.fromhex(f.read().strip().replace(":", ""))
        except (OSError, ValueError):
            continue
    return out
