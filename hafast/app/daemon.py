"""``hafast -f CONF``: load the configuration, take the pid file, daemonise, and
run the parent (:class:`hafast.app.supervisor.Supervisor`) until it stops."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import resource

from hafast.app import netns
from hafast.app.cmdline import Options
from hafast.app.process import daemonize, pid_running, write_pid_file
from hafast.app.supervisor import Supervisor
from hafast.lib import gcfreeze, procopts
from hafast.lib.eventloop import new_loop
from hafast.lib.logging import setup as setup_logging
from hafast.lvs.manager import NoPoolBackend

log = logging.getLogger("hafast")


def run_daemon(options: Options, *, worker_argv: list[str] | None = None) -> int:
    """The daemon: load the configuration, run the parent until stopped.

    Exit codes: 0 stopped normally, 3 the configuration cannot be read or has errors,
    1 another instance holds the pid file, or the network namespace (``-s``,
    ``net_namespace``) cannot be entered.
    """
    from hafast.app import loadconf

    setup_logging(options.log, "parent")
    res = loadconf.load(options.config_file, options.config_id)
    for d in res.warnings:
        log.warning("%s", d.format())
    if res.errors or not res.files:
        for d in res.errors:
            log.error("%s", d.format())
        log.error("configuration %s unusable; not starting", options.config_file)
        return 3
    # keepalived reads its file, then enters the namespace before anything else
    resolved = netns.resolve(options, res.config)
    if resolved.log != options.log:
        log.info("Changing syslog ident to hafast_%s", resolved.namespace)
        setup_logging(resolved.log, "parent")
    options = resolved
    if options.namespace and not netns.enter(options.namespace):
        return 1
    if pid_running(options.pid_file):
        log.error("daemon already running (pid file %s)", options.pid_file)
        return 1
    if not options.dont_fork:
        daemonize()
        setup_logging(options.log, "parent")
    write_pid_file(options.pid_file, os.getpid())
    if procopts.short_slice():  # verdicts reach the kernel through this thread
        log.debug("parent: scheduler slice %d us", procopts.DISPATCH_SLICE_NS // 1000)
    gcfreeze.enable()  # the model and the pools frozen once built (hafast.lib.gcfreeze)
    loop = new_loop()
    asyncio.set_event_loop(loop)
    try:
        sup = Supervisor(options, res.config, worker_argv=worker_argv)
        return loop.run_until_complete(sup.run())
    except OSError as exc:
        if exc.errno not in (errno.EMFILE, errno.ENFILE):
            log.exception("hafast stopped on an error")
            return 1
        # Said in one line a user acts on, not a traceback: the workers are not
        # restarted in a loop, the daemon stops (tests/netns/test_chaos_reload.py).
        log.error("hafast stopped: %s with the open-files limit at %d (RLIMIT_NOFILE); "
                  "raise it (ulimit -n, systemd LimitNOFILE=)", exc.strerror,
                  resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        return 1
    except NoPoolBackend as exc:  # the box, not a bug: one line the operator acts on
        log.error("hafast stopped: %s", exc)
        return 1
    except Exception:
        # The workers follow (parent-death signal); say why before going.
        log.exception("hafast stopped on an error")
        return 1
    finally:
        loop.close()
        for path in (options.pid_file, options.vrrp_pid_file, options.checkers_pid_file):
            with contextlib.suppress(OSError):
                os.unlink(path)
