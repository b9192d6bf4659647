"""``hafast -t`` (config test) and ``hafast -d`` (dump), keepalived's flags.

Exit codes follow keepalived(8) ``--config-test``: 0 the config is usable (warnings
allowed), 3 the configuration cannot be read, 4 it has errors.  (keepalived 2.2.7 itself
answers 5 for most config errors; the documented codes are the stable contract.)
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from typing import TextIO

from hafast.config import model as m
from hafast.config.tokens import Diagnostic

DEFAULT_CONFIG = "/etc/keepalived/keepalived.conf"
EXIT_OK = 0
EXIT_CANNOT_READ = 3
EXIT_CONFIG_ERRORS = 4


def _ordered(diags: list[Diagnostic], files: list[str]) -> list[Diagnostic]:
    rank = {f: i for i, f in enumerate(files)}
    return sorted(diags, key=lambda d: (rank.get(d.file, len(rank)), d.file, d.line, d.col))


def run_config(
    path: str | None,
    *,
    test: bool,
    dump: bool,
    as_json: bool,
    config_id: str | None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    host_checks: Callable[[m.Config], list[str]] | None = None,
) -> int:
    """Load ``path``, print every problem as ``FILE:LINE:COL: error|warning: ...``.

    ``host_checks``: with ``test``, what this machine lacks for a usable config
    (a layer above config knows, e.g. the fleet's sysctls); each line is a warning
    at line 0 of the main file, code ``"host"``.

    >>> run_config("/nonexistent.conf", test=True, dump=False, as_json=False,
    ...            config_id=None, err=sys.stdout)  # doctest: +ELLIPSIS
    /nonexistent.conf:0:0: error: cannot read the configuration file ...
    3
    """
    from hafast.config.dump import dump_json, dump_text
    from hafast.config.loader import load_file_once

    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    res = load_file_once(path or DEFAULT_CONFIG, config_id=config_id)  # then we exit
    if test and host_checks is not None and res.ok:
        res.diagnostics += [Diagnostic(res.files[0], 0, 0, "warning", text, "host")
                            for text in host_checks(res.config)]
    ordered = _ordered(res.diagnostics, res.files)
    if test and as_json and not dump:
        # -t --json: the diagnostics for tooling, on stdout; the exit code as without it
        out.write(json.dumps({
            "config": path or DEFAULT_CONFIG,
            "files": res.files,
            "ok": res.ok,
            "errors": len(res.errors),
            "warnings": len(res.warnings),
            "diagnostics": [dataclasses.asdict(d) for d in ordered],
        }, indent=1) + "\n")
        if not res.files and res.errors:
            return EXIT_CANNOT_READ
        return EXIT_OK if res.ok else EXIT_CONFIG_ERRORS
    for d in ordered:
        print(d.format(), file=err)
    if not res.files and res.errors:
        return EXIT_CANNOT_READ
    if dump and res.ok:
        out.write(dump_json(res.config) if as_json else dump_text(res.config))
    if res.diagnostics and test:
        n_err, n_warn = len(res.errors), len(res.warnings)
        print(f"{path or DEFAULT_CONFIG}: {n_err} error(s), {n_warn} warning(s)", file=err)
    return EXIT_OK if res.ok else EXIT_CONFIG_ERRORS
