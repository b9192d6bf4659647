"""hafast.fleet.frrlife on a fake FRR: the refusal path (FRR's check says no, nothing
is applied, the error is said once), the reload path (frr-reload.py with the
pathspace), a reload mode that waits for FRR, the argv of each tool, the forwarding
lines and ``hafast -t``'s note.  The real FRR: tests/netns/test_fleet_frr_life.py."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from hafast.app.hostcheck import host_checks
from hafast.config.loader import load_text
from hafast.config.model import Config
from hafast.fleet import frrlife
from hafast.fleet.frrconf import check_argv
from hafast.fleet.frrlife import FrrLife, daemon_argv, missing_tools, reload_argv
from hafast.net.vmac import Sysctl


def conf(tmp: Path, mode: str, vips: tuple[str, ...] = ("192.0.2.100",)) -> Config:
    servers = "".join(f"""virtual_server {v} 80 {{
  announce {{
    prefix {v}/32
  }}
  real_server 10.1.0.1 80 {{ }}
}}
""" for v in vips)
    res = load_text(f"""bgp_speaker {{
  local_as 65001
  neighbor 10.0.1.1 {{
    remote_as 65000
  }}
  frr_pathspace d1
  frr_control {mode}
  frr_dir {tmp}
}}
{servers}""")
    assert res.ok, [d.format() for d in res.errors]
    return res.config


class FakeFrr:
    """run_tool's stand-in: FRR's check answers ``check``; frr-reload ``reload``."""

    def __init__(self, check: int = 0, reload: list[int] | None = None) -> None:
        self.check, self.reload = check, list(reload or [0])
        self.calls: list[list[str]] = []

    async def __call__(self, argv: list[str], timeout: float) -> tuple[int, str, str]:
        self.calls.append(argv)
        if argv[1] == "--dryrun":
            return self.check, "", "line 3: % Unknown command: nonsense" if self.check else ""
        assert argv[0] == frrlife.FRR_RELOAD
        return self.reload.pop(0), "", "" if not self.reload else "cannot connect"


def run_until(life: FrrLife, done: Any, seconds: float = 5.0) -> None:
    async def go() -> None:
        life.loop = asyncio.get_running_loop()
        life.start()
        for _ in range(int(seconds / 0.01)):
            if done():
                break
            await asyncio.sleep(0.01)
        life.stop()
    asyncio.run(go())


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    def make(**kw: Any) -> FakeFrr:
        frr = FakeFrr(**kw)
        monkeypatch.setattr(frrlife, "run_tool", frr)
        monkeypatch.setattr(frrlife, "RETRY_S", 0.01)
        return frr
    return make


def test_reload_mode_checks_writes_and_reloads(tmp_path: Path, fake: Any) -> None:
    frr = fake()
    life = FrrLife(None, conf(tmp_path, "reload"))
    run_until(life, lambda: life.st.applied == 1)
    assert life.status() == {"control": "reload", "dir": str(tmp_path), "applied": 1,
                             "refused": 0, "failed": 0, "last_error": None,
                             "daemons": None, "restarts": None}
    assert frr.calls[0] == check_argv(f"{tmp_path}/frr.conf.check")
    assert frr.calls[1] == reload_argv(life.speaker, f"{tmp_path}/frr.conf")
    text = (tmp_path / "frr.conf").read_text()
    assert "permit 192.0.2.100/32" in text and not (tmp_path / "frr.conf.check").exists()


def test_a_rendering_frr_refuses_is_not_applied_and_said_once(
        tmp_path: Path, fake: Any, caplog: pytest.LogCaptureFixture) -> None:
    frr = fake(check=1)
    (tmp_path / "frr.conf").write_text("what FRR runs\n")
    life = FrrLife(None, conf(tmp_path, "reload"))
    with caplog.at_level(logging.ERROR, logger="hafast.fleet"):
        run_until(life, lambda: False, 0.2)  # RETRY_S is 0.01 s here
    assert life.st.applied == 0 and life.st.refused == 1  # not tried again
    assert all(c[1] == "--dryrun" for c in frr.calls), "frr-reload ran on a refused config"
    assert (tmp_path / "frr.conf").read_text() == "what FRR runs\n"  # nothing lost
    said = [r.getMessage() for r in caplog.records]
    assert said == ["FRR: FRR refuses the rendered config, which is not applied: "
                    "line 3: % Unknown command: nonsense"]


def test_reload_mode_tries_again_until_frr_is_there(tmp_path: Path, fake: Any) -> None:
    frr = fake(reload=[1, 1, 0])
    life = FrrLife(None, conf(tmp_path, "reload"))
    run_until(life, lambda: life.st.applied == 1)
    assert life.st.failed == 2 and life.st.applied == 1 and life.st.last_error is None
    assert [c[0] for c in frr.calls].count(frrlife.FRR_RELOAD) == 3


def test_a_reload_of_hafast_applies_only_a_changed_rendering(tmp_path: Path, fake: Any) -> None:
    frr = fake(reload=[0, 0])
    life = FrrLife(None, conf(tmp_path, "reload"))
    run_until(life, lambda: life.st.applied == 1)
    life.reconfigure(conf(tmp_path, "reload"))  # the same rendering
    run_until(life, lambda: False, 0.1)
    assert life.st.applied == 1 and len(frr.calls) == 2
    life.reconfigure(conf(tmp_path, "reload", ("192.0.2.100", "192.0.2.101")))
    run_until(life, lambda: life.st.applied == 2)
    assert "permit 192.0.2.101/32" in (tmp_path / "frr.conf").read_text()


def test_the_tools_argv(tmp_path: Path) -> None:
    sp = conf(tmp_path, "run").bgp_speaker
    assert sp is not None
    assert daemon_argv(sp, "bgpd") == ["/usr/lib/frr/bgpd", "-d", "-N", "d1",
                                       "-f", f"{tmp_path}/bgpd.conf"]
    assert reload_argv(sp, "/x/frr.conf") == [
        "/usr/lib/frr/frr-reload.py", "--reload", "--stdout", "--pathspace", "d1",
        "--confdir", str(tmp_path), "--rundir", "/var/run/frr/d1", "/x/frr.conf"]


def test_forwarding_lines_say_what_the_kernel_has(tmp_path: Path) -> None:
    v4, v6 = tmp_path / "net/ipv4/ip_forward", tmp_path / "net/ipv6/conf/all/forwarding"
    v6.parent.mkdir(parents=True)
    v4.parent.mkdir(parents=True, exist_ok=True)
    v4.write_text("1\n")
    v6.write_text("0\n")
    assert frrlife.forwarding_lines(Sysctl(root=tmp_path)) == "no ipv6 forwarding\n"
    v6.write_text("1\n")
    assert frrlife.forwarding_lines(Sysctl(root=tmp_path)) == ""
    v4.unlink()  # not there (no IPv4 in the kernel): nothing said
    assert frrlife.forwarding_lines(Sysctl(root=tmp_path)) == ""


def test_hafast_t_notes_missing_frr_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frrlife, "FRR_RELOAD", str(tmp_path / "frr-reload.py"))
    cfg = conf(tmp_path, "reload")
    assert cfg.bgp_speaker is not None
    want = (f"bgp_speaker frr_control reload: {tmp_path}/frr-reload.py not found (Debian "
            "packages frr and frr-pythontools); FRR would not be given hafast's config")
    assert missing_tools(cfg.bgp_speaker) == [want]
    assert want in host_checks(cfg, "memory")
