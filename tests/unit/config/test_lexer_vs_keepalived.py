"""Broken configs side by side with the real keepalived 2.2.7 (``keepalived -t``).

For each case keepalived is asked to check the config; where it names a line for the
problem, hafast must report a diagnostic on that same line of the same file.  Where
keepalived names no line (a missing '}' is only counted at the end) or crashes or
hangs, keepalived "could not say": then hafast must still report the problem, and the
test notes it.  keepalived 2.2.7 prints each message more than once (the parent and the
children all parse); only the first message of the asked-for kind is used.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hafast.config.lexer import read_config
from tests.conftest import require_tool

# "(Line 4) msg" for a single file, "(file: Line 4) msg" once several files are open.
_KA_LINE = re.compile(r"^\((?:(?P<file>[^()]*?): )?Line (?P<line>\d+)\) (?P<msg>.*)$")


@dataclass
class Case:
    name: str
    text: str  # keepalived.conf
    keepalived_says: str  # a piece of the keepalived message for this problem
    files: dict[str, str] = field(default_factory=dict)  # more files, relative paths
    severity: str = "error"  # what hafast must report it as


GLOBAL = "global_defs {\n    router_id t\n}\n"

# keepalived 2.2.7 segfaults (SIGSEGV) on an unterminated quote inside vrrp_script,
# also in an included file: those cases end up "could not say".
CASES = [
    Case("unterminated_quote_global", 'global_defs {\n    router_id "t\n}\n', "Unterminated quote"),
    Case(
        "unterminated_quote",
        GLOBAL + 'vrrp_script s {\n    script "/bin/true\n}\n',
        "Unterminated quote",
    ),
    Case(
        "unmatched_quote_in_word",
        GLOBAL + 'vrrp_script s {\n    script a "b" "c\n}\n',
        "Unterminated quote",
    ),
    Case(
        "extra_close_brace", GLOBAL + "}\nvrrp_script s {\n    script /bin/true\n}\n", "Extra '}'"
    ),
    Case(
        "extra_close_brace_inline", GLOBAL + "vrrp_script s { script /bin/true } }\n", "Extra '}'"
    ),
    Case("missing_close_brace", GLOBAL + "vrrp_script s {\n    script /bin/true\n", "missing '}'"),
    Case(
        "missing_include",
        GLOBAL + "include does-not-exist.conf\n",
        "Config files missing",
        severity="warning",
    ),
    Case("missing_includem", GLOBAL + "\nincludem does-not-exist.conf\n", "Config files missing"),
    Case("empty_includew", GLOBAL + "includew nothing-*.conf\n", "No config files matched"),
    Case(
        "partial_brace_include",
        GLOBAL + "include {a,zz}.conf\n",
        "Some config files missing",
        files={"a.conf": "vrrp_script s {\n}\n"},
        severity="warning",
    ),
    Case(
        "error_in_included_file",
        GLOBAL + "include sub/inner.conf\n",
        "Unterminated quote",
        files={"sub/inner.conf": 'vrrp_script s {\n\n script "x\n}\n'},
    ),
    Case(
        "missing_include_in_included_file",
        GLOBAL + "include sub/inner.conf\n",
        "Config files missing",
        files={"sub/inner.conf": "\n\ninclude gone.conf\n"},
        severity="warning",
    ),
    Case(
        "seq_step_zero", GLOBAL + "~SEQ(A, 1, 0, 3) vrrp_script s$A {\n}\n", "Invalid ~SEQ values"
    ),
    Case(
        "seqx_negative", GLOBAL + "\n~SEQx(A, -1, 2) vrrp_script s$A {\n}\n", "~SEQx is only valid"
    ),
    Case("lst_no_values", GLOBAL + "~LST(A) vrrp_script s$A {\n}\n", "Invalid ~LST"),
    Case("lst_too_many_values", GLOBAL + "~LST({A,B},{1,2,3}) x\n", "too many values"),
    Case(
        "unterminated_quote_in_parameter",
        GLOBAL + '$P="open\nvrrp_script s {\n}\n',
        "Unterminated quote",
    ),
]


def run_keepalived(exe: str, conf: Path) -> tuple[int | None, str]:
    """(exit status or None when it hung, combined output)."""
    try:
        proc = subprocess.run(
            [exe, "-t", "-f", str(conf), "-l", "-n", "-i", "t"],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=conf.parent,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, ""
    return proc.returncode, proc.stdout + proc.stderr


def keepalived_line(output: str, says: str) -> tuple[str | None, int] | None:
    for raw in output.splitlines():
        m = _KA_LINE.match(raw.strip())
        if m and says in m.group("msg"):
            return m.group("file"), int(m.group("line"))
    return None


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_same_line_as_keepalived(case: Case, tmp_path: Path) -> None:
    exe = require_tool("keepalived")
    conf = tmp_path / "keepalived.conf"
    conf.write_text(case.text)
    for rel, text in case.files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    status, output = run_keepalived(exe, conf)
    res = read_config(conf, config_id="t")
    ours = [d for d in res.diagnostics if d.severity == case.severity]
    assert ours, f"hafast reported nothing for {case.name}: {res.diagnostics}"

    said = None if status is None or status < 0 else keepalived_line(output, case.keepalived_says)
    if said is None:
        # keepalived could not say (no line named, a crash or a hang): hafast's report
        # stands on its own; a missing '}' is reported at the end of the main file.
        if case.name == "missing_close_brace":
            assert ours[-1].line == case.text.count("\n")
        return
    ka_file, ka_line = said
    want_file = Path(ka_file).name if ka_file else conf.name
    got = {(Path(d.file).name, d.line) for d in ours}
    assert (want_file, ka_line) in got, (
        f"keepalived says {want_file}:{ka_line} ({case.keepalived_says}); hafast says "
        + "; ".join(d.format() for d in ours)
    )


def test_keepalived_accepts_what_the_lexer_accepts(tmp_path: Path) -> None:
    """A clean config with every language feature: neither side reports a syntax error."""
    exe = require_tool("keepalived")
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "a.conf").write_text(
        "vrrp_script from_include {\n script /bin/true\n}\n"
    )
    conf = tmp_path / "keepalived.conf"
    conf.write_text(
        "! comment\n"
        "$NAME=chk\n"
        "@t $W=2\n"
        "global_defs {\n    router_id t # comment\n}\n"
        "include conf.d/*.conf\n"
        'vrrp_script ${NAME} {\n    script "/bin/true"\n    weight $W\n}\n'
        "~SEQ(I, 1, 2) vrrp_script s$I { script /bin/true }\n"
    )
    status, output = run_keepalived(exe, conf)
    syntax = ("Unterminated", "Unmatched", "Extra '}'", "missing '}'", "Invalid ~")
    assert not any(s in output for s in syntax), output
    assert status == 0, output
    res = read_config(conf, config_id="t")
    assert [d for d in res.diagnostics if d.severity == "error"] == []
