"""The one script-user lookup (hafast.lib.scriptuser) and the spawns that use it."""

from __future__ import annotations

import asyncio
import grp
import pwd
from pathlib import Path

import pytest

from hafast.lib.notify import spawn_reaped
from hafast.lib.scriptuser import ScriptIdentity, script_identity
from tests.conftest import require_root

NOBODY = pwd.getpwnam("nobody")


def test_a_user_without_a_group_gets_its_login_group() -> None:
    assert script_identity("nobody") == ScriptIdentity(NOBODY.pw_uid, NOBODY.pw_gid, ())
    daemon_gid = grp.getgrnam("daemon").gr_gid
    assert script_identity("nobody", "daemon") == ScriptIdentity(NOBODY.pw_uid, daemon_gid, ())


def test_unknown_names_say_which() -> None:
    with pytest.raises(KeyError, match="script user 'no-such-user-here'"):
        script_identity("no-such-user-here")
    with pytest.raises(KeyError, match="script group 'no-such-group-here'"):
        script_identity("nobody", "no-such-group-here")


def _spawned_ids(user: str) -> tuple[int, int, str] | None:
    """Uid, gid and supplementary groups of a script spawned as ``user``, read from
    /proc while it runs (Popen returns once the program is exec'd); None when it
    could not start."""

    async def body() -> tuple[int, int, str] | None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int] = loop.create_future()
        proc = spawn_reaped(loop, ["sleep", "30"], done.set_result, user=user)
        if proc is None:
            assert await asyncio.wait_for(done, 10.0) == 127
            return None
        try:
            status = dict(line.split(":", 1)
                          for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines())
        finally:
            proc.kill()
            await asyncio.wait_for(done, 10.0)
        return (int(status["Uid"].split()[0]), int(status["Gid"].split()[0]),
                status["Groups"].strip())

    return asyncio.run(body())


def test_spawned_script_runs_as_the_user_in_its_login_group() -> None:
    require_root()
    # Not the daemon's group 0, which Popen(user=...) alone would have kept, and
    # none of the daemon's supplementary groups.
    assert _spawned_ids("nobody") == (NOBODY.pw_uid, NOBODY.pw_gid, "")
    assert _spawned_ids("no-such-user-here") is None  # logged, exit 127
