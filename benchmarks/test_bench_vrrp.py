"""VRRP codec speed: compiled (vrrp_codec_c) against the pure-Python twin, side by side.

The subject is a real keepalived advert from the vectors (VRRPv2, PASS "1111",
one VIP) decoded and validated as the VRRP worker does for every received
packet: whole IPv4 packet in, all receive checks with the local configuration
(version, auth type, password, advert interval; an Expect built once, as an
instance does), one Advert out.  The compiled twin reuses the previous
advert's bytes objects when the next advert repeats them (a master's adverts
do); two alternating adverts show the cost without that reuse.  The checks
with the configuration passed as keywords on every call are reported too.  Encode builds
the same packet (IPv4 header + VRRP, both checksums).  A VRRPv3 IPv6 advert
covers the pseudo-header path.

Ratios come from one run: the two twins are timed in many short alternating
rounds (best of each, GC off as in ``timeit``), so a busy machine slows both
alike.  Nothing is asserted but
correctness of the benchmarked call.

    .venv/bin/python -m pytest benchmarks/test_bench_vrrp.py -q
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from hafast._core.vrrp_constants import AUTH_PASS, auth_data_from_pass
from tests.conftest import VECTORS, load_twin, require
from tests.vectors.pcap import Frame, read_pcap

PASS = auth_data_from_pass("1111")
ROUNDS = 25  # alternating rounds per twin; the best round of each is kept
ROUND_SECONDS = 0.02  # each round runs about this long (bounded: about ROUNDS * 2 * 0.02 s a case)


def _first_advert(vectors_dir: Path, name: str) -> Frame:
    return next(f for f in read_pcap(vectors_dir / name) if f.protocol == 112)


@pytest.fixture(scope="module")
def vectors_dir() -> Path:
    # tests/conftest.py's fixture of the same name does not reach benchmarks/.
    require(VECTORS.is_dir(), f"keepalived captures not found at {VECTORS}")
    return VECTORS


@pytest.fixture(scope="module")
def v2_packet(vectors_dir: Path) -> bytes:
    return _first_advert(vectors_dir, "vrrp_v2_pass.pcap").ip_packet


@pytest.fixture(scope="module")
def v3_ipv6(vectors_dir: Path) -> Frame:
    return _first_advert(vectors_dir, "vrrp_v3_ipv6.pcap")


def _decode_v2(codec: ModuleType, packet: bytes) -> Callable[[], Any]:
    # The VRRP instance builds its Expect once from its configuration.
    rx = codec.Expect(version=2, auth_type=AUTH_PASS, auth_data=PASS, adver_int=1)

    def run() -> Any:
        return codec.decode_ipv4(packet, rx)
    return run


def _decode_v2_alternating(codec: ModuleType, packet: bytes) -> Callable[[], Any]:
    # Two different adverts in turn (other sender, other VIP): the compiled twin's
    # reuse of the previous advert's objects never hits.  Per call = one decode.
    rx = codec.Expect(version=2, auth_type=AUTH_PASS, auth_data=PASS, adver_int=1)
    other = codec.encode_ipv4(2, 51, 90, [bytes([192, 168, 77, 101])], 1,
                              src=bytes([192, 168, 77, 1]), dst=packet[16:20], ip_id=7,
                              auth_type=AUTH_PASS, auth_data=PASS)
    state = [packet, other]

    def run() -> Any:
        state.reverse()
        return codec.decode_ipv4(state[0], rx)
    return run


def _decode_v2_keywords(codec: ModuleType, packet: bytes) -> Callable[[], Any]:
    # The same checks with the configuration passed as keywords on every call.
    def run() -> Any:
        return codec.decode_ipv4(packet, version=2, auth_type=AUTH_PASS, auth_data=PASS,
                                 adver_int=1)
    return run


def _encode_v2(codec: ModuleType, packet: bytes) -> Callable[[], Any]:
    adv = codec.decode_ipv4(packet)
    addresses, src, dst = list(adv.addresses), adv.src, adv.dst

    def run() -> Any:
        return codec.encode_ipv4(2, 51, adv.priority, addresses, 1, src=src, dst=dst, ip_id=1,
                                 auth_type=AUTH_PASS, auth_data=PASS)
    return run


def _decode_v6(codec: ModuleType, frame: Frame) -> Callable[[], Any]:
    payload, src, dst = frame.payload, frame.src, frame.dst
    rx = codec.Expect(version=3)

    def run() -> Any:
        return codec.decode_payload(payload, 6, src, dst, 255, rx)
    return run


def _per_call(fn: Callable[[], Any], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def _side_by_side(c_fn: Callable[[], Any], py_fn: Callable[[], Any]) -> tuple[float, float]:
    """Best seconds per call of each twin, timed in alternating rounds.

    Like ``timeit``, the cyclic GC is off while timing, so a collection triggered
    by unrelated garbage does not land in one twin's round.
    """
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _rounds(c_fn, py_fn)
    finally:
        if gc_was_enabled:
            gc.enable()


def _rounds(c_fn: Callable[[], Any], py_fn: Callable[[], Any]) -> tuple[float, float]:
    numbers = {}
    for key, fn in (("c", c_fn), ("py", py_fn)):
        estimate = _per_call(fn, 200)
        numbers[key] = max(50, min(500_000, int(ROUND_SECONDS / max(estimate, 1e-9))))
    best = {"c": float("inf"), "py": float("inf")}
    for _ in range(ROUNDS):
        best["c"] = min(best["c"], _per_call(c_fn, numbers["c"]))
        best["py"] = min(best["py"], _per_call(py_fn, numbers["py"]))
    return best["c"], best["py"]


@pytest.mark.parametrize("flavour", ["c", "py"])
def test_bench_decode_v2(benchmark: Any, v2_packet: bytes, flavour: str) -> None:
    run = _decode_v2(load_twin("vrrp_codec", flavour), v2_packet)
    assert benchmark(run).ok


@pytest.mark.parametrize("flavour", ["c", "py"])
def test_bench_encode_v2(benchmark: Any, v2_packet: bytes, flavour: str) -> None:
    run = _encode_v2(load_twin("vrrp_codec", flavour), v2_packet)
    assert benchmark(run) == v2_packet


@pytest.mark.parametrize("flavour", ["c", "py"])
def test_bench_decode_v3_ipv6(benchmark: Any, v3_ipv6: Frame, flavour: str) -> None:
    run = _decode_v6(load_twin("vrrp_codec", flavour), v3_ipv6)
    assert benchmark(run).ok


def test_speedup_figures(figures: Any, v2_packet: bytes, v3_ipv6: Frame) -> None:
    c, py = load_twin("vrrp_codec", "c"), load_twin("vrrp_codec", "py")
    cases = [
        ("vrrp decode+validate v2 (compiled vs twin)", _decode_v2, v2_packet, ">= 20x"),
        ("vrrp encode v2 ipv4 (compiled vs twin)", _encode_v2, v2_packet, ">= 20x"),
        ("vrrp decode+validate v2, adverts alternating (compiled vs twin)",
         _decode_v2_alternating, v2_packet, ""),
        ("vrrp decode+validate v2, keyword config (compiled vs twin)", _decode_v2_keywords,
         v2_packet, ""),
        ("vrrp decode+validate v3 ipv6 (compiled vs twin)", _decode_v6, v3_ipv6, ""),
    ]
    for name, make, subject, goal in cases:
        c_fn, py_fn = make(c, subject), make(py, subject)  # type: ignore[operator]
        assert c_fn() == py_fn() if name.startswith("vrrp encode") else (
            c_fn().fields() == py_fn().fields())
        c_s, py_s = _side_by_side(c_fn, py_fn)
        figures.add(name, py_s / c_s, "x", goal=goal,
                    compiled_ns=round(c_s * 1e9, 1), twin_ns=round(py_s * 1e9, 1))
