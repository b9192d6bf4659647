"""The network namespace the daemon runs in: the config's top-level ``net_namespace
NAME``, or ``-s NAME``, as keepalived 2.2.7 does them (``core/main.c``,
``core/namespaces.c``):

- the keyword and ``-s`` are one setting; ``-s`` wins over the file (keepalived logs
  "Overriding config net_namespace 'A' with command line namespace 'B'");
- the parent enters ``/run/netns/NAME`` (``setns(CLONE_NEWNET)``, what ``ip netns add``
  made) once the file is read, before the pid-file check, daemonising and any socket,
  worker or script: everything after runs inside it (the workers inherit it);
- a namespace that does not exist is not created: keepalived logs "Failed to open
  /run/netns/NAME" and "Unable to set network namespace NAME - exiting" and stops.  It
  stops with status 0; hafast with 1, so that a unit or a script sees the failure;
- default pid files: keepalived gives itself a private mount namespace with
  ``/run/keepalived/NAME`` bind-mounted on ``/run/keepalived``, so from outside its pid
  files are ``/run/keepalived/NAME/*.pid``.  hafast writes its default ones straight
  into ``/run/hafast/NAME/`` (as for ``-s``): the same layout seen from outside, with
  no mount namespace.  The control socket is ``/run/hafast_NAME.ctl`` (``hafast status
  -s NAME``), the dumps and the syslog idents and log files carry ``_NAME``;
- a reload cannot change it: keepalived logs "Cannot change network namespace at a
  reload - please restart keepalived" and drops the whole reload (``reload_config``
  returns false before its children are signalled), so nothing else in that file is
  applied either; hafast rejects the reload the same way;
- ``keepalived -t`` tries to enter the namespace too (and, when it cannot, stops
  checking without a word); ``hafast -t`` only reads the file, so a config test also
  works where the namespace does not exist (a build host, CI);
- unlike ``ip netns exec``, neither remounts ``/sys`` nor binds ``/etc/netns/NAME``:
  scripts run with the mounts the daemon was started with.

Example::

    >>> from hafast.app.cmdline import parse
    >>> from hafast.config.model import Config
    >>> resolve(parse([]), Config(net_namespace="blue")).pid_file
    '/run/hafast/blue/hafast.pid'
    >>> resolve(parse(["-s", "red"]), Config(net_namespace="blue")).namespace
    'red'
    >>> reload_refusal(resolve(parse([]), Config(net_namespace="blue")), Config()) is None
    False
"""

from __future__ import annotations

import logging

from hafast.app.cmdline import Options, in_config_namespace
from hafast.app.process import NETNS_DIR, enter_namespace
from hafast.config import model as m

log = logging.getLogger("hafast")


def resolve(options: Options, config: m.Config) -> Options:
    """The options of a daemon that runs ``config``: its ``net_namespace`` unless
    ``-s`` named one."""
    wanted = config.net_namespace
    if not wanted or wanted == options.namespace:
        return options
    if options.namespace:
        log.info("Overriding config net_namespace '%s' with command line namespace '%s'",
                 wanted, options.namespace)
        return options
    return in_config_namespace(options, wanted)


def enter(name: str) -> bool:
    """Move this process into network namespace ``name``; False (logged as keepalived
    does) when it cannot.  Called before any thread exists: ``setns`` moves only the
    calling thread, and the threads and processes started later follow it."""
    try:
        enter_namespace(name)
    except FileNotFoundError:
        log.error("Failed to open %s/%s", NETNS_DIR, name)
        log.error("Unable to set network namespace %s - exiting", name)
        return False
    except OSError as exc:
        log.error("%s", exc)
        log.error("Unable to set network namespace %s - exiting", name)
        return False
    log.info("running in network namespace %s", name)
    return True


def reload_refusal(options: Options, new: m.Config) -> str | None:
    """Why a reload to ``new`` cannot be applied (its net_namespace differs from the
    one the daemon runs in), or None.  ``-s`` overrides the file at a reload too, so
    with ``-s`` the file's net_namespace never matters."""
    if options.namespace and not options.namespace_from_config:
        return None
    if new.net_namespace == options.namespace:
        return None
    return (f"Cannot change network namespace at a reload - please restart hafast "
            f"(running in {options.namespace or 'the namespace it was started in'}, the "
            f"file asks for {new.net_namespace or 'none'})")
