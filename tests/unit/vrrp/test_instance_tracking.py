"""vrrp_script trackers on a real loop with tiny intervals: the first result, rise/fall,
init_fail, timeouts that kill the whole process group, and every child reaped."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

from hafast.config.model import Script, TrackFile, VrrpScript
from hafast.vrrp.tracking import FileTracker, ScriptTracker

MS = 1000


def _run(tracker_factory: Callable[[asyncio.AbstractEventLoop], ScriptTracker],
         seconds: float) -> tuple[list[bool], ScriptTracker]:
    async def body() -> tuple[list[bool], ScriptTracker]:
        loop = asyncio.get_running_loop()
        t = tracker_factory(loop)
        changes: list[bool] = []
        t.listeners.append(changes.append)
        t.start()
        await asyncio.sleep(seconds)
        t.close()
        return changes, t

    return asyncio.run(body())


def test_failing_script_goes_bad_after_fall_and_recovers_after_rise(tmp_path: Path) -> None:
    flag = tmp_path / "ok"
    script = VrrpScript("chk", Script(("/usr/bin/test", "-e", str(flag))), interval_us=20 * MS,
                        timeout_us=500 * MS, fall=2, rise=2)

    async def body() -> list[bool]:
        loop = asyncio.get_running_loop()
        t = ScriptTracker(loop, script)
        changes: list[bool] = []
        t.listeners.append(changes.append)
        assert t.good is None  # not run yet: keepalived's init state
        t.start()
        await asyncio.sleep(0.2)  # flag absent: the first failure decides -> bad
        flag.write_text("")
        await asyncio.sleep(0.2)  # succeeds twice -> good
        t.close()
        return changes

    assert asyncio.run(body()) == [False, True]


def test_first_result_decides_whatever_rise_and_fall() -> None:
    """keepalived vrrp_init_script: a script in init has result rise - 1, so its first
    exit makes it good or bad at once; later flips need rise/fall results."""
    for prog, first in (("/bin/true", True), ("/bin/false", False)):
        script = VrrpScript("chk", Script((prog,)), interval_us=20 * MS, rise=5, fall=5)
        changes, tracker = _run(partial(ScriptTracker, script=script), 0.15)
        assert changes == [first] and tracker.good is first


def test_a_script_new_at_a_reload_starts_good() -> None:
    script = VrrpScript("chk", Script(("/bin/false",)), interval_us=20 * MS, fall=5)
    changes, _ = _run(lambda loop: ScriptTracker(loop, script, assume_good=True), 0.15)
    assert changes == [False]  # its first failure counts at once (INIT_RELOAD)


def test_init_fail_changes_nothing_as_in_keepalived() -> None:
    """keepalived 2.2.7's track_script resets init_fail's state: one success, good."""
    script = VrrpScript("chk", Script(("/bin/true",)), interval_us=20 * MS, init_fail=True,
                        rise=5)
    changes, tracker = _run(lambda loop: ScriptTracker(loop, script), 0.15)
    assert changes == [True] and tracker.good


def test_a_run_killed_by_close_is_not_a_failure() -> None:
    """close() kills the script in flight; its exit reported afterwards changes nothing
    (a CI run under load saw test_init_fail_... end [True, False] so: /bin/true was
    still starting when the test closed the tracker)."""
    script = VrrpScript("chk", Script(("/bin/sh", "-c", "sleep 5")), interval_us=20 * MS)

    async def body() -> tuple[list[bool], ScriptTracker]:
        loop = asyncio.get_running_loop()
        t = ScriptTracker(loop, script, assume_good=True)
        changes: list[bool] = []
        t.listeners.append(changes.append)
        t.start()
        await asyncio.sleep(0.1)
        assert t._proc is not None  # in flight
        t.close()
        await asyncio.sleep(0.3)  # the reaper hears the SIGKILLed exit
        return changes, t

    changes, tracker = asyncio.run(body())
    assert changes == [] and tracker.good is True and tracker._proc is None


def test_timeout_kills_the_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    # The script forks a grandchild that would outlive a plain kill of the script.
    body = f"sleep 30 & echo $! > {pidfile}; wait"
    script = VrrpScript("slow", Script(("/bin/sh", "-c", body)), interval_us=1000 * MS,
                        timeout_us=50 * MS)
    changes, _ = _run(lambda loop: ScriptTracker(loop, script), 0.3)
    assert changes == [False]
    grandchild = int(pidfile.read_text())
    try:
        os.kill(grandchild, 0)
        alive = Path(f"/proc/{grandchild}/stat").read_text().split()[2] != "Z"
    except ProcessLookupError:
        alive = False
    assert not alive, "the script's process group survived its timeout"


def test_track_file_reports_new_values(tmp_path: Path) -> None:
    path = tmp_path / "weight"
    spec = TrackFile("tf", str(path), weight=2, init_file=("5",))

    async def body() -> list[int]:
        loop = asyncio.get_running_loop()
        t = FileTracker(loop, spec)
        assert t.value == 5
        seen: list[int] = []
        t.listeners.append(seen.append)
        t.start()
        path.write_text("-3\n")
        await asyncio.sleep(0.7)
        t.close()
        return seen

    assert asyncio.run(body()) == [-3]
