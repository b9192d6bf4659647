"""Never two masters (issue 12, items 1-3): the full daemon under worker faults and
overlapping reloads, with Debian's keepalived 2.2.7 as the VRRP peer.

The lab is :class:`~tests.netns.daemon_fixtures.PairLab`: nginx serving 1,000
real servers, director ``d1`` runs hafast (parent, VRRP worker, check workers;
every real server by TCP_CHECK, the pool in nftables), director ``d2`` runs
keepalived ``-P`` on the same VRRP instance at a lower priority.  A sampler reads
both directors' addresses every few milliseconds; "two masters" is the VIP on both
at once for longer than a preemption hand-over takes (a few ms while the old
master reads the new one's advert, as keepalived does too).  Before the fix the
VIP sat on both for 1.4-2.4 s (a restart backoff of 5 s, a 5 s heartbeat).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import pytest

from tests.conftest import require_root, require_tool
from tests.netns.daemon_fixtures import VIP, Daemon, PairLab

pytestmark = pytest.mark.timeout(300)

KEEPALIVED = "/usr/sbin/keepalived"
SERVERS = 1000
# Longest tolerated overlap: a preemption hand-over is milliseconds; the defects
# were 1.39 s (hung worker) and 2.36 s (restart backoff).
HANDOVER_S = 0.15


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PairLab]:
    require_root()
    require_tool("nginx")
    require_tool("nft")
    require_tool(KEEPALIVED)
    lab = PairLab(count=SERVERS, dir=tmp_path_factory.mktemp("n2m"))
    try:
        yield lab.build()
    finally:
        lab.close()


class Keepalived:
    """Debian's keepalived, VRRP only, in a director namespace; stopped by PID."""

    def __init__(self, lab: PairLab, role: str, conf_text: str) -> None:
        d = lab.dir / f"ka-{role}"
        d.mkdir(exist_ok=True)
        (d / "keepalived.conf").write_text(conf_text)
        self.log = d / "keepalived.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", lab.ns(role), KEEPALIVED, "-n", "-l", "-D", "-P",
                 "-R", "-f", str(d / "keepalived.conf"), "-p", str(d / "ka.pid"),
                 "-r", str(d / "ka_vrrp.pid"), "-c", str(d / "ka_chk.pid")],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Sampler(threading.Thread):
    """Who holds the VIP, every few ms, until stopped; the overlaps it saw."""

    def __init__(self, lab: PairLab) -> None:
        super().__init__(daemon=True)
        self.nss = [lab.ns("d1"), lab.ns("d2")]
        self.samples: list[tuple[float, bool, bool]] = []
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def _has(self, ns: str) -> bool:
        out = subprocess.run(["ip", "-n", ns, "-o", "-4", "addr", "show", "dev", "srv0"],
                             capture_output=True, text=True, check=True).stdout
        return f" {VIP}/" in out

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                a, b = self._has(self.nss[0]), self._has(self.nss[1])
                self.samples.append((time.monotonic(), a, b))
        except BaseException as exc:  # asserted by stop()
            self.error = exc

    def stop(self) -> None:
        self.halt.set()
        self.join(10)
        assert self.error is None, f"sampler failed: {self.error!r}"
        assert len(self.samples) > 100

    def overlaps(self) -> list[float]:
        """Each stretch with the VIP on both directors: from its first sample to the
        first sample after it (an upper bound of its length)."""
        out, start = [], None
        for t, a, b in self.samples:
            if a and b and start is None:
                start = t
            elif not (a and b) and start is not None:
                out.append(t - start)
                start = None
        if start is not None:
            out.append(self.samples[-1][0] - start)
        return out

    def longest(self) -> float:
        return max(self.overlaps(), default=0.0)


def confs(lab: PairLab, advert: str) -> tuple[str, str]:
    servers = lab.servers[:SERVERS]
    extra = "  vrrp_version 3" if advert != "1" else ""
    hafast = lab.conf("d1", servers, advert_int=advert, extra_global=extra)
    peer = lab.conf("d2", [], advert_int=advert, extra_global=extra)
    if extra:  # sub-second adverts are VRRPv3, which has no authentication
        auth = "  authentication {\n    auth_type PASS\n    auth_pass 1111\n  }\n"
        hafast, peer = hafast.replace(auth, ""), peer.replace(auth, "")
    return hafast, peer


