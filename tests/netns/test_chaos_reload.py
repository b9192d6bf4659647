"""Chaos on the full daemon (issue 17): a reload storm and a file-descriptor limit.

The lab is :class:`~tests.netns.daemon_fixtures.PairLab` (nginx serving the real
servers, two director namespaces on its bridge).  Director ``d1`` runs hafast
(parent, VRRP worker, check workers; every real server by TCP_CHECK, the pool in
nftables) as MASTER; ``d2`` runs Debian's keepalived 2.2.7 as the BACKUP peer
(:class:`tests.netns.test_never_two_masters.Keepalived`).

* Reload storm: 50 SIGHUPs at 5/s with the file unchanged, 20 with changes (a
  weight changed, a spare real server added or removed, in turn), then 5 broken
  files, each followed by a good change.  A poller reads the kernel's pool
  (``nft list``) and the VIP's holders throughout.
* fd limit: the daemon started with RLIMIT_NOFILE below what its farm needs.

Run with ``-s`` for the figures (docs/reliability.md, "Reload storm").
"""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import figures
from tests.conftest import require_root, require_tool
from tests.netns.daemon_fixtures import (
    REPO,
    Daemon,
    PairLab,
    daemon_argv,
)
from tests.netns.test_never_two_masters import KEEPALIVED, Keepalived

pytestmark = pytest.mark.timeout(400)

SERVERS = 100  # in the storm's pool; the farm has one more, the spare
FD_SERVERS = 200
FD_LIMIT = 64


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PairLab]:
    require_root()
    require_tool("nginx")
    require_tool("nft")
    require_tool(KEEPALIVED)
    lab = PairLab(count=FD_SERVERS + 1, dir=tmp_path_factory.mktemp("chaos"))
    try:
        yield lab.build()
    finally:
        lab.close()


def conf_with(lab: PairLab, servers: list[str], weights: dict[str, int]) -> str:
    """d1's MASTER config with ``servers`` by TCP_CHECK, ``weights`` overriding 1."""
    text = lab.conf("d1", servers)
    for addr, w in weights.items():
        old = f"  real_server {addr} 80 {{\n    weight 1\n"
        assert old in text
        text = text.replace(old, f"  real_server {addr} 80 {{\n    weight {w}\n")
    return text


SLOT = re.compile(r"(\d+)(?:-(\d+))? : (\d+\.\d+\.\d+\.\d+) \. 80")


def kernel_pool(lab: PairLab) -> dict[str, int]:
    """The VIP's nftables DNAT map as {real server: weight} (slots per address)."""
    out = subprocess.run(["ip", "netns", "exec", lab.ns("d1"), "nft", "list", "table",
                          "inet", "hafast_lvs"], capture_output=True, text=True, check=False)
    pool: dict[str, int] = {}
    for first, last, addr in SLOT.findall(out.stdout):
        pool[addr] = pool.get(addr, 0) + int(last or first) - int(first) + 1
    return pool


def status_pool(st: dict[str, Any]) -> dict[str, int]:
    vs = st["pools"]["virtual_servers"][0]["real_servers"]
    return {r["address"]: r["pool_weight"] for r in vs if r["pool_weight"]}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def rss_all(d: Daemon) -> dict[str, int]:
    out = {"parent": rss_kib(int(d.pid_file().read_text().split()[0]))}
    for w in d.status()["workers"]:
        out[w["name"]] = rss_kib(w["pid"])
    return out


