"""Run a command under a real IPVS kernel: Debian's stock kernel in qemu (TCG).

The host kernel is built without IPVS, so the IPVS tests (tests/ipvs) run inside a
small VM that boots Debian's ``linux-image-amd64`` kernel and sees the host's own root
filesystem, Python and venv included. /work/shared/IPVS-VM.md has the measurements
behind every choice made here.

How it works
------------
``IpvsVM.setup()`` (idempotent, cached in ``cache_dir``, serialised by a file lock):

1. installs the Debian packages in ``APT_PACKAGES`` that are missing (``apt-get
   update`` once, then ``apt-get install --no-install-recommends``);
2. resolves the kernel package that ``linux-image-amd64`` depends on today (no ABI
   version is pinned: old ones leave the mirror), ``apt-get download``s it and
   ``dpkg-deb -x``s it into ``cache_dir/kernel-<version>/``, then runs ``depmod -b``.
   The kernel is never installed on the host;
3. pulls the ELF ``vmlinux`` out of the bzImage (its payload is xz; Python's lzma
   decodes it). qemu boots an ELF kernel through its PVH entry, which skips the
   real-mode set-up and the in-guest decompression: about 4.5 s less per boot under TCG;
4. writes a tiny initramfs (newc cpio, uncompressed): static busybox, the 9p, virtio
   and overlay modules with their dependencies, and ``ipvs_vm_init.sh`` as ``/init``.

``IpvsVM.run(cmd, timeout, env)`` boots qemu with ``-accel tcg`` (KVM here is PVM and
boots only PVM guests) and these 9p shares:

- ``hafastroot``: the host's ``/``, read-only; the guest lays a tmpfs overlay on top,
  so it can write anywhere without touching the host;
- ``hafastctl``: the results folder, writable, at the same path as on the host. Its
  ``.hafast-vm/`` subfolder carries the run: ``command.sh`` (environment + command),
  ``stage2.sh`` (``ipvs_vm_stage2.sh``), and back from the guest ``exitcode``. The
  command's stdout+stderr go to ``command.log``, the console to ``console.log`` and
  qemu's own messages to ``qemu.stderr``, all in the results folder;
- ``hafast1``...: extra shares, by default the checkout (the repository holding this
  file, so a fresh CI clone in another folder works), writable, at the same path.

Stage 1 (initramfs) mounts all that and ``switch_root``s into the overlay (not chroot:
the kernel's module autoloader runs in PID 1's root, so ``ip_vs_rr`` would not load).
It also mounts a tmpfs on /run (so "ip netns" sees only the guest's namespaces) and
binds the guest kernel's modules from the cache folder onto ``/lib/modules/<version>``;
/tmp stays the overlay (the host's files visible, writes private to the guest).
Stage 2 mounts /proc, /sys, /dev/pts and /dev/shm, brings ``lo`` up, ``modprobe
ip_vs`` (its generic-netlink family does not autoload), runs the command under
``timeout``, writes its exit code and powers off. The console (kernel and init
messages only) goes to ``console.log`` in the results folder, never to the terminal:
the serial port carries about 250 KB/s.

The host never waits forever: qemu is killed by its PID when the guest has not reached
the command within ``boot_timeout`` or has not finished within ``timeout``
(``VMError`` carries the console tail), and it dies with its parent
(``PR_SET_PDEATHSIG``), so nothing is left running.

Knobs
-----
- ``HAFAST_VM_CACHE``: cache folder (default ``/var/cache/hafast/ipvs-vm``);
- ``HAFAST_VM_REFRESH=1``: ask apt again for the current kernel even when one is cached;
- ``HAFAST_VM_NO_INSTALL=1``: never run apt; a missing piece raises ``VMSetupError``;
- ``IpvsVM(memory_mb=512, cpus=1, shares={host: guest}, checkout=..., boot_timeout=...,
  tcg_tb_mib=None)``; ``run(cmd, timeout, env, results_dir=..., cwd=...)``.

Inside the guest ``HAFAST_IN_VM=1`` and ``TMPDIR=/run/tmp`` (empty, private) are set;
``CI``, ``LANG``, ``LC_ALL`` and the ``HAFAST_*`` variables pass through from the host;
``run(env=...)`` adds more.

Costs
-----
Measured on the 2-core development VM (Debian 12, qemu 7.2 TCG, kernel 6.1.0-56,
``-m 512``), other jobs sharing the cores:

- set-up, cold (apt-get update, 4 packages, kernel download and extraction): 16 s;
  cached: 0.1 s;
- boot to the guest command: 3.4 to 4 s on a quiet machine, up to 10 s under load;
- ``pytest tests/ipvs`` (4 smoke tests, LVS-NAT traffic included) in one boot: 30 s
  from qemu start to exit; Python runs about 20x slower than on the host
  (``import pyroute2, pytest``: 4-5 s);
- qemu peak RSS: about 560 MiB with that run (485 MiB without the traffic test; the
  translated-code cache is most of it beyond guest memory: ``tcg_tb_mib=64`` saved
  120 MiB).

Command line::

    python -m hafast.lab.ipvs_vm setup
    python -m hafast.lab.ipvs_vm run [--timeout 600] [--results DIR] -- ipvsadm -Ln

Example::

    >>> vm = IpvsVM()                                         # doctest: +SKIP
    >>> vm.setup()                                            # doctest: +SKIP
    >>> res = vm.run(["ipvsadm", "-Ln"], timeout=120)         # doctest: +SKIP
    >>> res.returncode, res.output_path.read_text()           # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import ctypes
import fcntl
import functools
import hashlib
import json
import lzma
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_CACHE = Path("/var/cache/hafast/ipvs-vm")
# Debian packages the harness needs on the host.  cpio is listed for people who want
# to unpack the initramfs by hand; the harness writes the archive itself.
APT_PACKAGES = ("qemu-system-x86", "busybox-static", "cpio", "kmod", "ipvsadm")
KERNEL_META = "linux-image-amd64"
# Tools each package brings; a missing tool means its package must be installed.
APT_TOOLS = {
    "qemu-system-x86": "qemu-system-x86_64",
    "busybox-static": "busybox",
    "cpio": "cpio",
    "kmod": "depmod",
    "ipvsadm": "ipvsadm",
}
# Modules stage 1 needs (their dependencies are added from modules.dep); any that the
# kernel has built in are skipped.
INITRAMFS_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay", "virtio_rng")
# Busybox applets stage 1 calls by name.
BUSYBOX_APPLETS = (
    "sh", "mount", "umount", "mkdir", "insmod", "cat", "echo", "sleep",
    "switch_root", "poweroff", "uname",
)
ROOT_TAG = "hafastroot"
CTL_TAG = "hafastctl"
CTL_DIR = ".hafast-vm"
# Both ends of a run are timed through these console markers (see the stage scripts).
MARK_START = b"hafast-vm: command start"
MARK_STAGE1_FAIL = b"hafast-vm: stage 1 failed"
# Variables that follow the command into the guest unless run(env=...) says otherwise.
PASSTHROUGH_ENV = ("CI", "LANG", "LC_ALL", "PYTHONHASHSEED", "TZ")
# An empty tmpfs folder made by stage 2; the guest's /tmp shows the host's files.
GUEST_TMPDIR = "/run/tmp"
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The guest command gets this much less than the host's timeout, so that it can still
# write its exit code and power off before the host has to kill qemu.
GUEST_MARGIN_S = 20.0
HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent

_PR_SET_PDEATHSIG = 1


class VMError(RuntimeError):
    """The VM did not boot or did not finish; ``console_tail`` says why."""

    def __init__(self, message: str, console_tail: str = "") -> None:
        super().__init__(f"{message}\n--- console tail ---\n{console_tail}" if console_tail
                         else message)
        self.console_tail = console_tail


class VMSetupError(VMError):
    """A prerequisite (package, kernel, tool) is missing and could not be made."""


class VMTimeout(VMError):
    """qemu was killed by PID after the boot or run deadline."""


@dataclass(frozen=True)
class Share:
    """A host folder seen by the guest over 9p at ``guest_path``."""

    host_path: Path
    guest_path: str
    writable: bool = True
    # 9p cache mode in the guest: "none" sees host changes at once; "loose" is much
    # faster for reading but only right for files nobody changes during the run.
    cache: str = "none"


@dataclass(frozen=True)
class Kernel:
    version: str
    root: Path  # the extracted package: boot/, lib/modules/<version>/

    @property
    def modules_dir(self) -> Path:
        return self.root / "lib" / "modules" / self.version

    @property
    def vmlinux(self) -> Path:
        return self.root / "vmlinux"


@dataclass
class SetupInfo:
    kernel: Kernel
    initramfs: Path
    seconds: float
    installed_packages: list[str] = field(default_factory=list)
    downloaded_kernel: bool = False


@dataclass
class VMResult:
    """What one boot gave back.  ``returncode`` is the guest command's exit status
    (124 when the guest's own ``timeout`` stopped it)."""

    returncode: int
    console_log_path: Path
    results_dir: Path
    boot_seconds: float  # qemu start -> guest command start (host clock)
    output_path: Path  # the command's stdout + stderr
    total_seconds: float  # qemu start -> qemu exit
    qemu_peak_rss_kib: int = 0


# ---------------------------------------------------------------------------
# host set-up

def _log(msg: str) -> None:
    print(f"ipvs_vm: {msg}", file=sys.stderr, flush=True)


def _host_path() -> str:
    """PATH with the sbin folders: depmod, ipvsadm and dpkg tools live there, and a
    CI environment may not list them."""
    return f"{os.environ.get('PATH', '')}:{GUEST_PATH}".lstrip(":")


def _which(tool: str) -> str | None:
    return shutil.which(tool, path=_host_path())


def _run(argv: Sequence[str], *, cwd: Path | None = None, timeout: float = 600,
         env: Mapping[str, str] | None = None) -> str:
    """Run a host command, return stdout; raise VMSetupError with its stderr."""
    full_env = {**(env if env is not None else os.environ), "PATH": _host_path()}
    try:
        proc = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, env=full_env,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VMSetupError(f"{shlex.join(argv)}: {exc}") from exc
    if proc.returncode != 0:
        raise VMSetupError(f"{shlex.join(argv)} exited {proc.returncode}: "
                           f"{proc.stderr.strip()[-2000:]}")
    return proc.stdout


def _apt_env() -> dict[str, str]:
    return {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}


# Another apt (a second helper, unattended upgrades) may hold the lock: wait, don't fail.
_APT_OPTS = ("-o", "DPkg::Lock::Timeout=300", "-o", "Acquire::Retries=3")


class _Apt:
    """apt-get with ``update`` run at most once per set-up."""

    def __init__(self, allow_install: bool) -> None:
        self.allow_install = allow_install
        self.updated = False

    def update(self) -> None:
        if not self.updated:
            self._check_allowed("apt-get update")
            _log("apt-get update")
            _run(["apt-get", *_APT_OPTS, "update", "-qq"], env=_apt_env(), timeout=900)
            self.updated = True

    def _check_allowed(self, what: str) -> None:
        if not self.allow_install:
            raise VMSetupError(f"{what} needed but HAFAST_VM_NO_INSTALL is set")
        if os.geteuid() != 0:
            raise VMSetupError(f"{what} needed: run as root")

    def install(self, packages: Sequence[str]) -> None:
        self._check_allowed(f"apt-get install {' '.join(packages)}")
        self.update()
        _log(f"apt-get install {' '.join(packages)}")
        _run(["apt-get", *_APT_OPTS, "install", "-y", "-qq", "--no-install-recommends",
              *packages], env=_apt_env(), timeout=1800)

    def kernel_package(self) -> str:
        """The linux-image-<abi>-amd64 that the meta package depends on today."""
        for attempt in range(2):
            try:
                out = _run(["apt-cache", "depends", "--important", KERNEL_META])
            except VMSetupError:
                out = ""
            for line in out.splitlines():
                m = re.match(r"\s*(?:\|)?Depends:\s*(linux-image-\S+)", line)
                if m and not m.group(1).startswith("<"):
                    return m.group(1)
            if attempt == 0:
                self.update()  # no package lists yet, or stale ones
        raise VMSetupError(f"apt-cache does not know which kernel {KERNEL_META} depends on")

    def download(self, package: str, into: Path) -> Path:
        self._check_allowed(f"apt-get download {package}")
        # The _apt sandbox user cannot write into root's cache folder.
        _run(["apt-get", *_APT_OPTS, "-o", "APT::Sandbox::User=root", "download", package],
             cwd=into, env=_apt_env(), timeout=1800)
        debs = sorted(into.glob(f"{package}_*.deb"))
        if not debs:
            raise VMSetupError(f"apt-get download {package} left no .deb in {into}")
        return debs[-1]


def missing_packages() -> list[str]:
    """Debian packages of APT_PACKAGES not installed (judged by dpkg, then the tool)."""
    missing = []
    for pkg in APT_PACKAGES:
        try:
            status = subprocess.run(
                [_which("dpkg-query") or "dpkg-query", "-W", "-f=${Status}", pkg],
                capture_output=True, text=True, timeout=60, check=False,
                stdin=subprocess.DEVNULL).stdout
        except (OSError, subprocess.TimeoutExpired):
            status = ""
        if "install ok installed" not in status or not _which(APT_TOOLS[pkg]):
            missing.append(pkg)
    return missing


def extract_vmlinux(bzimage: bytes) -> bytes:
    """Return the ELF kernel inside an x86 bzImage whose payload is xz.

    The boot protocol header says where the payload starts (setup_sects at 0x1f1,
    payload_offset at 0x248, both relative to the protected-mode code); a search for
    the xz magic is the fallback for headers that do not say.
    """
    candidates: list[int] = []
    if len(bzimage) > 0x250 and bzimage[0x202:0x206] == b"HdrS":
        setup_sects = bzimage[0x1F1] or 4
        payload_offset = int.from_bytes(bzimage[0x248:0x24C], "little")
        candidates.append((setup_sects + 1) * 512 + payload_offset)
    magic = b"\xfd7zXZ\x00"
    pos = bzimage.find(magic)
    while pos != -1 and len(candidates) < 8:
        candidates.append(pos)
        pos = bzimage.find(magic, pos + 1)
    for start in candidates:
        if bzimage[start:start + 6] != magic:
            continue
        try:
            elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(bzimage[start:])
        except lzma.LZMAError:
            continue
        if elf[:4] == b"\x7fELF":
            return elf
    raise VMSetupError("no xz-compressed ELF kernel found in the bzImage")


def module_load_order(modules_dir: Path, wanted: Iterable[str]) -> list[str]:
    """Paths (relative to modules_dir) of ``wanted`` and their dependencies, each after
    everything it needs; modules built into the kernel are left out."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        if ":" not in line:
            continue
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
        by_name[_module_name(mod)] = mod
    builtin = set()
    builtin_file = modules_dir / "modules.builtin"
    if builtin_file.exists():
        builtin = {_module_name(x) for x in builtin_file.read_text().split()}

    order: list[str] = []
    seen: set[str] = set()

    def visit(mod: str) -> None:
        if mod in seen:
            return
        seen.add(mod)
        for dep in deps.get(mod, []):
            visit(dep)
        order.append(mod)

    for name in wanted:
        key = name.replace("-", "_")
        if key in by_name:
            visit(by_name[key])
        elif key not in builtin:
            raise VMSetupError(f"kernel module {name} is neither built in nor in {modules_dir}")
    return order


def _module_name(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    return base.split(".ko", 1)[0].replace("-", "_")


def newc_archive(entries: Iterable[tuple[str, int, bytes]]) -> bytes:
    """An uncompressed cpio "newc" archive (the initramfs format the kernel reads).

    ``entries``: (path without leading /, st_mode, data); a symlink's data is its
    target. Timestamps and owners are zero so the same input gives the same bytes.
    """
    out = bytearray()

    def add(name: str, mode: int, data: bytes, ino: int) -> None:
        encoded = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
        out.extend(b"070701" + b"".join(b"%08X" % f for f in fields) + encoded)
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data)
        out.extend(b"\0" * (-len(out) % 4))

    ino = 1
    for name, mode, data in entries:
        add(name, mode, data, ino)
        ino += 1
    add("TRAILER!!!", 0, b"", 0)
    out.extend(b"\0" * (-len(out) % 512))
    return bytes(out)


_DIR, _FILE, _EXE, _LINK = 0o040755, 0o100644, 0o100755, 0o120777


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------
# the VM

class IpvsVM:
    """Boots Debian's stock kernel in qemu over the host's root; see the module doc."""

    def __init__(self, cache_dir: Path | str | None = None, memory_mb: int = 512,
                 shares: Mapping[str | Path, str] | Iterable[Share] | None = None,
                 *, cpus: int = 1, checkout: Path | str | None = None,
                 boot_timeout: float = 180.0, qemu: str = "qemu-system-x86_64",
                 tcg_tb_mib: int | None = None) -> None:
        self.cache_dir = Path(cache_dir or os.environ.get("HAFAST_VM_CACHE") or DEFAULT_CACHE)
        self.memory_mb = memory_mb
        self.cpus = cpus
        self.boot_timeout = boot_timeout
        self.qemu = qemu
        self.tcg_tb_mib = tcg_tb_mib
        self.checkout = Path(checkout or REPO_ROOT).resolve()
        extra: list[Share] = []
        if isinstance(shares, Mapping):
            extra = [Share(Path(h).resolve(), g) for h, g in shares.items()]
        elif shares is not None:
            extra = list(shares)
        # The checkout's files do not change while tests run, so read them cached;
        # results go to the control share, which is uncached.
        # Parents before children: stage 1 mounts in this order.
        self.shares = sorted([Share(self.checkout, str(self.checkout), True, "loose"), *extra],
                             key=lambda sh: sh.guest_path.rstrip("/").count("/"))
        self._setup: SetupInfo | None = None

    # -- set-up -------------------------------------------------------------

    def setup(self) -> SetupInfo:
        """Make everything the VM needs (idempotent; fast once cached)."""
        t0 = time.monotonic()
        allow = os.environ.get("HAFAST_VM_NO_INSTALL", "") in ("", "0")
        apt = _Apt(allow)
        try:
            return self._setup_locked(apt, t0)
        except OSError as exc:  # an unwritable cache folder, a full disk
            raise VMSetupError(f"IPVS VM set-up in {self.cache_dir}: {exc}") from exc

    def _setup_locked(self, apt: _Apt, t0: float) -> SetupInfo:
        with _locked(self.cache_dir / ".lock"):
            missing = missing_packages()
            if missing:
                apt.install(missing)
                still = missing_packages()
                if still:
                    raise VMSetupError(f"packages still missing after apt-get: {still}")
            kernel, downloaded = self._kernel(apt)
            initramfs = self._initramfs(kernel)
        info = SetupInfo(kernel, initramfs, time.monotonic() - t0, missing, downloaded)
        self._setup = info
        return info

    def _cached_kernels(self) -> list[Kernel]:
        found = []
        for stamp in self.cache_dir.glob("kernel-*/hafast-kernel.json"):
            try:
                version = json.loads(stamp.read_text())["version"]
            except (OSError, ValueError, KeyError):
                continue
            kernel = Kernel(version, stamp.parent)
            if kernel.vmlinux.exists() and (kernel.modules_dir / "modules.dep").exists():
                found.append(kernel)
        # The stamp's mtime is the fetch time (dpkg-deb keeps the package's own
        # mtimes on the folders).
        return sorted(found, key=lambda k: (k.root / "hafast-kernel.json").stat().st_mtime)

    def _kernel(self, apt: _Apt) -> tuple[Kernel, bool]:
        cached = self._cached_kernels()
        refresh = os.environ.get("HAFAST_VM_REFRESH", "") not in ("", "0")
        if cached and not refresh:
            return cached[-1], False
        try:
            return self._fetch_kernel(apt, cached)
        except VMSetupError as exc:
            if not cached:
                raise
            # Offline, or the mirror is in flux: the kernel we have still works.
            _log(f"keeping cached kernel {cached[-1].version}: {exc}")
            return cached[-1], False

    def _fetch_kernel(self, apt: _Apt, cached: list[Kernel]) -> tuple[Kernel, bool]:
        package = apt.kernel_package()
        version = package.removeprefix("linux-image-")
        for kernel in cached:
            if kernel.version == version:
                return kernel, False
        _log(f"fetching {package}")
        root = self.cache_dir / f"kernel-{version}"
        partial = self.cache_dir / f".partial-{version}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        try:
            deb = apt.download(package, partial)
        except VMSetupError:
            if apt.updated:
                raise
            # Stale package lists name a build the mirror no longer has: update, retry.
            apt.update()
            return self._fetch_kernel(apt, cached)
        tree = partial / "tree"
        _run(["dpkg-deb", "-x", str(deb), str(tree)], timeout=600)
        # Debian moved modules from /lib/modules to /usr/lib/modules in later releases.
        mods = tree / "lib" / "modules" / version
        usr_mods = tree / "usr" / "lib" / "modules" / version
        if not mods.is_dir() and usr_mods.is_dir():
            mods.parent.mkdir(parents=True, exist_ok=True)
            usr_mods.rename(mods)
        if not mods.is_dir():
            raise VMSetupError(f"{deb.name} has no lib/modules/{version}")
        _run(["depmod", "-b", str(tree), version], timeout=600)
        bzimage = tree / "boot" / f"vmlinuz-{version}"
        (tree / "vmlinux").write_bytes(extract_vmlinux(bzimage.read_bytes()))
        (tree / "hafast-kernel.json").write_text(
            json.dumps({"version": version, "package": package, "deb": deb.name}))
        shutil.rmtree(root, ignore_errors=True)
        tree.rename(root)
        shutil.rmtree(partial, ignore_errors=True)
        # A kernel tree is about 470 MB: keep only the one in use.
        for old in cached:
            shutil.rmtree(old.root, ignore_errors=True)
        return Kernel(version, root), True

    def _initramfs(self, kernel: Kernel) -> Path:
        busybox = _which("busybox")
        if not busybox:
            raise VMSetupError("busybox not found (Debian package busybox-static)")
        init = (HERE / "ipvs_vm_init.sh").read_bytes()
        mods = module_load_order(kernel.modules_dir, INITRAMFS_MODULES)
        bb = Path(busybox).read_bytes()
        key = hashlib.sha256()
        for part in (kernel.version.encode(), init, bb, "\n".join(mods).encode()):
            key.update(hashlib.sha256(part).digest())
        path = self.cache_dir / f"initramfs-{kernel.version}-{key.hexdigest()[:12]}.cpio"
        if path.exists():
            return path
        entries: list[tuple[str, int, bytes]] = [
            (d, _DIR, b"") for d in ("bin", "dev", "proc", "sys", "modules")]
        entries.append(("bin/busybox", _EXE, bb))
        entries += [(f"bin/{a}", _LINK, b"busybox") for a in BUSYBOX_APPLETS]
        for mod in mods:
            data = (kernel.modules_dir / mod).read_bytes()
            name = mod.rsplit("/", 1)[-1]
            if name.endswith(".xz"):  # busybox insmod takes plain .ko only
                data, name = lzma.decompress(data), name[:-3]
            entries.append((f"modules/{name}", _FILE, data))
        load = "".join(m.rsplit("/", 1)[-1].removesuffix(".xz") + "\n" for m in mods)
        entries.append(("modules.load", _FILE, load.encode()))
        entries.append(("init", _EXE, init))
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(newc_archive(entries))
        tmp.rename(path)
        for old in self.cache_dir.glob(f"initramfs-{kernel.version}-*.cpio"):
            if old != path:
                old.unlink(missing_ok=True)
        return path

    # -- running ------------------------------------------------------------

    def guest_env(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment the guest command gets."""
        venv_bin = str(Path(sys.executable).parent)
        out = {"PATH": f"{venv_bin}:{GUEST_PATH}", "HOME": "/root",
               "HAFAST_IN_VM": "1", "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONUNBUFFERED": "1", "TMPDIR": GUEST_TMPDIR}
        for name, value in os.environ.items():
            if name in PASSTHROUGH_ENV or (name.startswith("HAFAST_")
                                           and not name.startswith("HAFAST_VM_")):
                out[name] = value
        out.update(env or {})
        return out

    def qemu_argv(self, setup: SetupInfo, ctl: Share) -> list[str]:
        # tb-size: TCG's translated-code cache, most of qemu's RSS beyond guest memory.
        tcg = f"tcg,tb-size={self.tcg_tb_mib}" if self.tcg_tb_mib else "tcg"
        argv = [
            _which(self.qemu) or self.qemu, "-accel", tcg, "-machine", "pc", "-cpu", "max",
            "-smp", str(self.cpus), "-m", str(self.memory_mb),
            "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
            "-no-reboot",
            "-kernel", str(setup.kernel.vmlinux), "-initrd", str(setup.initramfs),
            # quiet: the serial console is slow, and every line costs boot time.
            "-append", "console=ttyS0 panic=-1 quiet loglevel=3 rdinit=/init",
            "-device", "virtio-rng-pci",
            # multidevs=remap: / spans several host filesystems; without it their
            # inode numbers could collide in the guest.
            "-virtfs", f"local,path=/,mount_tag={ROOT_TAG},security_model=none,"
                       "readonly=on,multidevs=remap",
            "-virtfs", f"local,path={_qopt(ctl.host_path)},mount_tag={CTL_TAG},"
                       "security_model=none",
        ]
        for i, share in enumerate(self.shares, 1):
            ro = ",readonly=on" if not share.writable else ""
            argv += ["-virtfs", f"local,path={_qopt(share.host_path)},mount_tag=hafast{i},"
                                f"security_model=none{ro}"]
        return argv

    def _write_control(self, results: Path, cmd: Sequence[str], env: Mapping[str, str],
                       cwd: str, guest_timeout: float, kernel: Kernel) -> Path:
        ctl = results / CTL_DIR
        shutil.rmtree(ctl, ignore_errors=True)
        ctl.mkdir(parents=True)
        lines = [f"{CTL_TAG} rw none {results}"]
        for i, share in enumerate(self.shares, 1):
            _check_guest_path(share.guest_path)
            mode = "rw" if share.writable else "ro"
            lines.append(f"hafast{i} {mode} {share.cache} {share.guest_path}")
        (ctl / "mounts").write_text("\n".join(lines) + "\n")
        (ctl / "ctl_path").write_text(f"{results}\n")
        (ctl / "modules_dir").write_text(f"{kernel.modules_dir}\n")
        (ctl / "guest_timeout").write_text(f"{max(1, int(guest_timeout))}\n")
        script = ["#!/bin/sh", "# written by hafast.lab.ipvs_vm for one run"]
        script += [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())
                   if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)]
        script += [f"cd {shlex.quote(cwd)} || exit 125", f"exec {shlex.join(cmd)}"]
        (ctl / "command.sh").write_text("\n".join(script) + "\n")
        shutil.copyfile(HERE / "ipvs_vm_stage2.sh", ctl / "stage2.sh")
        return ctl

    def run(self, cmd: Sequence[str], timeout: float = 600.0,
            env: Mapping[str, str] | None = None, *, results_dir: Path | str | None = None,
            cwd: str | None = None, nice: int = 0) -> VMResult:
        """Boot, run ``cmd`` in the guest (cwd: the checkout), power off.

        ``nice`` is qemu's scheduling niceness (negative needs root; without, qemu
        runs at the caller's): the test suite's run is its critical path and gives
        the guest's one vCPU the upper hand over the waiting namespace tests.

        Raises VMTimeout when the guest did not reach the command within
        ``boot_timeout`` or did not finish within ``timeout`` (qemu is killed by PID),
        VMError when it ended without an exit code.

        >>> IpvsVM().run(["ipvsadm", "-Ln"], timeout=120).returncode  # doctest: +SKIP
        0
        """
        if not cmd:
            raise ValueError("empty command")
        setup = self._setup or self.setup()
        self._compile_checkout()
        results = Path(results_dir) if results_dir else Path(
            tempfile.mkdtemp(prefix="hafast-ipvs-vm-"))
        results = results.resolve()
        results.mkdir(parents=True, exist_ok=True)
        _check_guest_path(str(results))
        ctl = self._write_control(results, cmd, self.guest_env(env),
                                  cwd or str(self.checkout),
                                  max(timeout - GUEST_MARGIN_S, timeout * 0.5), setup.kernel)
        console = results / "console.log"
        for stale in (console, results / "command.log"):
            stale.unlink(missing_ok=True)
        argv = self.qemu_argv(setup, Share(results, str(results)))
        argv += ["-serial", f"file:{console}"]
        return self._boot(argv, console, results, ctl, timeout, nice)

    def _compile_checkout(self) -> None:
        """Byte-compile the checkout's Python on the host before the guest reads it.

        The guest writes no bytecode (PYTHONDONTWRITEBYTECODE: its 9p view of the
        checkout is cached), so a module the host has not compiled yet is compiled
        again by every guest process that imports it, at the emulated CPU's speed
        (hafast's 191 modules: 0.46 s here, about 20 times that under TCG).  A fresh
        clone has none compiled when its suite boots the VM.  Best effort: a folder
        we cannot write is left as it is."""
        for name in ("hafast", "tests", "benchmarks"):
            folder = self.checkout / name
            if folder.is_dir():
                with contextlib.suppress(OSError):
                    compileall.compile_dir(str(folder), quiet=2, workers=1)

    def _boot(self, argv: list[str], console: Path, results: Path, ctl: Path,
              timeout: float, nice: int = 0) -> VMResult:
        t0 = time.monotonic()
        stderr_path = results / "qemu.stderr"
        with open(stderr_path, "wb") as stderr:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stderr,
                                    stderr=stderr,
                                    preexec_fn=functools.partial(_qemu_child, nice))
        boot_seconds = -1.0
        peak_rss = 0
        seen = 0
        scan = b""
        killed = ""
        try:
            while proc.poll() is None:
                now = time.monotonic() - t0
                peak_rss = max(peak_rss, _rss_kib(proc.pid))
                if boot_seconds < 0:
                    scan, seen = _tail_bytes(console, seen, scan)
                    if MARK_START in scan:
                        boot_seconds = now
                    elif MARK_STAGE1_FAIL in scan:
                        pass  # stage 1 powers off by itself; wait for that
                    elif now > self.boot_timeout:
                        killed = f"no command start after {self.boot_timeout:.1f} s"
                if not killed and now > timeout:
                    killed = f"still running after {timeout:.1f} s"
                if killed:
                    break
                time.sleep(0.1)
        finally:
            if proc.poll() is None:
                proc.kill()  # by PID: our own child, nothing else
            proc.wait(timeout=30)
        total = time.monotonic() - t0
        tail = _console_tail(console, stderr_path)
        if killed:
            raise VMTimeout(f"IPVS VM killed: {killed}", tail)
        code_file = ctl / "exitcode"
        if not code_file.exists():
            raise VMError(f"IPVS VM exited ({proc.returncode}) without running the "
                          f"command to its end; console: {console}", tail)
        if boot_seconds < 0:
            scan, seen = _tail_bytes(console, seen, scan)
            boot_seconds = total
        return VMResult(int(code_file.read_text().strip()), console, results, boot_seconds,
                        results / "command.log", total, peak_rss)


