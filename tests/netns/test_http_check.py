"""HTTP_GET and SSL_GET against the lab: a real nginx farm with faults, and hostile
servers (asyncio, in the server namespace) that trickle, never stop, or speak
garbage.  Every check runs on uvloop inside the director namespace, with a
deadline as the runner applies it (cancel the attempt, report TIMEOUT).

Needs root, nginx, nft and openssl.  Namespaces and processes are named after this
process's PID and torn down even when a test fails.
"""

from __future__ import annotations

import asyncio
import os
import tracemalloc
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import uvloop

from hafast.check.api import REGISTRY, TIMEOUT, ProbeKind, ProbeResult, Target
from hafast.check.http import HttpGetKind, SslGetKind
from hafast.check.http_fetch import Fetcher
from hafast.check.http_parse import build_request
from hafast.config.model import HttpGetCheck, SslGetCheck, Url
from hafast.lab import BIG_PATH, FIXED_BODY, FIXED_PATH, Farm, big_body, body_for, md5_hex
from hafast.lab.netns import call_in
from tests.conftest import require_root, require_tool
from tests.netns.hostile_servers import (
    CAPTURE,
    ENDLESS,
    GARBAGE,
    NO_END,
    NOT_TLS,
    SLAM,
    SNI_TLS,
    TRICKLE,
    Hostile,
)

pytestmark = [pytest.mark.root, pytest.mark.netns]

PREFIX = f"hh{os.getpid()}"
T = TypeVar("T")
S = 1_000_000


# -- the lab -------------------------------------------------------------------------------


