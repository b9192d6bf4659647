"""The IPVS VM run, started in the background as soon as pytest has collected it.

Booting the VM and running tests/ipvs inside it is the suite's longest step (eight to
ten minutes of one core under TCG), and nearly all of it is the guest's own CPU,
while the netns tests beside it mostly wait on VRRP timers.  Started when collection
ends (tests/conftest.py), it overlaps them instead of adding to the wall time;
test_ipvs_vm_boot judges the result when its turn comes, waiting if it must.
HAFAST_VM_SERIAL=1 runs it in its turn instead (for a quiet machine's timings).

Under pytest-xdist (``./dev test`` runs the suite on several workers) no worker knows,
when collection ends, whether the VM test will come to it; the controller starts the
run instead (:func:`start_in_controller`), writes its outcome to ``done.json`` in the
folder named by ``$HAFAST_VM_JOB_DIR`` (set before the workers start, so they inherit
it), and the worker that draws the test reads it there (:class:`FileJob`).

``./dev test`` goes one step further: it starts the run itself, before its lint, as
``python -m tests.netns.ipvs_vm_job FOLDER`` (:func:`main`), and exports
``HAFAST_VM_JOB_DIR=FOLDER``; pytest then finds the folder named and starts nothing.

The run happens in a thread: the set-up and qemu are subprocesses, so the thread only
waits.  qemu dies with that thread (PR_SET_PDEATHSIG in hafast.lab.ipvs_vm), so an
interrupted session leaves no guest behind.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hafast.lab.ipvs_vm import IpvsVM, VMError, VMResult, VMSetupError
from hafast.lab.proctree import process_tree

# The run took 1,247-1,257 s in the fresh-clone CI runs before the SNMP checker MIB's
# side-by-side test (about 100 s) joined it, and test_fleet_maglev alone went from about
# 205 to 347 s in one run (the cause not found yet): 1,500 s was overrun once (2026-12-07).
VM_RUN_TIMEOUT_S = 1800.0
# The run is the longest thing in the suite's parallel part: with the namespace tests
# on three xdist workers beside it at equal priority it took 16 minutes instead of 9.
# Their daemons mostly wait; the guest's one vCPU always wants a core.
VM_NICE = -5
JOB_DIR_ENV = "HAFAST_VM_JOB_DIR"  # the controller's hand-over folder, under xdist
DONE = "done.json"


@dataclass
class VMJob:
    """One boot of the IPVS VM running ``pytest tests/ipvs``; ``wait()`` for its end."""

    checkout: Path
    results: Path
    started: float = field(default_factory=time.monotonic)
    setup_seconds: float = 0.0
    kernel: str = ""
    result: VMResult | None = None
    error: BaseException | None = None
    publish: bool = False  # also write the outcome to results/done.json
    _done: threading.Event = field(default_factory=threading.Event)

    @property
    def junit(self) -> Path:
        return self.results / "ipvs.xml"

    def start(self) -> VMJob:
        threading.Thread(target=self._run, name="ipvs-vm", daemon=True).start()
        return self

    def _run(self) -> None:
        try:
            vm = IpvsVM(checkout=self.checkout)
            info = vm.setup()
            self.setup_seconds, self.kernel = info.seconds, info.kernel.version
            cmd = [sys.executable, "-m", "pytest", "tests/ipvs", "-p", "no:cacheprovider",
                   f"--junitxml={self.junit}", "-q"]
            self.result = vm.run(cmd, timeout=VM_RUN_TIMEOUT_S, results_dir=self.results,
                                 nice=VM_NICE)
        except BaseException as exc:  # handed to the test, which reports it
            self.error = exc
        finally:
            if self.publish:
                self._write_done()
            self._done.set()

    def _write_done(self) -> None:
        error = None
        if self.error is not None:
            error = {"setup": isinstance(self.error, VMSetupError),
                     "vm": isinstance(self.error, (VMError, TimeoutError)),
                     "message": f"{type(self.error).__name__}: {self.error}"}
        outcome = {"started": self.started, "setup_seconds": self.setup_seconds,
                   "kernel": self.kernel, "error": error,
                   "result": None if self.result is None else
                   {k: str(v) if isinstance(v, Path) else v
                    for k, v in asdict(self.result).items()}}
        tmp = self.results / (DONE + ".tmp")
        tmp.write_text(json.dumps(outcome))
        tmp.replace(self.results / DONE)  # whole or absent for the reader

    def wait(self, timeout: float) -> VMResult:
        """The run's result; its exception re-raised; TimeoutError past ``timeout``."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"IPVS VM run still going after {timeout:.0f} s more")
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


