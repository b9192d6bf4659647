"""HTTP_GET ``regex`` at load, side by side with Debian's keepalived 2.2.7 ``-t``.

keepalived reads the pattern with ``alloc_strvec_quoted_escaped`` (quotes group, ``\\``
escapes: PCRE's ``\\K`` is written ``"ok\\\\K"``), compiles it with pcre2_compile when
the url closes and, for a pattern PCRE2 refuses, only logs "Invalid regex" at start and
checks the url without it: ``keepalived -t`` exits 0 and says nothing.  ``hafast -t``
reports that pattern as an error at its line, with PCRE2's message.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hafast.cli import main
from hafast.config.loader import load_file
from tests.conftest import keepalived_t

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="keepalived -t runs as root")


def _conf(tmp_path: Path, url_lines: str) -> Path:
    path = tmp_path / "keepalived.conf"
    path.write_text(
        "virtual_server 10.0.0.1 80 {\n"
        "    protocol TCP\n    lb_algo rr\n    lb_kind NAT\n"
        "    real_server 10.0.0.2 80 {\n"
        "        HTTP_GET {\n"
        "            url {\n"
        "                path /\n"
        f"{url_lines}"
        "            }\n"
        "        }\n"
        "    }\n"
        "}\n"
    )
    return path


def _hafast_t(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(["-t", "-f", str(path)])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("line", [
    'regex ok',
    'regex "ok\\\\K"',  # PCRE's \K: Python's re refused it at run time
    'regex "status: [a-z]+ (?i)READY"',
    'regex "(?<=a)b"\n                regex_options caseless dotall',
])
def test_compiling_patterns_pass_both(tmp_path: Path, line: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = _conf(tmp_path, f"                {line}\n")
    krc, kout = keepalived_t(path)
    rc, err = _hafast_t(path, capsys)
    assert (krc, rc) == (0, 0), (kout, err)
    assert "regex" not in err


@pytest.mark.parametrize(("pattern", "message"), [
    ("ok(", "missing closing parenthesis at offset 3"),
    ("[z-a]", "range out of order in character class at offset 3"),
    ("a{2,1}", "numbers out of order in {} quantifier at offset 5"),
    ("ok\\\\", r"\ at end of pattern at offset 3"),
])
def test_patterns_pcre2_refuses(tmp_path: Path, pattern: str, message: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    path = _conf(tmp_path, "                status_code 200\n"
                 f'                regex "{pattern}"\n')
    krc, kout = keepalived_t(path)
    assert krc == 0 and "regex" not in kout.lower()  # keepalived -t says nothing
    rc, err = _hafast_t(path, capsys)
    assert rc != 0
    assert f"{path}:10:17: error: regex " in err and message in err, err


def test_pattern_escapes_and_stack_as_keepalived_reads_them(tmp_path: Path) -> None:
    path = _conf(tmp_path, '                regex "ok\\\\K"\n'
                 "                regex_stack 1000 200000\n")
    url = load_file(str(path)).config.virtual_servers[0].real_servers[0].checkers[0].urls[0]
    assert (url.regex, url.regex_stack) == ("ok\\K", (1000, 200000))
    path = _conf(tmp_path, "                regex ok\\K\\d\n")  # \K is K, \d is d
    url = load_file(str(path)).config.virtual_servers[0].real_servers[0].checkers[0].urls[0]
    assert url.regex == "okKd"
    # every regex_options line counts (keepalived ORs them into the url's options)
    path = _conf(tmp_path, "                regex ok\n                regex_options caseless\n"
                 "                regex_options dotall\n")
    url = load_file(str(path)).config.virtual_servers[0].real_servers[0].checkers[0].urls[0]
    assert url.regex_options == ("caseless", "dotall")


def test_regex_settings_keepalived_ignores_are_warned(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = _conf(tmp_path, "                regex ok\n"
                 "                regex_options caseless nosuch\n"
                 "                regex_stack 5000 10\n")
    krc, _ = keepalived_t(path)
    rc, err = _hafast_t(path, capsys)
    assert (krc, rc) == (0, 0)
    assert "unknown regex option 'nosuch'" in err and "regex_stack start 5000" in err