def _qopt(path: Path) -> str:
    """A path as a qemu option value: commas are doubled, as qemu's parser wants."""
    return str(path).replace(",", ",,")


def junit_counts(path: Path | str) -> dict[str, int]:
    """Sum tests/failures/errors/skipped over the suites of a pytest junit xml file.

    >>> junit_counts("results/ipvs.xml")  # doctest: +SKIP
    {'tests': 3, 'failures': 0, 'errors': 0, 'skipped': 0}
    """
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    return {k: sum(int(s.get(k, "0")) for s in suites)
            for k in ("tests", "failures", "errors", "skipped")}


def junit_slowest(path: Path | str, n: int = 8) -> list[tuple[str, float]]:
    """The ``n`` test cases of a pytest junit xml file that took longest: (file::name,
    seconds), slowest first.  The VM run is the suite's longest step; this says where
    its time went.

    >>> junit_slowest("results/ipvs.xml", 1)  # doctest: +SKIP
    [('tests/ipvs/test_fleet_maglev.py::test_flows_survive...', 201.3)]
    """
    import xml.etree.ElementTree as ET

    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        where = (case.get("classname") or "").replace(".", "/") + ".py"
        cases.append((f"{where}::{case.get('name', '?')}", float(case.get("time") or 0)))
    return sorted(cases, key=lambda c: -c[1])[:n]


