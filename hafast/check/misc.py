"""MISC_CHECK: run a script, judge its exit status.

- No shell: ``misc_path`` is already split into an argv (as keepalived splits it).
- The child leads a new session (``start_new_session``), so a timeout kills its
  whole process group with SIGKILL, grandchildren included.
- Started and reaped as every hafast script is (:func:`~hafast.lib.notify.start_script`,
  :class:`~hafast.lib.notify.ExitWatch`: a pidfd on the loop, ``waitpid`` once it
  exited): no Task, no SIGCHLD handler, no child watcher thread; a cancelled
  (timed-out) child is still reaped, so no zombie is left.
- Exit 0 succeeds, 1 fails; with ``misc_dynamic`` 2..255 succeed with weight
  ``status - 2`` (keepalived ``check_misc.c``), without it any non-zero fails;
  death by a signal fails.
- ``user USER [GROUP]`` runs it as that user (else the worker's default script
  user, else the worker's own identity).

Example (the pure verdict)::

    >>> verdict(0, False), verdict(3, True).weight, verdict(3, False).ok
    (ProbeResult(ok=True, reason='', detail='', weight=None), 1, False)
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any

from hafast.check.api import NO_ATTEMPT, Attempt, Done, ProbeKind, ProbeResult
from hafast.lib.notify import ExitWatch, start_script
from hafast.lib.scriptuser import ScriptIdentity, script_identity

OK = ProbeResult(True)


def verdict(status: int, dynamic: bool) -> ProbeResult:
    """``status`` is a ``waitpid`` exit code (>= 0) or ``-signal``."""
    if status == 0:
        return OK
    if status < 0:
        return ProbeResult(False, "signal", f"killed by signal {-status}")
    if dynamic and 2 <= status <= 255:
        return ProbeResult(True, weight=status - 2)
    return ProbeResult(False, "exit", f"exit status {status}")


def resolve_user(user: tuple[str, ...] | None) -> ScriptIdentity | None:
    """The identity for ``user NAME [GROUP]`` (the one lookup,
    :func:`~hafast.lib.scriptuser.script_identity`: without GROUP the user's login
    group); None runs as ourselves.  KeyError names an unknown user or group.

    >>> resolve_user(("root",))
    ScriptIdentity(uid=0, gid=0, groups=())
    """
    if not user:
        return None
    return script_identity(user[0], user[1] if len(user) > 1 else None)


class Child:
    """A running script, watched until it exits."""

    __slots__ = ("done", "kind", "proc", "watch")

    def __init__(self, kind: MiscKind, done: Done, proc: subprocess.Popen[bytes]) -> None:
        self.kind = kind
        self.done: Done | None = done
        self.proc = proc
        # Whatever the script left running goes too (the watch kills its group
        # before reaping it): a check that leaks a process per attempt would fill
        # the host in a day.
        self.watch = ExitWatch(kind.loop, proc, self.exited, kill_group=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def exited(self, status: int) -> None:
        done, self.done = self.done, None
        self.kind.children.discard(self)
        if done is not None:
            done(verdict(status, self.kind.spec.misc_dynamic))

    def stop_watching(self) -> None:
        self.watch.close()

    def cancel(self) -> None:
        """Timeout: kill the whole group; keep watching only to reap."""
        if self.done is None:
            return
        self.done = None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class MiscKind(ProbeKind):
    __slots__ = ("argv", "children", "who")
    keyword = "MISC_CHECK"

    def __init__(self, spec: Any, target: Any, loop: Any, *,
                 default_user: tuple[str, ...] | None = None) -> None:
        super().__init__(spec, target, loop)
        script = spec.misc_path
        # The model gives a Script(argv, user, group); a bare argv tuple is accepted too.
        self.argv: tuple[str, ...] = tuple(getattr(script, "argv", script) or ())
        own = getattr(script, "user", None)
        script_user = (own, *((script.group,) if script.group else ())) if own else None
        self.who = resolve_user(spec.user or script_user or default_user)
        self.children: set[Child] = set()

    def deadline_us(self) -> int:
        # keepalived: misc_timeout defaults to delay_loop.
        timeout: int = self.spec.misc_timeout_us or self.spec.delay_loop_us
        return timeout

    def start(self, done: Done) -> Attempt:
        try:
            proc = start_script(self.argv, self.who)
        except (OSError, subprocess.SubprocessError) as exc:
            done(ProbeResult(False, "spawn", str(exc)))
            return NO_ATTEMPT
        try:
            child = Child(self, done, proc)
        except OSError as exc:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            done(ProbeResult(False, "spawn", f"pidfd_open: {exc}"))
            return NO_ATTEMPT
        self.children.add(child)
        return child

    def close(self) -> None:
        for child in list(self.children):
            child.cancel()
            child.proc.wait()
            child.stop_watching()
        self.children.clear()
