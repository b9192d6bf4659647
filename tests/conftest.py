"""Shared test policy.

When ``CI=true`` a missing prerequisite (root, a Debian package, the compiled
core) fails the test instead of skipping it: CI must never pass by skipping.
"""

from __future__ import annotations

import difflib
import importlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Generator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
REPO = Path(__file__).resolve().parent.parent
# Everything the tests read lives in the repository: a clone in any folder runs it all.
TESTS = REPO / "tests"
# Debian keepalived 2.2.7's adverts, captured by tests/vectors/capture.py (see the README there).
VECTORS = TESTS / "vectors" / "keepalived-2.2.7"
# keepalived 2.2.7's configuration keywords, one a line (see the file's header).
KEEPALIVED_KEYWORDS = TESTS / "data" / "keepalived-keywords.txt"
# The reference genhash is Debian keepalived's, by path: hafast installs a `genhash`
# console script too, and an activated venv must not make a test compare us with us.
KEEPALIVED_GENHASH = "/usr/bin/genhash"

# tests/ipvs runs inside the IPVS VM (tests/netns/test_ipvs_vm_boot.py boots it and
# judges the result); on the host, where the kernel has no IPVS, it is not collected.
IN_VM = os.environ.get("HAFAST_IN_VM") == "1"
collect_ignore = [] if IN_VM else ["ipvs"]


