"""net-snmp's snmpd as the AgentX master, and keepalived 2.2.7 beside it, for the SNMP
tests (test_snmp_agentx, test_snmp_traps, test_snmp_master_restart): written once.

Example::

    snmpd = start_snmpd(reg, ns, tmp)            # waits for tmp/agentx
    keep, log = spawn_keepalived(reg, ns, text, tmp / "keepalived")
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from hafast.lab.netns import Registry, run_in
from tests.netns.vrrp_fixtures import KEEPALIVED


def snmpd_env(tmp: Path) -> dict[str, str]:
    """SNMP_PERSISTENT_DIR in ``tmp``: net-snmp would otherwise save its state in
    /var/lib/snmp; MIBS empty: numeric OIDs, no MIB files read."""
    return dict(os.environ, SNMP_PERSISTENT_DIR=str(tmp / "persist"), MIBS="")


def start_snmpd(reg: Registry, ns: str, tmp: Path, extra_conf: str = "",
                timeout: float = 10.0) -> subprocess.Popen[bytes]:
    """``snmpd --master=agentx`` in ``ns``: its AgentX socket ``tmp/agentx`` (returned
    once it exists), ``rocommunity public`` on 127.0.0.1:161, its log ``tmp/snmpd.log``
    (appended to, so a restart keeps the first run's lines), ``extra_conf`` lines added
    to its config (a trap2sink)."""
    (tmp / "snmpd.conf").write_text(
        f"agentXSocket unix:{tmp}/agentx\nagentXPerms 0700 0700\n"
        f"rocommunity public 127.0.0.1\n{extra_conf}")
    with (tmp / "snmpd.log").open("ab") as log:
        proc = reg.spawn(ns, ["snmpd", "-f", "-Lo", "-C", "-c", str(tmp / "snmpd.conf"),
                              "--master=agentx", "-p", str(tmp / "snmpd.pid"),
                              "udp:127.0.0.1:161"],
                         stdout=log, stderr=subprocess.STDOUT, env=snmpd_env(tmp))
    deadline = time.monotonic() + timeout
    while not (tmp / "agentx").exists():
        assert time.monotonic() < deadline, (tmp / "snmpd.log").read_text()
        time.sleep(0.05)
    return proc


def start_traps(reg: Registry, ns: str, tmp: Path, listen: str,
                opts: tuple[str, ...] = ()) -> None:
    """snmptrapd on ``listen`` (``udp:ADDR:PORT``) in ``ns``, one line a trap in
    ``tmp/traps.log`` ("TRAP oid = TYPE: value|oid = TYPE: value|...", ``opts`` its
    output options beside -On), then snmpd (:func:`start_snmpd`) sending its traps
    there; returns once snmpd's coldStart trap has arrived: both are up.

    snmpd sends coldStart once, as it starts, so snmptrapd must be listening first:
    one still starting (seen on a loaded CI machine) never got it."""
    (tmp / "snmptrapd.conf").write_text("disableAuthorization yes\n")
    with (tmp / "traps.log").open("wb") as out:
        reg.spawn(ns, ["snmptrapd", "-f", "-Lo", "-C", "-c", str(tmp / "snmptrapd.conf"),
                       "-On", *opts, "-F", "TRAP %V|%v\n", "-p", str(tmp / "snmptrapd.pid"),
                       listen], stdout=out, stderr=subprocess.DEVNULL, env=snmpd_env(tmp))
    _wait_udp_bound(ns, int(listen.rsplit(":", 1)[1]))
    start_snmpd(reg, ns, tmp, f"trap2sink {listen.removeprefix('udp:')} public\n")
    deadline = time.monotonic() + 30
    while "TRAP" not in (tmp / "traps.log").read_text():
        assert time.monotonic() < deadline, (tmp / "snmpd.log").read_text()
        time.sleep(0.05)


def _wait_udp_bound(ns: str, port: int, timeout: float = 30.0) -> None:
    """Until a UDP socket in ``ns`` is bound to ``port`` (its /proc/net/udp)."""
    deadline = time.monotonic() + timeout
    want = f":{port:04X}"
    while True:
        table = run_in(ns, ["cat", "/proc/net/udp"]).stdout.splitlines()[1:]
        if any(line.split()[1].endswith(want) for line in table if line.split()):
            return
        assert time.monotonic() < deadline, f"nothing bound UDP port {port} in {ns}"
        time.sleep(0.05)


def spawn_keepalived(reg: Registry, ns: str, conf_text: str, dir: Path
                     ) -> tuple[subprocess.Popen[bytes], Path]:
    """keepalived 2.2.7 in the foreground in ``ns`` on ``conf_text``, its config, pid
    files and log in ``dir`` (made here); the caller ends it (terminate, wait)."""
    dir.mkdir()
    (dir / "k.conf").write_text(conf_text)
    log_path = dir / "k.log"
    with log_path.open("wb") as log:
        proc = reg.spawn(ns, [KEEPALIVED, "-n", "-l", "-D", "-P", "-f", str(dir / "k.conf"),
                              "-p", str(dir / "k.pid"), "-r", str(dir / "kv.pid"),
                              "-c", str(dir / "kc.pid")],
                         stdout=log, stderr=subprocess.STDOUT)
    return proc, log_path


def parse_walk(out: str) -> dict[str, tuple[str, str]]:
    """snmpwalk's output run with ``-On -Oe`` -> ``{oid: (type, value)}`` (the OID
    without its leading dot; a value with no type, such as ``""``, is a STRING)."""
    got: dict[str, tuple[str, str]] = {}
    for line in out.splitlines():
        name, sep, rest = line.partition(" = ")
        if not sep or not name.startswith("."):
            continue
        kind, colon, value = rest.partition(": ")
        got[name[1:]] = (kind, value) if colon else ("STRING", rest)
    return got
