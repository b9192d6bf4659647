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
import functools
import importlib.util
import os
import pwd
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fuzz import _common

with _common.instrumented(_common.running_as_fuzzer(__name__)):
    from hafast.config import include as inc
    from hafast.config import lexer
    from hafast.config.lexer import lex_text
    from hafast.config.loader import LoadResult, load_lines
    from hafast.config.tokens import LexResult
    from hafast.lib import scriptuser

# The lexer's bound on lines made by expansions, for this harness: 1,000 instead of
# the daemon's 5,000,000.  Runs soon mutate the seeds' ~SEQ blocks into ranges of
# 100,000+ lines (one of 280,114 took a minute under atheris, and a run that met
# such inputs fell to 10 inputs/s).  With 20,000, 53 of a 10-minute run's 2,118
# corpus inputs still made 20,000-50,000 statements each (3 s apiece without
# atheris) and took 60% of the corpus's time.  Past a few lines an expansion
# reaches no code a longer one does not (the seeds themselves are under 100
# lines), and the bound's own error is still reached (issue 17).
FUZZ_EXPANDED_LINES = 1_000
INCLUDES = _common.REPO / "tests" / "unit" / "config" / "golden" / "lexer" / "include"
CATCH_ALLS = ("internal lexer error", "internal loader error", "configuration nests too deeply")

_sandbox: str | None = None


def sandbox() -> str:
    """The include sandbox, made on first use and removed at exit."""
    global _sandbox
    if _sandbox is None:
        import atexit

        # in the runner's folder when it names one (_common.SANDBOX_ENV): a libFuzzer process
        # ends by exit() from C, past the atexit handler, and left one in /tmp per run
        folder = tempfile.mkdtemp(prefix="hafast-fuzz-config-",
                                  dir=os.environ.get(_common.SANDBOX_ENV) or None)
        atexit.register(shutil.rmtree, folder, True)
        shutil.copytree(INCLUDES, folder, dirs_exist_ok=True)
        _sandbox = os.path.realpath(folder)
    return _sandbox


def close_sandbox() -> None:
    """Remove the sandbox now (the corpus replay under pytest: an xdist worker can end
    without running atexit handlers, and left one in /tmp per worker)."""
    global _sandbox
    if _sandbox is not None:
        shutil.rmtree(_sandbox, ignore_errors=True)
        _sandbox = None


def _inside(alt: str, root: str) -> bool:
    if ".." in alt.split(os.sep):
        return False
    norm = os.path.normpath(alt)
    return norm == root or norm.startswith(root + os.sep)


@functools.cache
def _plain_brace_expand() -> Callable[[str], list[str]]:
    """``include.brace_expand`` loaded a second time, outside atheris's hooks.

    The sandbox expands each pattern before the real ``find_files`` expands it
    again; instrumented, that first copy cost about 5% of each input (brace_expand
    made a quarter of all branch hooks in a profiled run) and only fed libFuzzer
    the same coverage twice."""
    spec = importlib.util.spec_from_file_location("_fuzz_plain_include", inc.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module.brace_expand


@functools.lru_cache(maxsize=1 << 14)
def _allowed(pattern: str, folder: str, root: str) -> bool:
    """Whether every file ``include pattern`` (in ``folder``) may name is in ``root``
    (fuzzed configs repeat their include lines: each is judged once)."""
    full = pattern if os.path.isabs(pattern) else os.path.join(folder, pattern)
    try:
        alts = _plain_brace_expand()(full) if "{" in pattern else [full]
    except ValueError:  # its copy of TooManyAlternatives: find_files reports it
        return True
    return all(_inside(alt, root) for alt in alts)


@functools.lru_cache(maxsize=1024)
def _passwd_entry(name: str) -> Any:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _getpwnam(name: str) -> Any:
    """``pwd.getpwnam`` remembered for the run: every load asks whether
    ``keepalived_script`` exists (the default script user), and the answer, usually
    no, costs a scan of /etc/passwd each time (2% of each input here)."""
    entry = _passwd_entry(name)
    if entry is None:
        raise KeyError(f"getpwnam(): name not found: {name!r}")
    return entry


@contextlib.contextmanager
def _confined(root: str) -> Iterator[None]:
    """``include`` sees only ``root`` (restored after each input: the replay test
    imports this module into the same session as the lexer's own tests)."""
    real = inc.find_files
    real_pwd = scriptuser.pwd

    def find_files(pattern: str, folder: str) -> inc.Found:
        if not _allowed(pattern, folder, root):
            problem = inc.Problem(inc.Check.MATCH, f"{pattern!r}: outside the sandbox")
            return inc.Found([], [problem])
        return real(pattern, folder)

    inc.find_files = find_files
    scriptuser.pwd = SimpleNamespace(getpwnam=_getpwnam)  # type: ignore[assignment]
    try:
        yield
    finally:
        inc.find_files = real
        scriptuser.pwd = real_pwd


@contextlib.contextmanager
def _bounded() -> Iterator[None]:
    """The harness's expansion bound (restored after each input, as ``_confined``)."""
    real = lexer.MAX_EXPANDED_LINES
    lexer.MAX_EXPANDED_LINES = FUZZ_EXPANDED_LINES
    try:
        yield
    finally:
        lexer.MAX_EXPANDED_LINES = real


def load(data: bytes) -> tuple[LexResult, LoadResult]:
    """What ``load_text`` does with ``data`` as the sandbox's keepalived.conf."""
    root = sandbox()
    main = os.path.join(root, "keepalived.conf")
    text = data.decode("utf-8", errors="surrogateescape")
    with _confined(root), _bounded():
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
