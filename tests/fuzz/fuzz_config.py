"""Fuzz the config lexer and loader: keepalived.conf text in, a model and diagnostics out.

The input is the file's bytes (decoded as ``read_config`` decodes them). It goes
through ``loader.load_text``'s two steps (``lexer.lex_text``, then
``loader.load_lines``), so the tokens can be checked too. The contract:

- nothing raises: every problem is a ``Diagnostic``;
- no diagnostic is one of the catch-alls that hide a bug ("internal lexer error",
  "internal loader error", "nests too deeply": each means an exception was caught);
- every diagnostic and every token names a file and a line (>= 1).

Includes resolve inside a sandbox folder holding a copy of the lexer's golden
include tree (tests/unit/config/golden/lexer/include); a pattern reaching outside
it matches nothing, so a fuzzed ``include /*/*/*`` never reads the host's files.

    python tests/fuzz/fuzz_config.py -atheris_runs=10000 build/fuzz/config tests/fuzz/corpus/config
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fuzz import _common

with _common.instrumented(_common.running_as_fuzzer(__name__)):
    from hafast.config import include as inc
    from hafast.config.lexer import lex_text
    from hafast.config.loader import LoadResult, load_lines
    from hafast.config.tokens import LexResult

INCLUDES = _common.REPO / "tests" / "unit" / "config" / "golden" / "lexer" / "include"
CATCH_ALLS = ("internal lexer error", "internal loader error", "configuration nests too deeply")

_sandbox: str | None = None


def sandbox() -> str:
    """The include sandbox, made on first use and removed at exit."""
    global _sandbox
    if _sandbox is None:
        import atexit

        folder = tempfile.mkdtemp(prefix="hafast-fuzz-config-")
        atexit.register(shutil.rmtree, folder, True)
        shutil.copytree(INCLUDES, folder, dirs_exist_ok=True)
        _sandbox = os.path.realpath(folder)
    return _sandbox


def _inside(alt: str, root: str) -> bool:
    if ".." in alt.split(os.sep):
        return False
    norm = os.path.normpath(alt)
    return norm == root or norm.startswith(root + os.sep)


@contextlib.contextmanager
def _confined(root: str) -> Iterator[None]:
    """``include`` sees only ``root`` (restored after each input: the replay test
    imports this module into the same session as the lexer's own tests)."""
    real = inc.find_files

    def find_files(pattern: str, folder: str) -> inc.Found:
        full = pattern if os.path.isabs(pattern) else os.path.join(folder, pattern)
        alts = inc.brace_expand(full) if "{" in pattern else [full]
        if not all(_inside(alt, root) for alt in alts):
            problem = inc.Problem(inc.Check.MATCH, f"{pattern!r}: outside the sandbox")
            return inc.Found([], [problem])
        return real(pattern, folder)

    inc.find_files = find_files
    try:
        yield
    finally:
        inc.find_files = real


def load(data: bytes) -> tuple[LexResult, LoadResult]:
    """What ``load_text`` does with ``data`` as the sandbox's keepalived.conf."""
    root = sandbox()
    main = os.path.join(root, "keepalived.conf")
    text = data.decode("utf-8", errors="surrogateescape")
    with _confined(root):
        lex = lex_text(text, file=main, config_id="fuzz", random_seed=1)
        res = load_lines(lex.lines, lex_diagnostics=lex.diagnostics, report_braces=False)
    return lex, res


def one_input(data: bytes) -> None:
    lex, res = load(data)
    for d in res.diagnostics:
        where = d.format()
        assert not any(d.message.startswith(c) for c in CATCH_ALLS), where
        assert d.file and d.line >= 1, f"a diagnostic without a file and line: {where}"
        assert d.severity in ("error", "warning"), where
    for line in lex.lines:
        assert line.tokens, "an empty line"
        for tok in line.tokens:
            assert tok.file and tok.line >= 1, f"a token without a file and line: {tok}"


if __name__ == "__main__":
    _common.fuzz(one_input)
