"""The director's own checks (hafast.fleet.owncheck) on a real event loop: a track_file,
a vrrp_script and a link, each one's rule (reverse too), and what a reload keeps.
The daemon and the router: tests/netns/test_fleet_bgp.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hafast.config.loader import load_text
from hafast.config.model import Announce, Config
from hafast.fleet.owncheck import OwnChecks


def conf(tmp: Path, script: str = "/bin/true", tracks: str = "", file_reverse: str = "") -> Config:
    res = load_text(f"""vrrp_script chk {{
  script "{script}"
  interval 0.1
}}
track_file maint {{
  file {tmp / "maint"}
  {file_reverse}
}}
virtual_server 192.0.2.1 80 {{
  protocol TCP
  lvs_sched wlc
  lvs_method DR
  announce {{
    prefix 192.0.2.1/32
    {tracks}
  }}
  real_server 10.0.0.2 80 {{ }}
}}""")
    assert res.ok, [d.format() for d in res.errors]
    return res.config


def announce(c: Config) -> Announce:
    a = c.virtual_servers[0].announce
    assert a is not None
    return a


def run(coro_fn):  # type: ignore[no-untyped-def]
    return asyncio.run(coro_fn())


async def settle(cond, seconds: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    for _ in range(int(seconds / 0.02)):
        if cond():
            return True
        await asyncio.sleep(0.02)
    return cond()


def test_a_track_file_reads_zero_as_up(tmp_path: Path) -> None:
    (tmp_path / "maint").write_text("0\n")
    c = conf(tmp_path, tracks="track_file {\n maint\n }")
    changes: list[int] = []

    async def go() -> None:
        own = OwnChecks(asyncio.get_running_loop(), lambda: changes.append(1))
        own.configure(c)
        assert own.states(announce(c)) == {"file:maint": True}
        (tmp_path / "maint").write_text("1\n")  # maintenance: take this director out
        assert await settle(lambda: not own.ok(announce(c)))
        assert changes  # the announcer was told
        (tmp_path / "maint").write_text("0\n")
        assert await settle(lambda: own.ok(announce(c)))
        own.close()
    run(go)


def test_reverse_swaps_up_and_down(tmp_path: Path) -> None:
    (tmp_path / "maint").write_text("0\n")
    c = conf(tmp_path, tracks="track_file {\n maint reverse\n }\n track_interface {\n"
             " lo\n nosuch0 reverse\n }")

    async def go() -> None:
        own = OwnChecks(asyncio.get_running_loop(), lambda: None)
        own.configure(c)
        assert own.states(announce(c)) == {"file:maint": False, "interface:lo": True,
                                           "interface:nosuch0": True}
        own.close()
    run(go)


def test_a_script_is_down_until_its_first_success(tmp_path: Path) -> None:
    c = conf(tmp_path, tracks="track_script {\n chk\n }")
    bad = conf(tmp_path, script="/bin/false", tracks="track_script {\n chk\n }")

    async def go() -> None:
        own = OwnChecks(asyncio.get_running_loop(), lambda: None)
        own.configure(c)
        assert own.states(announce(c)) == {"script:chk": False}  # not run yet
        assert await settle(lambda: own.ok(announce(c)))
        kept = own.scripts["chk"]
        own.configure(c, reload=True)  # unchanged: the same tracker, its state kept
        assert own.scripts["chk"] is kept and own.ok(announce(c))
        own.configure(bad, reload=True)  # changed: a new tracker, up until it says
        assert own.scripts["chk"] is not kept and own.ok(announce(bad))
        assert await settle(lambda: not own.ok(announce(bad)))
        own.configure(conf(tmp_path), reload=True)  # no longer tracked: stopped
        assert own.scripts == {}
        own.close()
    run(go)


def test_a_track_process_holds_while_its_processes_run(tmp_path: Path) -> None:
    """announce track_process on the real /proc and pidfds: a process of this test's
    own (a copy of sleep under a name nothing else has) starts down, up while it runs,
    down the moment it is killed; ``reverse`` turns it round; a reload that stops
    tracking it closes the watch."""
    import os
    import shutil
    import signal
    import subprocess

    name = f"hfown{os.getpid() % 100000}"[:15]
    exe = tmp_path / name
    shutil.copy("/bin/sleep", exe)
    top = f"vrrp_track_process sleeper {{\n  process {name}\n}}\n"

    def tracking(reverse: str = "") -> Config:
        res = load_text(top + f"""virtual_server 192.0.2.1 80 {{
  protocol TCP
  lvs_sched wlc
  lvs_method DR
  announce {{
    prefix 192.0.2.1/32
    track_process {{
      sleeper {reverse}
    }}
  }}
  real_server 10.0.0.2 80 {{ }}
}}""")
        assert res.ok, [d.format() for d in res.errors]
        return res.config

    async def body() -> list[dict[str, bool]]:
        changes: list[int] = []
        own = OwnChecks(asyncio.get_running_loop(), lambda: changes.append(1))
        c = tracking()
        own.configure(c)
        seen = [own.states(announce(c))]
        proc = subprocess.Popen([str(exe), "30"])
        try:
            # a start is seen by the process connector (root) or the next /proc scan
            assert await settle(lambda: own.ok(announce(c)), 10.0), own.states(announce(c))
            seen.append(own.states(announce(c)))
            assert changes
            r = tracking("reverse")
            own.configure(r, reload=True)  # same process spec: the same watch
            seen.append(own.states(announce(r)))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert await settle(lambda: own.ok(announce(r)), 5.0)  # its death, by pidfd
            seen.append(own.states(announce(r)))
            own.configure(conf(tmp_path), reload=True)  # no track_process left
            assert own._procs is None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            own.close()
        return seen

    assert run(body) == [{"process:sleeper": False}, {"process:sleeper": True},
                         {"process:sleeper": False}, {"process:sleeper": True}]