def _check_guest_path(path: str) -> None:
    # The stage 1 script reads mount lines split on blanks.
    if not path.startswith("/") or any(c.isspace() for c in path):
        raise ValueError(f"guest path must be absolute and without blanks: {path!r}")


def _qemu_child(nice: int) -> None:
    """In the qemu child before exec: get SIGKILL when the harness dies, so no VM
    outlives it; take niceness ``nice`` (every qemu thread, made later, inherits it)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if nice:
        with contextlib.suppress(OSError):  # EPERM without CAP_SYS_NICE: as the caller
            os.setpriority(os.PRIO_PROCESS, 0, nice)


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _tail_bytes(path: Path, seen: int, scan: bytes) -> tuple[bytes, int]:
    """Read what ``path`` gained since offset ``seen``; keep a short window to match
    markers across reads."""
    try:
        with open(path, "rb") as fh:
            fh.seek(seen)
            new = fh.read(1 << 20)
    except OSError:
        return scan, seen
    return (scan[-256:] + new), seen + len(new)


def _console_tail(console: Path, stderr_path: Path, lines: int = 40) -> str:
    parts = []
    for path in (console, stderr_path):
        try:
            text = path.read_bytes()[-16384:].decode("utf-8", "replace")
        except OSError:
            continue
        if text.strip():
            parts.append(f"[{path.name}]\n" + "\n".join(text.splitlines()[-lines:]))
    return "\n".join(parts)


# ---------------------------------------------------------------------------
# command line

def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hafast.lab.ipvs_vm setup|run [options] -- CMD...``"""
    parser = argparse.ArgumentParser(prog="python -m hafast.lab.ipvs_vm",
                                     description=__doc__.split("\n\n")[0] if __doc__ else "")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("setup", help="install and cache what the VM needs")
    run = sub.add_parser("run", help="boot the VM and run CMD inside")
    run.add_argument("--timeout", type=float, default=600.0)
    run.add_argument("--memory", type=int, default=512, help="guest memory, MiB")
    run.add_argument("--cpus", type=int, default=1)
    run.add_argument("--results", help="results folder (default: a new temporary one)")
    run.add_argument("--share", action="append", default=[], metavar="HOST[:GUEST]",
                     help="an extra writable host folder for the guest")
    run.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    if args.action == "setup":
        vm = IpvsVM()
        try:
            info = vm.setup()
        except VMError as exc:
            _log(str(exc))
            return 1
        _log(f"kernel {info.kernel.version}; initramfs {info.initramfs}; "
             f"{info.seconds:.1f} s (installed: {info.installed_packages or 'nothing'}, "
             f"kernel downloaded: {info.downloaded_kernel})")
        return 0

    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        parser.error("run needs a command after --")
    shares = {}
    for spec in args.share:
        host, _, guest = spec.partition(":")
        shares[host] = guest or str(Path(host).resolve())
    vm = IpvsVM(memory_mb=args.memory, cpus=args.cpus, shares=shares)
    try:
        res = vm.run(cmd, timeout=args.timeout, results_dir=args.results)
    except VMError as exc:
        _log(str(exc))
        return 125
    sys.stdout.write(res.output_path.read_text(errors="replace") if res.output_path.exists()
                     else "")
    sys.stdout.flush()
    _log(f"exit {res.returncode}; boot-to-command {res.boot_seconds:.1f} s; total "
         f"{res.total_seconds:.1f} s; qemu peak RSS {res.qemu_peak_rss_kib // 1024} MiB; "
         f"results {res.results_dir}")
    return res.returncode


if __name__ == "__main__":
    sys.exit(main())
