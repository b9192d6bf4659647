"""What the parent shows: the status dict that `hafast status`, the dumps and
/metrics read, the control socket's commands, and the dump files.

Split from :class:`hafast.app.supervisor.Supervisor` (which owns the workers,
pools and reloads this reads); nothing here changes what runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from hafast.app.ipc import VRRP

if TYPE_CHECKING:
    from hafast.app.process import WorkerHandle
    from hafast.app.supervisor import Supervisor

log = logging.getLogger("hafast")

# a dump -> the global_defs field that may name its file
_DUMP_FILES = {"data": "state_dump_file", "stats": "stats_dump_file", "json": "json_dump_file"}


def dump_path(gd: Any, prefix: str, what: str, namespace: str | None) -> str:
    """Where the ``what`` dump goes (keepalived 2.3's ``open_dump_file``, 2.2.7's
    ``data_use_instance``).

    Without ``*_dump_file``: ``--dump-prefix`` (hafast.status.dump.path_for).  With
    it: an absolute path is the file, one ending in ``/`` the directory for the usual
    name, a relative one a name in --dump-prefix's directory.  ``data_use_instance``
    with ``-s NS`` puts ``.NS`` before the .data file's extension, as keepalived.

    >>> from types import SimpleNamespace as NS
    >>> gd = NS(state_dump_file="/var/run/ka/", stats_dump_file="s.txt",
    ...         json_dump_file=None, data_use_instance=True)
    >>> [dump_path(gd, "/tmp/keepalived", w, "blue") for w in ("data", "stats", "json")]
    ['/var/run/ka/keepalived.blue.data', '/tmp/s.txt', '/tmp/keepalived_blue.json']
    >>> dump_path(NS(state_dump_file="/srv/ka.data"), "/tmp/keepalived", "data", "blue")
    '/srv/ka.data'
    >>> dump_path(NS(), "/tmp/keepalived", "data", "blue")
    '/tmp/keepalived_blue.data'
    """
    from hafast.status import dump

    configured = getattr(gd, _DUMP_FILES[what], None)
    by_instance = what == "data" and bool(namespace) and getattr(gd, "data_use_instance", False)
    default = dump.path_for(prefix, what, None if by_instance else namespace)
    if not configured and not by_instance:
        return default
    directory, name = os.path.split(default)
    if configured:
        if configured.startswith("/"):
            directory = configured.rstrip("/") or "/" if configured.endswith("/") \
                else os.path.dirname(configured)
        if not configured.endswith("/"):
            name = os.path.basename(configured)
    if by_instance:
        stem, dot, ext = name.rpartition(".")
        name = f"{stem}.{namespace}.{ext}" if dot else f"{name}.{namespace}"
    return os.path.join(directory, name)


def status_filters(request: dict[str, Any]) -> dict[str, Any]:
    """The filters of a ``status`` request, checked (hafast.status.select.select's
    keywords); ValueError names a bad one.

    >>> status_filters({"cmd": "status", "vs": "10.0.0.1:80", "down": True})
    {'down': True, 'vs': ['10.0.0.1:80']}
    >>> status_filters({"limit": -1})
    Traceback (most recent call last):
    ValueError: limit must be a whole number >= 0
    """
    asked: dict[str, Any] = {}
    if request.get("down"):
        asked["down"] = True
    for key in ("vs", "instance"):
        names = request.get(key)
        if names is None:
            continue
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{key} must be a name or a list of names")
        if names:
            asked[key] = names
    limit = request.get("limit")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError("limit must be a whole number >= 0")
        asked["limit"] = limit
    return asked


class StatusDesk:
    """The parent's status, control commands and dumps."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup

    async def worker_status(self, w: WorkerHandle, timeout: float = 2.0) -> Any:
        period, _limit = self.sup.heartbeat_of(w)
        if time.monotonic() - w.last_pong > 2 * period + 0.25:
            # Late on its heartbeat (hung, or building a large engine): it would not
            # answer this either, and `hafast status` must not wait for it.
            return None
        self.sup._seq += 1
        fut: asyncio.Future[Any] = self.sup.loop.create_future()
        w.requests[self.sup._seq] = fut
        if not w.send("status", self.sup._seq):
            w.requests.pop(self.sup._seq, None)
            return None
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            w.requests.pop(self.sup._seq, None)
            return None

    async def status(self, *, stream: bool = False, down: bool = False,
                     limit: int | None = None) -> dict[str, Any]:
        """Everything `hafast status`, the dumps and /metrics show, in one dict.

        ``stream``: the pools' rows as :class:`~hafast.lib.jsonstream.JsonArray`,
        for the control socket's reply, which writes them a chunk at a time.
        ``down``/``limit``: only those rows (:meth:`PoolKeeper.status`)."""
        # A reload may start or stop workers while the replies are awaited.
        current = list(self.sup.workers)
        replies = await asyncio.gather(*(self.worker_status(w) for w in current))
        workers = []
        vrrp: list[Any] = []
        checks: list[Any] = []
        now = time.monotonic()
        # ... and one it stopped meanwhile is not reported beside the pools it closed
        running = {id(w) for w in self.sup.workers}
        for w, data in zip(current, replies, strict=True):
            if id(w) not in running:
                continue
            workers.append({"name": w.name, "pid": w.pid, "restarts": w.restarts,
                            "heartbeat_kills": w.heartbeat_kills,
                            "deadline_kills": w.deadline_kills, "answering": data is not None,
                            "last_pong_age": round(now - w.last_pong, 3),
                            "startup_s": None if w.startup_s is None else round(w.startup_s, 3)})
            if w.role == VRRP:
                # what the VIP guard would time a release from (hafast.app.vipguard)
                workers[-1]["last_advert_age"] = {
                    name: round(now - t, 3) for name, t in sorted(w.last_adverts.items())}
                # its successor, started ahead (hafast.app.spare); None: none ready
                workers[-1]["spare_pid"] = self.sup.vrrp_spare.pid
            if data is None:
                continue
            if w.role == VRRP:
                vrrp.extend(data.get("instances", ()))
            else:
                checks.append(data)
        return {"pid": os.getpid(), "config": self.sup.options.config_file,
                "uptime": round(time.time() - self.sup.started_at, 3),
                "reloads": self.sup.reloads_q.applied, "reload_errors": self.sup.reloads_q.rejected,
                "reload": self.sup.reloads_q.status(), "vip_releases": self.sup.vip_guard.released,
                "workers": workers,
                "vrrp": vrrp, "checkers": checks,
                "pools": (self.sup.pools.status(lazy_rows=stream, down=down, limit=limit)
                          if self.sup.pools is not None else None),
                # fleet mode (docs/fleet.md): each announced VIP's state and quorum
                "fleet": self.sup.fleet.status() if self.sup.fleet is not None else None,
                # ... and its BGP/BFD sessions as FRR reports them (hafast.fleet.sessions)
                "fleet_sessions": (self.sup.fleet.sessions() if self.sup.fleet is not None
                                   else None),
                # ... and what hafast does with FRR (frr_control, hafast.fleet.frrlife)
                "fleet_frr": (self.sup.fleet.frr_status() if self.sup.fleet is not None
                              else None)}

    async def handle_control(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd", "status")
        if cmd == "status":
            asked = status_filters(request)
            if not asked:
                return await self.status(stream=True)
            from hafast.status.select import select

            return select(await self.status(down=asked.get("down", False),
                                            limit=asked.get("limit")), **asked)
        if cmd == "reload":
            return {"ok": await self.sup.reload()}
        if cmd in ("data", "stats", "json"):
            return {"file": await self.dump(cmd)}
        if cmd == "stats_clear":
            return {"file": await self.dump("stats", clear=True)}
        return {"error": f"unknown command {cmd!r}"}

    async def dump(self, what: str, *, clear: bool = False) -> str:
        """Write the ``what`` dump; ``clear`` (keepalived's STATS_CLEAR) then zeroes
        the VRRP counters."""
        from hafast.status import dump

        st = await self.status()
        path = dump_path(self.sup.config.global_defs, self.sup.options.dump_prefix, what,
                         self.sup.options.namespace)
        try:
            await self.sup.loop.run_in_executor(None, dump.WRITERS[what], path, st, self.sup.config)
            log.info("wrote %s", path)
        except OSError as exc:
            log.warning("cannot write %s: %s", path, exc)
        if clear:
            # after the file: whoever sees the counters at zero finds the file written
            # (test_daemon_flags read it too early once, under a loaded machine)
            for w in self.sup.workers:
                if w.role == VRRP:
                    w.send("clear_stats")
        return path

    def start_metrics(self) -> None:
        gd = self.sup.config.global_defs
        listen = self.sup.options.metrics or getattr(gd, "metrics_listen", None)
        if not listen:
            return
        from hafast.status.metrics import MetricsServer

        def snapshot() -> dict[str, Any]:
            fut = asyncio.run_coroutine_threadsafe(self.status(), self.sup.loop)
            result: dict[str, Any] = fut.result(timeout=5)
            return result

        try:
            self.sup.metrics = MetricsServer(listen, snapshot)
            self.sup.metrics.start()
            log.info("metrics on http://%s/metrics", listen)
        except (OSError, ValueError) as exc:
            log.error("metrics endpoint %s: %s", listen, exc)
