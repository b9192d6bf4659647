"""``include`` in keepalived.conf: which files a pattern names, and what to complain about.

keepalived.conf(5): ``include FILE`` takes a glob(3) pattern with csh ``{a,b}`` braces,
relative to the folder of the including file.  The variants ``includer`` / ``includem``
/ ``includew`` / ``includeb`` / ``includea`` and ``include_check [+|-]OPTION...`` decide
which problems are errors; keepalived reports the others too, but carries on (a missing
file under a plain ``include`` makes ``keepalived -t`` print "Config files missing" and
still exit 0), so they are warnings here.
"""

from __future__ import annotations

import enum
import glob as _glob
import os
import re
import stat
from dataclasses import dataclass

from hafast.lib.scriptsecurity import Sc, path_safety

__all__ = [
    "VARIANTS",
    "Check",
    "Found",
    "Problem",
    "apply_include_check",
    "brace_expand",
    "find_files",
    "split_include",
]


class Check(enum.Flag):
    """keepalived's include_check bits (INCLUDE_R/M/W/B)."""

    NONE = 0
    READ = enum.auto()  # a match must be a readable regular non-executable file
    MATCH = enum.auto()  # a plain name must exist
    WILDCARD = enum.auto()  # a wildcard must match something
    BRACE = enum.auto()  # every {a,b} alternative must exist
    LIMIT = enum.auto()  # hafast's own bound (MAX_ALTERNATIVES): always an error


ALL = Check.READ | Check.MATCH | Check.WILDCARD | Check.BRACE

# What each keyword adds to the current include_check (keepalived's check_include()).
VARIANTS: dict[str, Check] = {
    "include": Check.NONE,
    "includer": Check.READ,
    "includem": Check.READ | Check.MATCH,
    "includew": Check.READ | Check.MATCH | Check.WILDCARD,
    "includeb": Check.READ | Check.BRACE,
    "includea": ALL,
}

