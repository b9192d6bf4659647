"""The HTTP_GET reply reader: keepalived's quirks (checked against Debian's genhash
2.2.7), split invariance and hostile input.  Runs on the compiled MD5 core and on
its twin (the suite is also run with HAFAST_NO_EXTENSIONS=1)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hafast.check.http_parse import (
    DEFAULT_STATUS,
    MAX_HEADER,
    ResponseParser,
    build_request,
    check_reply,
    parse_content_length,
    parse_status,
    status_ok,
)
from hafast.lib.pcre2 import RegexStream, compile_regex


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def run(reply: bytes, chunks: list[int] | None = None, **kw: object) -> ResponseParser:
    p = ResponseParser(**kw)  # type: ignore[arg-type]
    if chunks is None:
        p.feed(reply)
        return p
    at = 0
    for size in chunks:
        if not p.feed(reply[at : at + size]):
            return p
        at += size
    p.feed(reply[at:])
    return p


# -- the request ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "vhost", "address", "want"),
    [
        ("1.0", None, "10.0.0.1",
         b"GET /p HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 10.0.0.1:80\r\n\r\n"),
        ("1.0C", None, "10.0.0.1",
         b"GET /p HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\n"
         b"Host: 10.0.0.1:80\r\n\r\n"),
        ("1.0c", "www.example", "10.0.0.1",
         b"GET /p HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\n"
         b"Host: www.example\r\n\r\n"),
        # keepalived 2.2.7 sends Connection: close with 1.1 too (captured from genhash -P 1.1)
        ("1.1", "foo.example", "10.0.0.1",
         b"GET /p HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\n"
         b"Host: foo.example\r\n\r\n"),
        ("1.0", None, "fd00::1",
         b"GET /p HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: [fd00::1]:80\r\n\r\n"),
    ],
)
def test_request_is_keepalived_s(
    protocol: str, vhost: str | None, address: str, want: bytes
) -> None:
    assert build_request("/p", address, 80, protocol, vhost) == want


def test_unknown_protocol_is_refused() -> None:
    with pytest.raises(KeyError):
        build_request("/", "10.0.0.1", 80, "2")


# -- status line ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"HTTP/1.0 200 OK", 200),
        (b"HTTP/1.1 503 Service Unavailable", 503),
        (b"HTTP/1.0 200 ", 200),
        (b"HTTP/1.0 200", 0),  # no SP after the code: keepalived says 0
        (b"HTTP/1.0  200 OK", 0),  # two spaces
        (b"HTTP/1.0 2000 OK", 0),
        (b"HTTP/1.0 20x OK", 0),
        (b"garbage 204 x", 204),  # the version is not looked at
        (b"HTTP/1.0\r\n200 OK", 0),  # CR before any space
        (b"", 0),
    ],
)
def test_status_code(line: bytes, code: int) -> None:
    assert parse_status(line + b"\r\n\r\n") == code


def test_status_ranges() -> None:
    assert status_ok(200, DEFAULT_STATUS) and status_ok(299, DEFAULT_STATUS)
    assert not status_ok(300, DEFAULT_STATUS)
    assert status_ok(404, ((200, 200), (400, 404)))
    assert not status_ok(0, ((0, 599),))
    assert not status_ok(600, ((100, 999),))


# -- Content-Length, as genhash 2.2.7 reads it (each row checked against it) ------------


@pytest.mark.parametrize(
    ("header", "length"),
    [
        (b"Content-Length: 3\r\n", 3),
        (b"Content-Length:3\r\n", 3),
        (b"Content-Length:   3\r\n", 3),
        (b"Content-Length:\t3\r\n", 3),
        (b"Content-Length: +3\r\n", 3),
        (b"Content-Length: 3\n", 3),
        (b"content-length: 3\r\n", None),  # case-sensitive
        (b"X-Content-Length: 2\r\n", 2),  # a substring search
        (b"Content-Length: 3 \r\n", None),  # anything but CR/LF after the digits
        (b"Content-Length: 3x\r\n", None),
        (b"Content-Length: 0x3\r\n", None),
        (b"Content-Length: abc\r\n", None),
        (b"Content-Length: \r\n\r\n", None),  # strtoul skips CRLFs, finds no digit
        (b"Content-Length:\r\n\r\n", 0),  # ... and then end is the CR: length 0
        (b"Content-Length: -3\r\n", (1 << 64) - 3),
        (b"Content-Length: -1\r\n", None),  # SIZE_MAX is "absent"
        (b"Content-Length: 99999999999999999999999\r\n", None),
        (b"Content-Length: 3\r\nContent-Length: 1\r\n", 3),  # the first one
        (b"X: \0\r\nContent-Length: 3\r\n", None),  # strstr stops at a NUL
    ],
)
def test_content_length(header: bytes, length: int | None) -> None:
    assert parse_content_length(b"HTTP/1.0 200 OK\r\n" + header + b"\r\n") == length


@pytest.mark.parametrize(
    ("header", "body", "hashed"),
    [
        (b"Content-Length: 3\r\n", b"hello", b"hel"),
        (b"content-length: 3\r\n", b"hello", b"hello"),
        (b"Content-Length: 7\r\n", b"hello", b"hello"),
        (b"Content-Length: 0\r\n", b"hello", b""),
        (b"", b"", b""),
        (b"Content-Length: 1\r\n", b"hel\0lo", b"h"),
    ],
)
def test_digest_covers_what_genhash_hashes(header: bytes, body: bytes, hashed: bytes) -> None:
    p = run(b"HTTP/1.0 200 OK\r\n" + header + b"\r\n" + body)
    assert p.complete and p.body_size == len(body)
    assert p.hexdigest() == md5(hashed)


def test_chunked_framing_is_hashed() -> None:
    body = b"5\r\nhello\r\n0\r\n\r\n"
    p = run(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    assert p.hexdigest() == md5(body)


# -- header limits ------------------------------------------------------------------------


def test_header_must_end_within_4095_bytes() -> None:
    pad = MAX_HEADER - len(b"HTTP/1.0 200 OK\r\nX: \r\n\r\n")
    fits = b"HTTP/1.0 200 OK\r\nX: " + b"a" * pad + b"\r\n\r\nbody"
    assert run(fits).complete
    too_big = b"HTTP/1.0 200 OK\r\nX: " + b"a" * (pad + 1) + b"\r\n\r\nbody"
    p = run(too_big)
    assert not p.complete and p.error == "header-too-large"
    assert check_reply(p, DEFAULT_STATUS, None)[0] == "header-too-large"


def test_no_header_is_no_data() -> None:
    p = run(b"HTTP/1.0 200 OK\r\nfoo")
    assert not p.complete and not p.error
    assert check_reply(p, DEFAULT_STATUS, None)[0] == "no-data"


def test_body_cap_stops_an_endless_body() -> None:
    p = ResponseParser(body_cap=1000)
    assert p.feed(b"HTTP/1.0 200 OK\r\n\r\n")
    fed = 0
    while p.feed(b"x" * 100):
        fed += 100
        assert fed <= 1000
    assert p.error == "body-too-large" and p.body_size > 1000
    assert not p.feed(b"more")


def test_verdicts() -> None:
    ok = run(b"HTTP/1.0 200 OK\r\n\r\nhi")
    assert check_reply(ok, DEFAULT_STATUS, md5(b"hi")) == ("", "")
    assert check_reply(ok, DEFAULT_STATUS, md5(b"hi").upper()) == ("", "")
    assert check_reply(ok, DEFAULT_STATUS, md5(b"ho"))[0] == "digest"
    assert check_reply(ok, ((300, 399),), None)[0] == "status"
    # status is judged before the digest (http_handle_response's order)
    bad = run(b"HTTP/1.0 500 Oops\r\n\r\nhi")
    assert check_reply(bad, DEFAULT_STATUS, md5(b"nope"))[0] == "status"


def test_callbacks_see_header_and_hashed_body() -> None:
    seen: list[bytes] = []
    p = ResponseParser()
    p.on_header = lambda h: seen.append(b"H" + h)
    p.on_body = lambda b: seen.append(b"B" + b)
    for piece in (b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n", b"\r\nab", b"cdef"):
        p.feed(piece)
    assert seen == [b"HHTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\n", b"Bab", b"Bcd"]


def test_digest_false_has_no_digest() -> None:
    p = run(b"HTTP/1.0 200 OK\r\n\r\nhi", digest=False)
    assert check_reply(p, DEFAULT_STATUS, None) == ("", "")
    with pytest.raises(ValueError):
        p.hexdigest()


# -- properties ---------------------------------------------------------------------------

_headers = st.lists(
    st.sampled_from(
        [b"Content-Length: 3\r\n", b"content-length: 9\r\n", b"Content-Length: 100\r\n",
         b"Server: x\r\n", b"Transfer-Encoding: chunked\r\n", b"X-Content-Length: 1\r\n"]
    ),
    max_size=3,
)
_replies = st.builds(
    lambda status, headers, body: status + b"".join(headers) + b"\r\n" + body,
    st.sampled_from([b"HTTP/1.0 200 OK\r\n", b"HTTP/1.1 404 Nope\r\n", b"junk\r\n"]),
    _headers,
    st.binary(max_size=300),
)


def _outcome(p: ResponseParser) -> tuple[object, ...]:
    digest = p.hexdigest() if p.complete and not p.error else None
    return (p.complete, p.error, p.header, p.status, p.content_length, p.body_size, digest)


@settings(max_examples=300, deadline=None)
@given(reply=st.one_of(_replies, st.binary(max_size=600)), data=st.data())
def test_any_split_gives_the_same_result(reply: bytes, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(reply)), max_size=12)))
    sizes = [b - a for a, b in zip([0, *cuts], cuts, strict=False)]
    assert _outcome(run(reply, sizes)) == _outcome(run(reply))


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_split_invariant_near_the_header_cap(data: st.DataObject) -> None:
    pad = data.draw(st.integers(MAX_HEADER - 40, MAX_HEADER + 10))
    reply = b"HTTP/1.0 200 OK\r\nX: " + b"a" * pad + b"\r\n\r\nbody"
    cuts = sorted(data.draw(st.lists(st.integers(0, len(reply)), max_size=8)))
    sizes = [b - a for a, b in zip([0, *cuts], cuts, strict=False)]
    assert _outcome(run(reply, sizes)) == _outcome(run(reply))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=20), st.integers(0, 2000))
def test_garbage_never_raises(chunks: list[bytes], cap: int) -> None:
    p = ResponseParser(body_cap=cap, header_cap=256)
    for c in chunks:
        if not p.feed(c):
            break
    reason, _ = check_reply(p, DEFAULT_STATUS, "0" * 32)
    assert reason in ("", "no-data", "status", "digest", "header-too-large", "body-too-large")
    assert len(p.header or b"") <= 256


@given(st.binary(max_size=300))
def test_header_helpers_never_raise(raw: bytes) -> None:
    code = parse_status(raw)
    assert 0 <= code <= 999
    length = parse_content_length(raw)
    assert length is None or 0 <= length < 1 << 64


# -- regex (PCRE2, matched as the reply streams in: hafast.lib.pcre2) --------------------


def _rx(pattern: str, *options: str, lo: int = 0, hi: int | None = None) -> RegexStream:
    return RegexStream(compile_regex(pattern, options), lo, hi)


def test_regex_match_no_match_and_offsets() -> None:
    reply = b"HTTP/1.0 200 OK\r\n\r\n0123 status: READY"
    at = reply.index(b"READY")  # offsets count from the status line, as in keepalived
    for rx, no_match, want in [
        (_rx("ready", "caseless"), False, ""),
        (_rx("ready", "caseless"), True, "regex"),
        (_rx("ready"), False, "regex"),
        (_rx(r"status: \KREADY"), False, ""),  # PCRE-only: \K
        (_rx("ready", "caseless", lo=at + 1), False, "regex"),
        (_rx("ready", "caseless", lo=at), False, ""),
        (_rx("ready", "caseless", hi=at - 1), False, "regex"),
        (_rx("ready", "caseless", hi=at), False, ""),
        (_rx("^HTTP/1"), False, ""),
    ]:
        p = run(reply, regex=rx)
        assert check_reply(p, DEFAULT_STATUS, None, regex_no_match=no_match)[0] == want, rx


def test_regex_header_is_matched_only_with_body_in_the_same_read() -> None:
    # keepalived empties a buffer that ends with the header: "^HTTP" then fails
    reply = b"HTTP/1.0 200 OK\r\n\r\nbody"
    split = len(reply) - 4
    assert run(reply, [split], regex=_rx("^HTTP")).regex.matched is False  # type: ignore[union-attr]
    assert run(reply, [split + 1], regex=_rx("^HTTP")).regex.matched is True  # type: ignore[union-attr]
    assert run(reply, [split], regex=_rx("^body")).regex.matched is True  # type: ignore[union-attr]


def test_regex_across_reads_and_past_the_cap() -> None:
    p = run(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 100 + b"NEEDLE", [30, 50, 7, 21, 3],
            regex=_rx("NEEDLE"))
    assert check_reply(p, DEFAULT_STATUS, None) == ("", "")
    big = b"HTTP/1.0 200 OK\r\n\r\n" + b"y" * 300_000 + b"NEEDLE"
    assert run(big, [65536] * 5, regex=_rx("NEEDLE")).regex.matched  # type: ignore[union-attr]
