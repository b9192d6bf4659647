"""What runs in each worker process: ``python -m hafast.app.worker --worker-fd N``.

Reads its ``init`` message, runs the VRRP side or a check side on one loop, and
answers the parent (ping, status, reload, stop) until told to stop or the
parent goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from typing import Any

from hafast.app.ipc import VRRP, encode, read_message
from hafast.app.process import die_with_parent
from hafast.lib import gcfreeze, memtrim
from hafast.lib.eventloop import new_loop
from hafast.lib.logging import LogOptions
from hafast.lib.logging import setup as setup_logging
from hafast.lib.procopts import LatenessWatch, ProcessOptions, ProcessTuning

log = logging.getLogger("hafast")

SPARE_NICE = 10  # how much lower a spare runs until it is taken (hafast.app.spare)


async def _worker_main(fd: int, restore_priority: int | None = None) -> int:
    loop = asyncio.get_running_loop()
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    msg = await read_message(reader)
    if msg is None or msg[0] != "init":
        return 2
    if restore_priority is not None:  # a spare, taken: the parent's priority again
        os.setpriority(os.PRIO_PROCESS, 0, restore_priority)
    init = msg[1]
    role = init["role"]
    log_opts: LogOptions = init["log"]
    setup_logging(log_opts, role)

    def send(kind: str, payload: object = None) -> None:
        if not writer.is_closing():
            writer.write(encode(kind, payload))

    # Each role imports only its own side: the VRRP worker never loads the check
    # code (its start-up is on the vipguard's clock), a check worker no VRRP code.
    side: Any
    if role == VRRP:
        from hafast.vrrp.side import VrrpSide

        side = VrrpSide(loop, init["config"], init["seed"], init["resume"],
                        init["dont_release_vrrp"], lambda states: send("vrrp", states),
                        lambda event: send("vrrp_rx_error", event))
        side.start()
    else:
        from hafast.check.side import CheckSide

        side = CheckSide(loop, init["shard"], init["shards"], lambda ev: send("events", ev),
                         lambda keys: send("rounds", keys))
        side.start(init["config"], init["seed"])
    # keepalived sets these once the configuration is running (start_vrrp, start_check)
    process = "vrrp" if role == VRRP else "checker"
    tuning = ProcessTuning(process)
    # popped: the side keeps what it needs of the config, and a check worker's view
    # (hafast.check.view.ShardView: its shard's real servers, pickled in chunks) is
    # freed once this message, kept for the worker's life, no longer holds it (issue 16)
    tuning.apply(ProcessOptions.of(init.pop("config").global_defs, process))
    memtrim.trim()  # the init message's unpickled buffers, freed now (hafast.lib.memtrim)
    # keepalived's max_auto_priority / min_auto_priority_delay
    lateness = LatenessWatch(loop, tuning.overdue)
    stop = loop.create_future()

    def finish() -> None:
        if not stop.done():
            stop.set_result(None)

    loop.add_signal_handler(signal.SIGTERM, finish)
    # The parent decides about these; a terminal's Ctrl-C reaches the whole group.
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    send("ready", os.getpid())

    async def serve() -> None:
        while True:
            got = await read_message(reader)
            if got is None:
                finish()  # the parent is gone
                return
            kind, payload = got
            if kind == "ping":
                # the VRRP worker says when its masters last advertised: the parent
                # times a release from that (hafast.app.vipguard)
                send("pong", (payload, side.last_adverts()) if role == VRRP else payload)
            elif kind == "status":
                try:
                    data = side.status()
                except Exception:
                    log.exception("status failed")
                    data = None
                send("status", (payload, data))
            elif kind == "reload":
                # as keepalived's reload threads: normal scheduling while reloading
                tuning.relax()
                try:
                    if role == VRRP:
                        side.reload(payload["config"])
                    else:
                        side.reload(payload["config"], payload["seed"])
                except Exception:
                    log.exception("reload failed")
                tuning.apply(ProcessOptions.of(payload["config"].global_defs, process))
            elif kind == "clear_stats" and role == VRRP:
                for inst in side.worker.instances:
                    inst.clear_stats()
            elif kind == "stop":
                finish()
                return

    server = loop.create_task(serve())
    await stop
    server.cancel()
    lateness.close()
    side.stop()
    with contextlib.suppress(Exception):
        await writer.drain()
    # Let priority-0 adverts and notify_stop spawns leave the loop.
    await asyncio.sleep(0)
    writer.close()
    return 0


def worker_entry(argv: list[str]) -> int:
    """``python -m hafast.app.supervisor --worker-fd N``: what the parent starts."""
    fd = int(argv[argv.index("--worker-fd") + 1])
    gcfreeze.enable()  # its engine frozen once built (hafast.lib.gcfreeze)
    if "--parent-pid" in argv and not die_with_parent(int(argv[argv.index("--parent-pid") + 1])):
        return 1
    restore: int | None = None
    if "--preload" in argv and argv[argv.index("--preload") + 1] == VRRP:
        # a spare (hafast.app.spare): its imports done before anything waits on it, at
        # a lower CPU priority than the live worker it stands behind, which it must
        # never slow (root only: only root may raise it back once the spare is taken)
        if os.geteuid() == 0:
            restore = os.getpriority(os.PRIO_PROCESS, 0)
            os.setpriority(os.PRIO_PROCESS, 0, min(restore + SPARE_NICE, 19))
        import hafast.vrrp.side  # noqa: F401
    loop = new_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_worker_main(fd, restore))
    finally:
        loop.close()


if __name__ == "__main__":
    sys.exit(worker_entry(sys.argv[1:]))
