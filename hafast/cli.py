"""The ``hafast`` command: keepalived's command line, plus a few subcommands.

``hafast [keepalived flags]`` is the daemon (``-f FILE -n -l -P -C -t -d ...``, see
``hafast.app.cmdline``).  A first word naming a subcommand runs that instead:

    hafast demo [--servers N]   the main job: two directors heal a farm (needs root)
    hafast demo --fleet         three active directors announce a VIP by BGP (root, FRR)
    hafast status [--json]      the running daemon's instances and pools
    hafast genhash ...          keepalived's genhash (also ``hafast -T ...``)
    hafast lab ...              the farm lab (namespaces, nginx, faults)
    hafast core                 which hot paths are compiled
    hafast core-demo            the hot paths at work on a farm (needs root)
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # neither typing nor argparse at start: `hafast status` is timed
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


def _core(argv: Sequence[str]) -> int:
    import argparse

    from hafast._core._select import compiled_status

    argparse.ArgumentParser(prog="hafast core", description=_core.__doc__).parse_args(argv)
    for name, state in compiled_status().items():
        print(f"{name:12s} {state}")
    return 0


_core.__doc__ = "show whether each hot path is compiled or its pure-Python twin"


def _core_demo(argv: Sequence[str]) -> int:
    import argparse

    from hafast.demo import run_demo

    parser = argparse.ArgumentParser(prog="hafast core-demo",
                                     description="the hot paths at work on a farm")
    parser.add_argument("--targets", type=int, default=512, help="real servers in the farm")
    return run_demo(parser.parse_args(argv))


def _demo(argv: Sequence[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="hafast demo",
        description="two hafast directors (MASTER/BACKUP) heal a farm of real servers; "
        "with --fleet, three active directors announce a VIP by BGP through FRR",
    )
    parser.add_argument("--servers", type=int, default=200, help="real servers in the farm")
    parser.add_argument("--fleet", action="store_true",
                        help="the fleet demo: BGP, BFD, a silent director, a withdrawal")
    args = parser.parse_args(argv)
    if args.fleet:
        from hafast.fleet_demo import run_fleet_demo

        return run_fleet_demo(args)
    from hafast.daemon_demo import run_daemon_demo

    return run_daemon_demo(args)


def _status(argv: Sequence[str]) -> int:
    from hafast.app.status_cli import main as status_main

    return status_main(list(argv))


def _genhash(argv: Sequence[str]) -> int:
    from hafast.genhash import main as genhash_main

    return genhash_main(list(argv))


def _lab(argv: Sequence[str]) -> int:
    from hafast.lab.__main__ import main as lab_main

    return lab_main(list(argv))


SUBCOMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "demo": _demo,
    "status": _status,
    "genhash": _genhash,
    "lab": _lab,
    "core": _core,
    "core-demo": _core_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        return SUBCOMMANDS[args[0]](args[1:])
    from hafast.app.cmdline import main as daemon_main

    return daemon_main(args)


def entry() -> None:
    """The installed ``hafast`` command: :func:`main`, and a one-shot command that holds
    a large model (``-t``, ``--dump-conf``) ends without the interpreter's teardown
    (:mod:`hafast.lib.oneshot`)."""
    from hafast.lib import oneshot

    oneshot.begin()
    code = main()
    if oneshot.kept():
        oneshot.exit_now(code)
    raise SystemExit(code)


if __name__ == "__main__":
    entry()
