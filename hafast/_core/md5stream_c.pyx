# cython: language_level=3, always_allow_keywords=False, auto_pickle=False, autotestdict=False
"""MD5 of an HTTP body fed chunk by chunk, with a byte cap (compiled twin).

HTTP_GET/SSL_GET checks compare the MD5 of the raw response body (every byte after
the header terminator, chunk framing included, as keepalived's check_http.c does)
with the configured ``digest``: 32 lower-case hex digits, as ``genhash`` prints.
The body is hashed as it arrives so it is never buffered; a hostile server may send
an endless body, so the stream stops at ``cap`` bytes and reports ``too_large``.

This module calls OpenSSL's EVP interface in libcrypto directly.  The MD5
implementation is fetched once per process (``EVP_MD_fetch``) and every stream keeps
its own ``EVP_MD_CTX`` for life: ``reset()`` re-initialises it in place, so a checker
that reuses one stream per real server makes no Python allocation per body.  The
pure-Python twin ``md5stream_py`` has the same names and behaviour.

>>> s = MD5Stream(cap=1024)
>>> s.update(b"hello "), s.update(bytearray(b"world"))
(True, True)
>>> s.hexdigest()
'5eb63bbbe01eeed093cb22bb8f5acdc3'
>>> md5_hex(b"hello world")
'5eb63bbbe01eeed093cb22bb8f5acdc3'
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_GET_SIZE

cdef extern from "Python.h":
    # Not in Cython's bundled declarations: a fresh 1-byte-kind str we fill in place,
    # so hexdigest() builds its result without an intermediate bytes object.
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void *PyUnicode_DATA(object o)

cdef extern from "openssl/evp.h" nogil:
    ctypedef struct EVP_MD_CTX:
        pass
    ctypedef struct EVP_MD:
        pass
    ctypedef struct OSSL_LIB_CTX:
        pass
    ctypedef struct ENGINE:
        pass
    EVP_MD_CTX *EVP_MD_CTX_new()
    void EVP_MD_CTX_free(EVP_MD_CTX *ctx)
    EVP_MD *EVP_MD_fetch(OSSL_LIB_CTX *libctx, const char *algorithm, const char *properties)
    int EVP_DigestInit_ex(EVP_MD_CTX *ctx, const EVP_MD *md, ENGINE *impl)
    int EVP_DigestUpdate(EVP_MD_CTX *ctx, const void *d, size_t cnt)
    int EVP_DigestFinal_ex(EVP_MD_CTX *ctx, unsigned char *md, unsigned int *s)

cdef extern from "openssl/err.h" nogil:
    unsigned long ERR_get_error()
    void ERR_clear_error()
    void ERR_error_string_n(unsigned long e, char *buf, size_t len)

cdef enum:
    # RFC 1321 §3.5: the message digest is 128 bits (16 octets).
    _DIGEST_SIZE = 16
# 16 MiB: far above any health-check page, small enough that a hostile endless
# body costs at most ~30 ms of hashing before the check gives up on it.
DEFAULT_CAP = 16 * 1024 * 1024

cdef const char *_HEX = b"0123456789abcdef"

# Fetched once per process and kept for its lifetime (never freed: the module
# cannot be unloaded).  "-fips" prefers a non-FIPS implementation, the same query
# CPython's hashlib uses for usedforsecurity=False: MD5 here is an integrity
# fingerprint of a web page, not a security function.
cdef EVP_MD *_MD5 = NULL
# The context md5_hex() reuses.  Safe without a lock: it is only touched while
# the GIL is held and between two of its calls no Python code runs.
cdef EVP_MD_CTX *_ONESHOT = NULL


cdef int _raise_openssl(const char *what) except -1:
    """Raise RuntimeError naming the failed call and OpenSSL's first queued error."""
    cdef char buf[256]
    cdef unsigned long code = ERR_get_error()
    ERR_clear_error()  # never leave stale errors for the next OpenSSL user (pycurl)
    if code == 0:
        raise RuntimeError(f"OpenSSL {what.decode()} failed (no error queued)")
    ERR_error_string_n(code, buf, sizeof(buf))
    raise RuntimeError(f"OpenSSL {what.decode()} failed: {buf.decode(errors='replace')}")


