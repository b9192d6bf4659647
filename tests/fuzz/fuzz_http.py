"""Fuzz the HTTP_GET reply parser (hafast/check/http_parse.py) and the MD5 stream.

Every input is a server's reply, fed to ``ResponseParser`` in one piece and again in
chunks (as TCP may deliver it); both must agree with each other and with a
reference written here from the module's documented rules (header ends at the first
CRLFCRLF within 4,095 bytes, the body to EOF is capped, only ``Content-Length`` bytes
are hashed, the digest is MD5 of exactly those bytes). The same chunks go through
``md5stream_c.MD5Stream`` and ``md5stream_py.MD5Stream``: every return value,
``size``, ``too_large`` and the digest (or the ValueError instead of one) must match,
and match hashlib.

Input layout::

    byte 0   chunk size pattern: chunks of (b0 % 32) + 1 and (b0 // 32) * 61 + 1 bytes
    byte 1   low 3 bits: body cap (CAPS); 0x08 keep 64 body bytes; 0x10 finalise the
             MD5 streams after the first chunk (a later update must raise);
             0x20 reset them after the first chunk
    rest     the reply

    python tests/fuzz/fuzz_http.py -atheris_runs=100000 build/fuzz/http tests/fuzz/corpus/http
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fuzz import _common

with _common.instrumented(_common.running_as_fuzzer(__name__)):
    from hafast._core import md5stream_c, md5stream_py
    from hafast.check.http_parse import (
        DEFAULT_CAP,
        DEFAULT_STATUS,
        MAX_HEADER,
        ResponseParser,
        check_reply,
    )

CAPS = (DEFAULT_CAP, 0, 1, 7, 64, 1000, 4096, 1 << 20)
KEEP, FINALISE, RESET = 0x08, 0x10, 0x20


def _chunks(reply: bytes, pattern: int) -> Iterator[bytes]:
    sizes = ((pattern % 32) + 1, (pattern // 32) * 61 + 1)
    at, i = 0, 0
    while at < len(reply):
        size = sizes[i % 2]
        yield reply[at : at + size]
        at, i = at + size, i + 1


def _outcome(p: ResponseParser) -> tuple[Any, ...]:
    head = (p.error, p.complete, p.header, p.status, p.content_length)
    if p.error:
        return head  # how much was hashed before the cap was hit depends on the chunks
    return (*head, p.hashed, p.kept, p.hexdigest())


def _expected(reply: bytes, cap: int, keep: int) -> tuple[Any, ...] | None:
    """The documented reading of a whole reply, without the parser's code; None when
    the reply has no header yet (nothing to compare but ``complete``)."""
    at = reply.find(b"\r\n\r\n", 0, MAX_HEADER)
    if at < 0:
        return None
    header, body = reply[: at + 4], reply[at + 4 :]
    if len(body) > cap:
        return ("body-too-large", header)
    return ("", header, body[:keep])


def _md5_twins(reply: bytes, pattern: int, cap: int, flags: int) -> None:
    s_c, s_py = md5stream_c.MD5Stream(cap), md5stream_py.MD5Stream(cap)
    fed = bytearray()
    finalised = too_large = False
    for n, chunk in enumerate(_chunks(reply, pattern)):
        r_c = _call(s_c.update, chunk)
        r_py = _call(s_py.update, chunk)
        assert r_c == r_py, f"the MD5Stream twins disagree on update: c {r_c!r} py {r_py!r}"
        if finalised:
            assert r_c == "ValueError", "update after digest() must raise"
        elif r_c is True:
            fed += chunk
        else:
            too_large = True
        state_c, state_py = (s_c.size, s_c.too_large, s_c.cap), (s_py.size, s_py.too_large,
                                                                 s_py.cap)
        assert state_c == state_py, f"the MD5Stream twins disagree: c {state_c} py {state_py}"
        if n == 0 and flags & FINALISE:
            d_c, d_py = _call(s_c.hexdigest), _call(s_py.hexdigest)
            assert d_c == d_py, f"the MD5Stream twins disagree on digest(): c {d_c} py {d_py}"
            finalised = d_c != "ValueError"  # a too-large stream has no digest to finalise
        if n == 0 and flags & RESET:
            s_c.reset()
            s_py.reset()
            fed.clear()
            finalised = too_large = False
    assert s_c.too_large == too_large
    assert s_c.size == (cap if too_large else len(fed))
    d_c, d_py = _call(s_c.hexdigest), _call(s_py.hexdigest)
    assert d_c == d_py, f"the MD5Stream twins disagree on hexdigest: c {d_c!r} py {d_py!r}"
    if not too_large and not finalised:
        assert d_c == hashlib.md5(fed, usedforsecurity=False).hexdigest()
    h_c, h_py = _call(md5stream_c.md5_hex, reply), _call(md5stream_py.md5_hex, reply)
    assert h_c == h_py, f"the md5_hex twins disagree: c {h_c} py {h_py}"


def _call(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except ValueError:
        return "ValueError"


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    pattern, flags, reply = data[0], data[1], data[2:]
    cap = CAPS[flags & 7]
    keep = 64 if flags & KEEP else 0

    whole = ResponseParser(body_cap=cap, keep=keep)
    whole.feed(reply)
    pieces = ResponseParser(body_cap=cap, keep=keep)
    for chunk in _chunks(reply, pattern):
        if not pieces.feed(chunk):
            break  # a caller stops reading once the parser says the reply failed
    got = _outcome(whole)
    assert got == _outcome(pieces), f"split changes the reading:\n {got}\n {_outcome(pieces)}"

    want = _expected(reply, cap, keep)
    if want is None:
        assert not whole.complete
        assert whole.error in ("", "header-too-large")
        assert (whole.error == "header-too-large") == (len(reply) >= MAX_HEADER)
    elif want[0]:
        assert (whole.error, whole.header) == want, (whole.error, whole.header, want)
    else:
        assert (whole.error, whole.header, whole.kept) == want
        body = reply[len(want[1]) :]
        hashed = body if whole.content_length is None else body[: whole.content_length]
        assert whole.hashed == len(hashed)
        assert whole.hexdigest() == hashlib.md5(hashed, usedforsecurity=False).hexdigest()
        assert 0 <= whole.status <= 999  # three digits; status_ok() judges the range
        assert whole.content_length is None or 0 <= whole.content_length < 1 << 64
    reason, _detail = check_reply(whole, DEFAULT_STATUS, None)
    assert reason in ("", "no-data", "status", "body-too-large", "header-too-large"), reason

    _md5_twins(reply, pattern, cap, flags)


if __name__ == "__main__":
    _common.fuzz(one_input)
