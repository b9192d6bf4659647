"""Network namespaces, veth pairs, bridges, addresses and routes, undone in reverse.

Everything the lab builds goes through a :class:`Registry`, which remembers how to
undo each step and undoes them all, newest first, when it is closed -- also when a
later step failed half way. Closing twice is harmless.

Links are created directly inside their namespaces (``ip -n NS link add ... peer
... netns OTHER``) so nothing ever appears in the host namespace, not even for a
moment.

Example::

    with Registry() as reg:
        reg.add_netns("demo-a")
        reg.add_netns("demo-b")
        reg.add_veth("demo-a", "va", "demo-b", "vb")
        reg.add_address("demo-a", "va", "10.9.0.1/24")
        reg.add_address("demo-b", "vb", "10.9.0.2/24")
        reg.run("demo-a", ["ping", "-c1", "10.9.0.2"])
    # both namespaces (and the veth) are gone here
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

NETNS_RUN_DIR = Path("/run/netns")  # where `ip netns add` bind-mounts namespaces
CLONE_NEWNET = 0x40000000  # <linux/sched.h>

_libc: ctypes.CDLL | None = None


class NetnsError(RuntimeError):
    """A namespace command failed; the message carries the command and its stderr."""


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def netns_path(name: str) -> Path:
    return NETNS_RUN_DIR / name


def netns_exists(name: str) -> bool:
    return netns_path(name).exists()


def list_netns() -> list[str]:
    """Names of the named network namespaces (what ``ip netns list`` shows)."""
    try:
        return sorted(p.name for p in NETNS_RUN_DIR.iterdir())
    except FileNotFoundError:
        return []


def _ip(ns: str | None, args: Sequence[str], *, check: bool = True) -> str:
    argv = ["ip"] + (["-n", ns] if ns else []) + list(args)
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def netns_pids(name: str) -> list[int]:
    """PIDs of the processes whose network namespace is ``name`` (never our own)."""
    if not netns_exists(name):
        return []
    out = _ip(None, ["netns", "pids", name], check=False)
    return [int(p) for p in out.split() if p.isdigit() and int(p) != os.getpid()]


def delete_netns(name: str, *, kill: bool = True, grace: float = 5.0) -> bool:
    """Delete a named namespace if it exists; True when one was deleted.

    A process left inside would keep the namespace alive, unnamed and out of
    sight, so with ``kill`` every process still in it is stopped by PID first
    (they can only be ours: the namespace is ours).
    """
    if not netns_exists(name):
        return False
    if kill:
        for pid in netns_pids(name):
            stop_pid(pid, grace=grace)
    _ip(None, ["netns", "delete", name])
    return True


def run_in(
    ns: str | None,
    argv: Sequence[str],
    *,
    check: bool = True,
    input: str | bytes | None = None,
    timeout: float | None = 30.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside namespace ``ns`` (``None``: here) and wait for it.

    ``nsenter --net`` only switches the network namespace and then execs, so the
    program keeps its own PID and sees the host's /etc and /sys untouched.

    Example: ``run_in("lab-dir", ["ip", "route"]).stdout``
    """
    full = _in_ns_argv(ns, argv)
    text_input = input.decode() if isinstance(input, bytes) else input
    proc = subprocess.run(
        full, capture_output=True, text=True, input=text_input, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise NetnsError(f"[{ns}] {' '.join(argv)}: {proc.stderr.strip() or proc.returncode}")
    return proc


def _in_ns_argv(ns: str | None, argv: Sequence[str]) -> list[str]:
    if ns is None:
        return list(argv)
    nsenter = shutil.which("nsenter") or "nsenter"
    return [nsenter, f"--net={netns_path(ns)}", "--", *argv]


def spawn_in(ns: str | None, argv: Sequence[str], **popen: Any) -> subprocess.Popen[bytes]:
    """Start ``argv`` inside namespace ``ns`` without waiting (same PID as the program)."""
    popen.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen(_in_ns_argv(ns, argv), **popen)


def call_in(ns: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn(*args, **kwargs)`` on a thread that has entered namespace ``ns``.

    setns(2) moves only the calling thread, so the rest of the process stays where
    it is. Sockets keep the namespace they were created in, which makes this the
    way to open a socket "inside" a namespace and use it from anywhere (see
    :func:`socket_in`).

    Example: ``call_in("lab-dir", socket.gethostname)``
    """
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            fd = os.open(netns_path(ns), os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(fd)
            finally:
                os.close(fd)
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the caller's thread below
            box["error"] = exc

    thread = threading.Thread(target=body, name=f"netns:{ns}", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


@contextlib.contextmanager
def inside(ns: str) -> Iterator[None]:
    """Move the calling thread into ``ns`` for the ``with`` block, then back.

    For code that opens its own sockets (pycurl, a library client) and must do it
    in the lab's namespace; sockets opened inside stay there after the block.
    Only this thread moves; do not await inside the block on an event loop that
    other code shares.

    Example::

        with inside("lab-dir"):
            curl.perform()
    """
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(netns_path(ns), os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


def socket_in(
    ns: str, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0
) -> socket.socket:
    """A socket that lives in namespace ``ns``, usable from any thread or event loop.

    Example::

        s = socket_in("lab-dir")
        s.connect(("10.201.0.1", 80))
    """
    return call_in(ns, socket.socket, family, type, proto)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state letter follows the ")" that closes the command name.
    return stat[stat.rindex(")") + 2] != "Z"


def stop_pid(pid: int, *, grace: float = 5.0, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to ``pid``, wait up to ``grace`` seconds, then SIGKILL it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + grace
    while pid_alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.01)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + grace
        while pid_alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.01)
    _reap(pid)


def _reap(pid: int) -> None:
    # Our own children must be waited for, or they linger as zombies.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


@dataclass
class _Undo:
    what: str
    fn: Callable[[], object]


@dataclass
class Registry:
    """Builds namespaces and links and remembers how to undo every step.

    ``close()`` undoes everything in reverse order, keeps going past a failing step
    and raises one :class:`NetnsError` naming all failures at the end. It is
    idempotent, and a :class:`Registry` is a context manager.
    """

    _undo: list[_Undo] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- bookkeeping --------------------------------------------------------------

    def defer(self, what: str, fn: Callable[[], object]) -> None:
        """Register an undo step of your own (runs at close, newest first)."""
        with self._lock:
            self._undo.append(_Undo(what, fn))

    def close(self) -> None:
        with self._lock:
            steps, self._undo = self._undo, []
        errors: list[str] = []
        for step in reversed(steps):
            try:
                step.fn()
            except Exception as exc:  # keep undoing the rest; report all at the end
                errors.append(f"{step.what}: {exc}")
        if errors:
            raise NetnsError("teardown incomplete: " + "; ".join(errors))

    @property
    def steps(self) -> list[str]:
        """What close() would undo, oldest first."""
        return [u.what for u in self._undo]

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- namespaces and links -----------------------------------------------------

    def add_netns(self, name: str, *, replace: bool = True) -> str:
        """Create namespace ``name`` with its loopback up; a leftover of that name
        (from a crashed run) is deleted first when ``replace``."""
        if replace:
            delete_netns(name)
        _ip(None, ["netns", "add", name])
        self.defer(f"netns {name}", lambda: delete_netns(name))
        _ip(name, ["link", "set", "lo", "up"])
        return name

    def add_veth(self, ns: str, name: str, peer_ns: str, peer: str, *, up: bool = True) -> None:
        """A veth pair with ``name`` in ``ns`` and ``peer`` in ``peer_ns``."""
        _ip(ns, ["link", "add", name, "type", "veth", "peer", "name", peer, "netns", peer_ns])
        self.defer(f"veth {ns}/{name}", lambda: self._del_link(ns, name))
        if up:
            _ip(ns, ["link", "set", name, "up"])
            _ip(peer_ns, ["link", "set", peer, "up"])

    def add_bridge(self, ns: str, name: str, *, up: bool = True) -> None:
        # No STP and no forwarding delay: a lab bridge must forward at once.
        _ip(ns, ["link", "add", name, "type", "bridge", "forward_delay", "0", "stp_state", "0"])
        self.defer(f"bridge {ns}/{name}", lambda: self._del_link(ns, name))
        if up:
            _ip(ns, ["link", "set", name, "up"])

    def set_master(self, ns: str, dev: str, bridge: str) -> None:
        _ip(ns, ["link", "set", dev, "master", bridge])

    def link_up(self, ns: str, dev: str) -> None:
        _ip(ns, ["link", "set", dev, "up"])

    def add_address(self, ns: str, dev: str, cidr: str) -> None:
        _ip(ns, ["addr", "add", cidr, "dev", dev])
        self.defer(
            f"address {ns}/{dev} {cidr}",
            lambda: self._if_ns(ns, ["addr", "del", cidr, "dev", dev]),
        )

    def add_route(
        self,
        ns: str,
        dst: str,
        *,
        via: str | None = None,
        dev: str | None = None,
        kind: str = "unicast",
        table: str | None = None,
    ) -> None:
        """``ip route add [kind] dst [via] [dev] [table]``; kind "local" makes every
        address of ``dst`` local to the namespace with one route."""
        spec = [kind, dst]
        if via:
            spec += ["via", via]
        if dev:
            spec += ["dev", dev]
        if table:
            spec += ["table", table]
        _ip(ns, ["route", "add", *spec])
        self.defer(f"route {ns} {' '.join(spec)}", lambda: self._if_ns(ns, ["route", "del", *spec]))

    def sysctl(self, ns: str, key: str, value: str) -> None:
        path = Path("/proc/sys") / key.replace(".", "/")
        call_in(ns, path.write_text, value)

    # -- commands and processes ---------------------------------------------------

    def run(
        self, ns: str | None, argv: Sequence[str], **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        return run_in(ns, argv, **kw)

    def call(self, ns: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return call_in(ns, fn, *args, **kwargs)

    def spawn(
        self, ns: str | None, argv: Sequence[str], *, grace: float = 5.0, **popen: Any
    ) -> subprocess.Popen[bytes]:
        """Start a process in ``ns``; close() stops it by PID (TERM, then KILL)."""
        proc = spawn_in(ns, argv, **popen)
        self.defer(f"process {proc.pid} {argv[0]}", lambda: self._stop(proc, grace))
        return proc

    # -- helpers ------------------------------------------------------------------

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes], grace: float) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(grace)

    @staticmethod
    def _if_ns(ns: str, args: list[str]) -> None:
        # Anything inside a namespace that is already gone went with it.
        if netns_exists(ns):
            _ip(ns, args, check=False)

    @staticmethod
    def _del_link(ns: str, name: str) -> None:
        if netns_exists(ns):
            _ip(ns, ["link", "del", name], check=False)
