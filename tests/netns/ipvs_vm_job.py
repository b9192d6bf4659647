"""The IPVS VM run, started in the background as soon as pytest has collected it.

Booting the VM and running tests/ipvs inside it is the suite's longest step (eight to
ten minutes of one core under TCG), and nearly all of it is the guest's own CPU,
while the netns tests beside it mostly wait on VRRP timers.  Started when collection
ends (tests/conftest.py), it overlaps them instead of adding to the wall time;
test_ipvs_vm_boot judges the result when its turn comes, waiting if it must.
HAFAST_VM_SERIAL=1 runs it in its turn instead (for a quiet machine's timings).

The run happens in a thread: the set-up and qemu are subprocesses, so the thread only
waits.  qemu dies with that thread (PR_SET_PDEATHSIG in hafast.lab.ipvs_vm), so an
interrupted session leaves no guest behind.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from hafast.lab.ipvs_vm import IpvsVM, VMResult

VM_RUN_TIMEOUT_S = 1500.0


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
            self.result = vm.run(cmd, timeout=VM_RUN_TIMEOUT_S, results_dir=self.results)
        except BaseException as exc:  # handed to the test, which reports it
            self.error = exc
        finally:
            self._done.set()

    def wait(self, timeout: float) -> VMResult:
        """The run's result; its exception re-raised; TimeoutError past ``timeout``."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"IPVS VM run still going after {timeout:.0f} s more")
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


_job: VMJob | None = None


def start_early(checkout: Path, results: Path) -> None:
    """Start the run now (once per session), unless HAFAST_VM_SERIAL asks otherwise."""
    global _job
    if _job is None and os.environ.get("HAFAST_VM_SERIAL", "") in ("", "0"):
        _job = VMJob(checkout, results).start()


def job(checkout: Path, results: Path) -> VMJob:
    """The run started early, or one started now (a serial run, or the test run alone)."""
    global _job
    if _job is None:
        _job = VMJob(checkout, results).start()
    return _job
