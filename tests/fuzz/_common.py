"""What every fuzz harness shares: the atheris entry point and the instrumentation.

A harness is a module ``fuzz_<target>.py`` with ``one_input(data: bytes) -> None``,
which raises only when it found a bug (an exception out of the parser, a broken
contract, two twins that disagree). Run as a script it fuzzes with atheris::

    python tests/fuzz/fuzz_vrrp.py -atheris_runs=100000 build/fuzz/vrrp tests/fuzz/corpus/vrrp

(libFuzzer's flags: ``-max_total_time=S``, ``-runs=N``, ``-artifact_prefix=DIR/``;
new inputs go to the first corpus folder only, so the repository's seed folder
stays as committed when it comes second.) Imported, it is plain Python:
tests/unit/test_fuzz_corpus.py replays the seed corpus through ``one_input``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"
# one harness tests/fuzz/fuzz_<target>.py and one corpus folder corpus/<target>/ each
# (./dev fuzz keeps its own copy of this list)
TARGETS = ("vrrp", "http", "icmp", "config", "control")


def running_as_fuzzer(module_name: str) -> bool:
    return module_name == "__main__"


@contextlib.contextmanager
def instrumented(enabled: bool) -> Iterator[None]:
    """Import the targets with atheris's coverage hooks when fuzzing.

    Only ``hafast`` is instrumented (Python bytecode: every branch and comparison
    feeds libFuzzer). The compiled ``_c`` twins are plain extension modules: their
    branches give no coverage, but each is compared on every input with its pure
    twin, whose branches do, and which implements the same checks.
    Under pytest the modules import unchanged, so the rest of the session sees
    the ordinary code.
    """
    if not enabled:
        yield
        return
    import atheris

    with atheris.instrument_imports(include=["hafast"]):
        yield


def fuzz(one_input: Callable[[bytes], None]) -> None:
    """Hand ``one_input`` to atheris with the command line's flags and corpus folders."""
    import atheris

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
