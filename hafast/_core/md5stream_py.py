"""MD5 of an HTTP body fed chunk by chunk, with a byte cap (pure-Python twin).

The readable reference for ``md5stream_c``: same names, same behaviour, built on
``hashlib``.  HTTP_GET/SSL_GET checks hash the raw response body (every byte after
the header terminator, as keepalived's check_http.c does) and compare it with the
configured ``digest``, 32 lower-case hex digits as ``genhash`` prints.  A hostile
server may send an endless body, so a stream hashes at most ``cap`` bytes and then
reports ``too_large`` instead of hashing on.

>>> s = MD5Stream(cap=1024)
>>> s.update(b"hello "), s.update(bytearray(b"world"))
(True, True)
>>> s.hexdigest()
'5eb63bbbe01eeed093cb22bb8f5acdc3'
>>> md5_hex(b"hello world")
'5eb63bbbe01eeed093cb22bb8f5acdc3'
"""

from __future__ import annotations

import hashlib
import operator
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # collections.abc.Buffer is 3.12+; typeshed has it for 3.11
    from typing_extensions import Buffer

__all__ = ["DEFAULT_CAP", "MD5Stream", "md5_hex"]

# 16 MiB: far above any health-check page, small enough that a hostile endless
# body costs at most a few tens of milliseconds of hashing.
DEFAULT_CAP = 16 * 1024 * 1024


def _new_md5() -> hashlib._Hash:
    # MD5 here fingerprints a web page; it is not a security function, so it must
    # keep working on hosts where OpenSSL runs in FIPS mode.
    return hashlib.md5(usedforsecurity=False)


class MD5Stream:
    """MD5 of a body fed in chunks, refusing to hash more than ``cap`` bytes.

    ``update(chunk)`` takes any C-contiguous bytes-like object and returns True
    while the total stays within ``cap``.  The chunk that would take the total past
    ``cap`` is not hashed: the stream becomes ``too_large``, ``size`` stays at
    ``cap``, this and every later ``update`` return False, and ``digest()`` /
    ``hexdigest()`` raise ValueError (a prefix digest must never pass for the
    body's digest).

    ``digest()``/``hexdigest()`` finalise the stream; calling them again gives the
    same answer, but ``update`` after finalising raises ValueError: the body is
    complete, call ``reset()`` for the next one.

    >>> s = MD5Stream(cap=3)
    >>> s.update(b"abc"), s.size, s.too_large
    (True, 3, False)
    >>> s.hexdigest() == s.hexdigest() == '900150983cd24fb0d6963f7d28e17f72'
    True
    >>> s.reset(); s.update(b"abcd"), s.size, s.too_large
    (False, 3, True)
    """

    __slots__ = ("_cap", "_digest", "_hash", "_size", "_too_large")

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        cap = operator.index(cap)  # an integer, as the compiled twin's Py_ssize_t
        if cap < 0:
            raise ValueError(f"cap must be >= 0 bytes, got {cap}")
        if cap > sys.maxsize:
            raise OverflowError(f"cap must be <= {sys.maxsize} bytes, got {cap}")
        self._cap = cap
        self.reset()

    def reset(self) -> None:
        """Start a new body with the same cap."""
        self._hash = _new_md5()
        self._size = 0
        self._too_large = False
        self._digest: bytes | None = None

    def update(self, chunk: Buffer, /) -> bool:
        """Hash ``chunk`` unless the cap is exceeded; return False once it is.

        >>> s = MD5Stream(cap=4)
        >>> s.update(b"ab"), s.update(memoryview(b"cd")), s.update(b"e")
        (True, True, False)
        """
        if type(chunk) is bytes:  # the common case needs no memoryview
            nbytes = len(chunk)
        else:
            view = memoryview(chunk)  # TypeError for str and other non-buffers
            if not view.c_contiguous:
                raise BufferError("MD5Stream.update needs a C-contiguous buffer")
            nbytes = view.nbytes  # bytes, not items (array('I'), cast views)
        if self._digest is not None:
            raise ValueError("MD5Stream already finalised by digest(); call reset() first")
        if self._too_large:
            return False
        if nbytes > self._cap - self._size:
            self._too_large = True
            self._size = self._cap
            return False
        self._hash.update(chunk)
        self._size += nbytes
        return True

    def digest(self) -> bytes:
        """Finalise (once) and return the 16-byte digest.

        >>> MD5Stream().digest().hex()
        'd41d8cd98f00b204e9800998ecf8427e'
        """
        if self._too_large:
            raise ValueError(f"body exceeded the cap of {self._cap} bytes: no digest")
        if self._digest is None:
            self._digest = self._hash.digest()
        return self._digest

    def hexdigest(self) -> str:
        """Finalise (once) and return 32 lower-case hex digits, as genhash prints.

        >>> s = MD5Stream(); _ = s.update(b"a"); s.hexdigest()
        '0cc175b9c0f1b6a831c399e269772661'
        """
        return self.digest().hex()

    @property
    def size(self) -> int:
        """Bytes hashed so far; ``cap`` once the stream is too large."""
        return self._size

    @property
    def cap(self) -> int:
        """The most bytes this stream will hash."""
        return self._cap

    @property
    def too_large(self) -> bool:
        """True once more than ``cap`` bytes were offered."""
        return self._too_large

    def __repr__(self) -> str:
        if self._too_large:
            state = "too large"
        elif self._digest is not None:
            state = "final"
        else:
            state = "open"
        return f"<MD5Stream size={self._size} cap={self._cap} {state}>"


def md5_hex(data: Buffer, /) -> str:
    """One-shot MD5 of a bytes-like object as 32 lower-case hex digits (no cap).

    >>> md5_hex(b"abc")
    '900150983cd24fb0d6963f7d28e17f72'
    """
    return hashlib.md5(data, usedforsecurity=False).hexdigest()