class PoolWatch(threading.Thread):
    """Reads the kernel pool and the VIP's holders until stopped; records every
    sample in which a real server of ``always`` was missing, or the VIP was not on
    d1 alone."""

    def __init__(self, lab: PairLab, always: list[str]) -> None:
        super().__init__(daemon=True)
        self.lab, self.always = lab, always
        self.halt = threading.Event()
        self.samples = 0
        self.missing: list[tuple[float, list[str]]] = []
        self.vip_wrong: list[tuple[float, list[str]]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                pool = kernel_pool(self.lab)
                gone = [a for a in self.always if a not in pool]
                if gone:
                    self.missing.append((time.monotonic(), gone))
                holders = self.lab.holders()
                if holders != ["d1"]:
                    self.vip_wrong.append((time.monotonic(), holders))
                self.samples += 1
                time.sleep(0.1)
        except BaseException as exc:  # asserted by stop()
            self.error = exc

    def stop(self) -> None:
        self.halt.set()
        self.join(15)
        assert self.error is None, f"pool watch failed: {self.error!r}"


def transitions(lines: list[str]) -> list[str]:
    return [x for x in lines if x.startswith("INSTANCE")]


def settled(st: dict[str, Any], asked: int) -> bool:
    """Every SIGHUP seen and answered.  (Counting applied + rejected + superseded
    fell short when a read took longer than the 0.2 s between signals: one superseded
    read answers every request that came during it; a CI run waited 60 s for 25/50.)"""
    r = st["reload"]
    return not r["busy"] and r["requested"] >= asked


def hup(d: Any, asked: int) -> None:
    """One more SIGHUP, seen by the daemon before the test goes on.  Standard signals
    do not queue: two sent while the parent did not run (0.2 s on a loaded CI box)
    are one, and a count waiting for every one fell short (a CI run: 49 of 50
    requested, every one answered)."""
    d.signal(signal.SIGHUP)
    d.wait_for(lambda s: s["reload"]["requested"] >= asked, 10, f"SIGHUP {asked} seen")


def replace_file(path: Path, text: str) -> None:
    tmp = path.with_suffix(".new")
    tmp.write_text(text)
    os.replace(tmp, path)  # whole whenever a reload reads it


def test_reload_storm_keeps_vrrp_and_pool(lab: PairLab) -> None:
    servers = lab.servers[:SERVERS]
    spare = lab.servers[SERVERS]
    weights: dict[str, int] = {}
    d1 = lab.start("d1", conf_with(lab, servers, weights))
    ka = Keepalived(lab, "d2", lab.conf("d2", []))
    watch = PoolWatch(lab, servers)
    try:
        d1.wait_ready(30)
        lab.wait(lambda: lab.holders() == ["d1"], 20, "VIP on d1 only")
        assert lab.fifos is not None
        fifo1, fifo2 = lab.fifos["d1"], lab.fifos["d2"]
        # keepalived may be MASTER for a moment before hafast is up: wait for both
        # FIFOs to settle before taking the baseline
        lab.wait(lambda: transitions(fifo2.lines())[-1:] == ['INSTANCE "VI_1" BACKUP 90']
                 and transitions(fifo1.lines())[-1:] == ['INSTANCE "VI_1" MASTER 100'],
                 20, "keepalived BACKUP, hafast MASTER")
        d1.wait_for(lambda st: status_pool(st) == dict.fromkeys(servers, 1), 30,
                    f"{SERVERS} servers in the pool")
        lab.wait(lambda: kernel_pool(lab) == dict.fromkeys(servers, 1), 10, "nft pool")
        time.sleep(2)
        before1, before2 = transitions(fifo1.lines()), transitions(fifo2.lines())
        rss_before = rss_all(d1)
        conf = d1.dir / "d1.conf"
        watch.start()
        asked = 0

        # 1. 50 SIGHUPs at 5/s, the file unchanged
        for _ in range(50):
            asked += 1
            hup(d1, asked)
            time.sleep(0.2)
        st = d1.wait_for(lambda s: settled(s, asked), 60, "unchanged reloads settled")
        unchanged = dict(st["reload"])
        assert st["reload_errors"] == 0

        # 2. 20 with changes at 5/s: a weight, then the spare in or out, in turn
        members = list(servers)
        for i in range(20):
            if i % 2 == 0:
                weights[servers[i]] = 2 + i % 3
            elif spare in members:
                members.remove(spare)
            else:
                members.append(spare)
            replace_file(conf, conf_with(lab, members, weights))
            asked += 1
            hup(d1, asked)
            time.sleep(0.2)
        st = d1.wait_for(lambda s: settled(s, asked), 60, "changed reloads settled")
        assert st["reload_errors"] == 0

        # 3. five broken files (a truncated one: the last '}' missing), each
        #    rejected, the running config kept, and the next good change applied
        rejected_pools = []
        for k in range(5):
            good = conf_with(lab, members, weights)
            running = status_pool(d1.status())
            replace_file(conf, good.rstrip().rsplit("}", 1)[0])
            d1.signal(signal.SIGHUP)
            asked += 1
            st = d1.wait_for(lambda s, n=k + 1, a=asked: s["reload_errors"] == n  # type: ignore[misc]
                             and settled(s, a), 30, f"broken file {k + 1} rejected")
            time.sleep(0.5)
            rejected_pools.append(status_pool(d1.status()) == running)
            weights[servers[50 + k]] = 5
            replace_file(conf, conf_with(lab, members, weights))
            d1.signal(signal.SIGHUP)
            asked += 1
            d1.wait_for(lambda s, r=servers[50 + k], a=asked: status_pool(s).get(r) == 5  # type: ignore[misc]
                        and settled(s, a), 30, f"good change after broken {k + 1}")
        assert rejected_pools == [True] * 5
        assert "missing '}' at end of file" in d1.log_text()

        want = {a: weights.get(a, 1) for a in members}
        d1.wait_for(lambda s: status_pool(s) == want, 30, "final pool in the status")
        lab.wait(lambda: kernel_pool(lab) == want, 10, "final pool in nft")
        time.sleep(2)
        watch.stop()
        st = d1.status()
        rss_after = rss_all(d1)
        after1, after2 = transitions(fifo1.lines()), transitions(fifo2.lines())
        cli = subprocess.run(
            ["ip", "netns", "exec", lab.ns("d1"), sys.executable,
             "-m", "hafast", "status", "--socket", d1.ctl],
            capture_output=True, text=True, cwd=REPO, timeout=60,
            env=dict(os.environ, PYTHONPATH=str(REPO)))
        wrong = sorted({a for _, gone in watch.missing for a in gone})
        print(f"\nreload storm, {SERVERS} real servers: {asked} SIGHUPs; applied "
              f"{st['reloads']}, rejected {st['reload_errors']}, superseded "
              f"{st['reload']['superseded']} (the 50 unchanged: {unchanged}); "
              f"transitions hafast {len(after1) - len(before1)}, keepalived "
              f"{len(after2) - len(before2)}; VIP off d1 alone in "
              f"{len(watch.vip_wrong)} of {watch.samples} samples; healthy servers "
              f"missing from nft {len(wrong)} ({len(watch.missing)} samples); "
              f"RSS KiB before {rss_before} after {rss_after}; worker restarts "
              f"{[(w['name'], w['restarts'], w['heartbeat_kills']) for w in st['workers']]}")
        figures.record("reload storm and fd limits", f"reload storm, {SERVERS} real servers", {
            "SIGHUPs": asked,
            "reloads applied / rejected / superseded":
                f"{st['reloads']} / {st['reload_errors']} / {st['reload']['superseded']}",
            "VRRP transitions": {"hafast": len(after1) - len(before1),
                                 "keepalived": len(after2) - len(before2)},
            "samples with the VIP not on the MASTER alone":
                f"{len(watch.vip_wrong)} of {watch.samples}",
            "healthy real servers missing from the nft map": len(wrong),
            "workers restarted": sum(w["restarts"] for w in st["workers"]),
            **{f"RSS KiB before -> after: {k}": f"{rss_before[k]:,} -> {rss_after.get(k, 0):,}"
               for k in rss_before},
        })
        hung = [x for x in d1.log_text().splitlines() if "heartbeat" in x]
        assert after1 == before1 and after2 == before2, (after1, after2, hung)
        assert watch.vip_wrong == []
        assert watch.missing == [], watch.missing[:5]
        assert st["reload_errors"] == 5
        assert st["reloads"] >= 6  # at least one of each burst, and the 5 good changes
        assert all(w["restarts"] == 0 for w in st["workers"]), st["workers"]
        assert cli.returncode == 0, cli.stderr
        assert "VI_1" in cli.stdout
        assert status_pool(st) == want and kernel_pool(lab) == want
        assert lab.holders() == ["d1"]
        assert d1.stop() == 0
    finally:
        watch.halt.set()
        ka.close()
        d1.close()


def start_limited(lab: PairLab, name: str, conf_text: str, nofile: int) -> Daemon:
    """``start_daemon`` in d1's namespace with RLIMIT_NOFILE lowered before exec."""
    dir = lab.dir / name
    dir.mkdir(exist_ok=True)
    conf = dir / f"{name}.conf"
    conf.write_text(conf_text)
    argv = ["ip", "netns", "exec", lab.ns("d1"),
            *daemon_argv(dir, name, conf, ["--pool-backend", "nft"])]

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with (dir / f"{name}.log").open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, cwd=REPO,
                                env=dict(os.environ, PYTHONPATH=str(REPO)),
                                start_new_session=True, preexec_fn=limit)
    return Daemon(proc, dir, name, lab.ns("d1"))


