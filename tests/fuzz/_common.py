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
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"
# one harness tests/fuzz/fuzz_<target>.py and one corpus folder corpus/<target>/ each
# (./dev fuzz keeps its own copy of this list)
TARGETS = ("vrrp", "http", "icmp", "config", "control")
# where a harness makes its scratch folders (the config include sandbox): the run's
# folder, set by runner.run, so they go with it
SANDBOX_ENV = "HAFAST_FUZZ_SANDBOX_DIR"


def running_as_fuzzer(module_name: str) -> bool:
    return module_name == "__main__"


# Where ./dev fuzz put the compiled twins built by clang with -fsanitize=fuzzer-no-link
# (it also LD_PRELOADs one libFuzzer for them and atheris to share).
NATIVE_ENV = "HAFAST_FUZZ_NATIVE"


@contextlib.contextmanager
def instrumented(enabled: bool) -> Iterator[None]:
    """Import the targets with coverage hooks when fuzzing.

    ``hafast``'s Python is instrumented by atheris (bytecode: every branch and
    comparison feeds libFuzzer). The compiled ``_c`` twins give coverage too when
    HAFAST_FUZZ_NATIVE names a folder of them built for libFuzzer (./dev fuzz does
    that when clang is there): they are then imported from it instead of the tree.
    Otherwise they run as built, uninstrumented, still compared on every input with
    their pure twins. Under pytest nothing changes: the rest of the session sees the
    ordinary modules.
    """
    if not enabled:
        yield
        return
    import atheris

    native = os.environ.get(NATIVE_ENV)
    with atheris.instrument_imports(include=["hafast"]):
        if native:
            import hafast._core

            hafast._core.__path__.insert(0, native)
        yield
    if native:
        loaded = [m for name, m in sys.modules.items() if name.startswith("hafast._core.")
                  and name.endswith("_c")]
        stray = [m.__name__ for m in loaded if not str(m.__file__).startswith(native)]
        if stray:
            raise RuntimeError(f"{NATIVE_ENV}={native} but {stray} loaded from elsewhere")
        names = sorted(m.__name__ for m in loaded)
        sys.stderr.write(f"INFO: compiled twins instrumented: {names}\n")


def fuzz(one_input: Callable[[bytes], None]) -> None:
    """Hand ``one_input`` to atheris with the command line's flags and corpus folders."""
    import atheris

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
