"""md5stream speed, reported side by side in one run (never asserted).

(a) Throughput of a body streamed in 16 KiB and 64 KiB chunks: the compiled
    ``MD5Stream`` and hashlib's streaming ``update`` against ``openssl speed -evp md5``
    at the same block size, run in this same session.  Every side is timed in CPU
    time on one core (openssl speed's default divisor is user CPU time; ours is
    ``time.process_time``), so helpers sharing the machine skew neither side.
(b) The whole per-body work for a small body in one chunk, as a health check does
    it: ``reset(); update(chunk); hexdigest()`` on one reused compiled stream
    against ``hashlib.md5(chunk).hexdigest()``; the compiled one-shot ``md5_hex``
    and the twin are reported for reference.  So is the floor: the same EVP
    init/update/final per body in a C loop (built with cffi), no Python at all;
    ``hashlib time / floor`` is the most any EVP-based stream could gain.

Run: ``.venv/bin/python -m pytest benchmarks/test_bench_md5.py -q``
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import load_twin, require, require_tool

MIB = 1 << 20
BIG_CHUNKS = (16384, 65536)
SMALL_CHUNKS = (32, 256, 1024)
OPENSSL_SECONDS = 2
BODIES_PER_ROUND = 1000  # (b): amortises the benchmark's own per-round overhead

# name -> value, filled by the measuring tests and read by the ratio tests at the end.
_MEASURED: dict[str, float] = {}


def _label(size: int) -> str:
    return f"{size // 1024} KiB" if size >= 1024 else f"{size} B"


@pytest.fixture(scope="module")
def openssl_speed() -> dict[int, float]:
    """Bytes per second of ``openssl speed -evp md5`` for each of BIG_CHUNKS."""
    exe = require_tool("openssl")
    result: dict[int, float] = {}
    for size in BIG_CHUNKS:
        cmd = [exe, "speed", "-evp", "md5", "-bytes", str(size),
               "-seconds", str(OPENSSL_SECONDS), "-mr"]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
        # -mr prints "+F:<n>:md5:<bytes per second for each size>"
        lines = [ln for ln in out.splitlines() if ln.startswith("+F:")]
        require(lines, f"could not parse `{' '.join(cmd)}` output: {out!r}")
        result[size] = float(lines[-1].rsplit(":", 1)[1])
    return result


# The per-body work of a stream, in C with nothing else around it: a reused context,
# MD5 fetched once, as md5stream_c does.  Returns 1 when every call succeeded.
_FLOOR_CDEF = "int md5_evp_bodies(const unsigned char *data, size_t n, int bodies);"
_FLOOR_SRC = r"""
#include <openssl/evp.h>
int md5_evp_bodies(const unsigned char *data, size_t n, int bodies)
{
    static EVP_MD *md;
    static EVP_MD_CTX *ctx;
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int outlen;
    int ok = 1;
    if (md == NULL && (md = EVP_MD_fetch(NULL, "MD5", "-fips")) == NULL)
        return 0;
    if (ctx == NULL && (ctx = EVP_MD_CTX_new()) == NULL)
        return 0;
    for (int i = 0; i < bodies; i++)
        ok &= EVP_DigestInit_ex(ctx, md, NULL) && EVP_DigestUpdate(ctx, data, n)
              && EVP_DigestFinal_ex(ctx, out, &outlen);
    return ok;
}
"""


@pytest.fixture(scope="module")
def evp_floor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A compiled ``md5_evp_bodies`` (cffi), or a skip/CI failure without a compiler."""
    require(shutil.which("cc") or shutil.which("gcc"), "needs a C compiler for the EVP floor")
    from cffi import FFI

    ffi = FFI()
    ffi.cdef(_FLOOR_CDEF)
    name = f"_md5_evp_floor_{os.getpid()}"
    ffi.set_source(name, _FLOOR_SRC, libraries=["crypto"])
    where = tmp_path_factory.mktemp("evp_floor")
    ffi.compile(tmpdir=str(where), verbose=False)
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(where))
        sys.modules.pop(name, None)


def _stream_compiled(chunk: bytes, count: int) -> Callable[[], None]:
    stream = load_twin("md5stream", "c").MD5Stream(cap=count * len(chunk))

    def run() -> None:
        stream.reset()
        update = stream.update
        for _ in range(count):
            update(chunk)
        stream.hexdigest()

    return run


def _stream_hashlib(chunk: bytes, count: int) -> Callable[[], None]:
    def run() -> None:
        h = hashlib.md5()
        update = h.update
        for _ in range(count):
            update(chunk)
        h.hexdigest()

    return run


THROUGHPUT_IMPLS: dict[str, Callable[[bytes, int], Callable[[], None]]] = {
    "compiled": _stream_compiled,
    "hashlib": _stream_hashlib,
}


@pytest.mark.benchmark(group="md5 throughput", timer=time.process_time, disable_gc=True)
@pytest.mark.parametrize(("size", "impl"), [(s, i) for s in BIG_CHUNKS for i in THROUGHPUT_IMPLS])
def test_stream_throughput(
    benchmark: Any, figures: Any, openssl_speed: dict[int, float], size: int, impl: str
) -> None:
    chunk = os.urandom(size)
    count = 8 * MIB // size  # 8 MiB per round, ~10 ms
    run = THROUGHPUT_IMPLS[impl](chunk, count)
    # ~OPENSSL_SECONDS of hashing, like the openssl run it is compared with.
    benchmark.pedantic(run, rounds=150 * OPENSSL_SECONDS, warmup_rounds=2)
    rate = count * size / benchmark.stats.stats.mean
    name = f"md5 stream {_label(size)} chunks"
    _MEASURED[f"{name}: {impl}"] = rate
    figures.add(f"{name}: {impl} MB/s", rate / 1e6, "MB/s")


def _body_compiled_stream(chunk: bytes) -> Callable[[], None]:
    stream = load_twin("md5stream", "c").MD5Stream()
    loop = range(BODIES_PER_ROUND)

    def run() -> None:
        s = stream
        for _ in loop:
            s.reset()
            s.update(chunk)
            s.hexdigest()

    return run


def _body_hashlib(chunk: bytes) -> Callable[[], None]:
    md5 = hashlib.md5
    loop = range(BODIES_PER_ROUND)

    def run() -> None:
        for _ in loop:
            md5(chunk).hexdigest()

    return run


def _body_compiled_md5_hex(chunk: bytes) -> Callable[[], None]:
    md5_hex = load_twin("md5stream", "c").md5_hex
    loop = range(BODIES_PER_ROUND)

    def run() -> None:
        for _ in loop:
            md5_hex(chunk)

    return run


def _body_twin_stream(chunk: bytes) -> Callable[[], None]:
    stream = load_twin("md5stream", "py").MD5Stream()
    loop = range(BODIES_PER_ROUND)

    def run() -> None:
        s = stream
        for _ in loop:
            s.reset()
            s.update(chunk)
            s.hexdigest()

    return run


BODY_IMPLS: dict[str, Callable[[bytes], Callable[[], None]]] = {
    "compiled stream": _body_compiled_stream,
    "hashlib one-shot": _body_hashlib,
    "compiled md5_hex": _body_compiled_md5_hex,
    "twin stream": _body_twin_stream,
}


def _floor_runner(evp_floor: Any, chunk: bytes) -> Callable[[], None]:
    ffi, lib = evp_floor.ffi, evp_floor.lib
    buf = ffi.from_buffer(chunk)

    def run() -> None:
        if not lib.md5_evp_bodies(buf, len(chunk), BODIES_PER_ROUND):
            raise RuntimeError("OpenSSL MD5 failed in the floor loop")

    return run


@pytest.mark.benchmark(group="md5 per body", timer=time.process_time, disable_gc=True)
@pytest.mark.parametrize(
    ("size", "impl"), [(s, i) for s in SMALL_CHUNKS for i in [*BODY_IMPLS, "EVP floor in C"]]
)
def test_small_body(
    benchmark: Any, figures: Any, request: pytest.FixtureRequest, size: int, impl: str
) -> None:
    chunk = os.urandom(size)
    if impl == "EVP floor in C":
        run = _floor_runner(request.getfixturevalue("evp_floor"), chunk)
    else:
        run = BODY_IMPLS[impl](chunk)
    benchmark.pedantic(run, rounds=300, warmup_rounds=3)
    per_body = benchmark.stats.stats.mean / BODIES_PER_ROUND
    name = f"md5 per body {_label(size)}"
    _MEASURED[f"{name}: {impl}"] = per_body
    figures.add(f"{name}: {impl} us", per_body * 1e6, "us")


def test_ratios(figures: Any, openssl_speed: dict[int, float]) -> None:
    """Turn what the tests above measured into the reported ratios."""
    for size in BIG_CHUNKS:
        name = f"md5 stream {_label(size)} chunks"
        figures.add(f"{name}: openssl speed -evp MB/s", openssl_speed[size] / 1e6, "MB/s")
        for impl, goal in (("compiled", ">= 0.95x"), ("hashlib", "")):
            rate = _MEASURED.get(f"{name}: {impl}")
            if rate is not None:
                figures.add(f"{name}: {impl} / openssl", rate / openssl_speed[size], "x", goal=goal)
    for size in SMALL_CHUNKS:
        name = f"md5 per body {_label(size)}"
        base = _MEASURED.get(f"{name}: hashlib one-shot")
        for impl, goal in (
            ("compiled stream", ">= 2x"),
            ("compiled md5_hex", ""),
            ("twin stream", ""),
            ("EVP floor in C", ""),
        ):
            cost = _MEASURED.get(f"{name}: {impl}")
            if base is not None and cost is not None:
                figures.add(f"{name}: speed-up {impl} vs hashlib", base / cost, "x", goal=goal)
