"""Hand the C heap's free pages back to the kernel after a one-off peak (issue 16).

The parent's start-up and each reload build many short-lived buffers at once: the
pickled configuration read from :mod:`hafast.app.loadconf`, the pool's first sync
(the nft ruleset), the workers' pickled shards.  Python frees them, but glibc keeps
freed heap pages mapped unless they sit at the very top of the heap, so they stayed
in the parent's PSS for good: measured at 10,000 real servers, 12.8 of the parent's
50 MiB were free heap, 1.3 KiB a real server of the daemon's growth with the farm.
``malloc_trim(0)`` gives those pages back (``MADV_DONTNEED`` on every free page of
every arena) and keeps what is in use; it costs a walk of the free lists, a few
milliseconds here, so it runs after a peak, not on a timer.

Without glibc (musl, another libc) there is no such call and nothing is done.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

_trim: Callable[[int], int] | None = None
_looked = False


def _malloc_trim() -> Callable[[int], int] | None:
    global _trim, _looked
    if not _looked:
        _looked = True
        try:
            # the process's own symbols (libc among them): no search for the file,
            # which ctypes.util would do by running ldconfig
            fn = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            return None
        fn.argtypes = [ctypes.c_size_t]
        fn.restype = ctypes.c_int
        _trim = fn
    return _trim


def trim() -> bool:
    """Give the heap's free pages back; True when the libc has ``malloc_trim``.

    >>> isinstance(trim(), bool)
    True
    """
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True