def start_pair(lab: PairLab, advert: str, *extra: str) -> tuple[Daemon, Keepalived]:
    hafast_conf, peer_conf = confs(lab, advert)
    d1 = lab.start("d1", hafast_conf, *extra)
    ka = Keepalived(lab, "d2", peer_conf)
    d1.wait_ready(30)
    lab.wait(lambda: lab.holders() == ["d1"], 20, "VIP on d1 only")
    assert lab.fifos is not None
    lab.wait(lambda: 'INSTANCE "VI_1" BACKUP 90' in lab.fifos["d2"].lines(), 10,  # type: ignore[index]
             "keepalived BACKUP")
    return d1, ka


def vrrp_worker(st: dict[str, Any]) -> dict[str, Any]:
    return next(w for w in st["workers"] if w["name"] == "vrrp")


def report(what: str, sampler: Sampler, d1: Daemon, ka: Keepalived) -> str:
    tail = ka.log.read_text(errors="replace")[-2000:]
    return (f"{what}: VIP on both directors for {sampler.longest():.3f}s "
            f"(overlaps {[round(x, 3) for x in sampler.overlaps()]})\n"
            f"--- hafast\n{d1.log_text()[-5000:]}\n--- keepalived\n{tail}")


@pytest.mark.parametrize("advert", ["1", "0.1"])
def test_vrrp_worker_killed_ten_times_never_leaves_the_vip_on_both(lab: PairLab,
                                                                   advert: str) -> None:
    """Item 1: ten quick SIGKILLs drive the restart backoff to 5 s; the VIP must
    never stay on d1 while keepalived is MASTER."""
    d1, ka = start_pair(lab, advert)
    sampler = Sampler(lab)
    try:
        sampler.start()
        for _ in range(10):
            victim = d1.worker_pid("vrrp")
            os.kill(victim, signal.SIGKILL)
            d1.wait_for(lambda st, v=victim: vrrp_worker(st)["pid"] != v  # type: ignore[misc]
                        and vrrp_worker(st)["answering"], 20, "the VRRP worker back")
        lab.wait(lambda: lab.holders() == ["d1"], 20, "VIP back on d1 only")
        time.sleep(2 * float(advert))
        sampler.stop()
        print(f"advert {advert}, SIGKILL x10: {len(sampler.overlaps())} overlaps, longest "
              f"{sampler.longest():.3f}s, {len(sampler.samples)} samples")
        assert sampler.longest() < HANDOVER_S, report("SIGKILL x10", sampler, d1, ka)
        # ten kills of ours, plus any successor the parent killed itself: one the
        # heartbeat or the release deadline found not answering (each counted apart)
        w = vrrp_worker(d1.status())
        assert w["restarts"] == 10 + w["heartbeat_kills"] + w["deadline_kills"], w
        # The backoff outgrew the peer's master-down interval: the parent released
        # the VIP rather than hold it unadvertised.
        assert "released the VIPs of VI_1" in d1.log_text()
    finally:
        sampler.halt.set()
        ka.close()
        d1.close()


@pytest.mark.parametrize("advert", ["1", "0.1"])
def test_hung_vrrp_worker_loses_its_vip_before_the_peer_takes_over(lab: PairLab,
                                                                   advert: str) -> None:
    """Item 2: a VRRP worker stopped with SIGSTOP for 10 s is found by the heartbeat
    before keepalived's master-down timer runs out, and its VIP goes first."""
    d1, ka = start_pair(lab, advert)
    sampler = Sampler(lab)
    victim = d1.worker_pid("vrrp")
    try:
        sampler.start()
        os.kill(victim, signal.SIGSTOP)
        time.sleep(10)
        with suppress(ProcessLookupError):
            os.kill(victim, signal.SIGCONT)
        lab.wait(lambda: lab.holders() == ["d1"], 20, "VIP back on d1 only")
        time.sleep(2 * float(advert))
        sampler.stop()
        print(f"advert {advert}, SIGSTOP 10 s: {len(sampler.overlaps())} overlaps, longest "
              f"{sampler.longest():.3f}s, {len(sampler.samples)} samples")
        assert sampler.longest() < HANDOVER_S, report("SIGSTOP 10 s", sampler, d1, ka)
        w = vrrp_worker(d1.status())
        assert w["heartbeat_kills"] == 1 and w["pid"] != victim, report(
            "SIGSTOP 10 s", sampler, d1, ka)
        assert "vrrp hung: released the VIPs of VI_1" in d1.log_text()
    finally:
        sampler.halt.set()
        with suppress(ProcessLookupError):
            os.kill(victim, signal.SIGCONT)
        ka.close()
        d1.close()


