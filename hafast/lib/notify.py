"""Notify scripts and notify FIFOs, as keepalived runs them.

* ``notify_master`` / ``notify_backup`` / ``notify_fault`` / ``notify_stop`` run as
  configured; ``notify`` runs with keepalived's four extra arguments
  ``INSTANCE|GROUP  NAME  MASTER|BACKUP|FAULT|STOP|DELETED  PRIORITY``; an instance
  with ``notify_deleted SCRIPT`` runs that script when a reload removes it.
* Scripts are fire-and-forget (VRRP timing must never wait on them) but every
  child is reaped through a pidfd on the loop, so none is left a zombie.  They
  run without a shell, in their own session, as the configured user
  (``notify_master SCRIPT user [group]``, else global ``script_user``).
  :func:`start_script` and :class:`ExitWatch` are that start and that reaping
  for every script hafast runs (track scripts, pool scripts, MISC_CHECK too).
* ``notify_fifo`` / ``vrrp_notify_fifo`` get one line per change in keepalived's
  format ``INSTANCE "VI_1" MASTER 100`` (and the events ``MASTER_PRIORITY``,
  ``BACKUP_PRIORITY``, ``MASTER_RX_LOWER_PRI`` in the same shape), written
  synchronously in the order the changes happen (keepalived added the FIFOs
  because script order is not guaranteed, issue #996).  A missing FIFO is
  created; it is opened read-write so writing never blocks or fails for want of
  a reader, and a full FIFO drops the line with a warning rather than stall
  the loop.

Example::

    n = Notifier(loop, fifos=["/run/ka.fifo"])
    n.state_change("INSTANCE", "VI_1", "MASTER", 100, NotifyScripts(notify=("/bin/x",)))
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import stat
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hafast.lib.scriptuser import ScriptIdentity, script_identity

log = logging.getLogger("hafast.notify")

Argv = tuple[str, ...]


RunAs = tuple[str | None, str | None]  # (user, group); (None, None): the daemon's own


@dataclass(frozen=True, slots=True)
class NotifyScripts:
    """The notify scripts of one instance or sync group, and who each runs as.

    ``users`` maps a slot name (``master``, ``backup``, ``fault``, ``stop``,
    ``notify``, ``rx_lower_pri``) to (user, group): keepalived's
    ``notify_master SCRIPT [user [:][group]]``, else global ``script_user``.
    """

    master: Argv | None = None
    backup: Argv | None = None
    fault: Argv | None = None
    stop: Argv | None = None
    notify: Argv | None = None
    rx_lower_pri: Argv | None = None
    deleted: Argv | None = None
    users: tuple[tuple[str, RunAs], ...] = ()

    def for_state(self, state: str) -> Argv | None:
        slot = _STATE_SLOTS.get(state)
        return getattr(self, slot) if slot else None

    def run_as(self, slot: str) -> RunAs:
        """(user, group) the ``slot`` script runs as.

        >>> NotifyScripts(users=(("master", ("nobody", None)),)).run_as("master")
        ('nobody', None)
        """
        for name, who in self.users:
            if name == slot:
                return who
        return (None, None)


# Notify word -> NotifyScripts slot (keepalived's get_iscript / get_gscript).
_STATE_SLOTS = {"MASTER": "master", "BACKUP": "backup", "FAULT": "fault", "STOP": "stop",
                "DELETED": "deleted"}
# Config attribute (VrrpInstance and SyncGroup share the names) -> slot.
_CONFIG_SLOTS = (("notify_master", "master"), ("notify_backup", "backup"),
                 ("notify_fault", "fault"), ("notify_stop", "stop"), ("notify", "notify"),
                 ("notify_master_rx_lower_pri", "rx_lower_pri"),
                 ("notify_deleted", "deleted"))


def notify_scripts(block: object, script_user: Sequence[str] | None = None) -> NotifyScripts:
    """The :class:`NotifyScripts` of a ``vrrp_instance`` or ``vrrp_sync_group`` model.

    A script's own ``user [group]`` wins; otherwise global ``script_user``
    (``fallback``) applies, as keepalived does.  Attributes the model lacks
    count as unset.

    >>> from types import SimpleNamespace as NS
    >>> s = notify_scripts(NS(notify_master=("/bin/m",)), ("nobody",))
    >>> s.master, s.run_as("master")
    (('/bin/m',), ('nobody', None))
    """
    argvs: dict[str, Argv | None] = {}
    users: list[tuple[str, RunAs]] = []
    for attr, slot in _CONFIG_SLOTS:
        script = getattr(block, attr, None)
        argv = as_argv(script)
        argvs[slot] = argv
        if argv:
            who = run_as(script, script_user)
            if who != (None, None):
                users.append((slot, who))
    return NotifyScripts(**argvs, users=tuple(users))


def as_argv(script: object) -> Argv | None:
    """The argv of a config script, whether the model gives a tuple or a ``Script``.

    >>> as_argv(("/bin/true", "x")), as_argv(None)
    (('/bin/true', 'x'), None)
    """
    if script is None:
        return None
    argv = getattr(script, "argv", script)
    return tuple(str(a) for a in argv) if argv else None  # type: ignore[attr-defined]


def run_as(script: object, fallback: Sequence[str] | None = None) -> tuple[str | None,
                                                                           str | None]:
    """(user, group) a script runs as: its own ``user``, else ``fallback`` (user [group]).

    >>> run_as(None, ("nobody", "nogroup"))
    ('nobody', 'nogroup')
    """
    user = getattr(script, "user", None)
    group = getattr(script, "group", None)
    if user is None and fallback:
        user = fallback[0]
        group = fallback[1] if len(fallback) > 1 else None
    return user, group


def start_script(
    argv: Sequence[str],
    who: ScriptIdentity | None = None,
    *,
    group: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` the one way hafast starts a script (notify, track, pool and
    MISC_CHECK scripts alike): no shell, stdio on /dev/null, no inherited fds, a
    session of its own (so a timeout can kill the whole group, grandchildren
    included) and ``who``'s identity (``group`` alone switches only the group).
    Raises what :class:`subprocess.Popen` raises when it cannot start.

    >>> p = start_script(["/bin/true"]); p.wait()
    0
    """
    return subprocess.Popen(
        list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True, env=env,
        user=who.uid if who else None, group=who.gid if who else group,
        extra_groups=list(who.groups) if who else None,
    )


