"""Property tests: whatever the text, the lexer returns (never raises but ConfigError),
reports problems as diagnostics, and every token has a sane position.

Hypothesis runs without a deadline (tests never assert timings); the inputs are bounded
so each example is small, and pytest-timeout stops a hang.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hafast.config.lexer import lex_text, split_script
from hafast.config.tokens import ConfigError, LexResult

GOLDEN = Path(__file__).parent / "golden" / "lexer"
SAMPLES = Path("/usr/share/doc/keepalived/samples")

# Language atoms, a few of them broken on purpose.
ATOMS = [
    "{",
    "}",
    '"',
    "'",
    "#",
    "!",
    "\\",
    "\\#",
    "$A",
    "${A}",
    "${B}",
    "$A=",
    "$A=x",
    "$B=${A}${A}",
    "$A=y $B",
    "$M= \\",
    "${_RANDOM 1 3}",
    "${_PWD}",
    "${_HASH}",
    "${_ENV A}",
    "${_RANDOM",
    "@lb1",
    "@^lb1",
    "@",
    "~SEQ(I,1,2)",
    "~SEQx(J, 0x9, 0xa)",
    "~LST({A,B},{1,2},{3})",
    "~LST(C, 1)",
    "~SEQ(",
    "~SEQ(I,1,0,3)",
    "~LST(",
    "(",
    ")",
    ",",
    "include",
    "includew",
    "includea",
    "include_check",
    "+match",
    "-readable",
    "x*.conf",
    "{a,b}.conf",
    "vrrp_instance",
    "real_server",
    "10.0.0.1",
    "é",
    "\t",
    " ",
    "  ",
    "\r",
    "\f",
    "\0",
    "\x85",
    "\u2028",
]
# Expansion atoms multiply the lines: keep at most a few per line so examples stay small.
BLOCK_ATOMS = {"~SEQ(I,1,2)", "~SEQx(J, 0x9, 0xa)", "~LST({A,B},{1,2},{3})", "~LST(C, 1)"}

line_atoms = st.lists(st.sampled_from(ATOMS), max_size=12).filter(
    lambda atoms: sum(a in BLOCK_ATOMS for a in atoms) <= 3
)
soup = st.lists(line_atoms.map("".join), max_size=25).map("\n".join)

# A folder that is not there, for includes to look into (the soup may glob x*.conf):
# nothing matches, as in an empty one, and no temporary folder outlives a worker
# that dies (a module-level TemporaryDirectory did under xdist).
FILE = "/nonexistent/hafast-lexer-hypothesis/keepalived.conf"


def check(res: LexResult) -> None:
    assert isinstance(res, LexResult)
    for d in res.diagnostics:
        assert "internal lexer error" not in d.message, d.format()
        assert d.severity in ("error", "warning")
    for line in res.lines:
        assert line.tokens, "a Line is never empty"
        for tok in line.tokens:
            assert tok.line >= 1 and tok.col >= 1, tok
            assert isinstance(tok.text, str)


def lex_or_config_error(text: str) -> None:
    try:
        res = lex_text(text, file=FILE, config_id="lb1", env={"A": "e"}, random_seed=3)
    except ConfigError:
        return
    check(res)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(soup)
def test_token_soup_never_raises(text: str) -> None:
    lex_or_config_error(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_any_text_never_raises(text: str) -> None:
    lex_or_config_error(text)


def _real_configs() -> list[str]:
    texts = [p.read_text() for p in sorted(GOLDEN.glob("*/keepalived.conf"))]
    if SAMPLES.is_dir():
        for p in sorted(SAMPLES.iterdir()):
            if p.name.startswith("keepalived.conf"):
                data = p.read_bytes()
                if p.suffix == ".gz":
                    data = gzip.decompress(data)
                texts.append(data.decode("utf-8", "replace"))
    return texts


REAL = _real_configs()


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(REAL), st.integers(min_value=0), st.integers(min_value=0))
def test_truncated_real_configs_never_raise(text: str, cut: int, cut2: int) -> None:
    # A prefix, and a prefix glued to a later suffix (a chunk lost in the middle).
    a = cut % (len(text) + 1)
    b = a + cut2 % (len(text) - a + 1)
    lex_or_config_error(text[:a])
    lex_or_config_error(text[:a] + text[b:])


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(REAL),
    st.lists(st.tuples(st.integers(min_value=0), st.sampled_from(ATOMS)), max_size=6),
)
def test_corrupted_real_configs_never_raise(text: str, edits: list[tuple[int, str]]) -> None:
    for pos, atom in edits:
        p = pos % (len(text) + 1)
        text = text[:p] + atom + text[p:]
    lex_or_config_error(text)


plain_words = st.text(alphabet="abc{}.: \t", min_size=0, max_size=30)


@settings(max_examples=300, deadline=None)
@given(st.lists(plain_words, max_size=15))
def test_fast_path_equals_slow_path(lines: list[str]) -> None:
    # A trailing comment is blanked in bulk ("#c") or, with a backslash in it, sends
    # the line down the slow path (decomment); words, braces and columns never change.
    plain = "\n".join(lines)
    fast_res = lex_text(plain)
    for comment in (" #c", " #c\\d"):
        other = lex_text("\n".join(line + comment if line else line for line in lines))
        assert [line.tokens for line in other.lines] == [line.tokens for line in fast_res.lines]
        assert other.diagnostics == fast_res.diagnostics


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab '\"\\xtc0127 ", max_size=40))
def test_split_script_raises_only_config_error(text: str) -> None:
    try:
        words = split_script(text)
    except ConfigError:
        return
    assert all(isinstance(w, str) for w in words)
