"""keepalived's script security check: may a script run, and is its path safe?

keepalived 2.2.7 checks every script once per load (``check_script_secure`` in
``lib/notify.c``), whether ``enable_script_security`` is set or not:

1. a bare name is looked up on ``PATH`` (an executable regular file for the script's
   uid:gid); the name is then resolved with ``realpath()``, keeping the file name
   as written when the resolved file is the same inode (some programs behave by
   the name they are called by);
2. a script run with uid 0 or gid 0 (or a set-uid/set-gid root file) needs
   protection: every component of its path, from ``/`` down to the file, both as
   resolved and, when the name was kept, the real file, must be owned by root, and
   no regular file or directory without the sticky bit may be writable by a group
   other than root or by others (``/tmp``, 1777, is fine);
3. an unsafe path logs ``Unsafe permissions found for script 'P'.``; with
   ``enable_script_security`` it logs ``... - disabling.`` and the script does not run;
4. a program that is missing (``Script P cannot be accessed - ...``, ``Cannot find
   script P in path - disabling``) or that its uid:gid cannot execute (``WARNING -
   script 'P' is not executable for uid:gid U:G - disabling.``) does not run either,
   with or without ``enable_script_security``: keepalived drops it at load.

A script run as a user other than root is not checked for permissions (it can only
hurt what that user can), only for being executable by that user.

This module is that check and nothing else: no config, no logging; the loader
(:mod:`hafast.config.scriptcheck`) decides what a verdict does to the model.

Example::

    >>> c = check_script("/bin/sh", 0, 0, security=True)
    >>> c.found, c.disabled, c.insecure
    (True, False, False)
    >>> check_script("/no/such/script", 0, 0, security=True).log
    ('Script /no/such/script cannot be accessed - No such file or directory',)
"""

from __future__ import annotations

import enum
import errno
import os
import stat
from collections.abc import Collection
from dataclasses import dataclass


class Sc(enum.IntFlag):
    """keepalived's ``SC_*`` flags (``lib/notify.h``)."""

    INSECURE = 0x01  # a component of the path is writable by a non-root user or group
    ISSCRIPT = 0x02  # the program was found: a script keepalived would run
    INHIBIT = 0x04  # must not run (unsafe with enable_script_security, wrong file type)
    NOTFOUND = 0x08  # missing or not accessible
    EXECUTABLE = 0x10  # executable by the script's uid:gid
    SYSTEM = 0x40  # "</path": a file test for system(), nothing is executed


@dataclass(frozen=True, slots=True)
class ScriptCheck:
    """The verdict on one program: keepalived's flags, the program as it would be run
    (after a ``PATH`` search), keepalived's log lines, and, when unsafe, the path
    component that makes it so and why (for a message that says what would be right)."""

    flags: Sc
    program: str
    log: tuple[str, ...] = ()
    culprit: str = ""
    why: str = ""
    searched: bool = False

    @property
    def found(self) -> bool:
        return bool(self.flags & Sc.ISSCRIPT)

    @property
    def insecure(self) -> bool:
        return bool(self.flags & Sc.INSECURE)

    @property
    def missing(self) -> bool:
        """Missing or not accessible: keepalived's "since not found/accessible"."""
        return bool(self.flags & Sc.NOTFOUND)

    @property
    def inhibited(self) -> bool:
        """Refused for its permissions or file type (not for being missing)."""
        return bool(self.flags & Sc.INHIBIT)

    @property
    def disabled(self) -> bool:
        """keepalived would not run it (``check_notify_script_secure``'s rule)."""
        return bool(self.flags & (Sc.INHIBIT | Sc.NOTFOUND)) or not self.flags & (
            Sc.EXECUTABLE | Sc.SYSTEM
        )


def is_executable(st: os.stat_result, uid: int, gid: int) -> bool:
    """keepalived's ``is_executable``: root needs any x bit; the owner its own; else the
    group bit for the file's group and the other bit for anyone else (supplementary
    groups are not consulted, as keepalived does not).

    >>> st = os.stat("/bin/sh")
    >>> is_executable(st, 0, 0), is_executable(st, 65534, 65534)
    (True, True)
    """
    mode = st.st_mode
    if uid == 0 and mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH):
        return True
    if uid == st.st_uid:
        return bool(mode & stat.S_IXUSR)
    if gid == st.st_gid:
        return bool(mode & stat.S_IXGRP)
    return bool(mode & stat.S_IXOTH)


def _search_path(name: str, uid: int, gid: int, search: str | None) -> tuple[str | None, bool]:
    """glibc's execvpe search as keepalived copies it: (found path, denied): an
    existing entry that is not an executable regular file counts as denied."""
    if search is None:
        search = os.environ.get("PATH") or os.confstr("CS_PATH") or ""
    denied = False
    for entry in search.split(":"):
        cand = f"{entry}/{name}" if entry else name
        try:
            st = os.stat(cand)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and is_executable(st, uid, gid):
            return cand, False
        denied = True
    return None, denied


def _prefixes(filename: str) -> list[str]:
    """What keepalived's ``check_security`` stats, in order: ``/`` first for an absolute
    path, then each directory, then the file itself.

    >>> _prefixes("/etc/keepalived/x.sh")
    ['/', '/etc', '/etc/keepalived', '/etc/keepalived/x.sh']
    """
    out = []
    for i, ch in enumerate(filename):
        if ch == "/":
            out.append(filename[: i or 1])
    out.append(filename)
    return out


