"""Replay the fuzz corpus (tests/fuzz/corpus/<target>/) through each harness's
``one_input``: the seeds, and the ``regress-*``/``found-*`` inputs a fuzz run once
stopped at (tests/fuzz/seeds.py says which is which), must pass on every run, fast
and without atheris (tests/fuzz/_common.py says how the harnesses work;
tests/fuzz/test_fuzz_short.py fuzzes them for a few seconds).

The harnesses compare the compiled twins with the pure ones by importing both, so
in the pure-twin pass they still do (the twins are there, and a disagreement is a
bug whichever pass finds it); the HTTP and config targets then run on the twins the
chooser picked.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator

import pytest

from tests.fuzz._common import CORPUS, TARGETS


@pytest.fixture(autouse=True, scope="module")
def _sandbox_removed() -> Iterator[None]:
    """The config harness's include sandbox goes with this module's tests."""
    yield
    importlib.import_module("tests.fuzz.fuzz_config").close_sandbox()


def test_every_harness_has_a_corpus() -> None:
    harnesses = {p.stem.removeprefix("fuzz_") for p in CORPUS.parent.glob("fuzz_*.py")}
    assert harnesses == set(TARGETS)
    for target in TARGETS:
        assert any((CORPUS / target).glob("seed-*")), f"no seeds for {target}"


@pytest.mark.parametrize("target", TARGETS)
def test_corpus_replays_clean(target: str) -> None:
    harness = importlib.import_module(f"tests.fuzz.fuzz_{target}")
    files = sorted((CORPUS / target).iterdir())
    failures = []
    for path in files:
        try:
            harness.one_input(path.read_bytes())
        except Exception as exc:
            failures.append(f"{path.relative_to(CORPUS)}: {type(exc).__name__}: {exc}")
    assert not failures, "\n".join(failures)


def test_control_nested_json_is_a_plain_error() -> None:
    # found by fuzz_control: json raised RecursionError, which took the logged
    # "control request failed" path with a traceback
    harness = importlib.import_module("tests.fuzz.fuzz_control")
    written, seen, failures = harness._serve(b"[" * 5000 + b"\n")
    assert not failures and not seen
    assert b"nests too deeply" in written


def test_config_includes_stay_in_the_sandbox() -> None:
    harness = importlib.import_module("tests.fuzz.fuzz_config")
    root = harness.sandbox()
    lex, _res = harness.load(b"include /etc/*\ninclude ../*\ninclude {/etc/passwd,sub/one.conf}\n"
                             b"include sub/one.conf\n")
    files = {tok.file for line in lex.lines for tok in line.tokens}
    assert files == {os.path.join(root, "sub", "one.conf")}
    # what the replay test imports must leave the real include resolution in place
    from hafast.config import include

    assert include.find_files.__module__ == "hafast.config.include"


def test_config_harness_bounds_expansions_and_restores_the_lexer() -> None:
    """The config harness's own expansion bound (fuzz_config.FUZZ_EXPANDED_LINES):
    a longer range stops there with the lexer's error; the daemon's bound is back
    after the input."""
    from hafast.config import lexer

    harness = importlib.import_module("tests.fuzz.fuzz_config")
    daemon_bound = lexer.MAX_EXPANDED_LINES
    lex, _res = harness.load(b"~SEQ(N, 1, 3000) weight $N\n")
    assert harness.FUZZ_EXPANDED_LINES < 3_000 < daemon_bound
    assert [d.message for d in lex.diagnostics
            if f"more than {harness.FUZZ_EXPANDED_LINES} lines" in d.message]
    assert len(lex.lines) == harness.FUZZ_EXPANDED_LINES
    assert lexer.MAX_EXPANDED_LINES == daemon_bound