def require(condition: object, reason: str) -> None:
    """Skip locally, fail in CI, when a prerequisite is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"prerequisite missing in CI (CI=true forbids skipping): {reason}")
    pytest.skip(reason)


def require_root() -> None:
    require(os.geteuid() == 0, "needs root (network namespaces, raw sockets)")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    require(path, f"needs the program {name!r} (see the README's setup)")
    assert path is not None
    return path


def keepalived_t(path: Path | str) -> tuple[int, str]:
    """Debian's ``keepalived -t -f PATH``: its exit code and everything it printed."""
    proc = subprocess.run([require_tool("keepalived"), "-t", "-f", str(path)],
                          capture_output=True, text=True, timeout=30, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def load_twin(name: str, flavour: str) -> ModuleType:
    """Import ``hafast._core.<name>_<flavour>``; the compiled one must load in CI."""
    modname = f"hafast._core.{name}_{flavour}"
    if flavour == "py":
        return importlib.import_module(modname)
    if pure_pass():
        # The pure-twin pass of ./dev test: the compiled flavour ran (and had to load,
        # in CI) in the compiled pass, so here it is deliberately not under test.
        pytest.skip("HAFAST_NO_EXTENSIONS is set: the compiled twin is tested in the other pass")
    try:
        return importlib.import_module(modname)
    except ImportError as exc:
        require(False, f"compiled module {modname} did not load: {exc}")
        raise


@pytest.fixture(params=["c", "py"])
def twin_flavour(request: pytest.FixtureRequest) -> str:
    """Parametrise a test over the compiled module and its pure-Python twin."""
    flavour: str = request.param
    return flavour


def pure_pass() -> bool:
    return os.environ.get("HAFAST_NO_EXTENSIONS", "") not in ("", "0")


# Tests that time a VRRP worker's respawn or a takeover against a peer, and the one that
# boots a second VM: they run at the end of the session, when the IPVS VM's background
# run (tests/netns/ipvs_vm_job.py: one core busy for 8-10 minutes) is long over.  Next
# to it a respawn on this 2-core machine took 1.3 s instead of 0.4 and the guard
# rightly gave the VIP away (test_daemon_pair failed so in a CI run), and two guests
# at once slowed both.
RUN_LAST = (
    "tests/netns/test_daemon_pair.py",
    "tests/netns/test_never_two_masters.py",
    "tests/netns/test_chaos_workers.py",
    "tests/netns/test_startup_delay_guard.py",
    "tests/netns/test_daemon_vrrp_reload.py",
    "tests/netns/test_hostile_vrrp.py",
    "tests/netns/test_bench_smoke.py::test_vm_section_times_ipvs_removal_for_both_peers",
    "tests/netns/test_fleet_demo.py",
)


@pytest.hookimpl(tryfirst=True)  # before -m reads the markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The pure-twin pass of ./dev test leaves out what only tests the compiled twin
    (it ran, and had to load in CI, in the compiled pass): deselected, not skipped,
    so that a skip always means a missing prerequisite.  :data:`RUN_LAST` goes last
    (a stable sort: each keeps its order) and is marked ``serial``: ./dev test runs
    the rest on several xdist workers (``-m "not serial"``), then these alone."""
    items.sort(key=lambda item: item.nodeid.startswith(RUN_LAST))
    for item in items:
        if item.nodeid.startswith(RUN_LAST):
            item.add_marker(pytest.mark.serial)
    if not pure_pass():
        return
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        compiled = params.get("twin_flavour") == "c" or item.get_closest_marker("compiled")
        (drop if compiled else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


VM_TEST = "tests/netns/test_ipvs_vm_boot.py::test_ipvs_tests_pass_inside_the_vm"


def _xdist_controller(config: pytest.Config) -> bool:
    return (os.environ.get("PYTEST_XDIST_WORKER") is None
            and (config.getoption("numprocesses", None) or 0) > 0)


def pytest_configure(config: pytest.Config) -> None:
    """Under xdist the controller runs the IPVS VM (tests/netns/ipvs_vm_job.py says
    why); the hand-over folder is named now, before the workers start and inherit it."""
    from tests.netns import ipvs_vm_job

    if os.environ.get(ipvs_vm_job.JOB_DIR_ENV):
        return  # ./dev test started the run before its lint; the test reads it there
    if (_xdist_controller(config) and os.geteuid() == 0
            and os.environ.get("HAFAST_VM_SERIAL", "") in ("", "0")):
        folder = tempfile.mkdtemp(prefix="hafast-ipvs-vm-")
        os.environ[ipvs_vm_job.JOB_DIR_ENV] = folder
        config.stash[_VM_IN_CONTROLLER] = True
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


_VM_IN_CONTROLLER = pytest.StashKey[bool]()


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook, called in the controller
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    if VM_TEST in ids and node.config.stash.get(_VM_IN_CONTROLLER, False):
        from tests.netns import ipvs_vm_job

        ipvs_vm_job.start_in_controller(REPO)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the IPVS VM run as soon as it is known to be wanted, so that it overlaps
    the tests collected before it (tests/netns/ipvs_vm_job.py says why)."""
    if os.geteuid() != 0 or not any(item.nodeid == VM_TEST for item in session.items):
        return  # the test itself reports a missing prerequisite, in its turn
    from tests.netns import ipvs_vm_job

    factory: pytest.TempPathFactory = session.config._tmp_path_factory  # type: ignore[attr-defined]
    ipvs_vm_job.start_early(REPO, factory.mktemp("ipvs-vm"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen",
        action="store_true",
        help="rewrite golden files from the current output (then review `git diff`)",
    )


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[Path, str], None]:
    """``golden(path, got)``: ``got`` must equal the golden file ``path``.

    Only an explicit ``--regen`` writes golden files: otherwise a difference (or a
    missing file) fails with a unified diff, so a changed output can never slip into
    the repository by just running the tests.
    """
    regen = bool(request.config.getoption("--regen"))

    def compare(path: Path, got: str) -> None:
        if regen:
            if not path.exists() or path.read_text() != got:
                path.write_text(got)
            return
        if not path.exists():
            pytest.fail(f"golden file {path} is missing: run pytest with --regen to create it")
        expected = path.read_text()
        if got != expected:
            diff = "".join(
                difflib.unified_diff(
                    expected.splitlines(keepends=True),
                    got.splitlines(keepends=True),
                    fromfile=str(path),
                    tofile="got",
                )
            )
            pytest.fail(
                f"output differs from golden file {path} "
                f"(if the change is deliberate: pytest --regen, then review git diff):\n{diff}",
                pytrace=False,
            )

    return compare


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    # Repository data, not a prerequisite: missing means a broken checkout, never a skip.
    if not VECTORS.is_dir():
        pytest.fail(f"keepalived captures missing from the repository: {VECTORS}")
    return VECTORS


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter,
) -> Generator[None, None, None]:
    """Outside CI a skip is allowed but never quiet: after pytest's own short summary
    (this wrapper is the outermost), one loud line says how many tests were skipped."""
    result = yield
    skipped = len(terminalreporter.stats.get("skipped", []))
    if skipped and not IN_CI:
        terminalreporter.write_sep(
            "!",
            f"hafast: {skipped} tests SKIPPED "
            "(set CI=true to make a missing prerequisite an error)",
            yellow=True,
            bold=True,
        )
    return result


@pytest.fixture
def programs_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    """For tests whose configs name programs only as labels (``/bin/down``, a notify.sh
    this machine does not have): the load-time script check finds nothing to say about
    any program, so the scripts stay in the model as on a machine that has them.  Like
    keepalived 2.2.7, the real check drops a missing program at load
    (hafast.config.scriptcheck; tested in tests/unit/test_scriptsecurity.py and
    tests/unit/config/test_script_missing_keepalived.py)."""
    from hafast.config import scriptcheck
    from hafast.lib.scriptsecurity import Sc, ScriptCheck

    def check(program: str, uid: int, gid: int, *, security: bool,
              search: str | None = None) -> ScriptCheck:
        return ScriptCheck(Sc.EXECUTABLE, program)

    monkeypatch.setattr(scriptcheck, "check_script", check)
