"""Reloads, one at a time, ending on the newest file.

Every SIGHUP (or control-socket ``reload``) asks for a reload; reloads never
overlap.  Two SIGHUPs 20 ms apart used to start two ``reload()`` coroutines that
loaded their files concurrently, and whichever finished last won: the older file
was applied after the newer one in 5 of 5 trials (issue 12, item 3).  Now:

* a request that arrives while no reload runs starts one;
* a request that arrives while a file is being *loaded* supersedes that load: its
  result is dropped unapplied and the file is read again, so the plan that is
  applied is always built from what was on disk after the last request;
* a request that arrives while a plan is being *applied* waits for it, then one
  more reload runs (however many requests came meanwhile: they coalesce).

Each request resolves with the verdict of the first reload that read the file
after it was made, so ``hafast reload`` on the control socket answers for its own
file, never for an older one.

Example (the loader and applier are the supervisor's)::

    q = ReloadQueue(load=read_and_validate, apply=apply_plan)
    ok = await q.request()
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

log = logging.getLogger("hafast")

T = TypeVar("T")


class ReloadQueue(Generic[T]):
    """Serialises reloads.  ``load`` reads and validates (returns ``None`` when the
    file is rejected); ``apply`` carries out a loaded result."""

    def __init__(self, load: Callable[[], Awaitable[T | None]],
                 apply: Callable[[T], Awaitable[None]]) -> None:
        self._load = load
        self._apply = apply
        self._asked = 0  # generation of the newest request
        self._waiters: list[tuple[int, asyncio.Future[bool]]] = []
        self._runner: asyncio.Task[None] | None = None
        self.applied = 0
        self.rejected = 0
        self.superseded = 0

    @property
    def busy(self) -> bool:
        return self._runner is not None and not self._runner.done()

    def request(self) -> asyncio.Future[bool]:
        """Ask for a reload; the future says whether the file it read was applied."""
        loop = asyncio.get_running_loop()
        self._asked += 1
        fut: asyncio.Future[bool] = loop.create_future()
        self._waiters.append((self._asked, fut))
        if not self.busy:
            self._runner = loop.create_task(self._run())
        return fut

    def status(self) -> dict[str, Any]:
        # "requested": every request seen; with "busy" false each has its answer (a
        # read superseded by newer requests answers them all at once: "superseded"
        # counts reads, not requests)
        return {"busy": self.busy, "requested": self._asked, "applied": self.applied,
                "rejected": self.rejected, "superseded": self.superseded}

    async def _run(self) -> None:
        done = 0
        try:
            while done < self._asked:
                gen = self._asked
                loaded = await self._load()
                if self._asked != gen:
                    # A newer request came while the file was read: what we hold may
                    # be the older file; read again rather than apply it.
                    self.superseded += 1
                    log.info("reload superseded by a newer request; reading the file again")
                    continue
                if loaded is None:
                    self.rejected += 1
                    ok = False
                else:
                    await self._apply(loaded)
                    self.applied += 1
                    ok = True
                done = gen
                self._settle(done, ok)
        except Exception as exc:
            # Every caller hears of it (the SIGHUP path logs it); the next request
            # starts afresh.
            self._fail(exc)
        except BaseException:
            self._fail(asyncio.CancelledError())
            raise

    def _fail(self, exc: BaseException) -> None:
        for _gen, fut in self._waiters:
            if not fut.done():
                fut.set_exception(exc)
        self._waiters.clear()

    def _settle(self, upto: int, ok: bool) -> None:
        keep = []
        for gen, fut in self._waiters:
            if gen <= upto:
                if not fut.done():
                    fut.set_result(ok)
            else:
                keep.append((gen, fut))
        self._waiters = keep
