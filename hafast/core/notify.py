"""Notify scripts and notify FIFOs, as keepalived runs them.

* ``notify_master`` / ``notify_backup`` / ``notify_fault`` / ``notify_stop`` run as
  configured; ``notify`` runs with keepalived's four extra arguments
  ``INSTANCE|GROUP  NAME  MASTER|BACKUP|FAULT|STOP  PRIORITY``.
* Scripts are fire-and-forget (VRRP timing must never wait on them) but every
  child is reaped through a pidfd on the loop, so none is left a zombie.  They
  run without a shell, in their own session.
* ``notify_fifo`` / ``vrrp_notify_fifo`` get one line per change in keepalived's
  format ``INSTANCE "VI_1" MASTER 100``, written synchronously in the order the
  changes happen (keepalived added the FIFOs because script order is not
  guaranteed, issue #996).  A missing FIFO is created; it is opened read-write
  so writing never blocks or fails for want of a reader, and a full FIFO drops
  the line with a warning rather than stall the loop.

Example::

    n = Notifier(loop, fifos=["/run/ka.fifo"])
    n.state_change("INSTANCE", "VI_1", "MASTER", 100, NotifyScripts(notify=("/bin/x",)))
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

log = logging.getLogger("hafast.notify")

Argv = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NotifyScripts:
    master: Argv | None = None
    backup: Argv | None = None
    fault: Argv | None = None
    stop: Argv | None = None
    notify: Argv | None = None

    def for_state(self, state: str) -> Argv | None:
        return {"MASTER": self.master, "BACKUP": self.backup, "FAULT": self.fault,
                "STOP": self.stop}.get(state)


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


def spawn_reaped(
    loop: asyncio.AbstractEventLoop,
    argv: Sequence[str],
    on_exit: Callable[[int], None] | None = None,
    *,
    env: dict[str, str] | None = None,
    user: str | None = None,
    group: str | None = None,
) -> subprocess.Popen[bytes] | None:
    """Start ``argv`` (no shell, own session) and reap it from the loop when it exits.

    ``on_exit(returncode)`` runs on the loop; a negative code is the killing
    signal.  ``user``/``group`` switch identity first (keepalived's script
    ``user``).  Returns None (and logs) when the program cannot be started.
    """
    try:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True, env=env,
            user=user, group=group,
        )
    except (OSError, ValueError, KeyError) as exc:
        log.warning("cannot run %s: %s", argv[0] if argv else "?", exc)
        if on_exit is not None:
            loop.call_soon(on_exit, 127)
        return None
    try:
        pidfd = os.pidfd_open(proc.pid)
    except OSError:
        # No pidfd (old kernel): fall back to polling, still reaped.
        def poll() -> None:
            if proc.poll() is None:
                loop.call_later(0.05, poll)
            elif on_exit is not None:
                on_exit(proc.returncode)

        loop.call_later(0.01, poll)
        return proc

    def reap() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        code = proc.wait()
        if on_exit is not None:
            on_exit(code)

    loop.add_reader(pidfd, reap)
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

    def state_change(
        self, kind: str, name: str, state: str, priority: int, scripts: NotifyScripts
    ) -> None:
        """Report ``name`` entering ``state`` (MASTER, BACKUP, FAULT or STOP)."""
        line = fifo_line(kind, name, state, priority)
        self.lines.append(line)
        for fd in self._fds:
            try:
                os.write(fd, line)
            except BlockingIOError:
                log.warning("notify fifo full; dropped: %s", line.decode().rstrip())
            except OSError as exc:
                log.warning("notify fifo write failed: %s", exc)
        specific = scripts.for_state(state)
        if specific:
            spawn_reaped(self._loop, specific)
        if scripts.notify:
            spawn_reaped(self._loop, (*scripts.notify, kind, name, state, str(priority)))

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []
