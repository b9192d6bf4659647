"""md5stream: the capped streaming MD5 behind HTTP_GET/SSL_GET digests.

Every test runs on the compiled module and on its pure-Python twin
(``twin_flavour``); the differential test drives both with the same operations.
"""

from __future__ import annotations

import array
import doctest
import hashlib
import itertools
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import REPO, load_twin

# RFC 1321 Appendix A.5, "test suite".
RFC1321_SUITE = [
    (b"", "d41d8cd98f00b204e9800998ecf8427e"),
    (b"a", "0cc175b9c0f1b6a831c399e269772661"),
    (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
    (b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
    (b"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
    (
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        "d174ab98d277d9f5a5611c2c9f419d9f",
    ),
    (
        b"1234567890" * 8,
        "57edf4a22be3c955ac49da2e2107b67a",
    ),
]


@pytest.fixture
def md5mod(twin_flavour: str) -> ModuleType:
    return load_twin("md5stream", twin_flavour)


def _hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# -- known answers ------------------------------------------------------------------


@pytest.mark.parametrize(("message", "expected"), RFC1321_SUITE)
def test_rfc1321_suite_whole(md5mod: ModuleType, message: bytes, expected: str) -> None:
    s = md5mod.MD5Stream()
    assert s.update(message) is True
    assert s.hexdigest() == expected
    assert s.digest() == bytes.fromhex(expected)
    assert s.size == len(message)
    assert md5mod.md5_hex(message) == expected


@pytest.mark.parametrize(("message", "expected"), RFC1321_SUITE)
def test_rfc1321_suite_byte_by_byte(md5mod: ModuleType, message: bytes, expected: str) -> None:
    s = md5mod.MD5Stream()
    for i in range(len(message)):
        assert s.update(message[i : i + 1])
    assert s.hexdigest() == expected


def test_empty_input(md5mod: ModuleType) -> None:
    s = md5mod.MD5Stream()
    assert s.hexdigest() == "d41d8cd98f00b204e9800998ecf8427e"
    s.reset()
    assert s.update(b"") is True
    assert s.update(bytearray()) is True
    assert s.size == 0 and not s.too_large
    assert s.hexdigest() == "d41d8cd98f00b204e9800998ecf8427e"
    assert md5mod.md5_hex(b"") == "d41d8cd98f00b204e9800998ecf8427e"


def test_hexdigest_is_lower_case_32_hex(md5mod: ModuleType) -> None:
    s = md5mod.MD5Stream()
    s.update(b"\xff" * 1000)
    h = s.hexdigest()
    assert len(h) == 32 and h == h.lower() and type(h) is str
    assert h == _hex(b"\xff" * 1000)
    assert type(s.digest()) is bytes and len(s.digest()) == 16


# -- random data, random chunking ---------------------------------------------------


# twin_flavour only names the module under test; nothing in it needs resetting.
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=5000), cuts=st.lists(st.integers(0, 5000), max_size=20))
def test_random_chunking_matches_hashlib(twin_flavour: str, data: bytes, cuts: list[int]) -> None:
    mod = load_twin("md5stream", twin_flavour)
    s = mod.MD5Stream()
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    for a, b in itertools.pairwise(points):
        assert s.update(data[a:b])
    assert s.size == len(data)
    assert s.hexdigest() == _hex(data)
    assert mod.md5_hex(data) == _hex(data)


def test_block_boundaries(md5mod: ModuleType) -> None:
    # MD5 works on 64-byte blocks and pads with 9+ bytes (RFC 1321 §3.1-3.2): the
    # lengths around 55/56/64 and multiples are where a buffering bug would show.
    for n in [*range(50, 70), 119, 120, 127, 128, 129, 1023, 1024, 1025, 65535, 65536]:
        data = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
        s = md5mod.MD5Stream()
        s.update(data[: n // 3])
        s.update(data[n // 3 :])
        assert s.hexdigest() == _hex(data), n


# -- bytes-like input ---------------------------------------------------------------


class _BytesSub(bytes):
    pass


def _bytes_likes(raw: bytes) -> list[Any]:
    ints = array.array("I")
    ints.frombytes(raw[: len(raw) // 4 * 4])
    return [
        raw,
        bytearray(raw),
        memoryview(raw),
        memoryview(bytearray(raw)),
        memoryview(b"xx" + raw + b"yy")[2:-2],  # contiguous slice: no copy needed
        _BytesSub(raw),
        array.array("B", raw),
        ints,  # counted in bytes, not items
        memoryview(raw[:32]).cast("B", shape=[4, 8]),  # C-contiguous 2-D
    ]


def test_every_bytes_like(md5mod: ModuleType) -> None:
    raw = bytes(range(256)) * 3
    for obj in _bytes_likes(raw):
        expect = bytes(memoryview(obj))
        s = md5mod.MD5Stream()
        assert s.update(obj) is True, type(obj)
        assert s.size == len(expect), type(obj)
        assert s.hexdigest() == _hex(expect), type(obj)
        assert md5mod.md5_hex(obj) == _hex(expect), type(obj)


@pytest.mark.parametrize("bad", ["text", 42, None, [1, 2], object()])
def test_non_buffers_are_type_errors(md5mod: ModuleType, bad: Any) -> None:
    s = md5mod.MD5Stream()
    with pytest.raises(TypeError):
        s.update(bad)
    with pytest.raises(TypeError):
        md5mod.md5_hex(bad)
    assert s.size == 0 and s.hexdigest() == _hex(b"")


def test_data_arguments_are_positional_only(md5mod: ModuleType) -> None:
    s = md5mod.MD5Stream()
    with pytest.raises(TypeError):
        s.update(chunk=b"x")
    with pytest.raises(TypeError):
        md5mod.md5_hex(data=b"x")


def test_non_contiguous_buffer_is_refused(md5mod: ModuleType) -> None:
    s = md5mod.MD5Stream()
    with pytest.raises(BufferError):
        s.update(memoryview(b"abcdef")[::2])
    assert s.update(b"ok") and s.hexdigest() == _hex(b"ok")


def test_update_does_not_copy_the_chunk(md5mod: ModuleType) -> None:
    # A copy of a 4 MiB chunk would show as a 4 MiB peak in the Python allocator.
    big = bytearray(os.urandom(4 << 20))
    s = md5mod.MD5Stream()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        for obj in (big, memoryview(big)):
            s.reset()
            assert s.update(obj)
            s.hexdigest()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024, peak


def test_bytearray_may_change_after_update(md5mod: ModuleType) -> None:
    # The buffer is only borrowed during update(); later changes do not matter.
    buf = bytearray(b"first")
    s = md5mod.MD5Stream()
    s.update(buf)
    buf[:] = b"second, longer"
    assert s.hexdigest() == _hex(b"first")


def test_buffer_exports_are_released_on_every_path(md5mod: ModuleType) -> None:
    # A bytearray cannot be resized while a buffer export is held, so a leaked
    # export (a missing PyBuffer_Release) shows up as BufferError on append().
    buf = bytearray(b"chunk")
    s = md5mod.MD5Stream(8)
    assert s.update(buf)  # hashed
    buf.append(0x21)
    assert s.update(buf) is False  # too large
    buf.append(0x21)
    assert s.update(buf) is False  # ignored after too large
    buf.append(0x21)
    s.reset()
    s.hexdigest()
    with pytest.raises(ValueError):
        s.update(buf)  # finalised
    buf.append(0x21)
    md5mod.md5_hex(buf)
    buf.append(0x21)


def test_no_leak_across_many_streams(md5mod: ModuleType) -> None:
    # Each compiled stream owns an EVP_MD_CTX; a missing free in __dealloc__ would
    # leak ~200 bytes of OpenSSL memory per stream, ~40 MB here.
    body = b"x" * 100
    for _ in range(20_000):  # warm the allocator first
        md5mod.MD5Stream().update(body)
    before = _rss_bytes()
    for _ in range(200_000):
        s = md5mod.MD5Stream(50)
        s.update(body)  # too large
        s.reset()
        s.update(body[:10])
        s.hexdigest()
        md5mod.md5_hex(body)
    grown = _rss_bytes() - before
    assert grown < 8 << 20, grown


@pytest.mark.compiled
def test_openssl_without_md5_falls_back_to_the_twin(tmp_path: Path) -> None:
    # Only OpenSSL's "base" provider: no MD5 at all.  The compiled module must refuse
    # to import with a clear reason and the chooser must fall back to the twin.
    load_twin("md5stream", "c")  # the scenario needs the compiled module built
    conf = tmp_path / "no-md5.cnf"
    conf.write_text(
        "openssl_conf = openssl_init\n[openssl_init]\nproviders = provider_sect\n"
        "[provider_sect]\nbase = base_sect\n[base_sect]\nactivate = 1\n"
    )
    script = (
        "import importlib\n"
        "try:\n"
        "    importlib.import_module('hafast._core.md5stream_c')\n"
        "except ImportError as exc:\n"
        "    print('import-error:', exc)\n"
        "from hafast._core import md5stream\n"
        "from hafast._core._select import compiled_status\n"
        "print('module:', md5stream.MD5Stream.__module__)\n"
        "print('digest:', md5stream.md5_hex(b'abc'))\n"
        "print('status:', compiled_status()['md5stream'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "HAFAST_NO_EXTENSIONS"}
    env["OPENSSL_CONF"] = str(conf)
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True,
        timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "import-error: md5stream_c: OpenSSL EVP_MD_fetch(MD5) failed" in out, out
    assert "module: hafast._core.md5stream_py" in out, out
    assert "digest: 900150983cd24fb0d6963f7d28e17f72" in out, out
    assert "status: twin (md5stream_c: OpenSSL EVP_MD_fetch(MD5) failed" in out, out


# -- the cap ------------------------------------------------------------------------


def test_default_cap(md5mod: ModuleType) -> None:
    assert md5mod.DEFAULT_CAP == 16 * 1024 * 1024
    assert md5mod.MD5Stream().cap == md5mod.DEFAULT_CAP


@pytest.mark.parametrize("cap", [0, 1, 63, 64, 65, 1000])
def test_cap_exact_boundary(md5mod: ModuleType, cap: int) -> None:
    body = os.urandom(cap + 1)
    s = md5mod.MD5Stream(cap)
    assert s.update(body[:cap]) is True  # exactly cap bytes: accepted
    assert s.size == cap and not s.too_large
    assert s.hexdigest() == _hex(body[:cap])

    s = md5mod.MD5Stream(cap)
    assert s.update(body[:cap]) is True
    assert s.update(body[cap:]) is False  # byte cap+1: too large
    assert s.too_large and s.size == cap

    s = md5mod.MD5Stream(cap)
    assert s.update(body) is False  # cap+1 in one chunk
    assert s.too_large and s.size == cap


def test_too_large_ignores_further_updates_and_has_no_digest(md5mod: ModuleType) -> None:
    s = md5mod.MD5Stream(10)
    assert s.update(b"12345")
    assert s.update(b"123456") is False  # 11 > 10: not hashed at all
    assert s.size == 10 and s.too_large
    assert s.update(b"") is False
    assert s.update(b"x") is False
    assert s.size == 10
    with pytest.raises(ValueError, match="cap of 10 bytes"):
        s.digest()
    with pytest.raises(ValueError, match="cap of 10 bytes"):
        s.hexdigest()
    assert "too large" in repr(s)


def test_bad_caps_are_refused(md5mod: ModuleType) -> None:
    with pytest.raises(ValueError, match="cap"):
        md5mod.MD5Stream(-1)
    for bad in (2.5, "10", None):
        with pytest.raises(TypeError):
            md5mod.MD5Stream(bad)
    with pytest.raises(OverflowError):
        md5mod.MD5Stream(1 << 64)
    assert md5mod.MD5Stream(cap=7).cap == 7


@pytest.mark.compiled
def test_uninitialised_compiled_stream_raises_clearly() -> None:
    # __new__ without __init__ (e.g. a careless subclass) must not hash garbage.
    mod = load_twin("md5stream", "c")
    s = mod.MD5Stream.__new__(mod.MD5Stream)
    with pytest.raises(RuntimeError, match="not initialised"):
        s.update(b"x")
    with pytest.raises(RuntimeError, match="not initialised"):
        s.hexdigest()
    s.reset()
    assert s.update(b"abc") and s.hexdigest() == "900150983cd24fb0d6963f7d28e17f72"


def test_memory_does_not_grow_past_the_cap(md5mod: ModuleType) -> None:
    # An endless body: 64 MiB offered to a 4 MiB cap, chunk by chunk.
    chunk = os.urandom(1 << 20)
    s = md5mod.MD5Stream(4 << 20)
    rss_before = _rss_bytes()
    tracemalloc.start()
    try:
        results = [s.update(chunk) for _ in range(64)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    grown = _rss_bytes() - rss_before
    assert results == [True] * 4 + [False] * 60
    assert s.size == 4 << 20 and s.too_large
    assert peak < 64 * 1024, peak
    assert grown < 2 << 20, grown  # nothing of the 64 MiB was kept


# -- finalising, reset and reuse ------------------------------------------------------


def test_digest_twice_and_update_after_final(md5mod: ModuleType) -> None:
    s = md5mod.MD5Stream()
    s.update(b"body")
    first = s.hexdigest()
    assert s.hexdigest() == first == _hex(b"body")
    assert s.digest().hex() == first
    assert s.size == 4
    with pytest.raises(ValueError, match="finalised"):
        s.update(b"more")
    assert s.hexdigest() == first  # the failed update changed nothing
    assert "final" in repr(s)


def test_reset_reuses_the_stream(md5mod: ModuleType) -> None:
    s = md5mod.MD5Stream(100)
    for i in range(500):
        body = str(i).encode() * (i % 7)
        s.reset()
        assert s.size == 0 and not s.too_large
        s.update(body)
        assert s.hexdigest() == _hex(body)
    s.reset()
    assert s.update(b"x" * 101) is False
    s.reset()  # clears too_large, keeps the cap
    assert not s.too_large and s.cap == 100
    assert s.update(b"x" * 100) and s.hexdigest() == _hex(b"x" * 100)


def test_reset_mid_body_discards_it(md5mod: ModuleType) -> None:
    s = md5mod.MD5Stream()
    s.update(b"half of a body")
    s.reset()
    s.update(b"abc")
    assert s.hexdigest() == "900150983cd24fb0d6963f7d28e17f72"


def test_docstring_examples(md5mod: ModuleType) -> None:
    # The compiled module's docstrings are not collected by --doctest-modules, so
    # run every example of both flavours here.
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    objects: list[Any] = [md5mod, md5mod.MD5Stream, md5mod.md5_hex]
    objects += [getattr(md5mod.MD5Stream, n) for n in ("update", "digest", "hexdigest")]
    examples = 0
    for obj in objects:
        test = parser.get_doctest(obj.__doc__ or "", dict(vars(md5mod)), repr(obj), None, 0)
        examples += len(test.examples)
        runner.run(test)
    assert examples >= 10
    assert runner.summarize(verbose=False).failed == 0


def test_chooser_reexports_one_flavour() -> None:
    from hafast._core import md5stream

    assert md5stream.MD5Stream.__module__ in (
        "hafast._core.md5stream_c",
        "hafast._core.md5stream_py",
    )
    assert md5stream.md5_hex(b"abc") == "900150983cd24fb0d6963f7d28e17f72"
    assert md5stream._impl.MD5Stream is md5stream.MD5Stream


# -- compiled vs twin ---------------------------------------------------------------

_chunks = st.one_of(
    st.binary(max_size=200),
    st.binary(max_size=200).map(bytearray),
    st.binary(max_size=200).map(lambda b: memoryview(b)),
    st.text(max_size=3),  # TypeError on both
)
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("update"), _chunks),
        st.tuples(st.just("digest"), st.none()),
        st.tuples(st.just("hexdigest"), st.none()),
        st.tuples(st.just("reset"), st.none()),
        st.tuples(st.just("state"), st.none()),
    ),
    max_size=30,
)


def _apply(stream: Any, op: str, arg: Any) -> tuple[str, Any]:
    try:
        if op == "update":
            return ("ok", stream.update(arg))
        if op == "state":
            return ("ok", (stream.size, stream.too_large, stream.cap))
        return ("ok", getattr(stream, op)())
    except Exception as exc:  # the exception type is part of the behaviour compared
        return ("raised", type(exc).__name__)


@pytest.mark.compiled
@settings(max_examples=300, deadline=None)
@given(cap=st.integers(0, 600), ops=_ops)
def test_compiled_and_twin_agree(cap: int, ops: list[tuple[str, Any]]) -> None:
    c_mod = load_twin("md5stream", "c")
    py_mod = load_twin("md5stream", "py")
    c_stream, py_stream = c_mod.MD5Stream(cap), py_mod.MD5Stream(cap)
    for op, arg in ops:
        assert _apply(c_stream, op, arg) == _apply(py_stream, op, arg), (op, arg)
    assert repr(c_stream) == repr(py_stream)