@dataclass
class FileJob:
    """The controller's run as a worker sees it: :meth:`wait` reads ``done.json``."""

    results: Path
    started: float = field(default_factory=time.monotonic)
    setup_seconds: float = 0.0
    kernel: str = ""

    @property
    def junit(self) -> Path:
        return self.results / "ipvs.xml"

    def wait(self, timeout: float) -> VMResult:
        done = self.results / DONE
        deadline = time.monotonic() + timeout
        while not done.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"IPVS VM run still going after {timeout:.0f} s more")
            time.sleep(1.0)
        outcome = json.loads(done.read_text())
        # CLOCK_MONOTONIC is one clock for every process on the machine.
        self.started = outcome["started"]
        self.setup_seconds, self.kernel = outcome["setup_seconds"], outcome["kernel"]
        if (error := outcome["error"]) is not None:
            cls = VMSetupError if error["setup"] else VMError if error["vm"] else RuntimeError
            raise cls(f"(in the xdist controller) {error['message']}")
        res = dict(outcome["result"])
        for key in ("console_log_path", "results_dir", "output_path"):
            res[key] = Path(res[key])
        return VMResult(**res)


_job: VMJob | FileJob | None = None


def start_early(checkout: Path, results: Path) -> None:
    """Start the run now (once per session), unless HAFAST_VM_SERIAL asks otherwise or
    this is an xdist worker (the controller runs it: :func:`start_in_controller`)."""
    global _job
    if (_job is None and os.environ.get("HAFAST_VM_SERIAL", "") in ("", "0")
            and not os.environ.get(JOB_DIR_ENV)):
        _job = VMJob(checkout, results).start()


def start_in_controller(checkout: Path) -> None:
    """Under xdist: start the run in the controller (once), publishing to the hand-over
    folder; nothing when the environment names none (HAFAST_VM_SERIAL, or no xdist)."""
    global _job
    folder = os.environ.get(JOB_DIR_ENV)
    if _job is None and folder:
        _job = VMJob(checkout, Path(folder), publish=True).start()


def job(checkout: Path, results: Path) -> VMJob | FileJob:
    """The run started early, the controller's run (an xdist worker), or one started now
    (a serial run, or the test run alone)."""
    global _job
    if _job is None:
        folder = os.environ.get(JOB_DIR_ENV)
        _job = FileJob(Path(folder)) if folder else VMJob(checkout, results).start()
    return _job


BACKGROUND_NICE = 19


def to_background(root: int) -> int:
    """Every thread of every descendant of ``root`` (qemu and its I/O threads) to
    niceness :data:`BACKGROUND_NICE`; returns how many threads were changed."""
    changed = 0
    for pid in process_tree(root)[1:]:  # the root is the caller: only what it started
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in tids:
            try:
                os.setpriority(os.PRIO_PROCESS, tid, BACKGROUND_NICE)
                changed += 1
            except OSError:
                pass
    return changed


def main(argv: list[str]) -> int:
    """``python -m tests.netns.ipvs_vm_job FOLDER``: run the VM now, in the foreground,
    publishing to FOLDER (the test reads ``FOLDER/done.json``).  SIGUSR1 moves the
    guest to the background (:func:`to_background`): ./dev test sends it before the
    tests that time takeovers and respawns."""
    if len(argv) != 1:
        print("usage: python -m tests.netns.ipvs_vm_job FOLDER", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    folder.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGUSR1, lambda signum, frame: print(
        f"ipvs_vm_job: {to_background(os.getpid())} threads to niceness {BACKGROUND_NICE}",
        file=sys.stderr, flush=True))
    run = VMJob(Path(__file__).resolve().parents[2], folder, publish=True).start()
    run.wait(timeout=VM_RUN_TIMEOUT_S + 900)  # its outcome is in done.json either way
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
