"""The whole daemon (``hafast -n -l``, parent and one check worker, nftables pool)
against hostile real servers: each is taken out of the pool within its bound, the
healthy nginx beside them stays in, and the check worker's memory stays flat.

One virtual server in the farm's director namespace; its real servers are nginx
(the control) and the hostile servers of tests/netns/hostile_servers.py.  Those
answer healthily at first and turn hostile at a known time, so each time to DOWN
is measured from the fault, as keepalived's timers bound it:

    delay_loop (the next attempt) + connect_timeout * (retry + 1)
        + delay_before_retry * retry

The figures (time to DOWN per kind, the worker's RSS) are printed; run with ``-s``
to see them (docs/reliability.md has a run's).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hafast.lab import FIXED_BODY, FIXED_PATH, Farm, md5_hex
from hafast.lab.netns import run_in
from tests import figures
from tests.conftest import require_root, require_tool
from tests.netns.daemon_fixtures import Daemon, start_daemon
from tests.netns.hostile_servers import (
    BODY,
    DRIP,
    ENDLESS,
    GARBAGE,
    HUGE_HEADER,
    RST_MID_BODY,
    SILENT,
    STALL_TLS,
    Hostile,
)

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(240)]

PREFIX = f"hs{os.getpid()}"
VIP = "10.250.0.1"

CONNECT_TIMEOUT = 1.0
RETRY = 1
DELAY_BEFORE_RETRY = 0.5
DELAY_LOOP = 1.0
BOUND = DELAY_LOOP + CONNECT_TIMEOUT * (RETRY + 1) + DELAY_BEFORE_RETRY * RETRY
SLACK = 5.0  # two cores shared with other tests: a loaded loop, a slow status query
ROUNDS = 15  # check rounds after the first DOWN over which RSS must stay flat
RSS_GROWTH_MAX = 1 << 20

# kind -> (port, checker, failure reasons it may count)
KINDS: dict[str, tuple[int, str, set[str]]] = {
    "endless body": (ENDLESS, "HTTP_GET", {"body-too-large", "timeout"}),
    "1 byte/s trickle": (DRIP, "HTTP_GET", {"timeout"}),
    "garbage status line": (GARBAGE, "HTTP_GET", {"status"}),
    "1 MiB of headers": (HUGE_HEADER, "HTTP_GET", {"header-too-large"}),
    "accept, never answer": (SILENT, "HTTP_GET", {"timeout"}),
    "RST mid-body": (RST_MID_BODY, "HTTP_GET", {"reset", "read"}),
    "TLS handshake never ends": (STALL_TLS, "SSL_GET", {"timeout", "tls"}),
}


@dataclass
class Lab:
    farm: Farm
    hostile: Hostile
    control: str  # nginx, healthy throughout
    target: str  # every hostile port listens here (and on every farm address)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_root()
    for tool in ("nginx", "nft", "nsenter", "openssl"):
        require_tool(tool)
    farm = Farm(4, name=PREFIX, tls=True, workers=1)
    hostile = None
    try:
        farm.build()
        hostile = Hostile(farm.server_ns, str(farm.lab_dir / "tls.crt"),
                          str(farm.lab_dir / "tls.key"), healthy=True)
        hostile.start()
        yield Lab(farm, hostile, farm.addresses[0], farm.addresses[1])
    finally:
        if hostile is not None:
            hostile.stop()
        farm.close()


def checker(kind: str, path: str, digest: str) -> str:
    return f"""    {kind} {{
      url {{
        path {path}
        digest {digest}
      }}
      connect_timeout {CONNECT_TIMEOUT}
      retry {RETRY}
      delay_before_retry {DELAY_BEFORE_RETRY}
      warmup 0
    }}"""


def conf(lab: Lab) -> str:
    rss = [f"  real_server {lab.control} 80 {{\n"
           f"{checker('HTTP_GET', FIXED_PATH, md5_hex(FIXED_BODY))}\n  }}"]
    rss += [f"  real_server {lab.target} {port} {{\n{checker(kind, '/', md5_hex(BODY))}\n  }}"
            for port, kind, _ in KINDS.values()]
    body = "\n".join(rss)
    return f"""global_defs {{
  router_id hostile
}}
virtual_server {VIP} 80 {{
  delay_loop {DELAY_LOOP}
  lb_algo rr
  lb_kind NAT
  protocol TCP
{body}
}}
"""


def pool(st: dict[str, Any]) -> dict[int, bool]:
    """port -> in the pool (alive and given a weight); the control is port 80."""
    rss = st["pools"]["virtual_servers"][0]["real_servers"]
    return {r["port"]: bool(r["alive"]) and r["pool_weight"] is not None for r in rss}


def check_side(st: dict[str, Any]) -> dict[str, Any]:
    (chk,) = st["checkers"]
    return dict(chk)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def nft_table(lab: Lab) -> str:
    return run_in(lab.farm.director_ns, ["nft", "list", "table", "inet", "hafast_lvs"],
                  check=False).stdout


def test_hostile_servers_go_down_on_time_and_the_worker_stays_flat(
        tmp_path: Path, lab: Lab) -> None:
    d: Daemon = start_daemon(tmp_path / "d", conf(lab), ns=lab.farm.director_ns,
                             extra=["--pool-backend", "nft", "--check-workers", "1"])
    ports = {port: kind for kind, (port, _, _) in KINDS.items()}
    try:
        d.wait_ready()
        n_rs = len(KINDS) + 1
        # Two full healthy rounds first: every server checked, every check passed.
        d.wait_for(lambda s: check_side(s)["counters"].get("ok", 0) >= 2 * n_rs
                   and all(pool(s).values()), 30, "two healthy rounds, all in the pool")
        worker = d.worker_pid("check")

        lab.hostile.healthy = False
        fault = time.monotonic()
        down: dict[int, float] = {}
        rss_first_down = rss_all_down = 0
        attempts_first_down = 0
        control_out: list[float] = []
        back_in: list[int] = []  # a hostile server in the pool again after its DOWN
        # Until every hostile server is out, then ROUNDS more rounds against every
        # server (counted in attempts): the control must be in the pool at each look.
        while True:
            st = d.status(timeout=10)
            now = time.monotonic() - fault
            in_pool = pool(st)
            attempts = check_side(st)["counters"].get("attempts", 0)
            if not in_pool[80]:
                control_out.append(now)
            for port, there in in_pool.items():
                if port in down and there:
                    back_in.append(port)
                if port != 80 and not there and port not in down:
                    down[port] = now
                    if len(down) == 1:
                        rss_first_down = rss_bytes(worker)
                        attempts_first_down = attempts
                    if len(down) == len(KINDS):
                        rss_all_down = rss_bytes(worker)
            if len(down) < len(KINDS):
                assert now < BOUND + SLACK + 5, (
                    f"still in the pool after {now:.1f}s: "
                    f"{[ports[p] for p, there in in_pool.items() if there and p != 80]}")
            elif attempts >= attempts_first_down + ROUNDS * n_rs:
                break
            else:
                assert now < 60 + ROUNDS * 5, f"{ROUNDS} rounds not done: {attempts} attempts"
            time.sleep(0.05)
        rss_after = rss_bytes(worker)
        final = d.status()
        counters = check_side(final)["counters"]

        report = [f"hostile real servers, daemon level (bound {BOUND:.1f} s):"]
        report += [f"  {ports[p]:<26} DOWN after {t:5.2f} s" for p, t in sorted(
            down.items(), key=lambda x: x[1])]
        report += [f"  check worker RSS: {rss_first_down / 1024:.0f} KiB at the first DOWN, "
                   f"{rss_all_down / 1024:.0f} KiB at the last, {rss_after / 1024:.0f} KiB "
                   f"after {ROUNDS} more rounds "
                   f"({(rss_after - rss_first_down) / 1024:+.0f} KiB)",
                   f"  counters: {counters}"]
        print("\n".join(report))
        figures.record("hostile real servers", f"daemon level, bound {BOUND:.1f} s", {
            **{f"time to DOWN (s): {ports[p]}": round(t, 2)
               for p, t in sorted(down.items(), key=lambda x: x[1])},
            "healthy control out of the pool (looks)": len(control_out),
            "hostile servers back in the pool": len(back_in),
            "check worker restarted": d.worker_pid("check") != worker,
            "check worker RSS KiB, first DOWN -> after "
            f"{ROUNDS} more rounds": f"{rss_first_down // 1024:,} -> {rss_after // 1024:,}",
            "failures by reason": ", ".join(f"{k[5:]} {v}" for k, v in sorted(counters.items())
                                            if k.startswith("fail:")),
        })

        for port, t in down.items():
            assert t < BOUND + SLACK, (ports[port], t)
        assert not control_out, "the healthy server left the pool"
        assert not back_in, [ports[p] for p in back_in]
        assert pool(final) == {80: True, **{p: False for p in ports}}
        assert d.worker_pid("check") == worker, "the check worker was restarted"
        reasons = {k[len("fail:"):] for k in counters if k.startswith("fail:")}
        allowed = set().union(*(r for _, _, r in KINDS.values()))
        assert reasons <= allowed, reasons - allowed
        table = nft_table(lab)
        assert f"{lab.control} . 80" in table, table
        assert not [p for p in ports if f"{lab.target} . {p}" in table], table
        assert rss_after - rss_first_down < RSS_GROWTH_MAX, (rss_first_down, rss_after)
        assert d.stop() == 0
    finally:
        d.close()
        lab.hostile.healthy = True