def path_safety(filename: str, security: bool, trusted: Collection[int] = (0,)
                ) -> tuple[Sc, str, str, str]:
    """(flags, log line, culprit, why) for every component of ``filename``
    (keepalived's ``check_security``); a symlink is judged by its own owner, not
    followed (``AT_SYMLINK_NOFOLLOW``).  ``trusted``: the owners that may own a
    component (keepalived's rule, for a script run as root: root alone).

    >>> path_safety("/usr/bin/sh", True)[0]
    <Sc: 0>
    >>> path_safety("/bin/sh", True)[:2]  # /bin is a symlink on merged-/usr systems
    (<Sc.INHIBIT: 4>, "Wrong file type found in script path '/bin/sh'.")
    """
    parts = _prefixes(filename)
    for n, part in enumerate(parts):
        last = n == len(parts) - 1
        try:
            st = os.lstat(part)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.ELOOP, errno.ENOENT, errno.ENOTDIR):
                line = f"check_script_secure could not find script '{filename}' - disabling"
            else:
                line = (f"check_script_secure('{filename}') returned errno {exc.errno} - "
                        f"{os.strerror(exc.errno or 0)} - disabling")
            return Sc.NOTFOUND, line, part, "missing"
        mode = st.st_mode
        if (not last and not stat.S_ISDIR(mode)) or (
            last and not stat.S_ISREG(mode) and not stat.S_ISLNK(mode)
        ):
            return (Sc.INHIBIT, f"Wrong file type found in script path '{filename}'.", part,
                    "not a directory" if not last else "not a regular file")
        why = ""
        if st.st_uid not in trusted:
            why = f"owned by uid {st.st_uid}, not root"
        elif (stat.S_ISDIR(mode) and not mode & stat.S_ISVTX) or stat.S_ISREG(mode):
            if mode & stat.S_IWOTH:
                why = "writable by others"
            elif st.st_gid and mode & stat.S_IWGRP:
                why = f"writable by group {st.st_gid}"
        if why:
            line = (f"Unsafe permissions found for script '{filename}'"
                    f"{' - disabling' if security else ''}.")
            return Sc.INSECURE | (Sc.INHIBIT if security else Sc(0)), line, part, why
    return Sc(0), "", "", ""


def check_script(program: str, uid: int, gid: int, *, security: bool,
                 search: str | None = None) -> ScriptCheck:
    """keepalived's ``check_script_secure`` for ``program`` run as ``uid:gid``.

    ``search`` is the ``PATH`` for a bare name (default: ours, else the system's).
    Unlike keepalived, the file is resolved with our own identity, not the script
    user's: a script its user cannot reach is found here and fails when run.

    >>> check_script("sh", 0, 0, security=False, search="/usr/bin").program
    '/usr/bin/sh'
    >>> check_script("</etc/passwd", 0, 0, security=True).flags
    <Sc.SYSTEM: 64>
    >>> [check_script(p, 0, 0, security=False).flags for p in ("sh\\0x", "/bin/sh\\0x")]
    [<Sc.NOTFOUND: 8>, <Sc.NOTFOUND: 8>]
    """
    log: list[str] = []
    if program.startswith("<") and program[1:].lstrip(" \t").startswith("/"):
        return ScriptCheck(Sc.SYSTEM, program)
    if "\0" in program:
        # no file has such a name (the system calls refuse it: ValueError here)
        return ScriptCheck(Sc.NOTFOUND, program,
                           (f"Cannot find script {program!r} - disabling",))
    searched = False
    if "/" not in program:
        found, denied = _search_path(program, uid, gid, search) if program else (None, False)
        if found is None:
            line = (f"Permissions failure for script {program} in path - disabling" if denied
                    else f"Cannot find script {program} in path - disabling")
            return ScriptCheck(Sc.NOTFOUND, program, (line,))
        log.append(f"WARNING - script `{program}` resolved by path search to `{found}`. "
                   "Please specify full path.")
        program, searched = found, True
    try:
        new = os.path.realpath(program, strict=True)
    except OSError as exc:
        log.append(f"Script {program} cannot be accessed - {os.strerror(exc.errno or 0)}")
        return ScriptCheck(Sc.NOTFOUND, program, tuple(log), searched=searched)
    real: str | None = None
    if new != program:
        orig_name = program.rsplit("/", 1)[1]
        head, new_name = new.rsplit("/", 1)
        if orig_name != new_name:
            # keep the name as written when it is the same file (busybox-style programs
            # act on the name they are called by)
            real, new = new, f"{head}/{orig_name}"
            try:
                rst = os.stat(real)
                try:
                    nst = os.stat(new)
                    same = (rst.st_dev, rst.st_ino) == (nst.st_dev, nst.st_ino)
                except OSError:
                    same = False
                if not same:
                    new, real = real, None
            except OSError:
                pass
        program = new
    try:
        st = os.stat(real or program)
    except OSError:
        log.append(f"Unable to access script `{program}` - disabling")
        return ScriptCheck(Sc.NOTFOUND, program, tuple(log), searched=searched)
    flags = Sc.ISSCRIPT
    protect = False
    if is_executable(st, uid, gid):
        flags |= Sc.EXECUTABLE
        mode = st.st_mode
        suid, sgid = stat.S_IXUSR | stat.S_ISUID, stat.S_IXGRP | stat.S_ISGID
        protect = (uid == 0 or gid == 0
                   or (st.st_uid == 0 and mode & suid == suid)
                   or (st.st_gid == 0 and mode & sgid == sgid))
    else:
        log.append(f"WARNING - script '{program}' is not executable for uid:gid "
                   f"{uid}:{gid} - disabling.")
    culprit = why = ""
    if protect:
        for path in (program, real):
            if path is None:
                continue
            more, line, c, w = path_safety(path, security)
            flags |= more
            if line:
                log.append(line)
                culprit, why = culprit or c, why or w
    return ScriptCheck(flags, program, tuple(log), culprit, why, searched)
