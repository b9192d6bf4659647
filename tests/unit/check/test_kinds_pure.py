"""The pure parts of the checker kinds: DNS builder/parser, UDP reply patterns, SMTP
reply framing, MISC exit verdicts, FILE values and weights."""

from __future__ import annotations

import pwd
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hafast.check import dns, file, misc, smtp, udp
from hafast.check.api import REGISTRY

# --------------------------------------------------------------------------- registry


def test_every_kind_of_this_engine_is_registered() -> None:
    import hafast.check.engine  # noqa: F401  (imports every kind)

    for keyword in ("TCP_CHECK", "PING_CHECK", "MISC_CHECK", "FILE_CHECK", "UDP_CHECK",
                    "DNS_CHECK", "SMTP_CHECK"):
        assert REGISTRY[keyword].keyword == keyword


# --------------------------------------------------------------------------- DNS


def test_dns_query_layout() -> None:
    q = dns.build_query(0xBEEF, "www.example.org.", "aaaa")
    qid, flags, qd, an, ns, ar = struct.unpack_from("!6H", q)
    assert (qid, flags, qd, an, ns, ar) == (0xBEEF, 0x0100, 1, 0, 0, 0)
    assert q[12:] == b"\x03www\x07example\x03org\x00" + struct.pack("!HH", 28, 1)


def test_dns_root_name_is_one_zero_octet() -> None:
    assert dns.build_query(1, ".", "SOA")[12:] == b"\x00\x00\x06\x00\x01"


def test_dns_label_too_long() -> None:
    with pytest.raises(ValueError):
        dns.encode_name("a" * 64 + ".com")


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (bytes.fromhex("1234 8180 0001 0001 0000 0000"), (True, 0)),
        (bytes.fromhex("1234 8183 0001 0000 0000 0000"), (False, 3)),  # NXDOMAIN fails
        (bytes.fromhex("1234 8182 0001 0000 0000 0000"), (False, 2)),  # SERVFAIL
        (bytes.fromhex("1235 8180 0001 0001 0000 0000"), None),  # other id: keep waiting
        (bytes.fromhex("1234 0100 0001 0000 0000 0000"), None),  # a query, not a response
        (bytes.fromhex("1234 8180 0001"), None),  # shorter than the header
    ],
)
def test_dns_parse_reply(reply: bytes, expected: tuple[bool, int] | None) -> None:
    assert dns.parse_reply(reply, 0x1234) == expected


@given(st.binary(max_size=64), st.integers(0, 0xFFFF))
def test_dns_parse_reply_never_raises(data: bytes, qid: int) -> None:
    dns.parse_reply(data, qid)


# --------------------------------------------------------------------------- UDP


def test_udp_pattern_wildcards() -> None:
    data, mask = udp.pattern("AbXX3x")
    assert data == bytes([0xAB, 0x00, 0x30]) and mask == bytes([0xFF, 0x00, 0xF0])
    assert udp.pattern("1") == (b"\x10", b"\xf0")


@pytest.mark.parametrize(
    ("reply", "ok"),
    [
        (b"\xab\x99\x3f", True),
        (b"\xab\x99\x4f", False),
        (b"\xab", True),  # keepalived compares only min(len(reply), len(pattern)) bytes
        (b"\xac", False),
        (b"\xab\x00\x30\xff\xff", True),
        (b"", True),
    ],
)
def test_udp_reply_matches(reply: bytes, ok: bool) -> None:
    assert udp.reply_matches(reply, *udp.pattern("ABXX3X"), 0, 255) is ok


def test_udp_reply_length_bounds() -> None:
    pat = udp.pattern("")
    assert not udp.reply_matches(b"x" * 3, *pat, 4, 10)
    assert udp.reply_matches(b"x" * 4, *pat, 4, 10)
    assert not udp.reply_matches(b"x" * 11, *pat, 4, 10)


# --------------------------------------------------------------------------- SMTP


@pytest.mark.parametrize(
    ("buf", "expected"),
    [
        (b"220 mail ESMTP\r\n", (220, 16)),
        (b"250-first\r\n250-second\r\n250 last\r\n", (250, 33)),
        (b"250-first\r\n250-sec", None),
        (b"220 no newline yet", None),
        (b"HTTP/1.1 400\r\n", (0, 14)),  # not SMTP: code 0 matches no step
        (b"220\r\n", (220, 5)),
    ],
)
def test_smtp_final_reply(buf: bytes, expected: tuple[int, int] | None) -> None:
    assert smtp.final_reply(buf) == expected


def test_smtp_steps_are_greeting_then_helo() -> None:
    assert [code for code, _ in smtp.STEPS] == [220, 250]
    assert smtp.STEPS[0][1].format(helo="lb1") == "HELO lb1\r\n"


# --------------------------------------------------------------------------- MISC


@pytest.mark.parametrize(
    ("status", "dynamic", "ok", "weight", "reason"),
    [
        (0, False, True, None, ""),
        (1, False, False, None, "exit"),
        (1, True, False, None, "exit"),
        (2, True, True, 0, ""),
        (255, True, True, 253, ""),
        (7, False, False, None, "exit"),
        (-9, True, False, None, "signal"),
    ],
)
def test_misc_verdict(status: int, dynamic: bool, ok: bool, weight: int | None,
                      reason: str) -> None:
    r = misc.verdict(status, dynamic)
    assert (r.ok, r.weight, r.reason) == (ok, weight, reason)


def test_misc_resolve_user() -> None:
    assert misc.resolve_user(None) is None
    assert misc.resolve_user(("root",)) == (0, 0, ())
    assert misc.resolve_user(("root", "root")) == (0, 0, ())
    # the one lookup: a user without a group gets its login group
    nobody = pwd.getpwnam("nobody")
    assert misc.resolve_user(("nobody",)) == (nobody.pw_uid, nobody.pw_gid, ())
    with pytest.raises(KeyError, match="script group 'no-such-group-here'"):
        misc.resolve_user(("nobody", "no-such-group-here"))


# --------------------------------------------------------------------------- FILE


@pytest.mark.parametrize(
    ("content", "value"),
    [(b"0\n", 0), (b"  17 trailing", 17), (b"-3", -3), (b"+4", 4), (b"abc", 0), (b"", 0)],
)
def test_file_read_value(tmp_path: Path, content: bytes, value: int) -> None:
    p = tmp_path / "f"
    p.write_bytes(content)
    assert file.read_value(str(p)) == value


def test_file_missing_reads_zero(tmp_path: Path) -> None:
    assert file.read_value(str(tmp_path / "absent")) == 0


@pytest.mark.parametrize(
    ("value", "weight", "reverse", "ok", "new_weight"),
    [
        (0, 0, False, True, None),
        (1, 0, False, False, None),
        (0, 0, True, False, None),  # reverse: zero is the fault
        (5, 0, True, True, None),
        (2, 3, False, True, 16),  # base 10 + 2*3
        (2, 3, True, True, 4),  # base 10 - 2*3
        (5, -3, False, True, 0),  # clamped at 0: up but takes no new connections
        (0, 3, False, True, None),
        (2**30, -4, False, False, None),  # at or below IPVS_WEIGHT_FAULT
    ],
)
def test_file_judge(value: int, weight: int, reverse: bool, ok: bool,
                    new_weight: int | None) -> None:
    r = file.judge(value, weight, reverse, 10)
    assert (r.ok, r.weight) == (ok, new_weight)