class ExitWatch:
    """A started child watched through a pidfd on the loop: once it exits it is
    reaped and ``on_exit(code)`` runs (a negative code is the killing signal).  No
    Task, no SIGCHLD handler, no child-watcher thread.

    With ``kill_group`` whatever the child left running in its session is
    SIGKILLed first: until it is reaped the child holds its pid and group id, so
    the kill cannot hit a stranger.  A child reaped by someone else (its
    ``Popen`` polled by its owner: that code; a foreign ``waitpid``: unknown, so
    255, a failure) still reports.  Raises OSError when there is no pidfd (kernel
    before 5.3): the caller decides what then.
    """

    __slots__ = ("_loop", "_on_exit", "_pidfd", "kill_group", "proc")

    def __init__(self, loop: asyncio.AbstractEventLoop, proc: subprocess.Popen[bytes],
                 on_exit: Callable[[int], None] | None = None, *,
                 kill_group: bool = False) -> None:
        self._pidfd = os.pidfd_open(proc.pid)
        self._loop, self.proc, self._on_exit = loop, proc, on_exit
        self.kill_group = kill_group
        loop.add_reader(self._pidfd, self._readable)

    @property
    def watching(self) -> bool:
        return self._pidfd >= 0

    def _readable(self) -> None:
        proc = self.proc
        if self.kill_group and proc.returncode is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if proc.returncode is None:
            try:
                pid, raw = os.waitpid(proc.pid, os.WNOHANG)
            except ChildProcessError:
                pid, raw = proc.pid, 0xFF00  # exit 255
            if pid == 0:
                return
            proc.returncode = os.waitstatus_to_exitcode(raw)
        self.close()
        if self._on_exit is not None:
            self._on_exit(proc.returncode)

    def close(self) -> None:
        """Stop watching (the child is not reaped here)."""
        if self._pidfd >= 0:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1


def spawn_reaped(
    loop: asyncio.AbstractEventLoop,
    argv: Sequence[str],
    on_exit: Callable[[int], None] | None = None,
    *,
    env: dict[str, str] | None = None,
    user: str | None = None,
    group: str | None = None,
) -> subprocess.Popen[bytes] | None:
    """Start ``argv`` (:func:`start_script`) and reap it from the loop when it
    exits (:class:`ExitWatch`), fire and forget.

    ``on_exit(returncode)`` runs on the loop; a negative code is the killing
    signal.  ``user``/``group`` switch identity first (keepalived's script
    ``user``; see :func:`~hafast.lib.scriptuser.script_identity`: without a group,
    the user's login group).  Returns None (and logs) when the program cannot be
    started.
    """
    try:
        who = script_identity(user, group) if user is not None else None
        proc = start_script(argv, who, group=group, env=env)
    except (OSError, ValueError, KeyError) as exc:
        log.warning("cannot run %s: %s", argv[0] if argv else "?", exc)
        if on_exit is not None:
            loop.call_soon(on_exit, 127)
        return None
    try:
        ExitWatch(loop, proc, on_exit)
    except OSError:
        # No pidfd (old kernel): fall back to polling, still reaped.
        def poll() -> None:
            if proc.poll() is None:
                loop.call_later(0.05, poll)
            elif on_exit is not None:
                on_exit(proc.returncode)

        loop.call_later(0.01, poll)
    return proc


