"""Lexer unit tests: one small test per behaviour (the golden files cover the rest)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from hafast.config import include as inc
from hafast.config.expand import ExpandError, parse_block
from hafast.config.lexer import default_config_id, lex_text, read_config, split_script
from hafast.config.params import Params, Src
from hafast.config.tokens import ConfigError, Line, Token
from tests.conftest import require


def words(lines: list[Line]) -> list[list[str]]:
    return [[t.text for t in line.tokens] for line in lines]


def lex(text: str, **kw: object) -> list[list[str]]:
    res = lex_text(text, config_id="lb1", **kw)  # type: ignore[arg-type]
    return words(res.lines)


# ------------------------------------------------------------------ blocks and words


def test_braces_are_lines_of_their_own() -> None:
    res = lex_text("vrrp_instance VI_1 {\n state MASTER }\nvirtual_ipaddress { 1.2.3.4 }\n")
    assert words(res.lines) == [
        ["vrrp_instance", "VI_1"],
        ["{"],
        ["state", "MASTER"],
        ["}"],
        ["virtual_ipaddress"],
        ["{"],
        ["1.2.3.4"],
        ["}"],
    ]
    assert res.diagnostics == []


def test_positions_point_at_each_word(tmp_path: Path) -> None:
    conf = tmp_path / "k.conf"
    conf.write_text('global_defs {\n   router_id  "my id" # note\n}\n')
    res = read_config(conf)
    toks = [t for line in res.lines for t in line.tokens]
    assert [(t.text, t.line, t.col, t.quoted) for t in toks] == [
        ("global_defs", 1, 1, False),
        ("{", 1, 13, False),
        ("router_id", 2, 4, False),
        ("my id", 2, 15, True),
        ("}", 3, 1, False),
    ]
    assert {t.file for t in toks} == {str(conf)}
    assert res.files == [str(conf)]


def test_fast_and_slow_paths_agree() -> None:
    # The same statements, once plain (fast path) and once with a comment that sends
    # every line through decomment (slow path), give the same words and columns.
    plain = "a  b\t c {\n  d e }\n}\n{f\n g{h\n"
    # A plain comment is blanked in bulk; one with a backslash in it is not, and sends
    # the line through decomment.  All three agree.
    blanked = "\n".join(line + " # x" for line in plain.splitlines()) + "\n"
    slow = "\n".join(line + " # x\\y" for line in plain.splitlines()) + "\n"
    fast_res, blank_res, slow_res = lex_text(plain), lex_text(blanked), lex_text(slow)
    expected = [line.tokens for line in fast_res.lines]
    assert [line.tokens for line in blank_res.lines] == expected
    assert [line.tokens for line in slow_res.lines] == expected
    assert words(fast_res.lines) == [
        ["a", "b", "c"],
        ["{"],
        ["d", "e"],
        ["}"],
        ["}"],
        ["{"],
        ["f"],
        ["g"],
        ["{"],
        ["h"],
    ]


def test_raw_is_the_statement_text_without_comment() -> None:
    res = lex_text('notify_master "/bin/n.sh" a  b  # c\n')
    assert res.lines[0].raw == 'notify_master "/bin/n.sh" a  b'


def test_quoted_word_and_quote_inside_word() -> None:
    res = lex_text('x "a b" c"d e"f ""\n')
    assert [(t.text, t.quoted) for t in res.lines[0].tokens] == [
        ("x", False),
        ("a b", True),
        ("c", False),
        ("d e", True),
        ("f", False),
        ("", True),
    ]


def test_crlf_and_nul_bytes() -> None:
    assert lex("a b\r\nc\r\n") == [["a", "b"], ["c"]]
    # keepalived reads C strings: a NUL ends the line.
    assert lex("a b\0 c d\ne\n") == [["a", "b"], ["e"]]


def test_form_feed_separates_words_but_not_lines() -> None:
    assert lex("a\fb\vc\n") == [["a", "b", "c"]]


# ------------------------------------------------------------------ comments and quotes


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("a # b", ["a"]),
        ("a ! b", ["a"]),
        ("a#b", ["a"]),
        ('a "#b" c', ["a", "#b", "c"]),
        ("a '#b' c", ["a", "'"]),
        ("a \\#b \\!c", ["a", "#b", "!c"]),
    ],
)
def test_comments(line: str, expected: list[str]) -> None:
    assert lex(line + "\n") == [expected]


def test_unterminated_quote_is_one_error_with_the_words_before_it() -> None:
    res = lex_text('notify "x\nnext\n', file="k.conf")
    assert words(res.lines) == [["notify"], ["next"]]
    assert [d.format() for d in res.diagnostics] == [
        "k.conf:1:8: error: unterminated quote: this '\"' is not closed on its line; "
        "close the string with '\"' (a string cannot span lines)"
    ]


# ------------------------------------------------------------------ scripts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/bin/a.sh x y", ["/bin/a.sh", "x", "y"]),
        (
            "/bin/a.sh 'two words' \"three  more words\"",
            ["/bin/a.sh", "two words", "three  more words"],
        ),
        ('"a\\tb" \\x41\\102 \\cA \\E', ["a\tb", "AB", "\x01", "\x1b"]),
        ("'a\\'b'", ["a'b"]),
        ('x"y z"w', ["xy zw"]),
        ("\\a\\b\\f\\n\\r\\v\\q", ["\a\b\f\n\r\vq"]),
    ],
)
def test_split_script(text: str, expected: list[str]) -> None:
    assert split_script(text) == expected


@pytest.mark.parametrize("text", ["/bin/a.sh 'open", '/bin/a.sh "open', "/bin/a.sh x\\"])
def test_split_script_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        split_script(text)


# ------------------------------------------------------------------ @id


def test_conditional_lines() -> None:
    text = "@lb1 a\n@lb2 b\n@^lb1 c\n@^lb2 d\n@lb1\n"
    assert lex(text) == [["a"], ["d"]]


def test_default_config_id_is_the_short_node_name() -> None:
    assert default_config_id() == os.uname().nodename.split(".")[0]
    res = lex_text(f"@{default_config_id()} mine\n")
    assert words(res.lines) == [["mine"]]


# ------------------------------------------------------------------ parameters


def test_parameter_substituted_at_use_time() -> None:
    text = "$B=10.2.${S}\n$S=0\nip ${B}.1\n$S=10\nip ${B}.1\n"
    assert lex(text) == [["ip", "10.2.0.1"], ["ip", "10.2.10.1"]]


def test_parameter_columns_point_at_the_use() -> None:
    res = lex_text("$P=150\nprio  $P x\n")
    assert [(t.text, t.line, t.col) for t in res.lines[0].tokens] == [
        ("prio", 2, 1),
        ("150", 2, 7),
        ("x", 2, 10),
    ]


def test_undefined_and_not_followed_by_blank_are_left_alone() -> None:
    assert lex("$P=1\na $Q $P.x $P,$P\n") == [["a", "$Q", "$P.x", "1,1"]]


def test_definition_needs_no_blank_before_equals() -> None:
    # "$P =1" is not a definition: keepalived passes it on as a line.
    assert lex("$P =1\n") == [["$P", "=1"]]


def test_builtins(tmp_path: Path) -> None:
    conf = tmp_path / "k.conf"
    conf.write_text(
        'a ${_PWD} ${_INSTANCE} ${_ENV X} [${_ENV NOPE}] "${_HASH}${_BANG}"\n'
        "b ${_RANDOM} ${_RANDOM 3 3}\n"
        "c ${_RANDOM x}\n"
    )
    res = read_config(conf, config_id="lb9", env={"X": "ex"}, random_seed=1)
    first, second, *rest = words(res.lines)
    assert first == ["a", str(tmp_path), "lb9", "ex", "[]", "#!"]
    assert 0 <= int(second[1]) <= 32767
    assert second[2:] == ["3"]
    # Not a valid use: left alone, and then keepalived cuts the line at its braces.
    assert rest == [["c", "$"], ["{"], ["_RANDOM", "x"], ["}"]]


def test_random_seed_makes_random_repeatable() -> None:
    text = "random_seed 42\nr ${_RANDOM}\nr ${_RANDOM 1 1000}\n"
    assert lex(text) == lex(text)
    a = lex_text("r ${_RANDOM}\n", random_seed=5).lines
    b = lex_text("r ${_RANDOM}\n", random_seed=5).lines
    assert words(a) == words(b)


def test_hash_outside_quotes_starts_a_comment_again() -> None:
    # keepalived decomments the substituted line, so ${_HASH} only lives in "...".
    assert lex("a ${_HASH} b\n") == [["a"]]


def test_multiline_parameter_and_nesting() -> None:
    text = "$RS= \\\nreal_server 10.0.0.${N} 80 { \\\n   weight ${N} \\\n}\n$N=1\n$RS\n$N=2\n$RS\n"
    assert lex(text) == [
        ["real_server", "10.0.0.1", "80"],
        ["{"],
        ["weight", "1"],
        ["}"],
        ["real_server", "10.0.0.2", "80"],
        ["{"],
        ["weight", "2"],
        ["}"],
    ]


def test_multiline_parameter_ends_at_an_empty_line_only() -> None:
    text = "$M= \\\n a \\\n# comment\n   \n b \\\n\n c\n$M\n"
    # "c" comes after the empty line: a top-level line, not part of $M.
    assert lex(text) == [["c"], ["a"], ["b"]]


def test_multiline_parameter_only_expands_at_line_end() -> None:
    assert lex("$M= \\\n x \\\n y\na $M b\n") == [["a", "$M", "b"]]


def test_parameter_loop_is_an_error_not_a_hang() -> None:
    res = lex_text("$A=x $B\n$B=y $A\nuse $A\n", file="k.conf")
    assert res.lines == []
    assert len(res.diagnostics) == 1
    d = res.diagnostics[0]
    assert (d.line, d.col, d.severity) == (3, 5, "error")
    assert "$A never stops expanding" in d.message


def test_params_class_directly() -> None:
    p = Params(config_id="x")
    p.define("A", [Src("1", "f", 1)])
    new, tail = p.substitute(Src("v $A ${A}", "f", 2))
    assert new is not None and new.text == "v 1 1" and tail == []
    assert p.substitute(Src("nothing here", "f", 3)) == (None, [])


# ------------------------------------------------------------------ ~SEQ / ~LST


def test_seq_and_lst_nest_and_combine() -> None:
    text = "~LST({A,B},{1,2},{3,4}) ~SEQ(C,5,6) x${A}${B}${C}\n"
    assert lex(text) == [["x125"], ["x126"], ["x345"], ["x346"]]


def test_seq_values_are_set_just_before_each_line() -> None:
    text = "~SEQ(N, 1, 2) v $N\nafter $N\n"
    # keepalived keeps the last value; the man page says not to rely on it.
    assert lex(text) == [["v", "1"], ["v", "2"], ["after", "2"]]


@pytest.mark.parametrize(
    ("head", "values"),
    [
        ("~SEQ(V, 3) x", [1, 2, 3]),
        ("~SEQ(V, 0) x", [1, 0]),
        ("~SEQ(V, -2) x", [-1, -2]),
        ("~SEQ(V, 2, 4) x", [2, 3, 4]),
        ("~SEQ(V, 4, 2) x", [4, 3, 2]),
        ("~SEQ(V, 0x10, 8, 0x20) x", [16, 24, 32]),
        ("~SEQ(V, 010, 1, 9) x", [8, 9]),
        ("~SEQx(V, 10, 11) x", [10, 11]),
    ],
)
def test_seq_heads(head: str, values: list[int]) -> None:
    block = parse_block(head)
    assert list(block.rows) == values
    assert head[block.rest :] == "x"


def test_seq_wider_than_a_c_long_is_a_plain_error() -> None:
    # found by fuzz_config (tests/fuzz/corpus/config/regress-seq-huge-range): len() of
    # the range raised OverflowError, reported as "internal lexer error"
    huge = "9" * 30
    for head in ("~SEQ(V, 0" + "1" * 70 + ", 3) x", f"~SEQ(V, -{huge}, {huge}) x",
                 "~SEQx(V, 0x" + "f" * 40 + ") x"):
        with pytest.raises(ExpandError, match="would repeat the line"):
            parse_block(head)
    assert lex("~SEQ(V, 0" + "1" * 70 + ", 3) x $V\nok\n") == [["ok"]]


@pytest.mark.parametrize(
    "head",
    [
        "~SEQ(V, 1, 0, 5) x",
        "~SEQ(V, 5, 1, 1) x",
        "~SEQx(V, -1, 3) x",
        "~SEQ(V 1, 2) x",
        "~SEQ(V, 1, 2 x",
        "~SEQ(V, a) x",
        "~SEQ(V, 1, 2, 3, 4) x",
        "~SEQ(V, 0, 1, 100000000) x",
        "~SEQ x",
        "~LST(V) x",
        "~LST(V, 1",
        "~LST({A,B}, {1,2,3}) x",
        "~LST({A,1B}, {1,2}) x",
    ],
)
def test_bad_block_heads(head: str) -> None:
    with pytest.raises(ExpandError):
        parse_block(head)
    res = lex_text(head + "\n")
    assert res.lines == []
    assert [d.severity for d in res.diagnostics] == ["error"]


def test_lst_values() -> None:
    block = parse_block("~LST({A, B}, {1, 2}, {3}) rest")
    assert block.names == ("A", "B")
    assert list(block.rows) == [("1", "2"), ("3", "")]


# ------------------------------------------------------------------ include


def test_brace_expand() -> None:
    assert inc.brace_expand("a{b,c{d,e}}f") == ["abf", "acdf", "acef"]
    assert inc.brace_expand("a{}b") == ["a{}b"]
    assert inc.brace_expand("plain") == ["plain"]
    assert inc.brace_expand("x{a,b}y{1,2}") == ["xay1", "xay2", "xby1", "xby2"]



def test_an_include_of_too_many_brace_alternatives_is_an_error(tmp_path: Path) -> None:
    """20 {a,b} groups would be 1,048,576 names (keepalived's glob expands them all and
    says they are missing): hafast stops after 4,096, whatever include_check says,
    and names the line, so a reload never spends seconds on one include line."""
    (tmp_path / "xa.conf").write_text("from_a\n")
    assert inc.brace_expand("x{a,b}", limit=2) == ["xa", "xb"]
    with pytest.raises(inc.TooManyAlternatives):
        inc.brace_expand("{a,b}" * 13)
    (tmp_path / "k.conf").write_text("include x" + "{a,b}" * 20 + ".conf\nlast\n")
    res = read_config(tmp_path / "k.conf")
    [err] = [d for d in res.diagnostics if d.severity == "error"]
    assert err.line == 1 and "expands to more than 4096 names" in err.message
    assert words(res.lines) == [["last"]]

def test_include_is_relative_to_the_including_file(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.conf").write_text("include b.conf\n")
    (tmp_path / "d" / "b.conf").write_text("from_b\n")
    (tmp_path / "k.conf").write_text("include d/a.conf\nlast\n")
    res = read_config(tmp_path / "k.conf")
    assert words(res.lines) == [["from_b"], ["last"]]
    assert res.lines[0].first.file == str(tmp_path / "d" / "b.conf")
    assert res.diagnostics == []


def test_include_after_conditional_and_parameter(tmp_path: Path) -> None:
    (tmp_path / "x.conf").write_text("from_x\n")
    (tmp_path / "k.conf").write_text("$F=x.conf\n@lb1 include $F\n@lb2 include $F\n")
    assert words(read_config(tmp_path / "k.conf", config_id="lb1").lines) == [["from_x"]]


def test_include_skips_executable_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "sub").mkdir()
    good = tmp_path / "c" / "a.conf"
    good.write_text("good\n")
    bad = tmp_path / "c" / "b.conf"
    bad.write_text("bad\n")
    bad.chmod(0o755)
    (tmp_path / "k.conf").write_text("include c/*\nincluder c/b.conf\n")
    res = read_config(tmp_path / "k.conf")
    assert words(res.lines) == [["good"]]
    assert [(d.line, d.severity) for d in res.diagnostics] == [(1, "warning"), (2, "error")]


def test_include_check_is_scoped_per_file(tmp_path: Path) -> None:
    (tmp_path / "inner.conf").write_text("include_check\ninclude gone1.conf\n")
    (tmp_path / "k.conf").write_text(
        "include_check -match\ninclude inner.conf\ninclude gone2.conf\n"
    )
    res = read_config(tmp_path / "k.conf")
    assert [(Path(d.file).name, d.line, d.severity) for d in res.diagnostics] == [
        ("inner.conf", 2, "error"),
        ("k.conf", 3, "warning"),
    ]
    assert res.lines == []  # include_check lines are consumed by the lexer


def test_include_check_options() -> None:
    level, problems = inc.apply_include_check(inc.Check.NONE, ["match", "+brace_match"])
    assert level == inc.Check.READ | inc.Check.MATCH | inc.Check.BRACE
    assert problems == []
    level, problems = inc.apply_include_check(level, ["-match", "wildcard_match", "nope"])
    assert level == inc.Check.READ | inc.Check.BRACE
    assert len(problems) == 2


def test_split_include() -> None:
    assert inc.split_include("include a b") == ("include", "a b")
    assert inc.split_include("includea\tx") == ("includea", "x")
    assert inc.split_include("includex y") is None
    assert inc.split_include("include") is None


def test_missing_main_file_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        read_config(tmp_path / "nope.conf")
    assert "cannot read the configuration file" in str(err.value)


def test_token_is_a_light_immutable_record() -> None:
    t = Token("a", "f", 1, 2)
    assert t.where() == "f:1:2" and t.quoted is False
    with pytest.raises(AttributeError):
        t.text = "b"  # type: ignore[misc]
    assert Line((t,)).first is t


# ------------------------------------------------------------------ Debian samples

SAMPLES = Path("/usr/share/doc/keepalived/samples")


def _sample_names() -> list[str]:
    if not SAMPLES.is_dir():
        return ["<missing>"]
    return sorted(p.name for p in SAMPLES.iterdir() if p.name.startswith("keepalived.conf"))


@pytest.mark.parametrize("name", _sample_names())
def test_debian_samples_lex_cleanly(name: str, tmp_path: Path) -> None:
    require(SAMPLES.is_dir(), f"keepalived's samples not found at {SAMPLES} (apt keepalived)")
    path = SAMPLES / name
    if name.endswith(".gz"):
        plain = tmp_path / name.removesuffix(".gz")
        plain.write_bytes(gzip.decompress(path.read_bytes()))
        path = plain
    res = read_config(path, config_id="lb1")
    assert res.diagnostics == []
    assert res.lines, name
    assert sum(line.raw == "{" for line in res.lines) == sum(line.raw == "}" for line in res.lines)


# ------------------------------------------------------------------ limits


def test_multiline_parameter_using_itself_is_an_error_not_a_hang() -> None:
    res = lex_text("$I= \\\n a \\\n$I\n$I\nafter\n", file="k.conf")
    assert words(res.lines)[-1] == ["after"]
    assert [(d.line, d.severity) for d in res.diagnostics] == [(4, "error")]
    assert "nests more than" in res.diagnostics[0].message


def test_expansion_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    import hafast.config.lexer as lexer

    monkeypatch.setattr(lexer, "MAX_EXPANDED_LINES", 50)
    res = lex_text("~SEQ(A, 1, 10) ~SEQ(B, 1, 10) x\nafter\n", file="k.conf")
    assert 40 <= len(res.lines) <= 51
    assert words(res.lines)[-1] == ["after"]
    assert [(d.line, d.severity) for d in res.diagnostics] == [(1, "error")]