def test_fd_limit_below_the_farm(lab: PairLab) -> None:
    """RLIMIT_NOFILE 64 under 200 real servers, 150 of them silent (SYN dropped, each
    check holds its socket for connect_timeout 5): the check workers run out of
    descriptors.  They must keep going, say so, and never take the 50 healthy
    servers out of the pool (before the fix, EMFILE counted as the server's
    failure: all 100 healthy servers of that run left the pool)."""
    servers = lab.servers[:FD_SERVERS]
    healthy, silent = servers[:50], servers[50:]
    text = conf_with(lab, servers, {}).replace("connect_timeout 2", "connect_timeout 5")
    d = start_limited(lab, "fd", text, FD_LIMIT)
    try:
        d.wait_ready(30)
        d.wait_for(lambda st: len(status_pool(st)) == FD_SERVERS, 30, "200 in the pool")
        lab.farm.faults.apply(silent, "drop")
        gone: set[str] = set()
        samples = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < 25:
            pool = status_pool(d.status())
            gone |= {a for a in healthy if a not in pool}
            samples += 1
            time.sleep(0.3)
        st = d.status()
        log_text = d.log_text()
        warned = [x for x in log_text.splitlines() if "RLIMIT_NOFILE 64" in x]
        print(f"\nfd limit {FD_LIMIT}, {FD_SERVERS} servers ({len(silent)} silent): "
              f"healthy removed {len(gone)} in {samples} samples, pool "
              f"{len(status_pool(st))}, restarts {[w['restarts'] for w in st['workers']]}, "
              f"fd-limit warnings {len(warned)}: {warned[:1]}")
        figures.record("reload storm and fd limits",
                       f"RLIMIT_NOFILE {FD_LIMIT}, {FD_SERVERS} servers, {len(silent)} silent", {
                           "healthy real servers removed": len(gone),
                           "pool samples": samples,
                           "worker restarts": sum(w["restarts"] for w in st["workers"]),
                           "fd-limit warnings logged": len(warned),
                       })
        assert gone == set()
        assert warned, log_text[-3000:]
        assert all(w["restarts"] == 0 and w["heartbeat_kills"] == 0 for w in st["workers"])
        assert d.proc.poll() is None
    finally:
        lab.farm.faults.recover(silent)
        d.close()


