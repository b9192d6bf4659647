"""Boot the IPVS VM on the host and run tests/ipvs inside it (one boot for all).

The host kernel has no IPVS; hafast.lab.ipvs_vm boots Debian's stock kernel under
qemu (TCG) over the host's read-only root and runs
``python -m pytest tests/ipvs --junitxml=<results>/ipvs.xml`` there. This test then
reads the junit file on the host and fails when the VM did not boot, when any test
inside failed, or when nothing ran. A missing prerequisite (root, a set-up that could
not install packages or fetch the kernel) skips locally and fails when CI=true; a VM
that was set up but did not boot or finish always fails.

The first tests below check the harness's pure helpers without booting anything.
To see the costs by hand::

    .venv/bin/python -m hafast.lab.ipvs_vm setup
    .venv/bin/python -m pytest tests/netns/test_ipvs_vm_boot.py -s
"""

from __future__ import annotations

import contextlib
import lzma
import os
import struct
import time
from pathlib import Path

import pytest

from hafast.lab.ipvs_vm import (
    VMError,
    VMResult,
    VMSetupError,
    extract_vmlinux,
    junit_counts,
    junit_slowest,
    module_load_order,
    newc_archive,
)
from tests.conftest import REPO, require, require_root
from tests.netns import ipvs_vm_job

# -- pure helpers (no VM) ------------------------------------------------------

