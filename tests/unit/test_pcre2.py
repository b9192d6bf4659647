"""hafast.lib.pcre2: keepalived 2.2.7's regex check (check_http.c check_regex) over the
system's libpcre2-8: compile errors, the 24 regex_options, matching across reads with
PCRE2_PARTIAL_HARD, regex_min_offset/regex_max_offset, regex_no_match's input, and
regex_stack sizing the JIT stack."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hafast.lib.pcre2 import (
    BUFFER,
    OPTIONS,
    Pattern,
    PcreError,
    RegexStream,
    compile_regex,
    error_message,
)


def stream(pattern: str, chunks: list[bytes], *options: str, lo: int = 0,
           hi: int | None = None, stack: tuple[int, int] | None = None) -> RegexStream:
    s = RegexStream(compile_regex(pattern, options, stack), lo, hi)
    for c in chunks:
        s.feed(c)
    return s


def test_compile_error_has_pcre2_message_and_offset() -> None:
    with pytest.raises(PcreError) as exc:
        Pattern("ok(")
    assert exc.value.message == "missing closing parenthesis" and exc.value.offset == 3
    with pytest.raises(PcreError):
        Pattern("[z-a]")
    Pattern(r"ok\K")  # PCRE-only syntax that Python's re refuses


def test_every_keepalived_option_is_a_pcre2_compile_option() -> None:
    assert len(OPTIONS) == 24
    for name in OPTIONS:
        assert Pattern("ok", [name]).search(b"is ok") >= 0, name


@pytest.mark.parametrize(("pattern", "options", "subject", "found"), [
    ("READY", (), b"ready", False),
    ("READY", ("caseless",), b"ready", True),
    ("^up$", (), b"x\nup\n", False),
    ("^up$", ("multiline",), b"x\nup\n", True),
    ("a.b", (), b"a\nb", False),
    ("a.b", ("dotall",), b"a\nb", True),
    ("u p # comment", ("extended",), b"up", True),
    ("a+", ("ungreedy",), b"aaa", True),
    (r"\u0041", ("alt_bsux",), b"A", True),
    ("UP", ("caseless", "ucp", "utf"), "état: up".encode(), True),
    ("ok", ("bogus",), b"ok", True),  # keepalived skips a name it does not know
])
def test_options_are_honoured(pattern: str, options: tuple[str, ...], subject: bytes,
                              found: bool) -> None:
    assert stream(pattern, [subject], *options).matched is found


def test_backslash_k_and_partial_across_every_split() -> None:
    body = b"HTTP/1.0 200 OK\r\n\r\nstatus: ready\n"
    for cut in range(1, len(body)):
        assert stream(r"status: \Kready", [body[:cut], body[cut:]]).matched, cut


def test_lookbehind_is_kept_with_a_partial_match() -> None:
    # "xabc" ends in a partial match of "c" then "d": the buffer keeps the lookbehind
    assert stream(r"(?<=ab)cd", [b"xabc", b"d"]).matched
    assert stream(r"(?<=ab)c", [b"xxab", b"c"]).matched  # a partial match at the end
    # keepalived keeps nothing after a plain miss, so a lookbehind across reads fails
    assert not stream(r"(?<=ab)c", [b"xxa", b"bc"]).matched
    assert stream(r"(?<=ab)c", [b"xxabc"]).matched


def test_a_partial_match_filling_the_buffer_is_given_up() -> None:
    body = b"a" * 5000 + b"!"
    assert Pattern("a{4100}!").search(body) >= 0
    assert not stream("a{4100}!", [body]).matched  # "preserve too large - discarding"
    assert stream("a{4000}!", [body]).matched


def test_min_and_max_offsets_across_reads() -> None:
    body = b"0123456789" * 1000 + b"NEEDLE" + b"x" * 100
    at = body.index(b"NEEDLE")
    chunks = [body[i : i + 700] for i in range(0, len(body), 700)]
    assert stream("NEEDLE", chunks, lo=at).matched
    assert not stream("NEEDLE", chunks, lo=at + 1).matched
    assert stream("NEEDLE", chunks, hi=at).matched
    assert not stream("NEEDLE", chunks, hi=at - 1).matched
    assert stream("0", chunks, hi=0).matched  # max offset 0: a match at offset 0 only
    assert not stream("1", chunks, hi=0).matched
    # a lookbehind may look before regex_min_offset
    assert stream(r"(?<=9)NEEDLE", chunks, lo=at).matched


def test_regex_stack_sizes_the_jit_stack() -> None:
    body = b"a" * 1000 + b"b" * 1000 + b"c"
    pattern = r"(a(?1)?b)c"
    if not Pattern(pattern).jit:
        pytest.skip("no PCRE2 JIT on this machine: regex_stack has nothing to size")
    assert not stream(pattern, [body]).matched  # JIT stack limit with the default 32 KiB
    assert stream(pattern, [body], stack=(32768, 1 << 20)).matched


def test_a_match_reaching_the_end_stays_partial() -> None:
    # keepalived never matches again at EOF: a match that could go on past the last
    # byte stays a partial match, so "ok.*" fails on a body without a final newline
    assert not stream("ok.*", [b"status ok"]).matched
    assert stream("ok.*", [b"status ok\n"]).matched
    assert stream("ok", [b"status ok"]).matched


def test_catastrophic_backtracking_is_bounded_by_the_match_limit() -> None:
    # keepalived's limits are PCRE2's defaults: the match gives up per buffer with
    # "match limit exceeded", the reply is a failed match, nothing raises
    s = stream(r"(a+)+$", [b"a" * 10_000 + b"b"])
    assert not s.matched
    assert error_message(s.error) == "match limit exceeded"


def test_no_match_input_and_done() -> None:
    s = stream("down", [b"all good"])
    assert not s.matched  # regex_no_match passes on this
    s = stream("good", [b"all good", b"more"])
    assert s.matched and s.done


_ATOMS = st.sampled_from(["a", "b", "ab", "[ab]", "[^a]", "c", "(a|bc)", "b+", "a{2,3}",
                          "(?:ab)*c", r"\d", "."])


@settings(max_examples=300, deadline=None)
@given(
    atoms=st.lists(_ATOMS, min_size=1, max_size=4),
    body=st.binary(max_size=BUFFER - 1).map(lambda b: bytes(b"abc1\n"[x % 5] for x in b)),
    cuts=st.lists(st.integers(min_value=0, max_value=BUFFER), max_size=6),
)
def test_chunked_matches_whole_body(atoms: list[str], body: bytes, cuts: list[int]) -> None:
    """Without anchors, \\b or lookbehind, keepalived's partial-hard matching across
    reads finds what one partial-hard match of the whole body finds (a body within one
    buffer): the verdict does not depend on how TCP cut the reply."""
    pattern = "".join(atoms)
    points = sorted({c for c in cuts if 0 < c < len(body)})
    chunks = [body[i:j] for i, j in zip([0, *points], [*points, len(body)], strict=True)]
    whole = Pattern(pattern).match(body) > 0
    assert stream(pattern, chunks).matched == whole
    assert stream(pattern, [body]).matched == whole