def fifo_line(kind: str, name: str, state: str, priority: int) -> bytes:
    """One notify FIFO line as keepalived writes it.

    >>> fifo_line("INSTANCE", "VI_1", "MASTER", 100)
    b'INSTANCE "VI_1" MASTER 100\\n'
    """
    return f'{kind} "{name}" {state} {priority}\n'.encode()


class Notifier:
    """Runs notify scripts and writes the notify FIFOs for state changes."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        fifos: Sequence[str] = (),
        fifo_scripts: Sequence[Argv | None] = (),
    ) -> None:
        self._loop = loop
        self._fds: list[int] = []
        self.lines: list[bytes] = []  # everything written, for status and tests
        for i, path in enumerate(fifos):
            fd = self._open_fifo(path)
            if fd is None:
                continue
            self._fds.append(fd)
            script = fifo_scripts[i] if i < len(fifo_scripts) else None
            if script:
                # keepalived passes the FIFO's name as the script's last argument.
                spawn_reaped(loop, (*script, path))

    @staticmethod
    def _open_fifo(path: str) -> int | None:
        try:
            if not os.path.exists(path):
                os.mkfifo(path, 0o600)
            elif not stat.S_ISFIFO(os.stat(path).st_mode):
                log.warning("notify fifo %s exists and is not a FIFO; not using it", path)
                return None
            return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            log.warning("cannot open notify fifo %s: %s", path, exc)
            return None

    def _write(self, line: bytes) -> None:
        self.lines.append(line)
        for fd in self._fds:
            try:
                os.write(fd, line)
            except BlockingIOError:
                log.warning("notify fifo full; dropped: %s", line.decode().rstrip())
            except OSError as exc:
                log.warning("notify fifo write failed: %s", exc)

    def _spawn(self, argv: Sequence[str], who: RunAs) -> None:
        spawn_reaped(self._loop, argv, user=who[0], group=who[1])

    def state_change(
        self, kind: str, name: str, state: str, priority: int, scripts: NotifyScripts
    ) -> None:
        """Report ``name`` entering ``state`` (MASTER, BACKUP, FAULT or STOP)."""
        self._write(fifo_line(kind, name, state, priority))
        slot = _STATE_SLOTS.get(state)
        specific = scripts.for_state(state)
        if specific and slot:
            self._spawn(specific, scripts.run_as(slot))
        if scripts.notify:
            self._spawn((*scripts.notify, kind, name, state, str(priority)),
                        scripts.run_as("notify"))

    def priority_change(self, name: str, master: bool, priority: int) -> None:
        """keepalived ``notify_priority_changes``: a FIFO line, no script.

        >>> n = Notifier.__new__(Notifier); n._fds = []; n.lines = []
        >>> n.priority_change("VI_1", False, 90); n.lines
        [b'INSTANCE "VI_1" BACKUP_PRIORITY 90\\n']
        """
        event = "MASTER_PRIORITY" if master else "BACKUP_PRIORITY"
        self._write(fifo_line("INSTANCE", name, event, priority))

    def fifo_state(self, kind: str, name: str, state: str, priority: int) -> None:
        """A state written to the FIFOs again, nothing run, nothing mailed: keepalived's
        notify_instance_fifo / notify_group_fifo (``fifo_write_vrrp_states_on_reload``).

        >>> n = Notifier.__new__(Notifier); n._fds = []; n.lines = []
        >>> n.fifo_state("GROUP", "G1", "MASTER", 0); n.lines
        [b'GROUP "G1" MASTER 0\\n']
        """
        self._write(fifo_line(kind, name, state, priority))

    def master_rx_lower_pri(self, name: str, priority: int, scripts: NotifyScripts) -> None:
        """A master heard a lower priority advert: ``notify_master_rx_lower_pri`` (run
        with no extra arguments, as keepalived does) and a FIFO line with our
        effective priority."""
        if scripts.rx_lower_pri:
            self._spawn(scripts.rx_lower_pri, scripts.run_as("rx_lower_pri"))
        self._write(fifo_line("INSTANCE", name, "MASTER_RX_LOWER_PRI", priority))

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []
