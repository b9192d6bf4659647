"""SIGHUP on the supervised daemon's VRRP side, end to end (issue 7): re-read, validate,
apply the diff.  Two hafast daemons (parent + VRRP worker each) in two namespaces
joined by one veth pair (both ends inside them, named ``vr<pid>a``/``vr<pid>b``).

* a reload that adds a vrrp_script (negative weight) to a master binds it: the
  instance is adopted as MASTER with no transition, and the failing script then
  hands mastership to the peer;
* a reload that adds a member to a sync group makes it follow the group; one that
  takes it out again lets it stay where it is;
* an instance no reload touches sends no notify line at all (counted on the FIFO);
* a restarted VRRP worker takes its predecessor's VIPs as its own
  (``NetlinkVips.adopt``), so SIGTERM removes them.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hafast.lab.netns import Registry, run_in
from tests.conftest import require_root
from tests.netns.daemon_fixtures import Daemon, FifoReader, start_daemon

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(120)]

VIPS = {"VI_1": "10.96.0.101", "VI_2": "10.96.0.102", "VI_3": "10.96.0.103"}
VRIDS = {"VI_1": 61, "VI_2": 62, "VI_3": 63}
ADDR = {"d1": "10.96.0.1/24", "d2": "10.96.0.2/24"}


@pytest.fixture
def nets() -> Iterator[dict[str, str]]:
    require_root()
    base = f"vr{os.getpid()}"
    names = {"d1": f"{base}a", "d2": f"{base}b"}
    with Registry() as reg:
        for ns in names.values():
            reg.add_netns(ns)
        reg.add_veth(names["d1"], "eth0", names["d2"], "eth0")
        for role, ns in names.items():
            reg.add_address(ns, "eth0", ADDR[role])
        yield names


def conf(role: str, fifo: Path, *, group: tuple[str, ...], flag: Path | None = None,
         tfile: Path | None = None) -> str:
    """VI_1..VI_3 (VRRPv3, 0.5 s adverts: a 2-core box under load must not
    make a backup miss three), d1 at priority 100, d2 at 90; ``group``
    is vrrp_sync_group G's members; ``flag`` adds vrrp_script chk (weight -50,
    failing while ``flag`` exists) tracked by VI_1; ``tfile`` adds track_file tf
    (weight -50 per unit of the file's number) tracked by VI_2."""
    prio = 100 if role == "d1" else 90
    out = ["global_defs {", f"  router_id {role}", "  vrrp_garp_master_delay 0",
           f"  notify_fifo {fifo}", "}"]
    if flag is not None:
        out += ["vrrp_script chk {", f'  script "/usr/bin/test ! -e {flag}"',
                "  interval 0.2", "  weight -50", "  fall 1", "  rise 1", "}"]
    if tfile is not None:
        out += ["vrrp_track_file tf {", f"  file {tfile}", "  weight -50", "}"]
    out += ["vrrp_sync_group G {", "  group {", *(f"    {n}" for n in group), "  }", "}"]
    for name, vip in VIPS.items():
        out += [f"vrrp_instance {name} {{", "  state BACKUP", "  interface eth0",
                f"  virtual_router_id {VRIDS[name]}", f"  priority {prio}",
                # VI_3 is killed and resumed as MASTER in step 4: at 1 s its resume
                # bound (1.75 s) leaves room for a worker start-up on a loaded box
                # (hafast.app.vipguard); at 0.5 s the parent would hand it over.
                "  version 3", f"  advert_int {1 if name == 'VI_3' else 0.5}"]
        if name == "VI_1" and flag is not None:
            out += ["  track_script {", "    chk", "  }"]
        if name == "VI_2" and tfile is not None:
            out += ["  track_file {", "    tf", "  }"]
        out += ["  virtual_ipaddress {", f"    {vip}/24", "  }", "}"]
    return "\n".join(out) + "\n"


class Pair:
    def __init__(self, tmp: Path, nets: dict[str, str]) -> None:
        self.tmp, self.nets = tmp, nets
        self.fifos = {r: FifoReader(tmp / f"{r}.fifo") for r in nets}
        self.daemons: dict[str, Daemon] = {}

    def start(self, role: str, text: str) -> Daemon:
        d = start_daemon(self.tmp / role, text, name=role, ns=self.nets[role])
        self.daemons[role] = d
        return d

    def rewrite(self, role: str, text: str) -> None:
        (self.tmp / role / f"{role}.conf").write_text(text)

    def holds(self, role: str, name: str) -> bool:
        out = run_in(self.nets[role], ["ip", "-o", "addr", "show", "dev", "eth0"]).stdout
        return f" {VIPS[name]}/" in out

    def holder(self, name: str) -> list[str]:
        return [r for r in ("d1", "d2") if self.holds(r, name)]

    def lines(self, role: str) -> list[str]:
        return self.fifos[role].lines()

    def wait(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {k}\n{d.log_text()[-3000:]}"
                                 for k, d in self.daemons.items())
                raise AssertionError(f"timed out after {timeout}s waiting for {what}\n"
                                     f"{self.lines('d1')}\n{self.lines('d2')}\n{logs}")
            time.sleep(0.05)

    def placed(self, where: dict[str, str]) -> Callable[[], bool]:
        return lambda: all(self.holder(n) == [r] for n, r in where.items())

    def reload(self, texts: dict[str, str], count: int) -> None:
        for role, text in texts.items():
            self.rewrite(role, text)
            self.daemons[role].signal(signal.SIGHUP)
        for role in texts:
            self.daemons[role].wait_for(lambda s: s["reloads"] == count, 15,
                                        f"{role} reload {count}")

    def close(self) -> None:
        for d in self.daemons.values():
            d.close()
        for f in self.fifos.values():
            f.close()


def about(name: str, lines: list[str]) -> list[str]:
    return [x for x in lines if f'"{name}"' in x]


def states(d: Daemon) -> dict[str, str]:
    return {i["data"]["iname"]: i["data"]["state_name"] for i in d.status()["vrrp"]}


def test_reload_binds_scripts_regroups_and_leaves_the_rest_alone(
        tmp_path: Path, nets: dict[str, str]) -> None:
    pair = Pair(tmp_path, nets)
    flag = tmp_path / "chk-fails"
    try:
        f1, f2 = (pair.fifos[r].path for r in ("d1", "d2"))
        pair.start("d2", conf("d2", f2, group=("VI_1",)))
        d1 = pair.start("d1", conf("d1", f1, group=("VI_1",)))
        pair.wait(pair.placed({n: "d1" for n in VIPS}), 20, "d1 holds every VIP")
        # d2 may be master for a moment before d1 is up; wait for the lines to settle
        pair.wait(lambda: about("VI_3", pair.lines("d1"))[-1:] == ['INSTANCE "VI_3" MASTER 100']
                  and about("VI_3", pair.lines("d2"))[-1:] == ['INSTANCE "VI_3" BACKUP 90'],
                  5, "VI_3 MASTER on d1 and BACKUP on d2 in the FIFOs")
        time.sleep(0.5)
        vi3 = {r: about("VI_3", pair.lines(r)) for r in ("d1", "d2")}

        # 1. VI_2 joins G on both; d1's VI_1 gets a script with weight -50 (passing
        #    for now): VI_1 is adopted as MASTER, nobody moves, no notify line at all.
        before = {r: pair.lines(r) for r in ("d1", "d2")}
        pair.reload({"d1": conf("d1", f1, group=("VI_1", "VI_2"), flag=flag),
                     "d2": conf("d2", f2, group=("VI_1", "VI_2"))}, 1)
        time.sleep(1.0)
        assert states(d1) == {"VI_1": "MASTER", "VI_2": "MASTER", "VI_3": "MASTER"}
        assert pair.placed({n: "d1" for n in VIPS})()
        assert {r: pair.lines(r) for r in ("d1", "d2")} == before

        # 2. the script fails: VI_1 (100 - 50 < 90) goes to d2 and VI_2 follows it
        #    as G's member; VI_3 stays.
        flag.touch()
        pair.wait(pair.placed({"VI_1": "d2", "VI_2": "d2", "VI_3": "d1"}), 10,
                  "VI_1 and VI_2 on d2, VI_3 on d1")
        st = next(i for i in d1.status()["vrrp"] if i["data"]["iname"] == "VI_1")
        assert st["data"]["effective_priority"] == 50
        flag.unlink()
        pair.wait(pair.placed({n: "d1" for n in VIPS}), 10, "all back on d1")

        # 3. VI_2 leaves G (and, on d1, tracks a file that reads 0 for now): the
        #    script failing again moves VI_1 alone.
        tfile = tmp_path / "weight"
        tfile.write_text("0\n")
        pair.reload({"d1": conf("d1", f1, group=("VI_1",), flag=flag, tfile=tfile),
                     "d2": conf("d2", f2, group=("VI_1",))}, 2)
        flag.touch()
        pair.wait(pair.placed({"VI_1": "d2"}), 10, "VI_1 on d2")
        time.sleep(1.0)
        assert pair.placed({"VI_1": "d2", "VI_2": "d1", "VI_3": "d1"})()
        # the track_file the reload named is polled: 1 x -50 moves VI_2 as well
        tfile.write_text("1\n")
        pair.wait(pair.placed({"VI_2": "d2"}), 10, "VI_2 on d2")
        # VI_3 was never touched by either reload nor by its neighbours' moves.
        assert {r: about("VI_3", pair.lines(r)) for r in ("d1", "d2")} == vi3

        # 4. kill -9 d1's VRRP worker: the successor resumes VI_3 as MASTER and
        #    adopts its VIP, so SIGTERM takes it away (d2 takes over).
        os.kill(d1.worker_pid("vrrp"), signal.SIGKILL)
        d1.wait_for(lambda s: s["workers"][0]["restarts"] >= 1 and s["workers"][0]["answering"]
                    and len(s["vrrp"]) == 3, 15, "VRRP worker back")
        time.sleep(1.0)
        if "released the VIPs of VI_3" in d1.log_text():
            # a successor too slow to advertise by its predecessor's deadline (a loaded
            # machine: 1.84 s to start in a CI run) is killed and VI_3's VIP released by
            # the never-two-masters guard, so d2 may take it a while: by design
            # (tests/netns/test_chaos_workers.py counts such releases), never both
            pair.wait(pair.placed({"VI_1": "d2", "VI_2": "d2", "VI_3": "d1"}), 30,
                      "VI_3 back on d1 after the guard's release")
        else:
            assert pair.placed({"VI_1": "d2", "VI_2": "d2", "VI_3": "d1"})()
            assert about("VI_3", pair.lines("d1")) == vi3["d1"]
        assert d1.stop() == 0
        pair.wait(pair.placed({n: "d2" for n in VIPS}), 10, "d2 holds every VIP")
        assert not any(pair.holds("d1", n) for n in VIPS)
    finally:
        pair.close()
