"""The stand-alone VRRP daemon: the supervised VRRP worker's code on one uvloop loop.

``run_vrrp(config)`` runs :class:`hafast.vrrp.side.VrrpSide` (and so
:class:`hafast.vrrp.worker.VrrpWorker`), exactly what ``hafast`` runs in its VRRP
worker process, without the parent: it builds and starts every vrrp_instance and
runs until SIGTERM or SIGINT, then stops cleanly: every master sends a priority-0
advert and releases its VIPs, ``notify_stop`` runs, and anything hafast added to
the kernel is removed.  SIGHUP re-reads the file and applies the difference
(:meth:`VrrpSide.reload`); a broken file is rejected and nothing changes.

Command line (VRRP only)::

    python -m hafast.vrrp.daemon -f /etc/keepalived/keepalived.conf -n -l

``-n`` (do not fork) and ``-D`` are accepted for keepalived compatibility; the
worker never forks.  ``-l`` logs to the console.  SIGUSR2 writes the counters as
JSON to ``--stats-file`` (default /tmp/hafast_vrrp.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Callable

from hafast.config.model import Config
from hafast.lib.eventloop import new_loop
from hafast.vrrp.side import VrrpSide

log = logging.getLogger("hafast.vrrp")

DEFAULT_STATS_FILE = "/tmp/hafast_vrrp.json"


def reload_from(side: VrrpSide, path: str) -> bool:
    """SIGHUP: re-read ``path``; a config with errors is rejected (the running one
    stays, every error logged with its file and line); otherwise the diff is
    applied.  Returns whether it was applied."""
    from hafast.config.loader import load_file

    try:
        result = load_file(path)
    except (OSError, ValueError) as exc:
        log.error("reload: cannot read %s: %s; keeping the running configuration", path, exc)
        return False
    errors = getattr(result, "errors", ())
    if errors:
        for msg in errors:
            log.error("reload: %s", msg)
        log.error("reload: %s has %d error(s); keeping the running configuration", path,
                  len(errors))
        return False
    side.reload(result.config)
    return True


def run_vrrp(config: Config, *, stats_file: str = DEFAULT_STATS_FILE,
             ready: Callable[[VrrpSide], None] | None = None,
             config_path: str | None = None) -> int:
    """Run every VRRP instance of ``config`` until SIGTERM/SIGINT; returns the exit code.

    What ``python -m hafast.vrrp.daemon`` runs: it installs uvloop, signal handlers
    and blocks.  ``ready(side)`` is called once everything has started.  SIGHUP
    reloads ``config_path`` (see :func:`reload_from`).
    """
    loop = new_loop()  # the supervised worker's loop too
    asyncio.set_event_loop(loop)
    # No parent: nothing to resume from, nothing to publish to.
    side = VrrpSide(loop, config, {}, resume=False, dont_release=False,
                    publish=lambda states: None)
    done = loop.create_future()

    def on_stop(signame: str) -> None:
        log.info("received %s; stopping", signame)
        if not done.done():
            done.set_result(None)

    def on_stats() -> None:
        try:
            with open(stats_file, "w") as f:
                json.dump(side.worker.stats(), f, indent=1)
        except OSError as exc:
            log.warning("cannot write %s: %s", stats_file, exc)

    loop.add_signal_handler(signal.SIGTERM, on_stop, "SIGTERM")
    loop.add_signal_handler(signal.SIGINT, on_stop, "SIGINT")
    def on_reload() -> None:
        if config_path is None:
            log.warning("received SIGHUP; no configuration file to reload")
            return
        log.info("received SIGHUP; reloading %s", config_path)
        try:
            reload_from(side, config_path)
        except Exception:  # a reload bug must not take the running instances down
            log.exception("reload failed; instances keep running")

    loop.add_signal_handler(signal.SIGHUP, on_reload)
    loop.add_signal_handler(signal.SIGUSR2, on_stats)
    try:
        side.start()
        if ready is not None:
            ready(side)
        loop.run_until_complete(done)
    finally:
        side.stop()
        on_stats()
        # Let the last priority-0 adverts and notify_stop spawns leave the loop.
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hafast.vrrp.daemon",
                                 description="hafast VRRP worker (keepalived -P)")
    ap.add_argument("-f", "--use-file", default="/etc/keepalived/keepalived.conf")
    ap.add_argument("-n", "--dont-fork", action="store_true")
    ap.add_argument("-l", "--log-console", action="store_true")
    ap.add_argument("-D", "--log-detail", action="store_true")
    ap.add_argument("--stats-file", default=DEFAULT_STATS_FILE)
    ap.add_argument("--pid", help="write the worker's PID to this file")
    args = ap.parse_args(argv)
    level = logging.DEBUG if args.log_detail else logging.INFO
    logging.basicConfig(
        level=level, stream=sys.stderr if args.log_console else None,
        format="%(asctime)s.%(msecs)03d hafast-vrrp: %(message)s", datefmt="%H:%M:%S")
    from hafast.config.loader import load_file

    result = load_file(args.use_file)
    for msg in getattr(result, "warnings", ()):
        log.warning("%s", msg)
    errors = getattr(result, "errors", ())
    if errors:
        for msg in errors:
            log.error("%s", msg)
        return 3
    if args.pid:
        import os

        with open(args.pid, "w") as f:
            f.write(f"{os.getpid()}\n")
    return run_vrrp(result.config, stats_file=args.stats_file, config_path=args.use_file)


if __name__ == "__main__":
    sys.exit(main())
