"""Capture Debian keepalived 2.2.7's VRRP traffic into the pcaps tests/vectors/ replays.

Run as root from the repository root::

    python -m tests.vectors.capture tests/vectors/keepalived-2.2.7

Every scenario builds its own network namespaces (names carry this process's PID):
a hub namespace holding a bridge, and one namespace per router joined to it by a
veth pair.  Router 1 is 192.168.77.1 / fd00:77::1 with MAC 02:00:00:77:00:01 and
priority 100, router 2 is .2 / ::2 with MAC 02:00:00:77:00:02 and priority 90;
VRID 51, VIP 192.168.77.100 or fd00:77::100.  ``/usr/sbin/keepalived`` (the Debian
package) runs in each router namespace with its own config and pid files, and
tcpdump listens on the bridge for VRRP, AH, ARP and neighbour adverts only.

Every router is stopped by its PID (SIGTERM, so keepalived sends its priority-0
advert; SIGKILL after a grace period), every wait is bounded, and the namespaces
(with their links) are deleted when a scenario ends, also when it fails.

The scenarios follow the captures' README: two routers with one configuration,
each becoming master and each stopping gracefully; the vrrp_script weight moving
router 1 from 100 to 80 and back; and peers that disagree (password, auth type,
version, interval, VIP list), which both end up master.  garp_takeover_v2.pcap and
una_takeover_v6.pcap are the ARP / neighbour-advert frames of vrrp_v2_pass.pcap and
vrrp_v3_ipv6.pcap.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from hafast.lab.netns import Registry, delete_netns, netns_pids, stop_pid

KEEPALIVED = "/usr/sbin/keepalived"
TCPDUMP = "tcpdump"
# VRRP (IPv4 and IPv6), AH, ARP and ICMPv6 neighbour adverts: what the tests replay,
# without the IGMP/MLD, router solicitations and DAD probes of fresh namespaces.
CAPTURE_FILTER = "ip proto 112 or ip6 proto 112 or ip proto 51 or arp or (icmp6 and ip6[40] == 136)"
NA_FILTER = "icmp6 and ip6[40] == 136"

VIP4, VIP4_B, VIP4_C, VIP4_EXCLUDED = (f"192.168.77.{n}" for n in (100, 101, 102, 103))
VIP6 = "fd00:77::100"
SCENARIO_TIMEOUT = 90.0  # seconds, for one scenario from namespaces to teardown
WAIT_TIMEOUT = 20.0  # for one state change (the longest is 3 * 2 s + skew)
GRACE = 5.0  # after SIGTERM, before SIGKILL


class CaptureError(RuntimeError):
    """A scenario did not go as planned (a router never became master, a tool failed)."""


@dataclass(frozen=True)
class Router:
    """One keepalived configuration of a scenario."""

    priority: int
    version: int = 2
    auth: tuple[str, str] | None = ("PASS", "1111")  # (auth_type, auth_pass); None: none
    advert_int: str = "1"
    vips: tuple[str, ...] = (VIP4 + "/24",)
    excluded: tuple[str, ...] = ()
    vmac: bool = False
    script: bool = False  # track a vrrp_script with weight -20 that fails while a flag exists

    @property
    def vip(self) -> str:
        """The address whose presence says this router is master."""
        return self.vips[0].split("/")[0]


@dataclass(frozen=True)
class Scenario:
    name: str
    r1: Router
    r2: Router
    plan: str  # "failover", "mismatch" or "script"
    derived: tuple[tuple[str, str], ...] = ()  # (file name, tcpdump filter) cut from this one


def _v2(**kw: object) -> tuple[Router, Router]:
    return Router(100, **kw), Router(90, **kw)  # type: ignore[arg-type]


def _v3(**kw: object) -> tuple[Router, Router]:
    return _v2(version=3, auth=None, **kw)


V6 = {"vips": (VIP6 + "/64",)}

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("vrrp_v2_pass", *_v2(), "failover", (("garp_takeover_v2", "arp"),)),
    Scenario("vrrp_v2_noauth", *_v2(auth=None), "failover"),
    Scenario("vrrp_v2_ah", *_v2(auth=("AH", "1111")), "failover"),
    Scenario("vrrp_v2_pass_3vips", *_v2(
        auth=("PASS", "12345678"),
        vips=(VIP4 + "/24", VIP4_B + "/24", VIP4_C + "/24"),
        excluded=(VIP4_EXCLUDED + "/24",),
    ), "failover"),
    Scenario("vrrp_v2_pass_vmac", *_v2(vmac=True), "failover"),
    Scenario("vrrp_v3_ipv4", *_v3(), "failover"),
    Scenario("vrrp_v3_ipv4_adv0.1", *_v3(advert_int="0.1"), "failover"),
    Scenario("vrrp_v3_ipv6", *_v3(**V6), "failover", (("una_takeover_v6", NA_FILTER),)),
    Scenario("vrrp_v3_ipv6_adv0.1", *_v3(advert_int="0.1", **V6), "failover"),
    Scenario("vrrp_v3_ipv6_vmac", *_v3(vmac=True, **V6), "failover"),
    Scenario("vrrp_script_weight", Router(100, script=True), Router(90), "script"),
    Scenario("mismatch_authpass", Router(100), Router(90, auth=("PASS", "2222")), "mismatch"),
    Scenario("mismatch_noauth", Router(100), Router(90, auth=None), "mismatch"),
    Scenario("mismatch_v3", Router(100), Router(90, version=3, auth=None), "mismatch"),
    Scenario("mismatch_advint2", Router(100), Router(90, advert_int="2"), "mismatch"),
    Scenario("mismatch_vip", Router(100), Router(90, vips=(VIP4_B + "/24",)), "mismatch"),
)


def keepalived_conf(name: str, router: Router, flag: Path) -> str:
    """keepalived.conf for one router; ``flag`` is the vrrp_script's failure switch."""
    lines = ["global_defs {", f"  router_id {name}", "}"]
    if router.script:
        lines += [
            "vrrp_script chk_flag {",
            f'  script "/usr/bin/test ! -e {flag}"',
            "  interval 1",
            "  weight -20",
            "  fall 1",
            "  rise 1",
            "}",
        ]
    lines += [
        "vrrp_instance VI_1 {",
        "  state BACKUP",
        "  interface eth0",
        "  virtual_router_id 51",
        f"  priority {router.priority}",
        f"  advert_int {router.advert_int}",
        f"  version {router.version}",
    ]
    if router.vmac:
        lines.append("  use_vmac")
    if router.auth is not None:
        kind, secret = router.auth
        lines += ["  authentication {", f"    auth_type {kind}", f"    auth_pass {secret}", "  }"]
    lines += ["  virtual_ipaddress {", *(f"    {v}" for v in router.vips), "  }"]
    if router.excluded:
        lines += ["  virtual_ipaddress_excluded {", *(f"    {v}" for v in router.excluded), "  }"]
    if router.script:
        lines += ["  track_script {", "    chk_flag", "  }"]
    lines.append("}")
    return "\n".join(lines) + "\n"