cdef int _fetch_md5() except -1:
    global _MD5
    if _MD5 is NULL:
        _MD5 = EVP_MD_fetch(NULL, b"MD5", b"-fips")
        if _MD5 is NULL:
            _raise_openssl(b"EVP_MD_fetch(MD5)")
    return 0


cdef inline object _hex_str(const unsigned char *md):
    cdef object out = PyUnicode_New(2 * _DIGEST_SIZE, 127)
    cdef unsigned char *p = <unsigned char *>PyUnicode_DATA(out)
    cdef int i
    for i in range(_DIGEST_SIZE):
        p[2 * i] = _HEX[md[i] >> 4]
        p[2 * i + 1] = _HEX[md[i] & 0x0F]
    return out


cdef class MD5Stream:
    """MD5 of a body fed in chunks, refusing to hash more than ``cap`` bytes.

    ``update(chunk)`` takes any C-contiguous bytes-like object (bytes, bytearray,
    memoryview, array) without copying it and returns True while the total stays
    within ``cap``.  The chunk that would take the total past ``cap`` is not
    hashed: the stream becomes ``too_large``, ``size`` stays at ``cap``, this and
    every later ``update`` return False and ``digest()``/``hexdigest()`` raise
    ValueError (a prefix digest must never be mistaken for the body's digest).

    ``digest()``/``hexdigest()`` finalise the stream; they may be called again and
    give the same answer, but ``update`` after finalising raises ValueError: the
    body is complete, call ``reset()`` for the next one.  ``reset()`` re-initialises
    the same OpenSSL context.  A stream is not thread-safe; it never releases
    the GIL.  OpenSSL failures raise RuntimeError.

    >>> s = MD5Stream(cap=3)
    >>> s.update(b"abc"), s.size, s.too_large
    (True, 3, False)
    >>> s.hexdigest() == s.hexdigest() == '900150983cd24fb0d6963f7d28e17f72'
    True
    >>> s.reset(); s.update(b"abcd"), s.size, s.too_large
    (False, 3, True)
    """

    cdef EVP_MD_CTX *_ctx
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _size
    cdef bint _too_large
    cdef bint _final
    cdef bint _ready  # False until EVP_DigestInit_ex succeeded (also after it failed)
    cdef unsigned char _md[_DIGEST_SIZE]

    def __cinit__(self, *args, **kwargs):
        _fetch_md5()
        self._cap = DEFAULT_CAP  # in case a subclass never runs __init__
        self._ctx = EVP_MD_CTX_new()
        if self._ctx is NULL:
            raise MemoryError("EVP_MD_CTX_new")

    def __init__(self, Py_ssize_t cap=DEFAULT_CAP):
        if cap < 0:
            raise ValueError(f"cap must be >= 0 bytes, got {cap}")
        self._cap = cap
        self._begin()

    def __dealloc__(self):
        # EVP_MD_CTX_free(NULL) is a no-op, so a failed __cinit__ is covered too.
        EVP_MD_CTX_free(self._ctx)
        self._ctx = NULL

    cdef int _begin(self) except -1:
        # Reuses our EVP_MD_CTX and the process-wide EVP_MD, so no Python object
        # and no fetch per body.  (OpenSSL 3.0's EVP_DigestInit_ex still frees and
        # re-creates the provider's ~100-byte MD5 state: one malloc, measured.)
        self._ready = False
        if not EVP_DigestInit_ex(self._ctx, _MD5, NULL):
            _raise_openssl(b"EVP_DigestInit_ex(MD5)")
        self._size = 0
        self._too_large = False
        self._final = False
        self._ready = True
        return 0

    cdef int _check_ready(self) except -1:
        if not self._ready:
            raise RuntimeError("MD5Stream is not initialised (its OpenSSL init failed "
                               "or __init__ was not run); call reset()")
        return 0

    cdef int _add(self, const char *data, Py_ssize_t n) except -1:
        self._check_ready()
        if self._final:
            raise ValueError("MD5Stream already finalised by digest(); call reset() first")
        if self._too_large:
            return 0
        if n > self._cap - self._size:  # written so it cannot overflow
            self._too_large = True
            self._size = self._cap
            return 0
        if n and not EVP_DigestUpdate(self._ctx, data, <size_t>n):
            _raise_openssl(b"EVP_DigestUpdate")
        self._size += n
        return 1

    cdef int _finish(self) except -1:
        cdef unsigned int outlen = 0
        self._check_ready()
        if self._too_large:
            raise ValueError(f"body exceeded the cap of {self._cap} bytes: no digest")
        if not self._final:
            if not EVP_DigestFinal_ex(self._ctx, self._md, &outlen):
                _raise_openssl(b"EVP_DigestFinal_ex")
            self._final = True
        return 0

    def update(self, chunk, /) -> bool:
        """Hash ``chunk`` unless the cap is exceeded; return False once it is.

        >>> s = MD5Stream(cap=4)
        >>> s.update(b"ab"), s.update(memoryview(b"cd")), s.update(b"e")
        (True, True, False)
        """
        cdef Py_buffer view
        cdef int ok
        # The GIL stays held while hashing: a 64 KiB chunk takes ~75 us, and letting
        # other threads in would need a lock per stream that one event loop never needs.
        if PyBytes_CheckExact(chunk):  # the common case: skip the buffer protocol
            return self._add(PyBytes_AS_STRING(chunk), PyBytes_GET_SIZE(chunk)) == 1
        PyObject_GetBuffer(chunk, &view, PyBUF_SIMPLE)
        try:
            ok = self._add(<const char *>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)
        return ok == 1

    def digest(self) -> bytes:
        """Finalise (once) and return the 16-byte digest.

        >>> MD5Stream().digest().hex()
        'd41d8cd98f00b204e9800998ecf8427e'
        """
        self._finish()
        return PyBytes_FromStringAndSize(<char *>self._md, _DIGEST_SIZE)

    def hexdigest(self) -> str:
        """Finalise (once) and return 32 lower-case hex digits, as genhash prints.

        >>> s = MD5Stream(); _ = s.update(b"a"); s.hexdigest()
        '0cc175b9c0f1b6a831c399e269772661'
        """
        self._finish()
        return _hex_str(self._md)

    def reset(self) -> None:
        """Start a new body with the same cap, reusing the OpenSSL context."""
        self._begin()

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
        state = "too large" if self._too_large else ("final" if self._final else "open")
        return f"<MD5Stream size={self._size} cap={self._cap} {state}>"


