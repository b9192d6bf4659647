"""``hafast -t`` / ``-d`` / ``--json``: keepalived's config flags at top level."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from hafast.cli import main
from hafast.config import model as m
from hafast.config.cli_config import EXIT_CONFIG_ERRORS, run_config
from hafast.config.loader import load_text
from tests.conftest import REPO

GOOD = """global_defs {
  router_id r1
  enable_dbus
}
vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 5
}
"""
BAD = """vrrp_instance VI_1 {
  interface eth0
  priority 300
  prioritty 10
}
"""


@pytest.fixture
def good(tmp_path: Path) -> Path:
    p = tmp_path / "good.conf"
    p.write_text(GOOD)
    return p


@pytest.fixture
def bad(tmp_path: Path) -> Path:
    p = tmp_path / "bad.conf"
    p.write_text(BAD)
    return p


def test_config_test_clean_with_warning(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-t", "-f", str(good)]) == 0
    err = capsys.readouterr().err
    assert f"{good}:3:3: warning: 'enable_dbus' has no effect in hafast" in err


def test_config_test_errors(bad: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-t", "-f", str(bad)]) == 4
    err = [e for e in capsys.readouterr().err.splitlines() if ": error: " in e]
    assert f"{bad}:1:1: error: vrrp_instance 'VI_1': the virtual router id must be set" in err[0]
    assert err[1].startswith(f"{bad}:3:12: error: number '300' outside range [1, 255]")
    unknown = "unknown keyword 'prioritty' in vrrp_instance; did you mean 'priority'?"
    assert err[2] == f"{bad}:4:3: error: {unknown}"


def test_config_test_with_file_argument(good: Path) -> None:
    assert main([f"--config-test={good}"]) == 0


def test_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-t", "-f", str(tmp_path / "missing.conf")]) == 3
    assert "cannot read" in capsys.readouterr().err


def test_dump_text_and_json(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-d", "-f", str(good)]) == 0
    assert "vrrp_instance VI_1 {" in capsys.readouterr().out
    assert main(["-d", "--json", "-f", str(good)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["global_defs"]["router_id"] == "r1"
    assert data["vrrp_instances"][0]["virtual_router_id"] == 5


def test_config_id_selects_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "c.conf"
    p.write_text("global_defs {\n@a router_id ra\n@b router_id rb\n}\n")
    assert main(["-d", "--json", "-i", "b", "-f", str(p)]) == 0
    assert json.loads(capsys.readouterr().out)["global_defs"]["router_id"] == "rb"


def test_subcommands_still_work(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["core"]) == 0
    assert "checksum" in capsys.readouterr().out


def test_module_entry_point(good: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hafast", "-t", "-f", str(good)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_a_one_shot_command_ends_with_its_code_and_everything_it_printed(
        good: Path, bad: Path) -> None:
    """``hafast -t`` and ``-d`` end by os._exit once their model is kept
    (hafast.lib.oneshot): the exit code and every byte written to the (piped, so
    buffered) standard streams must still come out."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hafast", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=60, check=False)

    dumped = run("-d", "--json", "-f", str(good))
    assert dumped.returncode == 0, dumped.stderr
    assert json.loads(dumped.stdout)["global_defs"]["router_id"] == "r1"
    refused = run("-t", "-f", str(bad))
    assert refused.returncode == EXIT_CONFIG_ERRORS, refused
    assert f"{bad}:3:" in refused.stderr and "error" in refused.stderr
    assert refused.stderr.rstrip().endswith("warning(s)")


def test_config_test_json_lists_the_diagnostics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """-t --json: every diagnostic with its code, for tooling; exit code as without it."""
    conf = tmp_path / "k.conf"
    conf.write_text("global_defs {\n  enable_dbus\n  nftables_ipvs\n}\n")
    assert main(["-t", "--json", "-f", str(conf)]) == 4
    doc = json.loads(capsys.readouterr().out)
    assert (doc["ok"], doc["errors"], doc["warnings"]) == (False, 1, 1)
    got = [(d["line"], d["severity"], d["code"]) for d in doc["diagnostics"]]
    assert got == [(2, "warning", "unsupported"), (3, "error", "unsupported")]
    assert doc["files"] == [str(conf)]


MAGLEV = """virtual_server 192.0.2.100 80 {
  protocol TCP
  lvs_sched mh
  announce {
    prefix 192.0.2.100/32
  }
  real_server 10.1.0.1 80 { }
}
"""


@pytest.mark.parametrize(("sysctl", "warned"), [("0\n", True), ("1\n", False), (None, False)])
def test_config_test_warns_about_sloppy_tcp_for_a_maglev_fleet(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        sysctl: str | None, warned: bool) -> None:
    """The running announcer's warning, from -t too, read from this machine's sysctl
    (None: no such file, ip_vs not loaded: nothing said, as the daemon)."""
    import hafast.fleet.runner as runner

    conf = tmp_path / "fleet.conf"
    conf.write_text(MAGLEV)
    knob = tmp_path / "sloppy_tcp"
    if sysctl is not None:
        knob.write_text(sysctl)
    monkeypatch.setattr(runner, "SLOPPY_TCP", str(knob))
    assert main(["-t", "-f", str(conf)]) == 0
    err = capsys.readouterr().err
    [said] = runner.maglev_warnings(load_text(MAGLEV).config, lambda path: "0")
    assert (f"{conf}:0:0: warning: {said}" in err) == warned, err
    assert ("sloppy_tcp" in err) == warned


def test_config_test_host_checks_are_counted_and_in_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "fleet.conf"
    conf.write_text(MAGLEV)
    def summary(checks: Callable[[m.Config], list[str]]) -> list[str]:
        assert run_config(str(conf), test=True, dump=False, as_json=False, config_id=None,
                          host_checks=checks) == 0
        return capsys.readouterr().err.splitlines()

    def checks(config: m.Config) -> list[str]:
        return ["first", "second"]

    n = len(summary(lambda config: [])) - 1
    err = summary(checks)
    assert f"{conf}:0:0: warning: first" in err and f"{conf}:0:0: warning: second" in err
    assert err[-1].endswith(f" 0 error(s), {n + 2} warning(s)")
    assert run_config(str(conf), test=True, dump=False, as_json=True, config_id=None,
                      host_checks=checks) == 0
    diags = json.loads(capsys.readouterr().out)["diagnostics"]
    assert [d["message"] for d in diags if d["code"] == "host"] == ["first", "second"]
    # -d alone runs no host checks
    assert run_config(str(conf), test=False, dump=True, as_json=False, config_id=None,
                      host_checks=lambda config: pytest.fail("called")) == 0
