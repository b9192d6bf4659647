"""keepalived's command line, parsed into :class:`Options`, and the daemon's ``main``.

Every flag keeps keepalived(8)'s letter and meaning (anchors §1.1).  Flags that only
make sense for keepalived's build (SNMP, core dumps, ``--debug`` letters) are
accepted and ignored so an existing unit file's ``ExecStart`` works unchanged.
hafast's own additions are long options only (``--metrics``, ``--control-socket``,
``--check-workers``, ``--pool-backend``, ``--dump-prefix``).

Defaults differ from keepalived's where two daemons on one box would otherwise
clobber each other: pid files are ``/run/hafast*.pid``, not ``/run/keepalived*.pid``.
The dump files stay keepalived's (``/tmp/keepalived.data`` ...), so tooling that
reads them keeps working.

Example::

    >>> o = parse(["-f", "/etc/ka.conf", "-n", "-l", "-P", "-S", "3"])
    >>> o.config_file, o.dont_fork, o.vrrp_only, o.log.facility
    ('/etc/ka.conf', True, True, '3')
    >>> signum("RELOAD"), signum("JSON") == signal_numbers()["JSON"]
    (1, True)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from hafast import __version__
from hafast.config import pool_backends
from hafast.lib.logging import LogOptions, facility_of

DEFAULT_CONFIG = "/etc/keepalived/keepalived.conf"
RUN_DIR = "/run"
DEFAULT_DUMP_PREFIX = "/tmp/keepalived"  # keepalived's .data/.stats/.json files


def signal_numbers() -> dict[str, int]:
    """keepalived --signum names -> numbers on this system (lib/signals.c)."""
    rtmin, rtmax = int(signal.SIGRTMIN), int(signal.SIGRTMAX)
    return {
        "STOP": int(signal.SIGTERM),
        "RELOAD": int(signal.SIGHUP),
        "DATA": int(signal.SIGUSR1),
        "STATS": int(signal.SIGUSR2),
        "STATS_CLEAR": rtmax - 1,
        "JSON": rtmin + 2,
        "TDATA": rtmax,
    }


def signum(name: str) -> int:
    """The signal keepalived uses for ``name`` (STOP, RELOAD, DATA, STATS, JSON, ...)."""
    return signal_numbers()[name.upper()]


@dataclass(frozen=True, slots=True)
class Options:
    """Everything the daemon was told on its command line."""

    config_file: str = DEFAULT_CONFIG
    vrrp_only: bool = False  # -P
    check_only: bool = False  # -C
    dont_fork: bool = False  # -n
    dont_respawn: bool = False  # -R
    dont_release_vrrp: bool = False  # -V
    dont_release_ipvs: bool = False  # -I
    release_vips: bool = False  # -X (accepted)
    log: LogOptions = field(default_factory=LogOptions)
    pid_file: str = f"{RUN_DIR}/hafast.pid"
    vrrp_pid_file: str = f"{RUN_DIR}/hafast_vrrp.pid"
    checkers_pid_file: str = f"{RUN_DIR}/hafast_checkers.pid"
    namespace: str | None = None  # -s, or the config's net_namespace (namespace_from_config)
    namespace_from_config: bool = False
    config_id: str | None = None  # -i
    all_config: bool = False  # -e
    umask: int | None = None  # -u
    address_monitoring: bool = False  # -a
    # hafast extensions (long options only)
    metrics: str | None = None  # ADDR:PORT; also global_defs metrics_listen
    control_socket: str | None = None
    check_workers: int = 0  # 0: one per core
    vrrp_spare: bool = True  # a warm spare VRRP worker (hafast.app.spare)
    pool_backend: str = "auto"
    dump_prefix: str = DEFAULT_DUMP_PREFIX
    heartbeat_interval: float = 0.5
    heartbeat_timeout: float = 2.0
    child_wait: float = 5.0  # keepalived child_wait_time: then SIGKILL
    ignore_sigint: bool = False

    @property
    def control_path(self) -> str:
        if self.control_socket:
            return self.control_socket
        tail = f"_{self.namespace}" if self.namespace else ""
        return f"{RUN_DIR}/hafast{tail}.ctl"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hafast",
        description="keepalived-compatible VRRP and health-checking daemon",
        epilog="Subcommands: hafast status [--json], hafast genhash ..., hafast lab ...",
    )
    a = p.add_argument
    a("-f", "--use-file", dest="config_file", default=DEFAULT_CONFIG, metavar="FILE",
      help=f"configuration file (default {DEFAULT_CONFIG})")
    a("-P", "--vrrp", action="store_true", help="run only the VRRP subsystem")
    a("-C", "--check", action="store_true", help="run only the health-checker subsystem")
    a("-B", "--no_bfd", action="store_true", help="accepted; hafast has no BFD")
    a("--all", action="store_true", help="accepted for compatibility")
    a("-l", "--log-console", action="store_true", help="log to the console too")
    a("-D", "--log-detail", action="store_true", help="detailed log messages")
    a("-S", "--log-facility", default="daemon", metavar="FACILITY",
      help="syslog facility: 0-7 (local0-7), user, daemon (default)")
    a("-g", "--log-file", metavar="FILE", help="also log to FILE (_vrrp, _healthcheckers)")
    a("--flush-log-file", action="store_true", help="accepted; lines are flushed anyway")
    a("-G", "--no-syslog", action="store_true", help="do not log via syslog")
    a("-X", "--release-vips", action="store_true", help="accepted for compatibility")
    a("-V", "--dont-release-vrrp", action="store_true", help="keep VIPs and routes on stop")
    a("-I", "--dont-release-ipvs", action="store_true", help="keep the pool (IPVS) on stop")
    a("-R", "--dont-respawn", action="store_true", help="do not restart a dead worker")
    a("-n", "--dont-fork", action="store_true", help="stay in the foreground")
    a("-d", "--dump-conf", action="store_true", help="print the configuration and exit")
    a("--json", action="store_true",
      help="with -d: dump as JSON; with -t: the diagnostics as JSON on stdout")
    a("-p", "--pid", dest="pid_file", metavar="FILE", help="parent pid file")
    a("-r", "--vrrp_pid", dest="vrrp_pid_file", metavar="FILE", help="VRRP worker pid file")
    a("-c", "--checkers_pid", dest="checkers_pid_file", metavar="FILE",
      help="check worker pid file (the first worker's pid)")
    a("-b", "--bfd_pid", metavar="FILE", help="accepted; hafast has no BFD")
    a("-T", "--genhash", action="store_true", help="run as genhash (the rest are its flags)")
    a("-a", "--address-monitoring", action="store_true", help="log address changes")
    a("-s", "--namespace", metavar="NAME", help="run inside network namespace NAME")
    a("-e", "--all-config", action="store_true", help="refuse to start if a file is missing")
    a("-i", "--config-id", metavar="ID", help="config id for @ID lines")
    a("-u", "--umask", metavar="NUMBER", help="umask for files created (octal)")
    a("-x", "--snmp", action="store_true", help="accepted; hafast has no SNMP")
    a("-A", "--snmp-agent-socket", metavar="FILE", help="accepted; no SNMP")
    a("-m", "--core-dump", action="store_true", help="accepted")
    a("-M", "--core-dump-pattern", nargs="?", const="", metavar="PATTERN", help="accepted")
    a("--debug", nargs="?", const="", help="accepted")
    a("--perf", nargs="?", const="", help="accepted")
    a("--no-mem-check", action="store_true", help="accepted")
    a("--ignore-sigint", action="store_true", help="do not stop on SIGINT")
    a("-t", "--config-test", nargs="?", const=True, default=None, metavar="FILE",
      help="check the configuration and exit (0 ok, 3 unreadable, 4 errors)")
    a("--signum", metavar="SIGFUNC",
      help="print the signal number of STOP|RELOAD|DATA|STATS|STATS_CLEAR|JSON|TDATA")
    a("-v", "--version", action="version", version=f"hafast {__version__}")
    # hafast extensions
    a("--metrics", metavar="ADDR:PORT",
      help="serve Prometheus /metrics (same as global_defs metrics_listen)")
    a("--control-socket", metavar="PATH", help="control socket for `hafast status`")
    a("--check-workers", type=int, default=0, metavar="N",
      help="check worker processes (default: one per core)")
    a("--no-vrrp-spare", action="store_true",
      help="no spare VRRP worker started ahead of a restart (saves a process)")
    a("--pool-backend", default=pool_backends.AUTO, choices=pool_backends.choices(),
      help="where the pools go (auto: IPVS if the kernel has it, else nftables)")
    a("--dump-prefix", default=DEFAULT_DUMP_PREFIX, metavar="PATH",
      help="SIGUSR1/SIGUSR2/JSON dumps go to PATH.data, PATH.stats, PATH.json")
    a("--heartbeat-interval", type=float, default=0.5, metavar="S", help=argparse.SUPPRESS)
    a("--heartbeat-timeout", type=float, default=2.0, metavar="S", help=argparse.SUPPRESS)
    a("--child-wait", type=float, default=5.0, metavar="S", help=argparse.SUPPRESS)
    return p


def _pid_default(explicit: str | None, base: str, namespace: str | None) -> str:
    if explicit:
        return explicit
    # keepalived -s NAME keeps its pid files apart per namespace.
    if namespace:
        return f"{RUN_DIR}/hafast/{namespace}/{base}.pid"
    return f"{RUN_DIR}/{base}.pid"


def options_from(ns: argparse.Namespace) -> Options:
    facility_of(ns.log_facility)  # validate now: argparse-style error at start
    umask = int(ns.umask, 8) if ns.umask else None
    return Options(
        config_file=ns.config_file,
        vrrp_only=ns.vrrp,
        check_only=ns.check,
        dont_fork=ns.dont_fork,
        dont_respawn=ns.dont_respawn,
        dont_release_vrrp=ns.dont_release_vrrp,
        dont_release_ipvs=ns.dont_release_ipvs,
        release_vips=ns.release_vips,
        log=LogOptions(console=ns.log_console, detail=ns.log_detail,
                       facility=ns.log_facility, file=ns.log_file, syslog=not ns.no_syslog,
                       namespace=ns.namespace),
        pid_file=_pid_default(ns.pid_file, "hafast", ns.namespace),
        vrrp_pid_file=_pid_default(ns.vrrp_pid_file, "hafast_vrrp", ns.namespace),
        checkers_pid_file=_pid_default(ns.checkers_pid_file, "hafast_checkers", ns.namespace),
        namespace=ns.namespace,
        config_id=ns.config_id,
        all_config=ns.all_config,
        umask=umask,
        address_monitoring=ns.address_monitoring,
        metrics=ns.metrics,
        control_socket=ns.control_socket,
        check_workers=ns.check_workers,
        vrrp_spare=not ns.no_vrrp_spare,
        pool_backend=ns.pool_backend,
        dump_prefix=ns.dump_prefix,
        heartbeat_interval=ns.heartbeat_interval,
        heartbeat_timeout=ns.heartbeat_timeout,
        child_wait=ns.child_wait,
        ignore_sigint=ns.ignore_sigint,
    )


def in_config_namespace(options: Options, name: str) -> Options:
    """``options`` for a daemon that the config's ``net_namespace NAME`` puts in a
    network namespace (no ``-s``): everything named after the namespace for ``-s NAME``
    (pid files, control socket, dumps, log idents) is named after ``name``, as
    keepalived treats the keyword and its ``-s`` alike.  A pid file given on the
    command line stays where it was given.

    >>> o = in_config_namespace(parse(["-r", "/tmp/v.pid"]), "blue")
    >>> o.pid_file, o.vrrp_pid_file, o.control_path, o.log.namespace
    ('/run/hafast/blue/hafast.pid', '/tmp/v.pid', '/run/hafast_blue.ctl', 'blue')
    """
    def moved(path: str, base: str) -> str:
        # Options keeps no record of which paths were given: one equal to the default
        # is taken as the default (giving the default path explicitly is the only case
        # that moves, into the namespace's directory, which -s would do too)
        return _pid_default(None, base, name) if path == _pid_default(None, base, None) \
            else path

    return dataclasses.replace(
        options, namespace=name, namespace_from_config=True,
        pid_file=moved(options.pid_file, "hafast"),
        vrrp_pid_file=moved(options.vrrp_pid_file, "hafast_vrrp"),
        checkers_pid_file=moved(options.checkers_pid_file, "hafast_checkers"),
        log=dataclasses.replace(options.log, namespace=name))


def parse(argv: Sequence[str]) -> Options:
    """Parse the daemon flags (no -t/-d/-T/--signum handling); errors exit 2."""
    parser = build_parser()
    ns = parser.parse_args(list(argv))
    try:
        return options_from(ns)
    except ValueError as exc:
        parser.error(str(exc))
        raise  # unreachable: error() exits


def main(argv: Sequence[str] | None = None) -> int:
    """``hafast [keepalived flags]``: the daemon, or -t/-d/-T/--signum and exit.

    hafast/cli.py calls this for every invocation that is not a subcommand.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    # -T/--genhash: everything after it belongs to genhash (its -s/-p/-V differ).
    for i, word in enumerate(args):
        if word in ("-T", "--genhash"):
            from hafast.genhash import main as genhash_main

            return genhash_main(args[:i] + args[i + 1:])
    parser = build_parser()
    ns = parser.parse_args(args)
    if ns.signum:
        try:
            print(signum(ns.signum))
        except KeyError:
            print(f"hafast: unknown signal function {ns.signum}", file=sys.stderr)
            return 1
        return 0
    if ns.config_test is not None or ns.dump_conf:
        from hafast.app.hostcheck import host_checks
        from hafast.config.cli_config import run_config

        test = ns.config_test
        path = test if isinstance(test, str) else ns.config_file
        return run_config(path, test=test is not None, dump=ns.dump_conf, as_json=ns.json,
                          config_id=ns.config_id,
                          host_checks=lambda config: host_checks(config, ns.pool_backend))
    try:
        options = options_from(ns)
    except ValueError as exc:
        parser.error(str(exc))
    if ns.vrrp and ns.check:
        parser.error("-P and -C together: give neither to run both")
    if options.umask is not None:
        os.umask(options.umask)
    from hafast.app.daemon import run_daemon

    return run_daemon(options)