def test_no_respawn_releases_the_vip_of_a_dead_vrrp_worker(lab: PairLab) -> None:
    """With -R the daemon stops when a worker dies; nobody will advertise for the
    dead worker's VIP again, so it must not stay behind on d1."""
    d1, ka = start_pair(lab, "1", "-R")
    sampler = Sampler(lab)
    try:
        sampler.start()
        os.kill(d1.worker_pid("vrrp"), signal.SIGKILL)
        d1.proc.wait(20)
        lab.wait(lambda: lab.holders() == ["d2"], 10, "VIP on keepalived only")
        time.sleep(1)
        sampler.stop()
        assert sampler.longest() < HANDOVER_S, report("-R", sampler, d1, ka)
        assert "no respawn (-R): released the VIPs of VI_1" in d1.log_text()
    finally:
        sampler.halt.set()
        ka.close()
        d1.close()


def pool_size(st: dict[str, Any]) -> int:
    return len(st["pools"]["virtual_servers"][0]["real_servers"])


def reloads_settled(st: dict[str, Any], asked: int) -> bool:
    """Every SIGHUP seen and answered (tests/netns/test_chaos_reload.settled says why
    not applied + rejected + superseded)."""
    r = st["reload"]
    return not r["busy"] and r["requested"] >= asked


def test_overlapping_reloads_end_on_the_newest_file(lab: PairLab) -> None:
    """Item 3: SIGHUP with a 1,000-server file, 20 ms later SIGHUP with a 999-server
    file: the pool ends with 999 servers, in 20 of 20 pairs."""
    servers = lab.servers[:SERVERS]
    big, small = (lab.conf("d1", servers), lab.conf("d1", servers[:-1]))
    d1 = lab.start("d1", small)
    try:
        d1.wait_ready(30)
        d1.wait_for(lambda st: pool_size(st) == SERVERS - 1, 30, "999 servers")
        conf = d1.dir / "d1.conf"
        tmp = d1.dir / "d1.conf.new"
        finals = []
        for i in range(20):
            for text in (big, small):
                tmp.write_text(text)
                os.replace(tmp, conf)  # the file is whole whenever a reload reads it
                d1.signal(signal.SIGHUP)
                time.sleep(0.02)
            st = d1.wait_for(lambda st, n=2 * (i + 1): reloads_settled(st, n),  # type: ignore[misc]
                             30, f"reload pair {i + 1} settled")
            finals.append(pool_size(st))
        assert finals == [SERVERS - 1] * 20, finals
        assert d1.status()["reload_errors"] == 0
    finally:
        d1.close()


def test_hung_check_worker_is_replaced_and_status_does_not_wait_for_it(lab: PairLab) -> None:
    """Item 2, the check side: a SIGSTOPped check worker is replaced by the
    heartbeat (2 s, was 5 s) without any pool change, and `hafast status` meanwhile
    reports it as not answering instead of waiting for it."""
    servers = lab.servers[:SERVERS]
    d1 = lab.start("d1", lab.conf("d1", servers))
    try:
        d1.wait_ready(30)
        st = d1.wait_for(lambda st: pool_size(st) == SERVERS and all(
            r["pool_weight"] == 1 for r in st["pools"]["virtual_servers"][0]["real_servers"]),
            30, "1,000 servers in the pool")
        changes = dict(st["pools"]["changes"])
        victim = d1.worker_pid("check")
        os.kill(victim, signal.SIGSTOP)
        try:
            st = d1.wait_for(lambda st: not st["workers"][1]["answering"], 5,
                             "the stopped worker reported as not answering")
            assert st["workers"][1]["pid"] == victim
            st = d1.wait_for(lambda st: st["workers"][1]["heartbeat_kills"] == 1
                             and st["workers"][1]["answering"], 15, "check0 replaced")
        finally:
            with suppress(ProcessLookupError):
                os.kill(victim, signal.SIGCONT)
        assert st["workers"][1]["pid"] != victim
        time.sleep(2)  # two delay_loops of the new worker
        assert d1.status()["pools"]["changes"] == changes  # nothing healthy removed
    finally:
        d1.close()
