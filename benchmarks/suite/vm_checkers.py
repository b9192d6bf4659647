"""Section "keepalived": keepalived 2.2.7's checkers vs hafast's, in ONE boot of the
IPVS VM (hafast.lab.ipvs_vm: Debian's stock kernel under qemu TCG; the host kernel
has no IPVS, and keepalived's checker process will not run without it).

Inside the guest (``python -m benchmarks.suite.vm_checkers --guest N SECONDS``): a
farm of N servers in guest namespaces; keepalived ``-C`` (checkers only) with
TCP_CHECK at delay_loop 1 over all of them, its checker child's CPU read from
/proc/PID/stat and its checks counted as SYNs on the wire; then hafast's check
engine (``benchmarks.suite.hafast_run``) on the same config.  One JSON line per
peer goes to the command's output, which the host reads back.

Everything in the guest runs about 20x slower than on the host (TCG), so only the
ratio means anything, and N is kept small enough for both to keep up on one vCPU.
TCG slows an interpreter (many small translated blocks) more than C, so the ratio is
biased against hafast compared with the same pair on real hardware; section 1's
ratios against the C loop and HAProxy on the host are the native figures.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
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


def guest(n: int, seconds: float, rounds: int) -> int:
    """Runs inside the VM: both peers, ``rounds`` times, alternating."""
    work = Path(tempfile.mkdtemp(prefix="hbs-vm-"))
    with checks.Lab(n, work) as lab:
        conf = work / "keepalived.conf"
        conf.write_text(checks.keepalived_conf("TCP_CHECK", lab.farm.addresses))
        _say({"ready": True, "n": n})
        for i in range(rounds):
            for who in ("keepalived", "hafast"):
                try:
                    got = (_keepalived_window(lab, conf, work, 3.0, seconds) if who == "keepalived"
                           else _hafast_window(lab, conf, 3.0, seconds))
                    got["round"] = i
                    _say(got)
                except Exception as exc:  # reported to the host, never faked
                    _say({"who": who, "round": i, "error": str(exc)})
    return 0


def run_vm_section(n: int, seconds: float, rounds: int, workdir: Path,
                   step: checks.Step, log: Callable[[str], None]) -> Section:
    """Host side: boot the VM once, run :func:`guest`, read its lines back."""
    from hafast.lab.ipvs_vm import IpvsVM

    sec = Section("keepalived", "Checks in the IPVS VM: hafast vs keepalived 2.2.7 (same boot)")
    sec.notes.append(
        f"One boot of the IPVS VM (qemu TCG, 1 vCPU): TCP_CHECK, delay_loop 1, {n} real "
        "servers; keepalived -C (checker child's CPU from /proc) then hafast's check worker, "
        f"{rounds} round(s) alternating, {seconds:g} s windows. Under TCG everything runs "
        "~20x slower than on the host and an interpreter suffers more than C, so this "
        "ratio is biased against hafast; if hafast's checks/s is below N, it could not keep "
        "up on the emulated vCPU.")
    t0 = time.monotonic()
    with step(f"keepalived VM ({rounds} round(s))"):
        vm = IpvsVM(memory_mb=768)
        result = vm.run([sys.executable, "-m", "benchmarks.suite.vm_checkers", "--guest",
                         str(n), str(seconds), str(rounds)],
                        timeout=240 + rounds * (2 * seconds + 90),
                        results_dir=Path(tempfile.mkdtemp(prefix="hbs-vmres-", dir=workdir)))
        lines = parse_guest_output(result.output_path.read_text(errors="replace"))
    if result.returncode != 0:
        sec.notes.append(f"the guest command exited {result.returncode}")
        log(f"keepalived VM: guest exit {result.returncode}: "
            + result.output_path.read_text(errors="replace")[-800:])
    for got in lines:
        if "error" in got:
            sec.notes.append(f"round {got['round'] + 1}: {got['who']}: {got['error']}")
            continue
        if "who" not in got:
            continue
        case = f"TCP_CHECK {n} (VM)"
        for key, metric, unit, better in (("rate", "checks/s", "/s", "higher"),
                                          ("cpu1k", "CPU per 1000 checks", "ms", "lower"),
                                          ("rss_total_rs", "whole RSS / real servers", "KiB",
                                           "lower")):
            if got.get(key) is not None:
                value = got[key] * (1000.0 if key == "cpu1k" else 1.0)
                sec.row(case, metric, unit, better).add(int(got["round"]), got["who"], value)
    if not sec.rows:
        sec.status = "not measured"
    sec.seconds = time.monotonic() - t0
    return sec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vm_checkers")
    ap.add_argument("--guest", nargs=3, metavar=("N", "SECONDS", "ROUNDS"), required=True)
    args = ap.parse_args(argv)
    n, seconds, rounds = args.guest
    return guest(int(n), float(seconds), int(rounds))


if __name__ == "__main__":
    raise SystemExit(main())
