"""Converge and reload a keepalived-sized IPVS table: hafast vs ipvsadm, in the IPVS VM.

The size is keepalived issue #2318's (2,284 virtual servers, 37,298 real servers;
2.3.0 reloads it in 0.24 s): 2,300 virtual servers x 16 real servers = 36,800.

In ONE boot of the IPVS VM (hafast/lab/ipvs_vm.py) the guest side of this file:

1. converges the whole configuration into an empty kernel table with
   :class:`PoolManager` + :class:`IpvsBackend` (batch engine): time, netlink
   requests, sendmsg calls;
2. reloads a configuration in which ONE real server's weight changed: the number of
   kernel changes (must be 1) and the time;
3. flushes, and has ``ipvsadm -R`` restore the same table from a generated rules
   file: the reference time for step 1.

Python runs about 20x slower in the TCG guest than on the host (ipvsadm, being C,
suffers the same emulation), so the ratio is the fair figure; absolute times are
the VM's.  The host side also times the reload's computing part (policy + diff,
memory backend) natively, since in the kernel it is one request.

Sizes: ``HAFAST_BENCH_IPVS_VS`` and ``HAFAST_BENCH_IPVS_RS`` (per virtual server)
scale it down when the VM is too slow; the figures say the size measured.

Run::

    .venv/bin/python -m pytest benchmarks/test_bench_ipvs.py -s
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hafast.config import model as m
from hafast.lvs.memory import MemoryBackend

VS_COUNT = int(os.environ.get("HAFAST_BENCH_IPVS_VS", "2300"))
RS_PER_VS = int(os.environ.get("HAFAST_BENCH_IPVS_RS", "16"))
KEEPALIVED_230_RELOAD_S = 0.24  # keepalived issue #2318, 2,284 VS / 37,298 RS
VM_TIMEOUT_S = 1500.0


def make_config(vs_count: int, rs_per_vs: int, bump: int | None = None) -> m.Config:
    """``bump``: the index of the one virtual server whose first real server gets weight 2."""
    vss = []
    for i in range(vs_count):
        rss = tuple(
            m.RealServer(f"172.16.{j}.{i % 250 + 1}", 8080,
                         weight=2 if (bump == i and j == 0) else 1)
            for j in range(rs_per_vs))
        vss.append(m.VirtualServer(address=f"10.{100 + i // 250}.{i % 250}.1", port=80,
                                   protocol="TCP", lvs_sched="wrr", real_servers=rss))
    return m.Config(virtual_servers=tuple(vss))


def ipvsadm_rules(config: m.Config) -> str:
    lines = []
    for vs in config.virtual_servers:
        svc = f"{vs.address}:{vs.port}"
        lines.append(f"-A -t {svc} -s {vs.lvs_sched}")
        lines += [f"-a -t {svc} -r {rs.address}:{rs.port} -m -w {rs.weight}"
                  for rs in vs.real_servers]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- guest


async def _hafast_side(vs_count: int, rs_per_vs: int) -> dict[str, Any]:
    from hafast.lvs.ipvs import IpvsBackend
    from hafast.lvs.manager import PoolManager

    out: dict[str, Any] = {}
    config = make_config(vs_count, rs_per_vs)
    bumped = make_config(vs_count, rs_per_vs, bump=vs_count // 2)
    backend = IpvsBackend()
    await backend.open()
    await backend.flush()
    await backend.close()

    backend = IpvsBackend()
    mgr = PoolManager(config, backend, keep=True, run_scripts=False)
    t0 = time.perf_counter()
    changes = await mgr.start()
    out["converge_s"] = time.perf_counter() - t0
    out["converge_changes"] = changes
    out["converge_requests"] = backend.messages
    out["converge_sends"] = backend.sends
    out["converge_kernel_s"] = backend.seconds

    before = backend.messages
    t0 = time.perf_counter()
    out["reload_changes"] = await mgr.reload(bumped)
    out["reload_s"] = time.perf_counter() - t0
    out["reload_requests"] = backend.messages - before
    dump = await backend.dump()
    out["kernel_counts"] = list(dump.counts())
    await mgr.stop()  # keep=True: the table stays; flushed below
    return out


def guest_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--vs", type=int, default=VS_COUNT)
    ap.add_argument("--rs", type=int, default=RS_PER_VS)
    args = ap.parse_args(argv)
    res = asyncio.run(_hafast_side(args.vs, args.rs))
    res["vs"], res["rs"] = args.vs, args.vs * args.rs

    subprocess.run(["ipvsadm", "-C"], check=True, timeout=600)
    rules = ipvsadm_rules(make_config(args.vs, args.rs))
    t0 = time.perf_counter()
    proc = subprocess.run(["ipvsadm", "-R"], input=rules, text=True, capture_output=True,
                          timeout=1200)
    res["ipvsadm_restore_s"] = time.perf_counter() - t0
    res["ipvsadm_rc"] = proc.returncode
    res["ipvsadm_lines"] = subprocess.run(["ipvsadm", "-Sn"], capture_output=True, text=True,
                                          timeout=600).stdout.count("\n")
    subprocess.run(["ipvsadm", "-C"], check=True, timeout=600)
    Path(args.out).write_text(json.dumps(res, indent=2))
    return 0


# --------------------------------------------------------------------------- host


def test_ipvs_converge_and_reload_in_the_vm(figures: Any, tmp_path: Path) -> None:
    from hafast.lab.ipvs_vm import IpvsVM, VMError
    from tests.conftest import REPO, require, require_root

    require_root()
    vm = IpvsVM(checkout=REPO)
    try:
        vm.setup()
    except VMError as exc:
        require(False, f"IPVS VM set-up failed: {exc}")
    out = tmp_path / "ipvs-bench.json"
    cmd = [sys.executable, "-m", "benchmarks.test_bench_ipvs", "--out", str(out),
           "--vs", str(VS_COUNT), "--rs", str(RS_PER_VS)]
    res = vm.run(cmd, timeout=VM_TIMEOUT_S, results_dir=tmp_path, cwd=str(REPO))
    log = res.output_path.read_text(errors="replace") if res.output_path.exists() else ""
    assert out.exists(), f"the guest wrote no figures (exit {res.returncode}):\n{log[-3000:]}"
    r = json.loads(out.read_text())
    size = f"{r['vs']} VS / {r['rs']} RS"
    print(f"\nipvs bench ({size}, inside TCG VM): {json.dumps(r)}")
    figures.add(f"ipvs converge, hafast batch netlink, VM ({size})", r["converge_s"], "s",
                requests=r["converge_requests"], sends=r["converge_sends"],
                kernel_s=r["converge_kernel_s"])
    figures.add(f"ipvs converge, ipvsadm -R, VM ({size})", r["ipvsadm_restore_s"], "s")
    figures.add("ipvs converge speed: ipvsadm -R time / hafast time (VM)",
                r["ipvsadm_restore_s"] / r["converge_s"], "x", goal=">= 1x")
    figures.add(f"ipvs reload one RS changed: kernel changes ({size})",
                r["reload_changes"], "changes", goal="== 1", requests=r["reload_requests"])
    figures.add(f"ipvs reload one RS changed, VM ({size})", r["reload_s"], "s",
                keepalived_230_s=KEEPALIVED_230_RELOAD_S)


def test_reload_compute_on_the_host(figures: Any) -> None:
    """The reload's CPU part (policy rebuild + diff), natively: memory backend."""
    from hafast.lvs.manager import PoolManager

    config = make_config(VS_COUNT, RS_PER_VS)
    bumped = make_config(VS_COUNT, RS_PER_VS, bump=VS_COUNT // 2)

    async def body() -> tuple[float, float, int]:
        b = MemoryBackend()
        mgr = PoolManager(config, b, run_scripts=False)
        t0 = time.perf_counter()
        await mgr.start()
        converge = time.perf_counter() - t0
        t0 = time.perf_counter()
        n = await mgr.reload(bumped)
        return converge, time.perf_counter() - t0, n

    converge, reload_s, n = asyncio.run(body())
    size = f"{VS_COUNT} VS / {VS_COUNT * RS_PER_VS} RS"
    figures.add(f"pool converge compute, host, memory backend ({size})", converge, "s")
    figures.add(f"pool reload compute, host, memory backend ({size})", reload_s, "s",
                changes=n, keepalived_230_s=KEEPALIVED_230_RELOAD_S)
    figures.add("reload: keepalived 2.3.0 time / hafast host compute time",
                KEEPALIVED_230_RELOAD_S / reload_s, "x", goal=">= 1x")


if __name__ == "__main__":
    raise SystemExit(guest_main(sys.argv[1:]))
