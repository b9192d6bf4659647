"""keepalived's flags parsed into Options; -t/-d/-T/--signum short paths."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from hafast.app import cmdline


def test_keepalived_flags_keep_their_meaning() -> None:
    o = cmdline.parse(["-f", "/etc/k.conf", "-n", "-l", "-D", "-S", "local3",
                       "-g", "/var/log/h.log", "-G", "-P", "-R", "-V", "-I",
                       "-p", "/run/a.pid", "-r", "/run/b.pid",
                       "-c", "/run/c.pid", "-s", "blue", "-i", "lb1", "-u", "022"])
    assert o.config_file == "/etc/k.conf"
    assert (o.dont_fork, o.vrrp_only, o.check_only, o.dont_respawn) == (True, True, False, True)
    assert (o.dont_release_vrrp, o.dont_release_ipvs) == (True, True)
    assert o.log.console and o.log.detail and not o.log.syslog
    assert (o.log.facility, o.log.file) == ("local3", "/var/log/h.log")
    assert (o.pid_file, o.vrrp_pid_file, o.checkers_pid_file) == ("/run/a.pid", "/run/b.pid",
                                                                   "/run/c.pid")
    assert (o.namespace, o.config_id, o.umask) == ("blue", "lb1", 0o22)


def test_defaults_do_not_clobber_a_real_keepalived() -> None:
    o = cmdline.parse([])
    assert o.config_file == "/etc/keepalived/keepalived.conf"
    assert "keepalived" not in o.pid_file and o.pid_file.endswith("hafast.pid")
    assert o.dump_prefix == "/tmp/keepalived"
    assert o.control_path == "/run/hafast.ctl"
    ns = cmdline.parse(["-s", "red"])
    assert ns.pid_file == "/run/hafast/red/hafast.pid"
    assert ns.control_path == "/run/hafast_red.ctl"


def test_compatibility_flags_are_accepted() -> None:
    o = cmdline.parse(["-B", "--all", "-X", "-a", "-e", "-x", "-m", "--no-mem-check",
                       "--flush-log-file", "--ignore-sigint", "--debug"])
    assert o.ignore_sigint and o.address_monitoring and o.all_config


def test_bad_facility_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cmdline.parse(["-S", "local9"])
    assert exc.value.code == 2
    assert "facility" in capsys.readouterr().err


@pytest.mark.parametrize(("name", "number"), [
    ("STOP", signal.SIGTERM), ("RELOAD", signal.SIGHUP), ("DATA", signal.SIGUSR1),
    ("STATS", signal.SIGUSR2), ("JSON", signal.SIGRTMIN + 2), ("TDATA", signal.SIGRTMAX),
    ("STATS_CLEAR", signal.SIGRTMAX - 1),
])
def test_signum(name: str, number: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert cmdline.main([f"--signum={name}"]) == 0
    assert capsys.readouterr().out.strip() == str(int(number))


def test_signum_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    assert cmdline.main(["--signum", "BOGUS"]) == 1


def test_config_test_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.conf"
    good.write_text("global_defs {\n router_id x\n}\n")
    bad = tmp_path / "bad.conf"
    bad.write_text("vrrp_instance V {\n virtual_router_id 999\n}\n")
    assert cmdline.main(["-t", str(good)]) == 0
    assert cmdline.main(["-f", str(bad), "-t"]) == 4
    assert cmdline.main(["-t", "/nonexistent/k.conf"]) == 3
    assert cmdline.main(["-f", str(good), "-d"]) == 0
    assert "router_id" in capsys.readouterr().out


def test_genhash_mode_passes_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def fake(argv: list[str]) -> int:
        seen.append(list(argv))
        return 7

    monkeypatch.setattr("hafast.genhash.main", fake)
    # genhash's -s/-p/-V mean server/port/vhost, not keepalived's namespace/pid/...
    assert cmdline.main(["-T", "-s", "10.0.0.1", "-p", "80", "-u", "/x", "-V", "h"]) == 7
    assert seen == [["-s", "10.0.0.1", "-p", "80", "-u", "/x", "-V", "h"]]


def test_p_and_c_together_is_refused() -> None:
    with pytest.raises(SystemExit):
        cmdline.main(["-P", "-C", "-f", "/nonexistent"])