@dataclass
class Lab:
    """The namespaces, tcpdump and the two keepalived daemons of one scenario."""

    tag: str
    work: Path
    reg: Registry = field(default_factory=Registry)
    daemons: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    @property
    def hub(self) -> str:
        return f"{self.tag}h"

    def ns(self, n: int) -> str:
        return f"{self.tag}r{n}"

    def build(self) -> None:
        reg = self.reg
        reg.add_netns(self.hub)
        reg.sysctl(self.hub, "net.ipv6.conf.all.disable_ipv6", "1")
        reg.sysctl(self.hub, "net.ipv6.conf.default.disable_ipv6", "1")
        reg.add_bridge(self.hub, "br0")
        reg.run(None, ["ip", "-n", self.hub, "link", "set", "br0", "type", "bridge",
                       "mcast_snooping", "0"])
        for n in (1, 2):
            ns = self.ns(n)
            reg.add_netns(ns)
            # No DAD, no forwarding: link-local and VIPs usable at once, NA without R.
            for key in ("all", "default"):
                reg.sysctl(ns, f"net.ipv6.conf.{key}.accept_dad", "0")
                reg.sysctl(ns, f"net.ipv6.conf.{key}.forwarding", "0")
            reg.add_veth(self.hub, f"p{n}", ns, "eth0", up=False)
            reg.run(None, ["ip", "-n", ns, "link", "set", "eth0", "address",
                           f"02:00:00:77:00:0{n}"])
            reg.add_address(ns, "eth0", f"192.168.77.{n}/24")
            reg.add_address(ns, "eth0", f"fd00:77::{n}/64")
            reg.set_master(self.hub, f"p{n}", "br0")
            reg.link_up(self.hub, f"p{n}")
            reg.link_up(ns, "eth0")

    def start_tcpdump(self, out: Path) -> subprocess.Popen[bytes]:
        errlog = self.work / "tcpdump.log"
        argv = ["ip", "netns", "exec", self.hub, TCPDUMP, "-i", "br0", "-n", "-U", "-s", "0",
                "-Z", "root", "-w", str(out), CAPTURE_FILTER]
        with open(errlog, "wb") as err:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        self.reg.defer(f"tcpdump {proc.pid}", lambda: _stop(proc, signal.SIGINT))
        wait_for(lambda: b"listening on" in errlog.read_bytes() or proc.poll() is not None,
                 10.0, "tcpdump to listen")
        if proc.poll() is not None:
            raise CaptureError(f"tcpdump exited: {errlog.read_text(errors='replace')}")
        time.sleep(0.3)
        return proc

    def start(self, n: int, conf: str) -> None:
        """Start router ``n``'s keepalived (VRRP only, in the foreground)."""
        if n in self.daemons and self.daemons[n].poll() is None:
            raise CaptureError(f"router {n} already running")
        d = self.work / f"r{n}"
        d.mkdir(exist_ok=True)
        (d / "keepalived.conf").write_text(conf)
        argv = ["ip", "netns", "exec", self.ns(n), KEEPALIVED, "--dont-fork", "--vrrp",
                "--log-console", "--log-detail", "--no-syslog",
                "-f", str(d / "keepalived.conf"), "-p", str(d / "keepalived.pid"),
                "-r", str(d / "vrrp.pid"), "-c", str(d / "checkers.pid"),
                "-b", str(d / "bfd.pid")]
        with open(d / "keepalived.log", "ab") as logf:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        self.daemons[n] = proc
        self.reg.defer(f"keepalived r{n} {proc.pid}", lambda: _stop(proc, signal.SIGTERM))
        self.note(f"start r{n} pid {proc.pid}")

    def stop(self, *routers: int) -> None:
        """SIGTERM the routers together (each sends priority 0 if master), wait for them."""
        for n in routers:
            self.note(f"stop r{n}")
            if self.daemons[n].poll() is None:
                self.daemons[n].send_signal(signal.SIGTERM)
        for n in routers:
            _stop(self.daemons[n], signal.SIGTERM)

    def has_vip(self, n: int, vip: str) -> bool:
        out = subprocess.run(["ip", "-n", self.ns(n), "-o", "addr", "show"],
                             capture_output=True, text=True, check=False).stdout
        return any(f" {vip}/" in line for line in out.splitlines())

    def wait_master(self, n: int, vip: str, *, present: bool = True) -> None:
        proc = self.daemons.get(n)

        def done() -> bool:
            if proc is not None and proc.poll() is not None:
                raise CaptureError(f"router {n}'s keepalived exited ({proc.returncode})")
            return self.has_vip(n, vip) == present

        what = f"router {n} to {'hold' if present else 'drop'} {vip}"
        wait_for(done, WAIT_TIMEOUT, what)
        self.note(what)

    def note(self, what: str) -> None:
        self.log.append(f"{time.monotonic():.3f} {what}")

    def close(self) -> None:
        try:
            self.reg.close()
        finally:
            # Anything still inside (a keepalived child that outlived its parent) is
            # stopped by PID, then the namespaces go, whatever happened before.
            for ns in (self.ns(1), self.ns(2), self.hub):
                for pid in netns_pids(ns):
                    stop_pid(pid, grace=GRACE)
                delete_netns(ns)


