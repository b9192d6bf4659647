"""Who a script runs as: keepalived's ``script_user NAME [GROUP]`` and a script's own
``user NAME [GROUP]``, looked up once for notify scripts, track scripts, pool
scripts and MISC_CHECK alike.

keepalived's rules (keepalived.conf(5), ``script_user``): without GROUP the user's
login group, never the daemon's own (a script switched to ``nobody`` but left in
group root could still write what root's group may); the daemon's supplementary
groups are dropped (keepalived keeps them only with ``set_supplementary_groups``,
which hafast does not model).
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Sequence
from typing import NamedTuple

# keepalived's default script user (lib/notify.c get_default_script_user)
DEFAULT_USER = "keepalived_script"


class ScriptIdentity(NamedTuple):
    """What ``subprocess.Popen(user=, group=, extra_groups=)`` switches to."""

    uid: int
    gid: int
    groups: tuple[int, ...]


def script_identity(user: str, group: str | None = None) -> ScriptIdentity:
    """The identity of ``user`` [``group``]; KeyError names an unknown user or group
    (also one no system can have, such as a name with a NUL byte, which the C library
    refuses with ValueError).

    >>> script_identity("root")
    ScriptIdentity(uid=0, gid=0, groups=())
    >>> script_identity("root", "no-such-group-here")
    Traceback (most recent call last):
    KeyError: "script group 'no-such-group-here' does not exist"
    >>> script_identity("a\\x00b")
    Traceback (most recent call last):
    KeyError: "script user 'a\\\\x00b' does not exist"
    """
    try:
        pw = pwd.getpwnam(user)
    except (KeyError, ValueError):
        raise KeyError(f"script user {user!r} does not exist") from None
    if group is None:
        return ScriptIdentity(pw.pw_uid, pw.pw_gid, ())
    try:
        gid = grp.getgrnam(group).gr_gid
    except (KeyError, ValueError):
        raise KeyError(f"script group {group!r} does not exist") from None
    return ScriptIdentity(pw.pw_uid, gid, ())


def default_script_user(script_user: Sequence[str] | None) -> tuple[str, ...] | None:
    """Who a script without its own ``user`` runs as, as keepalived 2.2.7 decides it:
    global ``script_user NAME [GROUP]`` if set, else ``keepalived_script`` if that user
    exists, else None (the daemon's own identity, root).  The names are not checked
    here; :func:`script_identity` does that.

    >>> default_script_user(("nobody", "nogroup"))
    ('nobody', 'nogroup')
    >>> default_script_user(None) in (None, ("keepalived_script",))
    True
    """
    if script_user:
        return tuple(script_user)
    try:
        pwd.getpwnam(DEFAULT_USER)
    except KeyError:
        return None
    return (DEFAULT_USER,)


def own_identity() -> ScriptIdentity:
    """The daemon's own identity: what a script runs as when no user applies."""
    return ScriptIdentity(os.geteuid(), os.getegid(), ())
