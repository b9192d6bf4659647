"""PCRE2 for HTTP_GET/SSL_GET ``regex``: the system's libpcre2-8 through cffi (ABI mode,
no compiler at install time), matched over a reply the way keepalived 2.2.7's
``check_regex`` (check/check_http.c) does.

keepalived reads a reply into one 4096-byte buffer (4095 bytes of data) and, after each
read, runs ``pcre2_jit_match(..., PCRE2_PARTIAL_HARD)`` over what the buffer holds:

* the first buffer that holds the end of the header and some body starts at the status
  line, so the header is part of the subject (a header that arrives alone is dropped
  unmatched, and the subject then starts at the body);
* a partial match keeps the buffer from its start, less ``PCRE2_INFO_MAXLOOKBEHIND``
  bytes, and the next read is appended; a partial match that fills the whole buffer is
  given up ("Regex partial match preserve too large - discarding");
* anything else empties the buffer: a match needs no more, no match needs none of it;
* ``regex_min_offset`` starts the search at that offset of the subject (lookbehind may
  see before it); a match must start at or before ``regex_max_offset``.

:class:`RegexStream` is that loop for one reply; :func:`compile_regex` is keepalived's
``prepare_regex`` (the 24 ``regex_options`` names, JIT for partial-hard matching, a JIT
stack when ``regex_stack`` is set).  The library is loaded on first use, so a
configuration without a regex never loads it.

Example::

    >>> pat = compile_regex(r"status: \\Kready", ["caseless"])
    >>> s = RegexStream(pat)
    >>> s.feed(b"HTTP/1.0 200 OK\\r\\n\\r\\nStatus: RE"); s.feed(b"ADY\\n")
    >>> s.matched
    True
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["BUFFER", "OPTIONS", "Pattern", "PcreError", "RegexStream", "compile_regex",
           "error_message"]

# keepalived: MAX_BUFFER_LENGTH 4096, one byte kept for a terminating NUL
BUFFER = 4095

# regex_options: keepalived's table (check_http.c regex_options[]) with pcre2.h's bits
OPTIONS: dict[str, int] = {
    "allow_empty_class": 0x00000001,
    "alt_bsux": 0x00000002,
    "auto_callout": 0x00000004,
    "caseless": 0x00000008,
    "dollar_endonly": 0x00000010,
    "dotall": 0x00000020,
    "dupnames": 0x00000040,
    "extended": 0x00000080,
    "firstline": 0x00000100,
    "match_unset_backref": 0x00000200,
    "multiline": 0x00000400,
    "never_ucp": 0x00000800,
    "never_utf": 0x00001000,
    "no_auto_capture": 0x00002000,
    "no_auto_possess": 0x00004000,
    "no_dotstar_anchor": 0x00008000,
    "no_start_optimize": 0x00010000,
    "ucp": 0x00020000,
    "ungreedy": 0x00040000,
    "utf": 0x00080000,
    "never_backslash_c": 0x00100000,
    "alt_circumflex": 0x00200000,
    "alt_verbnames": 0x00400000,
    "use_offset_limit": 0x00800000,
}

_PARTIAL_HARD = 0x00000020  # match option
_JIT_PARTIAL_HARD = 0x00000004  # pcre2_jit_compile options
_JIT_COMPLETE = 0x00000001  # keepalived compiles partial-hard only; search() needs this
_ERROR_NOMATCH = -1
_ERROR_PARTIAL = -2
_INFO_MAXLOOKBEHIND = 15

# Opaque pointers as void *: ABI mode needs no header (Debian ships pcre2.h only in -dev).
_CDEF = """
void *pcre2_compile_8(const char *, size_t, uint32_t, int *, size_t *, void *);
void pcre2_code_free_8(void *);
int pcre2_jit_compile_8(void *, uint32_t);
int pcre2_pattern_info_8(const void *, uint32_t, void *);
int pcre2_config_8(uint32_t, void *);
void *pcre2_match_data_create_from_pattern_8(const void *, void *);
void pcre2_match_data_free_8(void *);
size_t *pcre2_get_ovector_pointer_8(void *);
int pcre2_match_8(const void *, const char *, size_t, size_t, uint32_t, void *, void *);
int pcre2_jit_match_8(const void *, const char *, size_t, size_t, uint32_t, void *, void *);
int pcre2_get_error_message_8(int, char *, size_t);
void *pcre2_match_context_create_8(void *);
void pcre2_match_context_free_8(void *);
void *pcre2_jit_stack_create_8(size_t, size_t, void *);
void pcre2_jit_stack_free_8(void *);
void pcre2_jit_stack_assign_8(void *, void *, void *);
"""

_lock = threading.Lock()
_api: tuple[Any, Any] | None = None


def _load() -> tuple[Any, Any]:
    global _api
    if _api is None:
        with _lock:
            if _api is None:
                import cffi

                ffi = cffi.FFI()
                ffi.cdef(_CDEF)
                # RTLD_NODELETE: the library stays mapped for the process's life.
                # Patterns free their code and match data through ffi.gc, and at
                # interpreter exit those finalizers can run after the lib object is
                # gone; without it the dlclose unmapped pcre2 first and they jumped
                # into unmapped memory (pytest tests/unit ended with SIGSEGV, 139).
                _api = (ffi, ffi.dlopen("libpcre2-8.so.0",
                                        ffi.RTLD_NOW | ffi.RTLD_NODELETE))
    return _api


class PcreError(ValueError):
    """A pattern PCRE2 refuses: its message and the offset in the pattern."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} at offset {offset}")
        self.message = message
        self.offset = offset