@dataclass
class Lab:
    farm: Farm
    hostile: Hostile

    def run(self, fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run a coroutine on a fresh uvloop inside the director namespace."""
        return call_in(self.farm.director_ns, lambda: uvloop.run(fn()))


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_root()
    for tool in ("nginx", "nft", "nsenter", "openssl"):
        require_tool(tool)
    farm = Farm(32, name=PREFIX, tls=True, workers=1)
    hostile = None
    try:
        farm.build()
        lab_dir = farm.lab_dir
        hostile = Hostile(farm.server_ns, str(lab_dir / "tls.crt"), str(lab_dir / "tls.key"))
        hostile.start()
        yield Lab(farm, hostile)
    finally:
        if hostile is not None:
            hostile.stop()
        farm.close()


@pytest.fixture
def clean(lab: Lab) -> Iterator[Lab]:
    yield lab
    lab.farm.faults.recover()


# -- probing as the runner does -----------------------------------------------------------


@dataclass
class Probe:
    result: ProbeResult
    seconds: float
    calls: int  # how many times done() was called (must be 1, or 0 after a cancel)


async def probe_all(kinds: list[ProbeKind], deadline_s: float | None = None) -> list[Probe]:
    """Start every kind at once; cancel each at its deadline as the runner does."""
    loop = asyncio.get_running_loop()

    async def one(kind: ProbeKind) -> Probe:
        fut: asyncio.Future[ProbeResult] = loop.create_future()
        calls = [0]

        def done(r: ProbeResult) -> None:
            calls[0] += 1
            if not fut.done():
                fut.set_result(r)

        start = loop.time()
        attempt = kind.start(done)

        def expire() -> None:
            attempt.cancel()
            if not fut.done():
                fut.set_result(TIMEOUT)

        timer = loop.call_later(deadline_s or kind.deadline_us() / S, expire)
        result = await fut
        timer.cancel()
        seconds = loop.time() - start
        await asyncio.sleep(0.05)  # a late second done() would show here
        return Probe(result, seconds, calls[0])

    return list(await asyncio.gather(*(one(k) for k in kinds)))


def http(addr: str, *urls: Url, port: int = 80, timeout_s: float = 2, tls: bool = False,
         **spec: Any) -> Callable[[asyncio.AbstractEventLoop], ProbeKind]:
    cls, check = (SslGetKind, SslGetCheck) if tls else (HttpGetKind, HttpGetCheck)

    def make(loop: asyncio.AbstractEventLoop) -> ProbeKind:
        return cls(check(urls=urls, connect_timeout_us=int(timeout_s * S), **spec),
                   Target(addr, port), loop)

    return make


def run_probes(lab: Lab, makers: list[Callable[[asyncio.AbstractEventLoop], ProbeKind]],
               deadline_s: float | None = None) -> list[Probe]:
    async def go() -> list[Probe]:
        loop = asyncio.get_running_loop()
        return await probe_all([m(loop) for m in makers], deadline_s)

    return lab.run(go)


def fixed() -> Url:
    return Url(FIXED_PATH, digest=md5_hex(FIXED_BODY))


# -- registry ---------------------------------------------------------------------------------


def test_registered_under_keepalived_keywords() -> None:
    assert REGISTRY["HTTP_GET"] is HttpGetKind
    assert REGISTRY["SSL_GET"] is SslGetKind


# -- healthy ----------------------------------------------------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["HTTP_GET", "SSL_GET"])
def test_healthy_servers_pass_with_digests(lab: Lab, tls: bool) -> None:
    port = 443 if tls else 80
    addrs = lab.farm.addresses[:8]
    makers = [
        http(a, fixed(), Url("/", digest=md5_hex(body_for(a))),
             Url(BIG_PATH, digest=md5_hex(big_body())), port=port, tls=tls)
        for a in addrs
    ]
    probes = run_probes(lab, makers)
    assert [p.result for p in probes] == [ProbeResult(True)] * len(addrs)
    assert all(p.calls == 1 for p in probes)


@pytest.mark.parametrize("protocol", ["1.0", "1.0C", "1.1"])
def test_each_http_protocol_passes(lab: Lab, protocol: str) -> None:
    # 1.1 gets nginx's Content-Length reply (a fixed body); still hashed to EOF.
    (p,) = run_probes(lab, [http(lab.farm.addresses[1], fixed(), http_protocol=protocol)])
    assert p.result.ok, p.result


def test_status_code_lists_and_ranges(clean: Lab) -> None:
    a = clean.farm.addresses[2]
    clean.farm.faults.apply([a], "http500")
    probes = run_probes(clean, [
        http(a, Url("/", status_code=((500, 500),))),
        http(a, Url("/", status_code=((200, 299), (500, 599)))),
        http(a, Url("/")),
        http(a, Url("/", status_code=((501, 599),))),
    ])
    assert [p.result.ok for p in probes] == [True, True, False, False]
    assert probes[2].result.reason == probes[3].result.reason == "status"


def test_every_url_must_pass(lab: Lab) -> None:
    a = lab.farm.addresses[3]
    (p,) = run_probes(lab, [http(a, fixed(), Url("/second", status_code=((300, 399),)), fixed())])
    assert (p.result.ok, p.result.reason) == (False, "status")
    assert p.result.detail.startswith("/second:")


# -- faults -----------------------------------------------------------------------------------

FAULTS = [
    ("drop", "timeout"),
    ("reject", "refused"),
    ("http500", "status"),
    ("body", "digest"),
    ("slow", "timeout"),  # nginx limit_rate: the header arrives after ~9 s
]


@pytest.mark.parametrize("tls", [False, True], ids=["HTTP_GET", "SSL_GET"])
def test_faults_then_recovery(clean: Lab, tls: bool) -> None:
    farm = clean.farm
    port = 443 if tls else 80
    victims = farm.addresses[10 : 10 + len(FAULTS)]
    for addr, (kind, _) in zip(victims, FAULTS, strict=True):
        farm.faults.apply([addr], kind)

    def makers() -> list[Callable[[asyncio.AbstractEventLoop], ProbeKind]]:
        return [http(a, Url("/", digest=md5_hex(body_for(a))), port=port, tls=tls, timeout_s=1)
                for a in victims]

    probes = run_probes(clean, makers())
    got = [(p.result.ok, p.result.reason) for p in probes]
    assert got == [(False, reason) for _, reason in FAULTS]
    assert all(p.calls == (0 if p.result is TIMEOUT else 1) for p in probes)

    farm.faults.recover()
    assert [p.result for p in run_probes(clean, makers())] == [ProbeResult(True)] * len(FAULTS)


# -- hostile servers ----------------------------------------------------------------------------


def test_request_bytes_on_the_wire(lab: Lab) -> None:
    a = lab.farm.addresses[4]
    lab.hostile.requests.clear()
    probes = run_probes(lab, [
        http(a, Url("/a"), port=CAPTURE),
        http(a, Url("/b", virtualhost="url.example"), port=CAPTURE, virtualhost="chk.example",
             http_protocol="1.1"),
        http(a, Url("/c"), port=CAPTURE, virtualhost="chk.example", http_protocol="1.0C"),
    ])
    assert all(p.result.ok for p in probes)
    assert sorted(lab.hostile.requests) == sorted([
        build_request("/a", a, CAPTURE, "1.0"),
        b"GET /b HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\n"
        b"Host: url.example\r\n\r\n",
        b"GET /c HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\n"
        b"Host: chk.example\r\n\r\n",
    ])
    assert lab.hostile.requests[0].startswith(b"GET /")
    assert f"Host: {a}:{CAPTURE}\r\n".encode() in build_request("/a", a, CAPTURE)


HOSTILE = [
    # (port, tls, acceptable failure reasons)
    (ENDLESS, False, {"body-too-large", "timeout"}),
    (TRICKLE, False, {"timeout"}),  # keepalived would wait ~30 s (timer per read)
    (GARBAGE, False, {"status"}),
    (NO_END, False, {"header-too-large"}),
    (SLAM, False, {"no-data", "reset", "read"}),
    (NOT_TLS, True, {"tls"}),
    (SLAM, True, {"tls", "reset", "read"}),
]


def test_hostile_servers_fail_on_time_with_bounded_memory(lab: Lab) -> None:
    a = lab.farm.addresses[5]
    makers = [http(a, Url("/", digest="0" * 32), port=port, tls=tls, timeout_s=1.5)
              for port, tls, _ in HOSTILE]

    async def go() -> tuple[list[Probe], int]:
        loop = asyncio.get_running_loop()
        kinds = [m(loop) for m in makers]
        tracemalloc.start()
        try:
            probes = await probe_all(kinds)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return probes, peak

    probes, peak = lab.run(go)
    for (port, tls, reasons), p in zip(HOSTILE, probes, strict=True):
        assert not p.result.ok and p.result.reason in reasons, (port, tls, p.result)
        assert p.calls == (0 if p.result is TIMEOUT else 1)
        # The runner's deadline bounds the attempt (give the loop generous slack).
        assert p.seconds < 1.5 + 3.0, (port, p.seconds)
    # An endless body streams through the MD5 (16 MiB cap), it is never kept.
    assert peak < 8 * 1024 * 1024, peak


def test_endless_body_hits_the_cap(lab: Lab) -> None:
    a = lab.farm.addresses[6]

    def make(loop: asyncio.AbstractEventLoop) -> ProbeKind:
        return HttpGetKind(HttpGetCheck(urls=(Url("/"),), connect_timeout_us=10 * S),
                           Target(a, ENDLESS), loop, body_cap=1 << 20)

    (p,) = run_probes(lab, [make])
    assert (p.result.ok, p.result.reason) == (False, "body-too-large")


def test_sni(lab: Lab) -> None:
    a = lab.farm.addresses[7]
    lab.hostile.sni.clear()
    probes = run_probes(lab, [
        http(a, Url("/"), port=SNI_TLS, tls=True, enable_sni=True, virtualhost="vh.example"),
        http(a, Url("/", virtualhost="url.example"), port=SNI_TLS, tls=True, enable_sni=True),
        http(a, Url("/"), port=SNI_TLS, tls=True, enable_sni=True, virtualhost="vh.example",
             sni_name="sni.example"),
        http(a, Url("/"), port=SNI_TLS, tls=True, virtualhost="vh.example"),  # SNI not enabled
        http(a, Url("/"), port=SNI_TLS, tls=True, enable_sni=True, tls_compliant=True),
    ])
    assert all(p.result.ok for p in probes), [p.result for p in probes]
    assert sorted(lab.hostile.sni, key=str) == sorted(
        ["vh.example", "url.example", "sni.example", None, None], key=str
    )


def test_tls_session_is_resumed(lab: Lab) -> None:
    a = lab.farm.addresses[8]

    async def go() -> list[bool]:
        loop = asyncio.get_running_loop()
        kind = SslGetKind(SslGetCheck(urls=(fixed(),)), Target(a, 443), loop)
        out = []
        for _ in range(3):
            (p,) = await probe_all([kind])
            out.append(p.result.ok)
        out.append(kind.session is not None)
        return out

    assert lab.run(go) == [True, True, True, True]


# -- cancel ---------------------------------------------------------------------------------------


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_cancel_mid_flight_releases_the_socket(clean: Lab) -> None:
    farm = clean.farm
    connecting, reading = farm.addresses[20], farm.addresses[21]
    farm.faults.apply([connecting], "drop")
    farm.faults.apply([reading], "slow")

    async def go() -> tuple[int, int, int, list[int]]:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.1)
        # Plain HTTP_GET's fetches share one epoll per loop (http_fetch.Fetcher): opened
        # before counting, so the counts below are the attempts' sockets alone.
        fetcher = Fetcher.acquire(loop)
        before = _fds()
        kinds = [
            HttpGetKind(HttpGetCheck(urls=(Url("/"),)), Target(connecting, 80), loop),
            HttpGetKind(HttpGetCheck(urls=(Url("/"),)), Target(reading, 80), loop),
            SslGetKind(SslGetCheck(urls=(Url("/"),)), Target(reading, 443), loop),
        ]
        calls: list[int] = []
        attempts = [k.start(lambda r: calls.append(1)) for k in kinds]
        await asyncio.sleep(0.5)  # connect pending / header not yet sent by nginx
        during = _fds()
        for at in attempts:
            at.cancel()
            at.cancel()  # twice is harmless
        after = _fds()
        await asyncio.sleep(0.5)  # nothing may call back after a cancel
        for k in kinds:
            k.close()
        fetcher.release()
        return before, during, after, calls

    before, during, after, calls = clean.run(go)
    assert during == before + 3
    assert after == before
    assert calls == []


def test_url_regex(lab: Lab) -> None:
    a = lab.farm.addresses[9]
    probes = run_probes(lab, [
        # unanchored: keepalived's first subject holds the header when the body came
        # in the same read (nginx decides), so "^rs" would depend on the segmentation
        http(a, Url("/", regex=r"rs 10\.201\.")),
        http(a, Url("/", regex="RS", regex_options=("caseless",))),
        http(a, Url("/", regex="down", regex_no_match=True)),
        http(a, Url("/", regex="rs", regex_no_match=True)),
        http(a, Url("/", regex="RS")),
        http(a, Url("/", regex="(unclosed")),
        http(a, Url("/", regex=r"rs \K10\.201\.", regex_max_offset=4096)),  # PCRE-only: \K
        http(a, Url("/", regex=r"(?<=rs )10\.201\.")),
    ])
    got = [(p.result.ok, p.result.reason) for p in probes]
    assert got == [(True, ""), (True, ""), (True, ""), (False, "regex"), (False, "regex"),
                   (False, "config"), (True, ""), (True, "")]
    assert all(p.calls == 1 for p in probes)


def test_a_bug_in_a_callback_fails_the_attempt(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    from hafast.check.http_parse import ResponseParser

    def boom(self: ResponseParser, data: object) -> bool:
        raise RuntimeError("boom")

    monkeypatch.setattr(ResponseParser, "feed", boom)
    (p,) = run_probes(lab, [http(lab.farm.addresses[11], fixed())])
    assert (p.result.ok, p.result.reason, p.calls) == (False, "error", 1)
    assert "boom" in p.result.detail


def test_bindto_bind_if_and_fwmark(lab: Lab) -> None:
    a, director = lab.farm.addresses[12], lab.farm.directors[0]

    def make(**opts: Any) -> Callable[[asyncio.AbstractEventLoop], ProbeKind]:
        return lambda loop: HttpGetKind(HttpGetCheck(urls=(fixed(),)), Target(a, 80, **opts), loop)

    probes = run_probes(lab, [
        make(bindto=director.address),
        make(bindto=director.address, bind_port=40123),
        make(bind_if=director.dev, fwmark=7),
        make(bindto="192.0.2.99"),  # not an address of the director
    ])
    got = [(p.result.ok, p.result.reason) for p in probes]
    assert got == [(True, ""), (True, ""), (True, ""), (False, "bind")]


# -- the plain path (one FetchSet per loop) against the Exchange ---------------------------------


def test_plain_fetches_and_the_exchange_give_the_same_results(lab: Lab) -> None:
    """The same checks through the plain path (no bind option: http_fetch.Fetcher, the
    syscalls in C) and through the Exchange (bindto: a Python socket per check):
    identical results, reasons and details."""
    a, director = lab.farm.addresses[13], lab.farm.directors[0]
    cases: list[tuple[int, tuple[Url, ...], int]] = [
        (80, (fixed(), Url("/", digest=md5_hex(body_for(a))),
              Url(BIG_PATH, digest=md5_hex(big_body()))), 16 << 20),
        (80, (fixed(), Url("/", digest="0" * 32)), 16 << 20),
        (80, (Url("/", status_code=((300, 399),)),), 16 << 20),
        (81, (fixed(),), 16 << 20),  # nothing listens: refused
        (GARBAGE, (fixed(),), 16 << 20),
        (NO_END, (fixed(),), 16 << 20),
        (CAPTURE, (Url("/", digest=md5_hex(b"ok\n")),), 16 << 20),
        (ENDLESS, (Url("/"),), 1 << 20),
        (80, (Url(BIG_PATH),), 4096),  # the cap, hit in mid-body
    ]

    def make(port: int, urls: tuple[Url, ...], cap: int, **opts: Any) -> Callable[
            [asyncio.AbstractEventLoop], ProbeKind]:
        return lambda loop: HttpGetKind(HttpGetCheck(urls=urls, connect_timeout_us=5 * S),
                                        Target(a, port, **opts), loop, body_cap=cap)

    plain = run_probes(lab, [make(*c) for c in cases])
    bound = run_probes(lab, [make(*c, bindto=director.address) for c in cases])
    got = [(p.result.ok, p.result.reason, p.result.detail) for p in plain]
    assert got == [(p.result.ok, p.result.reason, p.result.detail) for p in bound]
    assert [g[:2] for g in got] == [
        (True, ""), (False, "digest"), (False, "status"), (False, "refused"),
        (False, "status"), (False, "header-too-large"), (True, ""),
        (False, "body-too-large"), (False, "body-too-large"),
    ]
    assert got[3][2] == f"{FIXED_PATH}: connect: ECONNREFUSED", got[3]
    assert all(p.calls == 1 for p in plain + bound)


def test_plain_kinds_share_one_fetcher_per_loop(lab: Lab) -> None:
    from hafast.check import http_fetch

    a, director = lab.farm.addresses[14], lab.farm.directors[0]

    async def go() -> tuple[list[bool], int, bool, bool]:
        loop = asyncio.get_running_loop()
        kinds = [
            HttpGetKind(HttpGetCheck(urls=(fixed(),)), Target(a, 80), loop),
            HttpGetKind(HttpGetCheck(urls=(fixed(),)), Target(a, 80), loop),
            HttpGetKind(HttpGetCheck(urls=(fixed(),)), Target(a, 80, bindto=director.address),
                        loop),
            SslGetKind(SslGetCheck(urls=(fixed(),)), Target(a, 443), loop),
        ]
        probes = await probe_all(kinds)
        fetchers = {id(k.fetcher) for k in kinds[:2]}
        shared = kinds[0].fetcher
        assert shared is not None and kinds[2].fetcher is None and kinds[3].fetcher is None
        for k in kinds:
            k.close()
        return ([p.result.ok for p in probes], len(fetchers), shared.fetches.closed,
                http_fetch._fetchers.holds(loop))

    oks, n_fetchers, closed, still_there = lab.run(go)
    assert oks == [True] * 4
    assert (n_fetchers, closed, still_there) == (1, True, False)