_OPTIONS = {
    "readable": Check.READ,
    "read": Check.READ,  # the spelling keepalived's include_check_set() compares with
    "match": Check.MATCH,
    "wildcard_match": Check.WILDCARD,
    "brace_match": Check.BRACE,
}
_WILDCARD = re.compile(r"[*?\[]")
_WS = " \t\f\n\r\v"


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with an include; an error when ``check`` is asked for."""

    check: Check
    message: str


@dataclass(slots=True)
class Found:
    files: list[str]
    problems: list[Problem]


def split_include(text: str) -> tuple[str, str] | None:
    """``(keyword, pattern)`` when the line is an include (keepalived's is_include()).

    >>> split_include("includer conf.d/*.conf")
    ('includer', 'conf.d/*.conf')
    >>> split_include("include_check match") is None
    True
    """
    if not text.startswith("include") or len(text) < 8:
        return None
    if text[7] in _WS:
        return "include", text[8:].lstrip(" \t")
    if len(text) > 8 and text[7] in "rmwba" and text[8] in _WS:
        return text[:8], text[9:].lstrip(" \t")
    return None


def apply_include_check(current: Check, words: list[str]) -> tuple[Check, list[str]]:
    """Apply ``include_check`` options; returns the new level and complaints.

    No option means every check; ``+x`` adds, ``-x`` removes; a first bare option sets
    readable plus that check (keepalived's include_check_set()).

    >>> apply_include_check(Check.NONE, ["+match"])[0] == Check.MATCH
    True
    """
    if not words:
        return ALL, []
    problems: list[str] = []
    level = current
    for i, word in enumerate(words):
        sign = word[0] if word[:1] in ("+", "-") else ""
        name = word[len(sign) :]
        flag = _OPTIONS.get(name)
        if flag is None:
            problems.append(
                f"unknown include_check option {name!r}; use [+|-]readable, match, "
                "wildcard_match or brace_match"
            )
            continue
        if sign == "+":
            level |= flag
        elif sign == "-":
            level &= ~flag
        elif i == 0:
            level = Check.READ | flag
        else:
            problems.append(
                f"include_check option {word!r} without '+' or '-' after the first one is "
                "ignored; write +{word} to add it"
            )
    return level, problems


# glob(GLOB_BRACE) has no bound, and each {a,b} group doubles the alternatives (17 make
# 131,072: seconds of work and memory for one include line).
MAX_ALTERNATIVES = 4096


class TooManyAlternatives(ValueError):
    """A pattern's braces expand to more than :data:`MAX_ALTERNATIVES` names."""


def brace_expand(pattern: str, limit: int = MAX_ALTERNATIVES) -> list[str]:
    """csh-style ``{a,b}`` expansion as glob(GLOB_BRACE) does it; more than ``limit``
    alternatives raise :class:`TooManyAlternatives`.

    >>> brace_expand("conf.d/{a,b{1,2}}.conf")
    ['conf.d/a.conf', 'conf.d/b1.conf', 'conf.d/b2.conf']
    >>> brace_expand("{a,b}{c,d}", limit=3)
    Traceback (most recent call last):
    ...
    hafast.config.include.TooManyAlternatives: more than 3
    """
    return list(_expand(pattern, {}, limit))


# What the scan stops at: an escape (with the character it protects) or a brace.
_BRACE_SCAN = re.compile(r"\\[\s\S]?|[{}]")


def _expand(pattern: str, memo: dict[str, list[str]], limit: int) -> list[str]:
    """The names ``pattern`` expands to, by its first complete ``{...}`` group.

    The scan jumps from brace to brace, and what follows a group's head is expanded
    once (``memo``) and prefixed with the head: nothing before a group's ``{`` changes
    how the rest reads, so ``{a,b}{c,d}...`` expands each ``{c,d}...`` once, not once
    per name before it.  The fuzzer's brace bombs made the old scan, a character at a
    time over every name from its start, an eighth of each config input, and half of
    a run that had found them.  Every list made is part of the answer, so one longer
    than ``limit`` means the answer is too.
    """
    got = memo.get(pattern)
    if got is not None:
        return got
    depth = 0
    open_at = -1
    out: list[str] | None = None
    for m in _BRACE_SCAN.finditer(pattern):
        c = m.group()
        if c == "{":
            if depth == 0:
                open_at = m.start()
            depth += 1
        elif c == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                i = m.start()
                body = pattern[open_at + 1 : i]
                if body == "":
                    break  # glob takes "{}" literally
                head, tail = pattern[:open_at], pattern[i + 1 :]
                out = []
                for alt in _split_top(body):
                    names = _expand(alt + tail, memo, limit)
                    out.extend([head + n for n in names] if head else names)
                    if len(out) > limit:
                        raise TooManyAlternatives(f"more than {limit}")
                break
    if out is None:
        out = [pattern]
        if len(out) > limit:
            raise TooManyAlternatives(f"more than {limit}")
    memo[pattern] = out
    return out


def _split_top(body: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    cur = 0
    for i, c in enumerate(body):
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(body[cur:i])
            cur = i + 1
    parts.append(body[cur:])
    return parts


def _fixed_dir(alt: str) -> str:
    """The folder part of a pattern before its first wildcard component."""
    m = _WILDCARD.search(alt)
    head = alt if m is None else alt[: m.start()]
    return os.path.dirname(head) or "."


def find_files(pattern: str, folder: str) -> Found:
    """The files an include pattern names, in keepalived's order, and the problems.

    Relative patterns start at ``folder`` (keepalived chdir()s to the including file's
    folder).  Folders that a wildcard matches are skipped.
    """
    full = pattern if os.path.isabs(pattern) else os.path.join(folder, pattern)
    has_brace = "{" in pattern
    try:
        alts = brace_expand(full) if has_brace else [full]
    except TooManyAlternatives:
        return Found([], [Problem(
            Check.LIMIT, f"{pattern!r} expands to more than {MAX_ALTERNATIVES} names; "
            "use a wildcard or a folder of files instead of so many {a,b} groups")])
    matched: list[str] = []
    missing = 0
    wildcard = False
    for alt in alts:
        if _WILDCARD.search(alt):
            wildcard = True
            if not os.path.isdir(_fixed_dir(alt)):
                missing += 1
                continue
            matched.extend(sorted(_glob.glob(alt)))
        elif os.path.lexists(alt):
            matched.append(alt)
        else:
            missing += 1
    problems: list[Problem] = []
    if not matched:
        if missing:
            problems.append(
                Problem(
                    Check.BRACE if has_brace else Check.MATCH,
                    f"config file(s) missing: nothing matches {pattern!r} (relative paths "
                    f"start at {folder}); create it or fix the path",
                )
            )
        elif wildcard:
            problems.append(
                Problem(
                    Check.WILDCARD,
                    f"no config files matched {pattern!r}; add a file or drop the include",
                )
            )
        return Found([], problems)
    if missing:
        problems.append(
            Problem(
                Check.BRACE,
                f"some config files of {pattern!r} are missing ({missing} of "
                f"{len(alts)} alternatives); create them or drop them from the braces",
            )
        )
    files: list[str] = []
    for path in matched:
        try:
            info = os.stat(path)
        except OSError as exc:
            problems.append(Problem(Check.READ, f"cannot read {path} ({exc.strerror})"))
            continue
        if stat.S_ISDIR(info.st_mode):
            if not wildcard:
                problems.append(
                    Problem(Check.READ, f"{path} is a folder; include {path}/*.conf instead")
                )
            continue
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o111:
            problems.append(
                Problem(
                    Check.READ,
                    f"{path} is not a regular non-executable file (keepalived skips it); "
                    "include plain config files only (chmod -x)",
                )
            )
            continue
        unsafe = _unsafe(path)
        if unsafe:
            problems.append(Problem(Check.NONE, unsafe))
        files.append(path)
    return Found(files, problems)


def _unsafe(path: str) -> str:
    """Why another user could change the included file ``path`` ("" when no one can).

    keepalived judges the path of a script run as root, never a config file's, and
    says nothing here; but whoever can change an included file can add a script that
    runs as root, so the file is judged by the script rule (every component owned by
    root, or by the user running hafast, and writable by no other user or group) and
    reported in its words, as a warning: keepalived reads the file all the same.
    """
    real = os.path.realpath(path)
    flags, _, culprit, why = path_safety(real, False, trusted={0, os.geteuid()})
    if not flags & Sc.INSECURE:
        return ""
    return (f"Unsafe permissions found for config file '{path}' ({culprit} is {why}): "
            "make it and every folder above it owned by root and writable by root only")