def group_members(pgid: int) -> list[str]:
    out = subprocess.run(["ps", "-o", "pid=,args=", "-g", str(pgid)], capture_output=True,
                         text=True, check=False).stdout
    return [x.strip() for x in out.splitlines() if x.strip()]


def test_fd_limit_too_low_to_start(lab: PairLab) -> None:
    """RLIMIT_NOFILE 20: the parent cannot start its workers; it stops with one
    line naming the limit and exit status 1, and nothing is restarted."""
    d = start_limited(lab, "fd20", conf_with(lab, lab.servers[:FD_SERVERS], {}), 20)
    try:
        rc = d.proc.wait(60)
        log_text = d.log_text()
        lines = [x for x in log_text.splitlines() if "RLIMIT_NOFILE" in x]
        print(f"\nfd limit 20: exit {rc}; {lines}; nft pool left behind: "
              f"{len(kernel_pool(lab))} servers")
        figures.record("reload storm and fd limits", "RLIMIT_NOFILE 20", {
            "exit status": rc, "lines naming the limit": len(lines),
            "traceback logged": "Traceback" in log_text,
            "nft pool left behind (servers)": len(kernel_pool(lab)),
        })
        assert rc == 1
        assert len(lines) == 1 and "open-files limit at 20" in lines[0], log_text[-3000:]
        assert "Traceback" not in log_text
        # no worker outlives the parent (they have its death signal)
        deadline = time.monotonic() + 15
        left = group_members(d.proc.pid)
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = group_members(d.proc.pid)
        assert left == [], left
    finally:
        d.close()
        # the pool the parent wrote before it stopped stays in the kernel (see
        # docs/reliability.md); the next test in this namespace must not find it
        subprocess.run(["ip", "netns", "exec", lab.ns("d1"), "nft", "delete", "table",
                        "inet", "hafast_lvs"], capture_output=True, check=False)
