"""ReloadQueue: reloads never overlap, and the file applied last is the newest
(issue 12, item 3).  Loads and applies are fakes whose timing the test controls."""

from __future__ import annotations

import asyncio

import pytest

from hafast.app.reloadq import ReloadQueue


class Disk:
    """A config 'file' whose content the test changes; each load reads it, then
    waits for the test to let it finish."""

    def __init__(self) -> None:
        self.content = "v0"
        self.gates: list[asyncio.Event] = []
        self.applied: list[str] = []
        self.active = 0
        self.most_active = 0

    async def load(self) -> str | None:
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        seen = self.content
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        self.active -= 1
        return None if seen == "broken" else seen

    async def apply(self, what: str) -> None:
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        await asyncio.sleep(0)
        self.applied.append(what)
        self.active -= 1

    async def release_all(self) -> None:
        """Let every load in flight finish, until nothing is waiting."""
        for _ in range(50):
            await asyncio.sleep(0)
            for g in self.gates:
                g.set()


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_a_request_during_a_load_supersedes_it() -> None:
    async def main() -> None:
        disk = Disk()
        q = ReloadQueue(disk.load, disk.apply)
        disk.content = "old"
        first = q.request()
        await asyncio.sleep(0)
        disk.content = "new"
        second = q.request()
        await disk.release_all()
        assert await first is True and await second is True
        assert disk.applied == ["new"]  # the older file was never applied
        assert q.status() == {"busy": False, "requested": 2, "applied": 1, "rejected": 0,
                              "superseded": 1}
        assert disk.most_active == 1

    run(main())


def test_many_requests_during_one_load_are_answered_by_the_next() -> None:
    """Five requests while one read is under way: that read is superseded once, the
    next answers all five; "requested" says every request was seen (what a caller
    waits on, not applied + rejected + superseded, which counts reads)."""
    async def main() -> None:
        disk = Disk()
        q = ReloadQueue(disk.load, disk.apply)
        futs = [q.request()]
        await asyncio.sleep(0)
        futs += [q.request() for _ in range(4)]
        await disk.release_all()
        assert [await f for f in futs] == [True] * 5
        st = q.status()
        assert st == {"busy": False, "requested": 5, "applied": 1, "rejected": 0,
                      "superseded": 1}
        assert st["applied"] + st["rejected"] + st["superseded"] < st["requested"]

    run(main())


def test_a_request_during_an_apply_runs_once_more_after_it() -> None:
    async def main() -> None:
        disk = Disk()
        applying = asyncio.Event()
        resume = asyncio.Event()

        async def slow_apply(what: str) -> None:
            applying.set()
            await resume.wait()
            disk.applied.append(what)

        q = ReloadQueue(disk.load, slow_apply)
        disk.content = "a"
        first = q.request()
        await asyncio.sleep(0)
        disk.gates[0].set()
        await applying.wait()
        disk.content = "b"
        later = [q.request() for _ in range(5)]  # coalesce into one more reload
        resume.set()
        await disk.release_all()
        assert await first is True
        assert [await f for f in later] == [True] * 5
        assert disk.applied == ["a", "b"]
        assert q.applied == 2 and len(disk.gates) == 2

    run(main())


def test_a_rejected_newest_file_keeps_the_running_one() -> None:
    async def main() -> None:
        disk = Disk()
        q = ReloadQueue(disk.load, disk.apply)
        disk.content = "good"
        ok = q.request()
        await asyncio.sleep(0)
        disk.content = "broken"
        bad = q.request()
        await disk.release_all()
        assert await ok is False and await bad is False  # both answered for "broken"
        assert disk.applied == []
        assert q.rejected == 1 and q.superseded == 1

    run(main())


def test_an_apply_that_fails_answers_every_waiter() -> None:
    async def main() -> None:
        disk = Disk()

        async def boom(what: str) -> None:
            raise RuntimeError("pools gone")

        q = ReloadQueue(disk.load, boom)
        fut = q.request()
        await disk.release_all()
        with pytest.raises(RuntimeError):
            await fut
        assert not q.busy
        disk.content = "next"
        q2 = ReloadQueue(disk.load, disk.apply)
        again = q2.request()
        await disk.release_all()
        assert await again is True

    run(main())


def test_requests_far_apart_each_reload() -> None:
    async def main() -> None:
        disk = Disk()
        q = ReloadQueue(disk.load, disk.apply)
        for word in ("x", "y", "z"):
            disk.content = word
            fut = q.request()
            await disk.release_all()
            assert await fut is True
        assert disk.applied == ["x", "y", "z"]

    run(main())
