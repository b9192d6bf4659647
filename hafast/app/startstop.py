"""global_defs ``startup_script`` and ``shutdown_script``, run by the parent as keepalived
2.2.7 runs them (``run_startup_script``, ``startup_shutdown_script_completed`` and
``handle_child_timeout`` in ``core/main.c``):

- the startup script before anything else starts (workers, pools, control socket):
  keepalived starts its children only once the script has ended or been killed; not
  again on reload;
- the shutdown script once every worker has stopped and the pools are closed, from
  the configuration in force then (a reload may have changed it);
- each gets ``*_script_timeout`` seconds (default 10); then the script's process
  group gets SIGTERM, 2 s later SIGKILL, 2 s later a last SIGKILL, and 10 s after that
  hafast goes on without it;
- a script ended by our SIGTERM has whatever it left in its group SIGKILLed;
- an exit status other than 0 is logged (keepalived's "startup script script failed,
  status N"); hafast starts or stops all the same;
- the script runs as its own ``user [group]``, else ``script_user``, else root, with
  the permission check every script gets (:func:`hafast.lib.scriptsecurity.
  check_script`): with ``enable_script_security`` an unsafe one is not run; without
  it keepalived's "SECURITY VIOLATION" warning is logged.  A script that is missing
  or not executable is not run either (keepalived drops it).

The scripts run through :func:`hafast.lib.notify.start_script` and are reaped through
:class:`hafast.lib.notify.ExitWatch`, as every script hafast runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

from hafast.lib.notify import ExitWatch, as_argv, run_as, start_script
from hafast.lib.scriptsecurity import Sc, check_script
from hafast.lib.scriptuser import ScriptIdentity, own_identity, script_identity

log = logging.getLogger("hafast")

DEFAULT_TIMEOUT_S = 10  # keepalived's, when a script is given without a timeout
# after the timeout: (signal to the group, seconds to wait for the exit, what to log)
_ESCALATION: tuple[tuple[int | None, float, str], ...] = (
    (signal.SIGTERM, 2.0, "{type} timed out"),
    (signal.SIGKILL, 2.0, ""),
    (signal.SIGKILL, 10.0, "{type} (PID {pid}) failed to terminate after kill"),
)


def _who(script: Any, script_user: Any) -> ScriptIdentity | None:
    user, group = run_as(script, script_user)
    return None if user is None else script_identity(user, group)


def _program(script: Any, gd: Any, kind: str) -> tuple[list[str], ScriptIdentity | None] | None:
    """The argv to run and who runs it, or None (logged) when keepalived would not."""
    argv = as_argv(script)
    if not argv:
        return None
    try:
        who = _who(script, getattr(gd, "script_user", None))
    except KeyError as exc:
        log.info("Invalid user/group for %s script %s - ignoring (%s)", kind, argv[0],
                 exc.args[0])
        return None
    ident = who or own_identity()
    security = bool(getattr(gd, "enable_script_security", False))
    check = check_script(argv[0], ident.uid, ident.gid, security=security)
    for line in check.log:
        log.warning("%s", line)
    if check.disabled:
        log.warning("%s script %s is not run", kind, argv[0])
        return None
    if not security and check.flags & Sc.ISSCRIPT and check.flags & Sc.INSECURE:
        log.warning("SECURITY VIOLATION - start/shutdown scripts are being executed but "
                    "script_security not enabled. There are insecure scripts.")
    return [check.program, *argv[1:]], who


async def run_script(script: Any, gd: Any, kind: str, timeout_s: int | None) -> int | None:
    """Run the ``kind`` (``startup``/``shutdown``) script to its end, or kill it after
    ``timeout_s``; its exit code, or None when it was not run or did not end."""
    what = _program(script, gd, kind)
    if what is None:
        return None
    argv, who = what
    type_ = f"{kind} script"
    loop = asyncio.get_running_loop()
    try:
        proc = start_script(argv, who)
    except (OSError, ValueError) as exc:
        log.info("Call of %s %s failed (%s)", type_, argv[0], exc)
        return None
    log.debug("Running %s %s", type_, argv[0])
    done: asyncio.Future[int] = loop.create_future()

    def exited(code: int) -> None:
        if not done.done():
            done.set_result(code)

    watch: ExitWatch | None = None
    try:
        watch = ExitWatch(loop, proc, exited)
    except OSError:  # no pidfd: poll
        async def poll() -> None:
            while proc.poll() is None:
                await asyncio.sleep(0.05)
            exited(proc.returncode)

        poller = loop.create_task(poll())
        done.add_done_callback(lambda _f: poller.cancel())
    wait = float(timeout_s or DEFAULT_TIMEOUT_S)
    for sig, then, line in ((None, wait, ""), *_ESCALATION):
        if sig is not None:
            if line:
                log.info(line.format(type=type_, pid=proc.pid))
            if sig == signal.SIGTERM and watch is not None:
                # what the script started dies with it (keepalived's kill(-pid, SIGKILL))
                watch.kill_group = True
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass  # ended meanwhile: its exit is on its way
            except PermissionError as exc:
                log.info("kill -%d of %s (%d) failed: %s", sig, type_, proc.pid, exc)
        try:
            code = await asyncio.wait_for(asyncio.shield(done), then)
        except TimeoutError:
            continue
        if code > 0:
            log.info("%s script failed, status %d", type_, code)
        return code
    # keepalived gives up on it too; the watch stays, so it is reaped if it ever ends
    return None
