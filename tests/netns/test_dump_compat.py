"""The SIGUSR1 / SIGUSR2 / JSON dumps side by side with Debian's keepalived 2.2.7
(issue 14): the same config, the same states, the same files.

Lab: ``r1`` and ``r2`` on a bridge (eth0), and in r1 a second link (eth1, one end
of a veth pair kept inside r1).  r2 runs keepalived as the unicast master of VI_B
and the VRRPv3 master of VI_V3 (priority 250).  r1 runs, one after the other,
keepalived 2.2.7 and hafast on each of tests/dump_compare.py's configs:

* "mixed": VI_M multicast, alone: MASTER; VI_B unicast, hears r2: BACKUP; the sync
  group G1 of VI_F, which tracks a vrrp_script that always fails: FAULT, and VI_F2,
  FAULT through its group;
* "options": native IPv6, VRRPv3, authentication, nopreempt, a tracked interface, a
  notify script, excluded addresses...;
* "backup3": a VRRPv3 BACKUP of r2's VI_V3, a weighted script that succeeds;
* "linkdown": FAULT because eth1 has no carrier (its peer end down);
* "switches": dont_track_primary, skip_check_adv_addr, promote_secondaries, the
  advert and GARP knobs.

Each daemon gets SIGUSR1, SIGUSR2 and keepalived's JSON signal (``keepalived
--signum=JSON``: SIGRTMIN+2) once the data file shows the expected states.

keepalived 2.2.7 has no dump path option: it always writes /tmp/keepalived.*; it
runs in its own mount namespace with the test's folder bound on /tmp.  hafast gets
``--dump-prefix``.

What is compared, byte for byte after tests/dump_compare.py's normalisation (times,
file descriptors, advert counters):

* keepalived.data: the VRRP sections (``VRRP Topology``, ``VRRP Sockpool``, ``VRRP
  Sync groups``, ``VRRP Scripts``).  keepalived's ``Global definitions`` and
  ``Interfaces`` sections are not rendered by hafast, which writes its own process
  lines first instead.
* keepalived.stats: keepalived's whole file is the start of hafast's (hafast then
  adds its socket and checker blocks).
* keepalived.json: the same keys in the same order, the same JSON types, the same
  values, and the same bytes.

And keepalived_exporter's parsers (tests/keepalived_exporter.py) read the same
things from both.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hafast.lab.netns import Registry, run_in
from tests import keepalived_exporter as exporter
from tests.conftest import require_root, require_tool
from tests.dump_compare import SCENARIOS, VRRP_SECTIONS, normalise, sections
from tests.netns.daemon_fixtures import Daemon, start_daemon

pytestmark = [pytest.mark.root, pytest.mark.timeout(180)]

KEEPALIVED = "/usr/sbin/keepalived"
SIGJSON = signal.SIGRTMIN + 2  # keepalived 2.2.7 --signum=JSON (36)

PEER_CONF = """global_defs {
  router_id r2
}
vrrp_instance VI_B {
  state MASTER
  interface eth0
  virtual_router_id 52
  priority 250
  advert_int 1
  unicast_src_ip 10.77.0.2
  unicast_peer {
    10.77.0.1
  }
  virtual_ipaddress {
    10.77.0.101/24
  }
}
vrrp_instance VI_V3 {
  state MASTER
  interface eth0
  virtual_router_id 70
  priority 250
  version 3
  advert_int 1
  virtual_ipaddress {
    10.77.0.170/24
  }
}
"""



@dataclass
class Dumps:
    data: str
    stats: str
    json: str


def wait(cond: Callable[[], bool], timeout: float, what: str, log: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{log()[-3000:]}"
        time.sleep(0.1)


def collect(send: Callable[[int], None], files: dict[str, Path], log: Callable[[], str],
            expected: dict[str, str]) -> Dumps:
    """Signal until the data file shows ``expected``, then take all three dumps."""
    def states_ok() -> bool:
        files["data"].unlink(missing_ok=True)
        send(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while not files["data"].exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            parsed = exporter.parse_vrrp_data(files["data"].read_text())
        except (OSError, exporter.ExporterError):
            return False
        # a BACKUP shows its master once it has heard one
        return {k: v.get("state") for k, v in parsed.items()} == expected \
            and ("BACKUP" not in expected.values() or "Master router" in files["data"].read_text())

    wait(states_ok, 40, f"states {expected}", log)
    out = {"data": files["data"].read_text()}
    for what, sig in (("stats", signal.SIGUSR2), ("json", SIGJSON)):
        files[what].unlink(missing_ok=True)
        send(sig)
        path = files[what]

        def written(path: Path = path) -> bool:
            return path.exists() and path.stat().st_size > 0

        wait(written, 10, what, log)
        time.sleep(0.2)  # keepalived writes with stdio: let it close the file
        out[what] = files[what].read_text()
    return Dumps(**out)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, str, Path]]:
    require_root()
    require_tool(KEEPALIVED)
    require_tool("unshare")
    prefix = f"dc{os.getpid()}"
    tmp = tmp_path_factory.mktemp("dumpcompat")
    with Registry() as reg:
        sw = reg.add_netns(f"{prefix}sw")
        reg.add_bridge(sw, "br0")
        run_in(sw, ["ip", "link", "set", "br0", "type", "bridge", "mcast_snooping", "0"])
        for role, addr in (("r1", "10.77.0.1/24"), ("r2", "10.77.0.2/24")):
            ns = reg.add_netns(f"{prefix}{role}")
            reg.add_veth(ns, "eth0", sw, f"p{role}")
            reg.set_master(sw, f"p{role}", "br0")
            reg.add_address(ns, "eth0", addr)
        r1 = f"{prefix}r1"
        reg.add_veth(r1, "eth1", r1, "eth1p")
        reg.add_address(r1, "eth1", "10.78.0.1/24")
        peer_dir = tmp / "r2"
        peer_dir.mkdir()
        (peer_dir / "ka.conf").write_text(PEER_CONF)
        with (peer_dir / "log").open("wb") as out:
            peer = subprocess.Popen(
                ["ip", "netns", "exec", f"{prefix}r2", KEEPALIVED, "-n", "-l", "-D", "-P",
                 "-f", str(peer_dir / "ka.conf"), "-p", str(peer_dir / "ka.pid"),
                 "-r", str(peer_dir / "ka_vrrp.pid"), "-c", str(peer_dir / "ka_chk.pid")],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield reg, r1, tmp
        finally:
            stop(peer)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def run_keepalived(ns: str, tmp: Path, conf: str, expected: dict[str, str]) -> Dumps:
    """keepalived 2.2.7 in ``ns`` with ``tmp/ka`` as its /tmp (its dumps land there)."""
    d = tmp / "ka"
    d.mkdir()
    (d / "ka.conf").write_text(conf)
    log = d / "log"
    with log.open("wb") as out:
        # -n: the launcher's exec chain ends in keepalived's parent, our child
        proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             f"mount --bind {d} /tmp && exec ip netns exec {ns} {KEEPALIVED} -n -l -D -P "
             "-f /tmp/ka.conf -p /tmp/ka.pid -r /tmp/ka_vrrp.pid -c /tmp/ka_chk.pid"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        def text() -> str:
            return log.read_text(errors="replace")

        # a signal before keepalived's handlers are set would end it (SIGUSR1's default)
        wait(lambda: (d / "ka_vrrp.pid").exists() and "Startup complete" in text(), 20,
             "keepalived started", text)
        files = {w: d / f"keepalived.{w}" for w in ("data", "stats", "json")}
        return collect(lambda sig: proc.send_signal(sig), files, text, expected)
    finally:
        stop(proc)


def run_hafast(ns: str, tmp: Path, conf: str, expected: dict[str, str]) -> Dumps:
    d: Daemon = start_daemon(tmp / "hafast", conf, ns=ns)
    try:
        d.wait_ready()
        files = {w: tmp / "hafast" / f"hafast-dump.{w}" for w in ("data", "stats", "json")}
        return collect(d.signal, files, d.log_text, expected)
    finally:
        d.close()


def run_both(lab: tuple[Registry, str, Path], scenario: str) -> tuple[Dumps, Dumps]:
    _reg, r1, tmp = lab
    conf, expected = SCENARIOS[scenario]
    tmp = tmp / scenario
    tmp.mkdir()
    down = scenario == "linkdown"
    if down:
        run_in(r1, ["ip", "link", "set", "eth1p", "down"])
    try:
        return run_keepalived(r1, tmp, conf, expected), run_hafast(r1, tmp, conf, expected)
    finally:
        if down:
            run_in(r1, ["ip", "link", "set", "eth1p", "up"])


@pytest.fixture(scope="module", params=["mixed", "options", "backup3", "linkdown",
                                        "switches"])
def dumps(lab: tuple[Registry, str, Path], request: pytest.FixtureRequest
          ) -> tuple[Dumps, Dumps]:
    return run_both(lab, request.param)


def test_data_file_vrrp_sections_match(dumps: tuple[Dumps, Dumps]) -> None:
    ka, hf = (sections(normalise(x.data)) for x in dumps)
    assert "VRRP Topology" in ka
    for name in VRRP_SECTIONS:  # a section keepalived leaves out, hafast leaves out
        assert hf.get(name) == ka.get(name), name


def test_stats_file_starts_with_keepalived_s(dumps: tuple[Dumps, Dumps]) -> None:
    ka, hf = (normalise(x.stats) for x in dumps)
    assert hf.startswith(ka)
    # what follows is hafast's own blocks, never another instance
    assert "VRRP Instance:" not in hf[len(ka):]


def test_json_same_keys_types_and_bytes(dumps: tuple[Dumps, Dumps]) -> None:
    ka, hf = (json.loads(x.json) for x in dumps)
    assert [i["data"]["iname"] for i in hf] == [i["data"]["iname"] for i in ka]
    for a, b in zip(ka, hf, strict=True):
        assert list(b) == list(a) == ["data", "stats"]
        for part in ("data", "stats"):
            assert [(k, type(v)) for k, v in b[part].items()] == \
                [(k, type(v)) for k, v in a[part].items()], (a["data"]["iname"], part)
    assert normalise(dumps[1].json) == normalise(dumps[0].json)


def test_exporter_reads_the_same(dumps: tuple[Dumps, Dumps]) -> None:
    """keepalived_exporter's parsers get the same from both (but the counters that
    depend on timing)."""
    ka, hf = dumps
    assert exporter.parse_vrrp_data(hf.data) == exporter.parse_vrrp_data(ka.data)
    assert exporter.parse_vrrp_scripts(hf.data) == exporter.parse_vrrp_scripts(ka.data)
    timing = ("advert_rcvd", "advert_sent", "last_transition")

    def steady(d: dict[str, int]) -> dict[str, int]:
        return {k: v for k, v in d.items() if k not in timing}

    ka_stats, hf_stats = exporter.parse_stats(ka.stats), exporter.parse_stats(hf.stats)
    assert {k: steady(v) for k, v in hf_stats.items()} == \
        {k: steady(v) for k, v in ka_stats.items()}

    def json_view(text: str) -> object:
        # keepalived's own file can fail the exporter (adver_int 0.5 into a Go
        # int): hafast's must then fail it the same way
        try:
            return [(steady(a["data"]), steady(a["stats"])) for a in exporter.parse_json(text)]
        except exporter.ExporterError as exc:
            return str(exc)

    assert json_view(hf.json) == json_view(ka.json)


def test_garp_lower_prio_delay_follows_the_global_one(lab: tuple[Registry, str, Path]
                                                       ) -> None:
    ka, hf = run_both(lab, "garp")
    assert sections(normalise(hf.data))["VRRP Topology"] == \
        sections(normalise(ka.data))["VRRP Topology"]