cdef int _make_oneshot() except -1:
    global _ONESHOT
    _fetch_md5()
    _ONESHOT = EVP_MD_CTX_new()
    if _ONESHOT is NULL:
        raise MemoryError("EVP_MD_CTX_new")
    return 0


cdef inline int _oneshot(const char *data, Py_ssize_t n, unsigned char *md) noexcept:
    cdef unsigned int outlen = 0
    # No Python code runs in here, so the shared context cannot be re-entered.
    return (EVP_DigestInit_ex(_ONESHOT, _MD5, NULL)
            and EVP_DigestUpdate(_ONESHOT, data, <size_t>n)
            and EVP_DigestFinal_ex(_ONESHOT, md, &outlen))


def md5_hex(data, /) -> str:
    """One-shot MD5 of a bytes-like object as 32 lower-case hex digits (no cap).

    >>> md5_hex(b"abc")
    '900150983cd24fb0d6963f7d28e17f72'
    """
    cdef Py_buffer view
    cdef unsigned char md[_DIGEST_SIZE]
    cdef int ok
    if _ONESHOT is NULL:
        _make_oneshot()
    if PyBytes_CheckExact(data):
        ok = _oneshot(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), md)
    else:
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        ok = _oneshot(<const char *>view.buf, view.len, md)
        PyBuffer_Release(&view)
    if not ok:
        _raise_openssl(b"MD5 digest")
    return _hex_str(md)


# An OpenSSL configured without MD5 (a FIPS-only provider set) makes this module
# unusable; failing the import lets the chooser fall back to the twin, whose hashlib
# carries its own MD5, and compiled_status() shows why.
try:
    _fetch_md5()
except RuntimeError as exc:
    raise ImportError(f"md5stream_c: {exc}") from exc
