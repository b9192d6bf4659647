"""Logging set-up for the parent and each worker, keepalived's way.

keepalived logs to syslog with one ident per process (``Keepalived``,
``Keepalived_vrrp``, ``Keepalived_healthcheckers``); ``-l`` adds the console, ``-g
FILE`` writes a file per process (``FILE`` for the parent, ``FILE`` with ``_vrrp`` or
``_healthcheckers`` before its extension for the children), ``-G`` turns syslog off,
``-S`` picks the facility (``0``-``7`` meaning local0-local7, or a name) and ``-D``
asks for detail.  hafast keeps all of that with its own idents, so its lines never
pass for a real keepalived's in a shared syslog.

Example::

    >>> per_process_file("/var/log/hafast.log", "vrrp")
    '/var/log/hafast_vrrp.log'
    >>> facility_of("3") == facility_of("local3")
    True
"""

from __future__ import annotations

import dataclasses
import logging
import logging.handlers
import os
import sys
from dataclasses import dataclass

# keepalived's idents with our name: the role picks the suffix.
IDENTS: dict[str, str] = {
    "parent": "hafast",
    "vrrp": "hafast_vrrp",
    "check": "hafast_healthcheckers",
}
FILE_SUFFIXES: dict[str, str] = {"parent": "", "vrrp": "_vrrp", "check": "_healthcheckers"}

_FACILITIES: dict[str, int] = {
    "daemon": logging.handlers.SysLogHandler.LOG_DAEMON,
    "user": logging.handlers.SysLogHandler.LOG_USER,
    **{f"local{i}": getattr(logging.handlers.SysLogHandler, f"LOG_LOCAL{i}") for i in range(8)},
}

SYSLOG_SOCKET = "/dev/log"


@dataclass(frozen=True, slots=True)
class LogOptions:
    """What the command line said about logging (keepalived -l -D -S -g -G)."""

    console: bool = False
    detail: bool = False
    facility: str = "daemon"
    file: str | None = None
    syslog: bool = True
    # keepalived in a network namespace (net_namespace, -s) appends "_NAME" to its
    # syslog idents and log file names (make_syslog_ident, make_file_name)
    namespace: str | None = None


def facility_of(text: str) -> int:
    """keepalived -S: ``0``..``7`` are local0..local7; names as syslog(3) spells them.

    Raises ValueError for anything else (the command line reports it).
    """
    word = text.strip().lower()
    if word.isdigit() and 0 <= int(word) <= 7:
        word = f"local{word}"
    if word.startswith("log_"):
        word = word[4:]
    try:
        return _FACILITIES[word]
    except KeyError:
        raise ValueError(f"unknown log facility {text!r} (0-7, local0-local7, user, daemon)"
                         ) from None


def per_process_file(path: str, role: str, namespace: str | None = None) -> str:
    """The log file of ``role``: keepalived puts the process suffix, then the
    namespace's, before the extension.

    >>> per_process_file("/var/log/hafast.log", "vrrp", "blue")
    '/var/log/hafast_vrrp_blue.log'
    """
    suffix = FILE_SUFFIXES.get(role, f"_{role}") + (f"_{namespace}" if namespace else "")
    if not suffix:
        return path
    head, tail = os.path.split(path)
    stem, dot, ext = tail.rpartition(".")
    if not dot or not stem:
        return os.path.join(head, tail + suffix)
    return os.path.join(head, f"{stem}{suffix}.{ext}")


def setup(options: LogOptions, role: str = "parent") -> list[logging.Handler]:
    """Replace the root logger's handlers with the ones ``options`` ask for; return them.

    Syslog that cannot be reached (no ``/dev/log`` in a container) is skipped with a
    line on stderr rather than stopping the daemon.
    """
    ident = IDENTS.get(role, f"hafast_{role}")
    if options.namespace:
        ident = f"{ident}_{options.namespace}"
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    handlers: list[logging.Handler] = []
    detail = "%(levelname)s %(name)s: " if options.detail else ""
    if options.syslog:
        try:
            if not os.path.exists(SYSLOG_SOCKET):
                # Python connects lazily and would drop every line in silence.
                raise FileNotFoundError(f"no {SYSLOG_SOCKET}")
            sh = logging.handlers.SysLogHandler(address=SYSLOG_SOCKET,
                                                facility=facility_of(options.facility))
            sh.ident = f"{ident}[{os.getpid()}]: "
            sh.setFormatter(logging.Formatter(detail + "%(message)s"))
            handlers.append(sh)
        except OSError as exc:
            print(f"{ident}: syslog unavailable ({exc}); logging to stderr",
                  file=sys.stderr)
            if not options.console:
                options = dataclasses.replace(options, console=True, syslog=False)
    stamp = "%(asctime)s.%(msecs)03d "
    if options.console:
        ch = logging.StreamHandler(sys.stderr)
        ch.setFormatter(logging.Formatter(f"{stamp}{ident}[%(process)d]: {detail}%(message)s",
                                          "%Y-%m-%d %H:%M:%S"))
        handlers.append(ch)
    if options.file:
        fh = logging.FileHandler(per_process_file(options.file, role, options.namespace))
        fh.setFormatter(logging.Formatter(f"{stamp}{ident}[%(process)d]: {detail}%(message)s",
                                          "%Y-%m-%d %H:%M:%S"))
        handlers.append(fh)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(logging.DEBUG if options.detail else logging.INFO)
    return handlers
