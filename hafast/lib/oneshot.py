"""One-shot commands end without the interpreter's teardown (issue 16: ``hafast -t``
at 37,000 real servers).

``hafast -t``, ``--dump-conf`` and the daemon's configuration child
(:mod:`hafast.app.loadconf`) load a model of about a million objects, print or pickle
it, and exit.  Two costs come after the work is done:

- the collector's first pass over the fresh model (the loader builds it with the
  collector off; the first allocation after turning it back on walks every object):
  ``load_file(freeze=True)`` moves the model out of the collector's reach instead;
- freeing the model object by object when the last reference goes, then the modules
  at exit: ``keep()`` holds the model to the end and :func:`exit_now` ends the process
  with ``os._exit`` once the standard streams are flushed (the kernel frees the memory
  at once, as it does for keepalived).

Measured at 37,000 real servers (``hafast -t``, ten runs of each interleaved on a noisy
2-CPU VM, the least): 1.03 -> 0.93 s of CPU, 1.04 -> 0.94 s of wall; keepalived -t
takes 0.25-0.33 s there.  Only the program's own entry points say so (:func:`begin`:
``hafast.cli.entry``, ``python -m hafast``; the configuration child); code that calls
``main()`` in a process of its own, as the tests do, freezes and keeps nothing and
returns as before (``gc.freeze`` there would keep the caller's pending garbage).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing is not imported: `hafast status` runs this module's caller
if TYPE_CHECKING:
    from typing import NoReturn

_kept: list[object] = []
_program = False


def begin() -> None:
    """This process is a hafast program that ends when its command does."""
    global _program
    _program = True


def program() -> bool:
    """Whether :func:`begin` was called: a one-shot command may then freeze and keep."""
    return _program


def keep(obj: object) -> None:
    """Hold ``obj`` until the process ends (freed by the kernel, not object by object);
    nothing when the process is not the program (:func:`begin`)."""
    if _program:
        _kept.append(obj)


def kept() -> bool:
    """Whether a one-shot command ran and holds its model for :func:`exit_now`."""
    return bool(_kept)


def exit_now(code: int) -> NoReturn:
    """End the process with ``code`` now: streams flushed, no teardown."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken pipe: nothing more to say
            pass
    os._exit(code)
