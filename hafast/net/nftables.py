"""Run nft scripts: libnftables through ctypes when it loads, else the ``nft`` program.

Shared by the nftables pool backend and the lab's fault injector (``hafast/lab/faults.py``).
A libnftables context opens its netlink socket in the calling thread, so a script
runs in the network namespace of the thread that calls :meth:`Nft.run`; each thread
keeps one context per namespace (a context made per script cost 6-9 ms a change,
in its release; kept, a change costs about 0.1 ms).

Example::

    Nft().run("add table inet demo")
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import threading


class NftError(RuntimeError):
    """nft refused a script; the message is nft's own."""


class _Ctx:
    """One libnftables context, freed (with its socket) when its thread is gone."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        ptr = lib.nft_ctx_new(0)  # NFT_CTX_DEFAULT
        if not ptr:
            raise NftError("nft_ctx_new failed")
        self.lib, self.ptr = lib, int(ptr)
        lib.nft_ctx_buffer_error(ptr)
        lib.nft_ctx_buffer_output(ptr)

    def __del__(self) -> None:
        self.lib.nft_ctx_free(self.ptr)


class _Lib:
    def __init__(self) -> None:
        lib = ctypes.CDLL("libnftables.so.1")
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self.lib = lib
        self._local = threading.local()

    def _ctx(self) -> int:
        """This thread's context for the network namespace it is in now.

        A context is kept, not made per script: freeing one that has committed a
        change costs 6-9 ms (its netlink socket's release waits in the kernel),
        against 0.07 ms for the change itself.  Its socket is opened when it is
        made, in the namespace of the thread that makes it, so a thread that
        entered another namespace gets another context."""
        netns = os.stat("/proc/thread-self/ns/net").st_ino
        ctxs: dict[int, _Ctx] | None = getattr(self._local, "ctxs", None)
        if ctxs is None:
            ctxs = self._local.ctxs = {}
        ctx = ctxs.get(netns)
        if ctx is None:
            ctx = ctxs[netns] = _Ctx(self.lib)
        return ctx.ptr

    def run(self, script: str, json_output: bool = False) -> str:
        ctx = self._ctx()
        self.lib.nft_ctx_output_set_flags(ctx, 1 << 4 if json_output else 0)  # OUTPUT_JSON
        ok = self.lib.nft_run_cmd_from_buffer(ctx, script.encode()) == 0
        # reading a buffer empties it for the next script
        err = self.lib.nft_ctx_get_error_buffer(ctx) or b""
        out = self.lib.nft_ctx_get_output_buffer(ctx) or b""
        if not ok:
            raise NftError(f"nft: {err.decode(errors='replace').strip()}")
        return str(out.decode(errors="replace"))


_LIB: list[_Lib | None] = []
_LOCK = threading.Lock()


def _lib() -> _Lib | None:
    with _LOCK:
        if not _LIB:
            try:
                _LIB.append(_Lib())
            except (OSError, AttributeError):
                _LIB.append(None)
        return _LIB[0]


class Nft:
    """``run(script)``: one atomic nft transaction.  ``use_lib=False`` forces the
    ``nft`` program (about 4 ms a call instead of about 0.2 ms)."""

    def __init__(self, use_lib: bool = True) -> None:
        self.lib = _lib() if use_lib else None
        self.program = shutil.which("nft") or "nft"

    @property
    def via(self) -> str:
        return "libnftables" if self.lib is not None else "nft"

    def run(self, script: str, *, json_output: bool = False) -> str:
        if self.lib is not None:
            return self.lib.run(script, json_output)
        argv = [self.program, *(["-j"] if json_output else []), "-f", "-"]
        proc = subprocess.run(argv, input=script, capture_output=True, text=True,
                              timeout=60, check=False)
        if proc.returncode != 0:
            raise NftError(f"nft: {proc.stderr.strip()}")
        return proc.stdout