def error_message(code: int) -> str:
    """PCRE2's text for an error code.

    >>> error_message(-47)
    'match limit exceeded'
    """
    ffi, lib = _load()
    buf = ffi.new("char[256]")
    n = lib.pcre2_get_error_message_8(code, buf, 256)
    return ffi.string(buf, max(n, 0)).decode("utf-8", "replace")


# keepalived sizes one JIT stack for every url with regex_stack: the largest start and
# the largest max any of them asked for (regex_stack_handler); one per thread here.
_stacks = threading.local()


def _match_context(start: int, size: int) -> Any:
    ffi, lib = _load()
    want = (max(start, getattr(_stacks, "start", 0)), max(size, getattr(_stacks, "size", 0)))
    ctx = getattr(_stacks, "ctx", None)
    if ctx is not None and want == (_stacks.start, _stacks.size):
        return ctx
    stack = ffi.gc(lib.pcre2_jit_stack_create_8(want[0], want[1], ffi.NULL),
                   lib.pcre2_jit_stack_free_8)
    ctx = ffi.gc(lib.pcre2_match_context_create_8(ffi.NULL), lib.pcre2_match_context_free_8)
    if stack == ffi.NULL or ctx == ffi.NULL:
        raise MemoryError("pcre2: no memory for the JIT stack")
    lib.pcre2_jit_stack_assign_8(ctx, ffi.NULL, stack)
    _stacks.start, _stacks.size, _stacks.ctx, _stacks.stack = want[0], want[1], ctx, stack
    # Patterns compiled before a larger regex_stack came keep the older context, which
    # points at the older stack: keep every one alive (one per distinct size, so few).
    _stacks.__dict__.setdefault("kept", []).append((ctx, stack))
    return ctx


class Pattern:
    """A compiled ``regex``.  Not shared between threads (its match data is reused)."""

    __slots__ = ("code", "context", "jit", "lookbehind", "match_data", "ovector", "pattern",
                 "run")

    def __init__(self, pattern: str, options: Sequence[str] = (),
                 stack: tuple[int, int] | None = None) -> None:
        ffi, lib = _load()
        self.pattern = pattern
        flags = 0
        for name in options:
            flags |= OPTIONS.get(name, 0)  # keepalived skips a name it does not know
        raw = pattern.encode("utf-8", "surrogateescape")
        err = ffi.new("int *")
        off = ffi.new("size_t *")
        code = lib.pcre2_compile_8(raw, len(raw), flags, err, off, ffi.NULL)
        if code == ffi.NULL:
            raise PcreError(error_message(err[0]), off[0])
        self.code = ffi.gc(code, lib.pcre2_code_free_8)
        md = lib.pcre2_match_data_create_from_pattern_8(code, ffi.NULL)
        if md == ffi.NULL:
            raise MemoryError("pcre2: no memory for match data")
        self.match_data = ffi.gc(md, lib.pcre2_match_data_free_8)
        self.ovector = lib.pcre2_get_ovector_pointer_8(md)
        lb = ffi.new("uint32_t *")
        lib.pcre2_pattern_info_8(code, _INFO_MAXLOOKBEHIND, lb)
        self.lookbehind = int(lb[0])
        # keepalived matches with pcre2_jit_match; where JIT is missing (some arches,
        # SELinux's execmem) the interpreter gives the same answers, more slowly.
        self.jit = lib.pcre2_jit_compile_8(code, _JIT_PARTIAL_HARD | _JIT_COMPLETE) == 0
        self.run = lib.pcre2_jit_match_8 if self.jit else lib.pcre2_match_8
        # regex_stack only sizes the JIT's stack, as in keepalived
        self.context = _match_context(*stack) if stack and self.jit else ffi.NULL

    def match(self, subject: Any, start: int = 0, partial: bool = True) -> int:
        """One ``pcre2_match``: its return code (>0 match, -1 none, -2 partial);
        ``self.ovector[0]`` is where the match (or partial match) starts."""
        if type(subject) is not bytes:
            # cffi passes bytes as they are; a view would need ffi.from_buffer, which
            # costs more than copying the at most 4095 bytes of a buffer
            subject = bytes(subject)
        return int(self.run(self.code, subject, len(subject), start,
                            _PARTIAL_HARD if partial else 0, self.match_data, self.context))

    def search(self, subject: bytes) -> int:
        """Where the first complete match in ``subject`` starts, or -1.

        >>> compile_regex(r"ok\\K!").search(b"is ok!")
        5
        """
        return int(self.ovector[0]) if self.match(subject, 0, partial=False) > 0 else -1