def _stop(proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(GRACE)


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise CaptureError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def run_plan(lab: Lab, sc: Scenario, flag: Path) -> None:
    conf = {1: keepalived_conf(f"{lab.tag}r1", sc.r1, flag),
            2: keepalived_conf(f"{lab.tag}r2", sc.r2, flag)}
    vip = {1: sc.r1.vip, 2: sc.r2.vip}
    if sc.plan == "failover":
        # Router 2 becomes master (t0), router 1 preempts it 0.3 s later and stops
        # gracefully 2 s after; router 2 takes over again (t1) and stays master past
        # t1 + 5 s (keepalived's second GARP/NA burst); router 1 returns and preempts,
        # then router 2 (backup, silent) and router 1 (priority 0) stop.
        lab.start(2, conf[2])
        time.sleep(0.3)
        lab.start(1, conf[1])
        lab.wait_master(2, vip[2])  # router 2 first, or the capture is not this one
        lab.wait_master(1, vip[1])
        time.sleep(2.0)
        lab.stop(1)
        lab.wait_master(2, vip[2])
        time.sleep(4.0)
        lab.start(1, conf[1])
        lab.wait_master(1, vip[1])
        time.sleep(1.5)
        lab.stop(2)
        lab.stop(1)
    elif sc.plan == "mismatch":
        # Each rejects the other's adverts, so both become master; both stop at once.
        lab.start(2, conf[2])
        time.sleep(0.3)
        lab.start(1, conf[1])
        lab.wait_master(2, vip[2])
        lab.wait_master(1, vip[1])
        time.sleep(2.5)
        lab.stop(1, 2)
    elif sc.plan == "script":
        # Router 1 is master at 100; its script fails (flag created): 100 - 20 = 80
        # < 90, router 2 takes over; the script recovers and router 1 preempts back.
        lab.start(1, conf[1])
        lab.wait_master(1, vip[1])
        lab.start(2, conf[2])
        time.sleep(5.0)
        flag.touch()
        lab.note("script fails")
        lab.wait_master(2, vip[2])
        lab.wait_master(1, vip[1], present=False)
        time.sleep(4.0)
        flag.unlink()
        lab.note("script recovers")
        lab.wait_master(1, vip[1])
        time.sleep(2.5)
        lab.stop(2)
        lab.stop(1)
    else:
        raise ValueError(sc.plan)
    time.sleep(0.5)  # the last adverts reach the capture before it stops


def capture(sc: Scenario, outdir: Path, index: int, keep: Path | None) -> Path:
    """Run one scenario and write its capture to ``outdir``; everything else goes."""
    tag = f"hkc{os.getpid()}s{index}"
    work = Path(tempfile.mkdtemp(prefix=f"{tag}-"))
    pcap = work / f"{sc.name}.pcap"
    lab = Lab(tag, work)
    signal.alarm(int(SCENARIO_TIMEOUT))  # SIGALRM raises CaptureError (see _alarm)
    try:
        lab.build()
        dump = lab.start_tcpdump(pcap)
        run_plan(lab, sc, work / "script-fails")
        _stop(dump, signal.SIGINT)
        out = outdir / pcap.name
        shutil.copyfile(pcap, out)
        return out
    finally:
        signal.alarm(0)
        try:
            lab.close()
        finally:
            if keep is not None:
                dest = keep / sc.name
                shutil.rmtree(dest, ignore_errors=True)
                shutil.copytree(work, dest)
                (dest / "timeline.txt").write_text("\n".join(lab.log) + "\n")
            shutil.rmtree(work, ignore_errors=True)


def derive(src: Path, name: str, bpf: str) -> Path:
    """The frames of ``src`` that match ``bpf``, as ``name``.pcap beside it."""
    dest = src.parent / f"{name}.pcap"
    subprocess.run([TCPDUMP, "-r", str(src), "-w", str(dest), "-Z", "root", bpf],
                   check=True, capture_output=True)
    return dest


def summary(path: Path) -> str:
    """One line per capture: frames, adverts per sender and the priorities seen."""
    from tests.vectors.pcap import read_pcap

    frames = read_pcap(path)
    adverts = [f for f in frames if f.protocol in (112, 51)]
    senders = sorted({f.src.hex() for f in adverts})
    prios: set[int] = set()
    for f in adverts:
        msg = f.payload[(f.payload[1] + 2) * 4:] if f.protocol == 51 else f.payload
        prios.add(msg[2])
    return (f"{path.name}: {len(frames)} frames, {len(adverts)} adverts from "
            f"{len(senders)} senders, priorities {sorted(prios, reverse=True)}")


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise CaptureError("scenario took longer than its time bound")


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through every cleanup


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.vectors.capture", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir", type=Path, help="where the .pcap files go")
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="capture only this scenario (repeatable)")
    ap.add_argument("--keep", type=Path, metavar="DIR",
                    help="keep each scenario's configs, keepalived logs and timeline here")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = ap.parse_args(argv)
    if args.list:
        for sc in SCENARIOS:
            extra = "".join(f" (+ {n}.pcap)" for n, _ in sc.derived)
            print(f"{sc.name}{extra}")
        return 0
    if os.geteuid() != 0:
        print("capture: needs root (network namespaces, tcpdump)", file=sys.stderr)
        return 2
    for tool in (KEEPALIVED, TCPDUMP, "ip"):
        if shutil.which(tool) is None:
            print(f"capture: {tool} not found", file=sys.stderr)
            return 2
    chosen = [sc for sc in SCENARIOS if not args.only or sc.name in args.only]
    unknown = set(args.only) - {sc.name for sc in SCENARIOS}
    if unknown:
        print(f"capture: unknown scenarios {sorted(unknown)}", file=sys.stderr)
        return 2
    args.outdir.mkdir(parents=True, exist_ok=True)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGALRM, _alarm)
    signal.signal(signal.SIGTERM, _terminate)
    failed = []
    for index, sc in enumerate(chosen):
        started = time.monotonic()
        try:
            pcap = capture(sc, args.outdir, index, args.keep)
            made = [pcap] + [derive(pcap, name, bpf) for name, bpf in sc.derived]
        except CaptureError as exc:
            failed.append(sc.name)
            print(f"{sc.name}: FAILED: {exc}", file=sys.stderr)
            continue
        for path in made:
            print(f"{summary(path)}  [{time.monotonic() - started:.1f} s]", flush=True)
    if failed:
        print(f"capture: {len(failed)} scenario(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
