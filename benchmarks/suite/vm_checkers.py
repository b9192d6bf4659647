"""Section "keepalived": keepalived 2.2.7's checkers vs hafast's, in ONE boot of the
IPVS VM (hafast.lab.ipvs_vm: Debian's stock kernel under qemu TCG; the host kernel
has no IPVS, and keepalived's checker process will not run without it).

Inside the guest (``python -m benchmarks.suite.vm_checkers --guest N SECONDS``): a
farm of N servers in guest namespaces; keepalived ``-C`` (checkers only) with
TCP_CHECK at delay_loop 1 over all of them, its checker child's CPU read from
/proc/PID/stat and its checks counted as SYNs on the wire; then hafast's check
engine (``benchmarks.suite.hafast_run``) on the same config.  One JSON line per
peer goes to the command's output, which the host reads back.

Detection (``--detect K ROUNDS``), in the same boot: each peer in turn owns the
IPVS table of the director namespace (keepalived ``-C``; hafast's check engine and
pool manager with the IPVS backend, ``--pool CONF``), TCP_CHECK ``retry 0``,
``connect_timeout 1``; once all N real servers are in the table, a ``reject``
fault goes on the same K servers for both peers and the guest dumps the table over
generic netlink every few ms until each victim has left it.  The figure is fault ->
removal from the pool, the whole path (check, decision, kernel update), and the
same poller times both peers.

Everything in the guest runs about 20x slower than on the host (TCG), so only the
ratio means anything, and N is kept small enough for both to keep up on one vCPU.
TCG slows an interpreter (many small translated blocks) more than C, so the ratio is
biased against hafast compared with the same pair on real hardware; section 1's
ratios against the C loop and HAProxy on the host are the native figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.suite import anchors, checks
from benchmarks.suite.model import Section

KEEPALIVED = "/usr/sbin/keepalived"
MARK = "HBSUITE "  # prefix of the guest's result lines in the command output
POLL_S = 0.01  # pause between two IPVS dumps: leaves the single vCPU to the checker
DETECT_LIMIT_S = 8.0  # a victim still in the table after this counts as missing


def parse_guest_output(text: str) -> list[dict[str, Any]]:
    """The guest's ``HBSUITE {json}`` lines, in order.

    >>> parse_guest_output('boot noise\\nHBSUITE {"who": "hafast", "cpu1k": 1.5}\\n')
    [{'who': 'hafast', 'cpu1k': 1.5}]
    """
    out = []
    for line in text.splitlines():
        if line.startswith(MARK):
            try:
                out.append(json.loads(line[len(MARK):]))
            except ValueError:
                continue
    return out


def _say(obj: dict[str, Any]) -> None:
    print(MARK + json.dumps(obj), flush=True)


def _keepalived_window(lab: checks.Lab, conf: Path, work: Path, warm: float,
                       seconds: float) -> dict[str, Any]:
    argv = [KEEPALIVED, "-n", "-l", "-C", "-f", str(conf), "-p", str(work / "k.pid"),
            "-c", str(work / "k.chk.pid")]
    proc = subprocess.Popen(anchors.nsenter(lab.dir_ns, argv), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        chk = 0
        while time.monotonic() < deadline and not chk:
            if proc.poll() is not None:
                raise anchors.ToolError(f"keepalived exited ({proc.returncode})")
            try:
                chk = int((work / "k.chk.pid").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                time.sleep(0.2)
        if not chk:
            raise anchors.ToolError("keepalived's checker process did not start")
        time.sleep(warm)
        c0, s0, t0 = lab.counters().get("syn", 0), anchors.proc_stat(chk), time.monotonic()
        time.sleep(seconds)
        c1, s1, t1 = lab.counters().get("syn", 0), anchors.proc_stat(chk), time.monotonic()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)  # our own child, by PID
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
    n = c1 - c0
    return {"who": "keepalived", "rate": n / (t1 - t0),
            "cpu1k": 1000.0 * (s1["cpu"] - s0["cpu"]) / n if n else None,
            "rss_total_rs": s1["rss_kib"] / lab.n}


def _hafast_window(lab: checks.Lab, conf: Path, warm: float, seconds: float) -> dict[str, Any]:
    proc = checks.HafastProc(lab.dir_ns, conf, warm=warm, seconds=seconds)
    r = proc.result(timeout=warm + seconds + 300)
    return {"who": "hafast", "rate": r["attempts"] / r["seconds"],
            "cpu1k": 1000.0 * r["cpu"] / r["attempts"] if r["attempts"] else None,
            "rss_total_rs": r["rss_kib"] / lab.n}


# -- detection: fault -> removal from the IPVS table ---------------------------------


def ipvs_dests(link: Any) -> set[str]:
    """Addresses of every destination of every IPVS service (one dump each)."""
    from hafast.lvs import ipvs

    out: set[str] = set()
    for attrs in link.dump(ipvs.CMD_GET_SERVICE):
        nested = attrs.get(ipvs.CMD_ATTR_SERVICE)
        svc = ipvs.decode_service(ipvs._parse_attrs(nested)) if nested is not None else None
        if svc is None:
            continue
        payload = ipvs._nla(ipvs.CMD_ATTR_SERVICE, ipvs._svc_key_attrs(svc.key))
        for d in link.dump(ipvs.CMD_GET_DEST, payload):
            if ipvs.CMD_ATTR_DEST in d:
                out.add(ipvs.decode_dest(ipvs._parse_attrs(d[ipvs.CMD_ATTR_DEST])).address)
    return out


def service_payload(link: Any) -> bytes | None:
    """The dest-dump request attribute of the first IPVS service (None: no service)."""
    from hafast.lvs import ipvs

    for attrs in link.dump(ipvs.CMD_GET_SERVICE):
        nested = attrs.get(ipvs.CMD_ATTR_SERVICE)
        svc = ipvs.decode_service(ipvs._parse_attrs(nested)) if nested is not None else None
        if svc is not None:
            return ipvs._nla(ipvs.CMD_ATTR_SERVICE, ipvs._svc_key_attrs(svc.key))
    return None


def dest_raw(link: Any, payload: bytes) -> set[bytes]:
    """Raw IPv4 addresses of one service's destinations: the poll's fast path (one
    dump, no decoding), so the poller takes as little of the vCPU as it can."""
    from hafast.lvs import ipvs

    out: set[bytes] = set()
    for d in link.dump(ipvs.CMD_GET_DEST, payload):
        nested = d.get(ipvs.CMD_ATTR_DEST)
        if nested is not None:
            raw = ipvs._parse_attrs(nested).get(ipvs.DEST_ADDR)
            if raw is not None:
                out.add(bytes(raw[:4]))
    return out


def _start_peer(who: str, lab: checks.Lab, conf: Path, work: Path) -> subprocess.Popen[bytes]:
    """keepalived -C, or hafast's check engine + pool manager on IPVS (``--pool``)."""
    if who == "keepalived":
        argv = [KEEPALIVED, "-n", "-l", "-C", "-f", str(conf), "-p", str(work / "d.pid"),
                "-c", str(work / "d.chk.pid")]
    else:
        argv = [sys.executable, "-m", "benchmarks.suite.vm_checkers", "--pool", str(conf)]
    return subprocess.Popen(anchors.nsenter(lab.dir_ns, argv), cwd=checks.ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)  # our own child, by PID
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _until(cond: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def detect_peer(who: str, lab: checks.Lab, link: Any, conf: Path, work: Path,
                plan: list[list[str]]) -> None:
    """One peer owns the table; for each round's victims: fault, poll, recover."""
    from hafast.lvs import ipvs

    everyone = set(lab.farm.addresses)
    proc = _start_peer(who, lab, conf, work)
    try:
        if not _until(lambda: proc.poll() is None and everyone <= ipvs_dests(link), 180):
            raise anchors.ToolError(f"{who} did not fill the IPVS table (exit {proc.poll()})")
        time.sleep(2.0)  # every server checked at least once more after it went in
        payload = service_payload(link)
        if payload is None:
            raise anchors.ToolError(f"{who}: no IPVS service")
        for i, victims in enumerate(plan):
            raw = {v: socket.inet_aton(v) for v in victims}
            applied = lab.farm.faults.apply(victims, "reject")
            t0 = time.monotonic()  # nft committed: the fault is in force from here
            gone: dict[str, float] = {}
            dumps: list[float] = []
            while len(gone) < len(victims) and time.monotonic() - t0 < DETECT_LIMIT_S:
                d0 = time.monotonic()
                present = dest_raw(link, payload)
                t = time.monotonic()
                dumps.append(t - d0)
                for v in victims:
                    if v not in gone and raw[v] not in present:
                        gone[v] = t - t0
                time.sleep(POLL_S)
            lab.farm.faults.recover(victims)
            back = _until(lambda: everyone <= ipvs_dests(link), DETECT_LIMIT_S + 10)
            dumps.sort()
            _say({"who": who, "detect": [1000.0 * gone[v] for v in victims if v in gone],
                  "missing": len(victims) - len(gone), "round": i, "fault": "reject",
                  "dump_ms": 1000.0 * dumps[len(dumps) // 2] if dumps else None,
                  "apply_ms": 1000.0 * applied, "recovered": back})
    finally:
        _stop(proc)
        with contextlib.suppress(OSError):
            link.request(ipvs.CMD_FLUSH, b"")  # the next peer starts from an empty table


def pool_main(conf: Path) -> int:
    """``--pool CONF``: hafast's check engine + pool manager on IPVS until SIGTERM."""
    import threading

    from hafast.app.pool_worker import run_pool_worker
    from hafast.config.loader import load
    from hafast.lvs.ipvs import IpvsBackend

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    run_pool_worker(load(str(conf)), IpvsBackend(), stop=stop)
    return 0


def guest(n: int, seconds: float, rounds: int, detect_k: int = 0,
          detect_rounds: int = 0) -> int:
    """Runs inside the VM: both peers, ``rounds`` times, alternating; then, with
    ``detect_k``, fault -> IPVS removal for keepalived then hafast."""
    work = Path(tempfile.mkdtemp(prefix="hbs-vm-"))
    with checks.Lab(n, work) as lab:
        conf = work / "keepalived.conf"
        conf.write_text(checks.keepalived_conf("TCP_CHECK", lab.farm.addresses))
        _say({"ready": True, "n": n})
        _windows(lab, conf, work, seconds, rounds)
        if detect_k and detect_rounds:
            _detection(lab, work, detect_k, detect_rounds)
    return 0


def _detection(lab: checks.Lab, work: Path, k: int, rounds: int) -> None:
    import random

    from hafast.lab.netns import call_in
    from hafast.lvs.ipvs import BatchLink

    dconf = work / "keepalived-detect.conf"
    dconf.write_text(checks.keepalived_conf("TCP_CHECK", lab.farm.addresses, timeout=1))
    rng = random.Random(2)
    plan = [rng.sample(lab.farm.addresses, min(k, lab.n)) for _ in range(rounds)]
    link = call_in(lab.dir_ns, BatchLink)  # its socket lives in the director namespace
    try:
        for who in ("keepalived", "hafast"):
            try:
                detect_peer(who, lab, link, dconf, work, plan)
            except Exception as exc:  # reported to the host, never faked
                _say({"who": who, "round": 0, "detect_error": str(exc)})
    finally:
        link.close()


def _windows(lab: checks.Lab, conf: Path, work: Path, seconds: float, rounds: int) -> None:
    for i in range(rounds):
            for who in ("keepalived", "hafast"):
                try:
                    got = (_keepalived_window(lab, conf, work, 3.0, seconds) if who == "keepalived"
                           else _hafast_window(lab, conf, 3.0, seconds))
                    got["round"] = i
                    _say(got)
                except Exception as exc:  # reported to the host, never faked
                    _say({"who": who, "round": i, "error": str(exc)})


def run_vm_section(n: int, seconds: float, rounds: int, workdir: Path,
                   step: checks.Step, log: Callable[[str], None], detect_k: int = 0,
                   detect_rounds: int = 0) -> Section:
    """Host side: boot the VM once, run :func:`guest`, read its lines back."""
    from hafast.lab.ipvs_vm import IpvsVM

    sec = Section("keepalived", "Checks and failure detection in the IPVS VM: hafast vs "
                  "keepalived 2.2.7 (same boot)")
    sec.notes.append(
        f"One boot of the IPVS VM (qemu TCG, 1 vCPU): TCP_CHECK, delay_loop 1, {n} real "
        "servers; keepalived -C (checker child's CPU from /proc) then hafast's check worker, "
        f"{rounds} round(s) alternating, {seconds:g} s windows. Under TCG everything runs "
        "~20x slower than on the host and an interpreter suffers more than C, so this "
        "ratio is biased against hafast; if hafast's checks/s is below N, it could not keep "
        "up on the emulated vCPU.")
    if detect_k and detect_rounds:
        sec.notes.append(
            f"Detection: fault -> removal of the real server from the IPVS table, {detect_k} "
            f"servers of {n} faulted ('reject': RST to the SYN) per round, {detect_rounds} "
            "round(s), the same victims for both peers, TCP_CHECK delay_loop 1, retry 0, "
            "connect_timeout 1; keepalived -C vs hafast's check engine + pool manager "
            "(IPVS backend), one after the other, each owning the table. The guest dumps "
            f"the table over generic netlink every {POLL_S * 1000:g} ms plus the dump's own "
            "time (its median is noted below), so each latency is late by up to one dump. "
            "With delay_loop 1 a fault waits up to 1 s for the next check: p50 near 500 ms "
            "is the schedule, the excess is the checker's and the pool update's cost. TCG "
            "slows Python (hafast's checks and pool manager) more than C (keepalived), so "
            "hafast's excess here is inflated; section 2's hafast vs HAProxy figures (fault "
            "-> DOWN on the host) are the native ones.")
        sec.sample_label = "ms from fault to removal from IPVS"
    t0 = time.monotonic()
    with step(f"keepalived VM ({rounds} round(s))"):
        vm = IpvsVM(memory_mb=768)
        argv = [sys.executable, "-m", "benchmarks.suite.vm_checkers", "--guest",
                str(n), str(seconds), str(rounds)]
        if detect_k and detect_rounds:
            argv += ["--detect", str(detect_k), str(detect_rounds)]
        result = vm.run(argv, timeout=240 + rounds * (2 * seconds + 90)
                        + (2 * (240 + detect_rounds * 30) if detect_k else 0),
                        results_dir=Path(tempfile.mkdtemp(prefix="hbs-vmres-", dir=workdir)))
        lines = parse_guest_output(result.output_path.read_text(errors="replace"))
    if result.returncode != 0:
        sec.notes.append(f"the guest command exited {result.returncode}")
        log(f"keepalived VM: guest exit {result.returncode}: "
            + result.output_path.read_text(errors="replace")[-800:])
    record_guest_lines(sec, n, lines)
    if not sec.rows:
        sec.status = "not measured"
    sec.seconds = time.monotonic() - t0
    return sec


def record_guest_lines(sec: Section, n: int, lines: list[dict[str, Any]]) -> None:
    """The guest's result lines into rows, samples and notes of ``sec``."""
    dumps: dict[str, list[float]] = {}
    for got in lines:
        if "error" in got:
            sec.notes.append(f"round {got['round'] + 1}: {got['who']}: {got['error']}")
            continue
        if "detect_error" in got:
            sec.notes.append(f"detection: {got['who']}: {got['detect_error']}")
            continue
        if "who" not in got:
            continue
        if "detect" in got:
            _record_detection(sec, n, got)
            if got.get("dump_ms") is not None:
                dumps.setdefault(got["who"], []).append(float(got["dump_ms"]))
            continue
        case = f"TCP_CHECK {n} (VM)"
        for key, metric, unit, better in (("rate", "checks/s", "/s", "higher"),
                                          ("cpu1k", "CPU per 1000 checks", "ms", "lower"),
                                          ("rss_total_rs", "whole RSS / real servers", "KiB",
                                           "lower")):
            if got.get(key) is not None:
                value = got[key] * (1000.0 if key == "cpu1k" else 1.0)
                sec.row(case, metric, unit, better).add(int(got["round"]), got["who"], value)
    from benchmarks.suite.stats import percentile

    for title, whos in sec.samples.items():
        pooled = [f"{who} p50 {percentile(v, 50):.0f} ms, p99 {percentile(v, 99):.0f} ms "
                  f"(n={len(v)})" for who, v in sorted(whos.items()) if v]
        if pooled:
            sec.notes.append(f"{title}, every round pooled: " + "; ".join(pooled))
    if dumps:
        sec.notes.append("median IPVS dump time while polling: " + ", ".join(
            f"{who} {sorted(v)[len(v) // 2]:.1f} ms" for who, v in sorted(dumps.items())))


def _record_detection(sec: Section, n: int, got: dict[str, Any]) -> None:
    """One peer's round of fault -> removal: p50/p99 rows, samples, the count seen."""
    from benchmarks.suite.stats import percentile

    ms = [float(x) for x in got["detect"]]
    k = len(ms) + int(got.get("missing", 0))
    case = f"{got.get('fault', 'reject')} ({k} of {n}, VM, fault -> IPVS removal)"
    i, who = int(got["round"]), str(got["who"])
    sec.samples.setdefault(f"fault {got.get('fault', 'reject')} (IPVS VM)", {}).setdefault(
        who, []).extend(ms)
    for metric, q in (("p50 latency", 50), ("p99 latency", 99)):
        sec.row(case, metric, "ms", "lower").add(i, who, percentile(ms, q) if ms else None)
    sec.row(case, "servers removed", "", "higher").add(i, who, float(len(ms)))
    if not got.get("recovered", True):
        sec.notes.append(f"detection round {i + 1}: {who}: not every victim came back")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vm_checkers")
    ap.add_argument("--guest", nargs=3, metavar=("N", "SECONDS", "ROUNDS"))
    ap.add_argument("--detect", nargs=2, metavar=("K", "ROUNDS"), default=("0", "0"))
    ap.add_argument("--pool", type=Path, metavar="CONF",
                    help="run hafast's check engine + pool manager on IPVS until SIGTERM")
    args = ap.parse_args(argv)
    if args.pool:
        return pool_main(args.pool)
    if not args.guest:
        ap.error("--guest or --pool is required")
    n, seconds, rounds = args.guest
    return guest(int(n), float(seconds), int(rounds), int(args.detect[0]), int(args.detect[1]))


if __name__ == "__main__":
    raise SystemExit(main())