_cache = threading.local()


def compile_regex(pattern: str, options: Sequence[str] = (),
                  stack: tuple[int, int] | None = None) -> Pattern:
    """A url's ``regex`` compiled as keepalived does; raises :class:`PcreError`.
    Urls with the same pattern and options share one (keepalived's ``regexs`` list),
    per thread."""
    key = (pattern, tuple(sorted(set(options))), stack)
    memo: dict[Any, Pattern] | None = getattr(_cache, "memo", None)
    if memo is None:
        memo = _cache.memo = {}
    pat = memo.get(key)
    if pat is None:
        pat = memo[key] = Pattern(pattern, options, stack)
    return pat


class RegexStream:
    """keepalived's ``check_regex`` over one reply, fed as it arrives.

    ``feed`` takes the bytes in the order read; the first call may hold the header (see
    the module docstring).  ``matched`` is the verdict once the reply has ended.
    ``max_offset`` is the configured ``regex_max_offset`` (None: none; 0 is offset 0).
    """

    __slots__ = ("done", "error", "held", "matched", "max_end", "min_offset", "pattern",
                 "restart", "subject_offset")

    def __init__(self, pattern: Pattern, min_offset: int = 0,
                 max_offset: int | None = None) -> None:
        self.pattern = pattern
        self.min_offset = min_offset
        self.max_end = 0 if max_offset is None else max_offset + 1  # keepalived: one beyond
        self.held = b""  # what a partial match keeps for the next read
        self.restart = 0  # keepalived's req->start_offset: the lookbehind kept
        self.subject_offset = 0  # where the buffer starts in the reply
        self.matched = False
        self.done = False
        # the first PCRE2 error (match limit, JIT stack limit): keepalived logs
        # "Unknown regex error N" and goes on with the next buffer, and so does this
        self.error = 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self.done:
            return
        view = memoryview(data)
        while view:
            held = self.held
            room = BUFFER - len(held)
            piece, view = view[:room], view[room:]
            self.held = self._check(held + piece if held else piece)
            if self.done:
                return

    def _check(self, buf: Any) -> bytes:
        """check_regex on one buffer; returns what the buffer keeps."""
        n = len(buf)
        pat = self.pattern
        start = 0
        if self.min_offset:
            # keepalived computes min_offset - lookbehind in size_t, and a lookbehind
            # longer than the offset wraps round and skips every buffer; here it is 0.
            if self.subject_offset + n < max(self.min_offset - pat.lookbehind, 0):
                self.subject_offset += n
                return b""
            if self.subject_offset < self.min_offset:
                start = self.min_offset - self.subject_offset
        if self.max_end and self.subject_offset + self.restart >= self.max_end:
            self.done = True  # the offset only grows: nothing later can count
            return b""
        if self.restart > start:
            start = self.restart
        rc = pat.match(buf, start) if start <= n else -1
        self.restart = 0
        if rc < _ERROR_PARTIAL and not self.error:
            self.error = rc
        if rc == _ERROR_PARTIAL:
            keep = int(pat.ovector[0]) - pat.lookbehind
            if keep > 0:
                self.restart = pat.lookbehind
                self.subject_offset += keep
                return bytes(buf[keep:])
            if n == BUFFER:
                self.subject_offset += n  # the partial match fills the buffer: given up
                return b""
            return bytes(buf)
        # rc 0: more captures than the match data holds, still a match (keepalived)
        at = self.subject_offset + int(pat.ovector[0])
        if rc >= 0 and (not self.max_end or at < self.max_end):
            self.matched = self.done = True
        self.subject_offset += n
        return b""
