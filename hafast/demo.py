"""The foundation demo: the hot paths at work on a real farm in namespaces.

Until the daemon exists (issue 7) the README's main job runs this: it builds a farm
of real servers (one nginx, many addresses) in network namespaces, pings every
server with ``icmp_batch`` from the director namespace, fetches bodies and hashes
them with ``md5stream`` (cross-checked against Debian keepalived's ``genhash`` when
it is installed), encodes and decodes the seed's VRRP advertisement, and tears
everything down.  Needs root.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import time

from hafast._core import md5stream, vrrp_codec
from hafast._core._select import compiled_status
from hafast._core.icmp_batch import ping_many
from hafast._core.vrrp_constants import AUTH_PASS


def _section(title: str) -> None:
    print(f"\n== {title}")


def _vrrp_seed_advert() -> None:
    """The seed's advert: VRID 51, priority 100, PASS 1111, VIP 10.100.5.138."""
    _section("VRRP codec: the seed's MASTER advert (v2, PASS 1111, VIP 10.100.5.138)")
    src, group = bytes([192, 168, 77, 1]), bytes([224, 0, 0, 18])
    vip = bytes([10, 100, 5, 138])
    packet = vrrp_codec.encode_ipv4(
        2, 51, 100, [vip], 1, src=src, dst=group, auth_type=AUTH_PASS, auth_data=b"1111"
    )
    print(f"encoded {len(packet)} bytes: {packet.hex()}")
    pass8 = b"1111".ljust(8, b"\0")  # v2 Authentication Data: 8 bytes, zero padded
    expect = vrrp_codec.Expect(version=2, auth_type=AUTH_PASS, auth_data=pass8, adver_int=1)
    advert = vrrp_codec.decode_ipv4(packet, expect)
    print(f"decoded: {advert!r} reason={advert.reason}")
    corrupt = bytearray(packet)
    corrupt[-3] ^= 0xFF
    print(f"one byte flipped   -> {vrrp_codec.decode_ipv4(bytes(corrupt), expect).reason}")
    wrong = vrrp_codec.Expect(auth_type=AUTH_PASS, auth_data=b"2222".ljust(8, b"\0"))
    slower = vrrp_codec.Expect(adver_int=2)
    print(f"peer with pass 2222  -> {vrrp_codec.decode_ipv4(packet, wrong).reason}")
    print(f"peer at advert_int 2 -> {vrrp_codec.decode_ipv4(packet, slower).reason}")


def _genhash(ns: str, addr: str, path: str) -> str | None:
    tool = shutil.which("/usr/bin/genhash")  # Debian keepalived's, not ours
    if tool is None:
        return None
    out = subprocess.run(
        ["ip", "netns", "exec", ns, tool, "-s", addr, "-p", "80", "-u", path],
        capture_output=True, text=True, timeout=20, check=False,
    ).stdout
    # Without -v genhash prints the digest alone; with -v it ends "MD5SUM = <hex>".
    words = out.split()
    return words[-1] if words else None


def run_demo(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("hafast demo needs root (network namespaces, raw sockets)")
        return 2
    from hafast.lab.farm import Farm
    from hafast.lab.netns import call_in

    _section("hot paths")
    for name, state in compiled_status().items():
        print(f"{name:12s} {state}")
    _vrrp_seed_advert()

    count = max(1, int(args.targets))
    _section(f"farm: {count} real servers in network namespaces, one nginx")
    with Farm(count) as farm:
        print(f"built in {farm.build_seconds:.3f} s: servers {farm.addresses[0]} .. "
              f"{farm.addresses[-1]} in {farm.server_ns}, director {farm.director_ns}")

        _section("icmp_batch: one echo to every server plus 64 unassigned addresses")
        last = farm.addresses[-1].split(".")
        spare = [f"10.202.0.{i}" for i in range(1, 65)]  # routed nowhere: must time out
        targets = list(farm.addresses) + spare
        t0 = time.perf_counter()
        rtts = call_in(farm.director_ns, ping_many, targets, 1.0)
        elapsed = time.perf_counter() - t0
        answered = [a for a in farm.addresses if rtts.get(a) is not None]
        silent = [a for a in spare if rtts.get(a) is None]
        print(f"{len(answered)}/{len(farm.addresses)} servers answered, "
              f"{len(silent)}/{len(spare)} unassigned got no answer, in {elapsed:.2f} s "
              f"(last server {'.'.join(last)})")

        _section("md5stream: body digests, as HTTP_GET checks them")
        sample = farm.addresses[:: max(1, len(farm.addresses) // 5)][:5]
        for addr in sample:
            reply = farm.fetch(addr, "/")
            stream = md5stream.MD5Stream()
            stream.update(reply.body)
            mine = stream.hexdigest()
            ref = _genhash(farm.director_ns, addr, "/")
            if ref is None:
                agree = ""
            else:
                agree = "  genhash agrees" if ref == mine else f"  genhash {ref} DIFFERS"
            print(f"{addr:15s} {reply.status} {reply.body!r:28s} md5 {mine}{agree}")
            assert mine == hashlib.md5(reply.body).hexdigest()

        _section("a fault: the first server returns 500, the second drops, then recovers")
        a, b = farm.addresses[0], farm.addresses[1]
        farm.faults.apply([a], "http500")
        farm.faults.apply([b], "drop")
        ra, rb = farm.fetch(a, "/"), farm.fetch(b, "/", timeout=0.5)
        print(f"{a}: status {ra.status}; {b}: {rb.error or rb.status}")
        farm.faults.recover()
        ra, rb = farm.fetch(a, "/"), farm.fetch(b, "/")
        print(f"recovered: {a}: status {ra.status}; {b}: status {rb.status}")
    print("\nfarm torn down")
    return 0
