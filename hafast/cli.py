"""keepalived-compatible command line.

Later issues fill this in (-f, -n, -l, -P, -C, -t, ...); for now it knows its
version, reports which hot paths are compiled, and runs the foundation demo.
"""

from __future__ import annotations

import argparse
import sys

from hafast import __version__


def _cmd_core(_args: argparse.Namespace) -> int:
    from hafast._core._select import compiled_status

    for name, state in compiled_status().items():
        print(f"{name:12s} {state}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from hafast.demo import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hafast",
        description="keepalived-compatible VRRP and health-checking daemon",
    )
    parser.add_argument("-v", "--version", action="version", version=f"hafast {__version__}")
    # keepalived's config flags, at top level beside the subcommands
    parser.add_argument("-f", "--use-file", metavar="FILE", default=None,
                        help="configuration file (default /etc/keepalived/keepalived.conf)")
    parser.add_argument("-t", "--config-test", nargs="?", const=True, default=None, metavar="FILE",
                        help="check the configuration and exit (0 ok, 3 unreadable, 4 errors)")
    parser.add_argument("-d", "--dump-conf", action="store_true",
                        help="print the normalised configuration and exit")
    parser.add_argument("--json", action="store_true", help="with -d: dump as JSON")
    parser.add_argument("-i", "--config-id", metavar="ID", default=None,
                        help="config id for @ID lines (default: short host name)")
    sub = parser.add_subparsers(dest="command")
    core = sub.add_parser("core", help="show whether each hot path is compiled or the Python twin")
    core.set_defaults(func=_cmd_core)
    demo = sub.add_parser("demo", help="the foundation demo: codec, md5stream, icmp_batch")
    demo.add_argument("--vectors", default=None, help="folder of keepalived pcap captures")
    demo.add_argument("--targets", type=int, default=512, help="ICMP targets in the netns")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None and (args.config_test is not None or args.dump_conf):
        from hafast.config.cli_config import run_config

        test = args.config_test
        path = test if isinstance(test, str) else args.use_file
        return run_config(path, test=test is not None, dump=args.dump_conf, as_json=args.json,
                          config_id=args.config_id)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    result: int = func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