def _parse_newc(blob: bytes) -> list[tuple[str, int, bytes]]:
    out: list[tuple[str, int, bytes]] = []
    pos = 0
    while True:
        assert blob[pos:pos + 6] == b"070701"
        fields = [int(blob[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        pos += 110
        name = blob[pos:pos + namesize - 1].decode()
        pos += namesize + (-(110 + namesize) % 4)
        data = blob[pos:pos + size]
        pos += size + (-size % 4)
        if name == "TRAILER!!!":
            return out
        out.append((name, mode, data))


def test_newc_archive_round_trips() -> None:
    entries = [("bin", 0o040755, b""), ("bin/sh", 0o120777, b"busybox"),
               ("init", 0o100755, b"#!/bin/sh\necho hi\n"), ("odd", 0o100644, b"x" * 5)]
    blob = newc_archive(entries)
    assert len(blob) % 512 == 0
    assert _parse_newc(blob) == entries
    assert newc_archive(entries) == blob  # no timestamps: same input, same bytes


def test_extract_vmlinux_follows_the_boot_header() -> None:
    elf = b"\x7fELF" + bytes(range(256)) * 64
    payload = lzma.compress(elf, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    setup_sects = 3
    header = bytearray((setup_sects + 1) * 512)
    header[0x1F1] = setup_sects
    header[0x202:0x206] = b"HdrS"
    # A decoy xz magic before the real payload: the header, not the search, wins.
    pm_code = bytearray(b"\xfd7zXZ\x00 decoy" + bytes(100))
    struct.pack_into("<I", header, 0x248, len(pm_code))
    image = bytes(header) + bytes(pm_code) + payload + b"\0" * 16
    assert extract_vmlinux(image) == elf


def test_extract_vmlinux_rejects_a_non_kernel() -> None:
    with pytest.raises(VMError):
        extract_vmlinux(b"MZ" + bytes(4096))


def test_junit_counts_sums_the_suites(tmp_path: Path) -> None:
    xml = tmp_path / "j.xml"
    xml.write_text('<testsuites><testsuite tests="3" failures="1" errors="0" skipped="1"/>'
                   '<testsuite tests="2" errors="1"/></testsuites>')
    assert junit_counts(xml) == {"tests": 5, "failures": 1, "errors": 1, "skipped": 1}


def test_junit_slowest_names_the_longest_cases(tmp_path: Path) -> None:
    xml = tmp_path / "j.xml"
    xml.write_text('<testsuites><testsuite tests="3">'
                   '<testcase classname="tests.ipvs.test_a" name="test_x" time="1.5"/>'
                   '<testcase classname="tests.ipvs.test_b" name="test_y[p]" time="90.25"/>'
                   '<testcase classname="tests.ipvs.test_a" name="test_z" time="3"/>'
                   '</testsuite></testsuites>')
    assert junit_slowest(xml, 2) == [("tests/ipvs/test_b.py::test_y[p]", 90.25),
                                     ("tests/ipvs/test_a.py::test_z", 3.0)]


def test_module_load_order_puts_dependencies_first(tmp_path: Path) -> None:
    (tmp_path / "modules.dep").write_text(
        "kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/netfs/netfs.ko\n"
        "kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko\n"
        "kernel/net/9p/9pnet.ko:\n"
        "kernel/fs/netfs/netfs.ko:\n"
        "kernel/fs/overlayfs/overlay.ko:\n")
    (tmp_path / "modules.builtin").write_text("kernel/drivers/virtio/virtio_pci.ko\n")
    order = module_load_order(tmp_path, ["virtio_pci", "9pnet_virtio", "9p", "overlay"])
    assert order == ["kernel/net/9p/9pnet.ko", "kernel/net/9p/9pnet_virtio.ko",
                     "kernel/fs/netfs/netfs.ko", "kernel/fs/9p/9p.ko",
                     "kernel/fs/overlayfs/overlay.ko"]
    with pytest.raises(VMError):
        module_load_order(tmp_path, ["ip_vs"])


def test_the_controllers_outcome_reaches_the_worker(tmp_path: Path) -> None:
    """Under xdist the controller runs the VM and a worker reads the outcome from the
    hand-over folder (tests/netns/ipvs_vm_job.py): the same VMResult, or the same kind
    of error (a set-up failure must still skip locally)."""
    res = VMResult(returncode=0, console_log_path=tmp_path / "console.log",
                   results_dir=tmp_path, boot_seconds=1.5, output_path=tmp_path / "out",
                   total_seconds=9.0, qemu_peak_rss_kib=4096)
    done = ipvs_vm_job.VMJob(REPO, tmp_path, kernel="6.1", setup_seconds=2.0, result=res)
    done._write_done()
    seen = ipvs_vm_job.FileJob(tmp_path)
    assert seen.wait(timeout=1) == res
    assert (seen.kernel, seen.setup_seconds, seen.started) == ("6.1", 2.0, done.started)

    failed = ipvs_vm_job.VMJob(REPO, tmp_path, error=VMSetupError("no kernel package"))
    failed._write_done()
    with pytest.raises(VMSetupError, match="no kernel package"):
        ipvs_vm_job.FileJob(tmp_path).wait(timeout=1)
    (tmp_path / ipvs_vm_job.DONE).unlink()
    with pytest.raises(TimeoutError):
        ipvs_vm_job.FileJob(tmp_path).wait(timeout=0)


def test_to_background_renices_every_descendant_thread_but_not_the_root() -> None:
    """./dev test's SIGUSR1 to the early VM job: qemu (a child) and its threads go to
    niceness 19 so the serial tests' timings come first; here a shell and its child."""
    import subprocess

    def nice_of(pid: int) -> int:
        text = Path(f"/proc/{pid}/stat").read_text()
        return int(text[text.rindex(")") + 2:].split()[16])

    sh = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"])
    try:
        deadline = time.monotonic() + 5
        kids: list[int] = []
        while len(kids) < 2 and time.monotonic() < deadline:
            kids = [int(p) for p in Path(f"/proc/{sh.pid}/task/{sh.pid}/children")
                    .read_text().split()]
            time.sleep(0.02)
        assert len(kids) == 2
        assert ipvs_vm_job.to_background(sh.pid) == 2
        assert [nice_of(k) for k in kids] == [ipvs_vm_job.BACKGROUND_NICE] * 2
        assert nice_of(sh.pid) == nice_of(os.getpid())  # the root keeps its own
    finally:
        for k in kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(k, 9)
        sh.wait(timeout=10)


# -- the real VM ---------------------------------------------------------------

@pytest.fixture(scope="module")
def ipvs_vm_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[VMResult, Path]:
    require_root()
    # Usually started when collection ended (tests/netns/ipvs_vm_job.py) and running
    # beside the tests before this one; otherwise started now.
    vm = ipvs_vm_job.job(REPO, tmp_path_factory.mktemp("ipvs-vm"))
    waited = time.monotonic()
    try:
        res = vm.wait(timeout=ipvs_vm_job.VM_RUN_TIMEOUT_S + 600)
    except VMSetupError as exc:
        require(False, f"IPVS VM set-up failed: {exc}")
        raise
    except (VMError, TimeoutError) as exc:
        pytest.fail(f"IPVS VM did not boot or finish: {exc}")
    print(f"\nipvs-vm: kernel {vm.kernel}; set-up {vm.setup_seconds:.1f} s; "
          f"boot-to-command {res.boot_seconds:.1f} s; VM total {res.total_seconds:.1f} s; "
          f"with set-up {time.monotonic() - vm.started:.1f} s, of which this test waited "
          f"{time.monotonic() - waited:.1f} s; "
          f"qemu peak RSS {res.qemu_peak_rss_kib // 1024} MiB; results {res.results_dir}")
    return res, vm.junit


@pytest.mark.root
@pytest.mark.timeout(ipvs_vm_job.VM_RUN_TIMEOUT_S + 900)
def test_ipvs_tests_pass_inside_the_vm(ipvs_vm_run: tuple[VMResult, Path]) -> None:
    res, junit = ipvs_vm_run
    output = res.output_path.read_text(errors="replace") if res.output_path.exists() else ""
    assert junit.exists(), (
        f"the VM ran (exit {res.returncode}) but wrote no {junit.name}:\n{output[-4000:]}")
    counts = junit_counts(junit)
    print("ipvs-vm: slowest inside the VM: " + "; ".join(
        f"{name} {secs:.0f} s" for name, secs in junit_slowest(junit)))
    ran = counts["tests"] - counts["skipped"]
    assert ran > 0, f"nothing ran inside the VM: {counts}\n{output[-4000:]}"
    assert counts["failures"] == 0 and counts["errors"] == 0, (
        f"tests failed inside the VM: {counts}\n{output[-8000:]}")
    assert res.returncode == 0, f"pytest in the VM exited {res.returncode}:\n{output[-4000:]}"
