"""Missing and non-executable programs, side by side with Debian's keepalived 2.2.7.

keepalived checks every script at load (``check_script_secure``), with or without
``enable_script_security``, and drops a program that is missing or that the user it runs
as cannot execute: a ``vrrp_script`` is taken out of tracking (``check_track_script_
secure``: "Disabling track script NAME since not found/accessible", a config error that
``keepalived -t`` prints), a ``MISC_CHECK`` is taken off its real server and a notify
script is not run (both only logged by the daemon: ``keepalived -t`` says nothing).  So
``hafast -t`` says what ``keepalived -t`` says, the model loses what keepalived drops,
and the daemon log gets keepalived's lines (tests/netns/test_script_missing.py runs both
daemons).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest

from hafast.cli import main
from hafast.config.loader import load_file
from tests.conftest import keepalived_t

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the rules are root's")

GOLDEN = Path(__file__).parent / "golden" / "loader" / "clean_full.conf"
_DISABLED = re.compile(r"Disabling track script (\S+) since not found/accessible")




def _hafast(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    # IPVS named: on a host without it (this one) -t would add what nftables cannot
    # do, which keepalived -t has no word for (hafast.app.hostcheck)
    rc = main(["-t", "-f", str(path), "--pool-backend", "ipvs"])
    return rc, capsys.readouterr().err


@pytest.fixture
def progs(tmp_path: Path) -> dict[str, str]:
    """name -> program: present and safe, missing (by path, by name), not executable."""
    d = tmp_path / "bin"
    d.mkdir()
    d.chmod(0o755)
    ok = d / "ok.sh"
    ok.write_text("#!/bin/sh\nexit 0\n")
    ok.chmod(0o755)
    noexec = d / "noexec.sh"
    noexec.write_text("#!/bin/sh\nexit 0\n")
    noexec.chmod(0o644)
    return {"chk_ok": str(ok), "chk_missing": f"{d}/missing.sh", "chk_bare": "no-such-prog-x",
            "chk_noexec": str(noexec)}


def _vrrp_conf(tmp_path: Path, progs: dict[str, str], gd: str) -> Path:
    text = [f"global_defs {{\n  script_user root\n{gd}}}"]
    for name, prog in progs.items():
        text.append(f"vrrp_script {name} {{\n  script \"{prog} arg\"\n}}")
    tracks = "".join(f"    {n}\n" for n in progs)
    text.append(
        "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 5\n  priority 100\n"
        f"  track_script {{\n{tracks}  }}\n"
        f"  notify_master \"{progs['chk_missing']} master\"\n"
        f"  notify_backup {progs['chk_noexec']}\n  notify_fault {progs['chk_ok']}\n"
        "  virtual_ipaddress {\n    10.0.0.1\n  }\n}\n"
        f"vrrp_sync_group G {{\n  group {{\n    VI_1\n  }}\n  track_script {{\n{tracks}  }}\n}}\n"
    )
    path = tmp_path / "k.conf"
    path.write_text("\n".join(text))
    return path


@pytest.mark.parametrize("security", [True, False])
def test_missing_vrrp_scripts_dropped_as_keepalived(
    tmp_path: Path, progs: dict[str, str], capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture, security: bool,
) -> None:
    path = _vrrp_conf(tmp_path, progs, "  enable_script_security\n" if security else "")
    _, ka_out = keepalived_t(path)
    rc, out = _hafast(path, capsys)
    # keepalived -t names the missing ones (not the non-executable one: that is only
    # logged); hafast -t the same, as warnings
    assert set(_DISABLED.findall(ka_out)) == {"chk_missing", "chk_bare"}, ka_out
    assert set(_DISABLED.findall(out)) == {"chk_missing", "chk_bare"}, out
    assert rc == 0
    # neither says anything about the notify scripts
    assert "missing.sh master" not in ka_out and "notify" not in out
    with caplog.at_level(logging.INFO, logger="hafast.config"):
        cfg = load_file(str(path)).config
    # what is left is what runs: only chk_ok, everywhere it was tracked
    assert [s.name for s in cfg.vrrp_scripts] == ["chk_ok"]
    inst, group = cfg.vrrp_instances[0], cfg.sync_groups[0]
    assert [r.name for r in inst.track_script] == ["chk_ok"]
    assert [r.name for r in group.track_script] == ["chk_ok"]
    assert (inst.notify_master, inst.notify_backup) == (None, None)
    assert inst.notify_fault is not None and inst.notify_fault.argv == (progs["chk_ok"],)
    # the daemon's log gets keepalived's lines (lib/notify.c, vrrp/vrrp.c)
    d = Path(progs["chk_ok"]).parent
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert said == [
        f"Script {d}/missing.sh cannot be accessed - No such file or directory",
        "Cannot find script no-such-prog-x in path - disabling",
        f"WARNING - script '{d}/noexec.sh' is not executable for uid:gid 0:0 - disabling.",
        # the notify scripts, in keepalived's order: backup before master
        f"WARNING - script '{d}/noexec.sh' is not executable for uid:gid 0:0 - disabling.",
        f"Script {d}/missing.sh cannot be accessed - No such file or directory",
    ]


def test_missing_misc_check_dropped_real_server_kept(
    tmp_path: Path, progs: dict[str, str], capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "vs.conf"
    path.write_text(
        "global_defs {\n  script_user root\n  enable_script_security\n}\n"
        "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  lvs_sched wlc\n  lvs_method NAT\n"
        f"  quorum_up {progs['chk_missing']}\n"
        "  real_server 10.0.0.2 80 {\n    MISC_CHECK {\n"
        f"      misc_path \"{progs['chk_missing']} x\"\n    }}\n  }}\n"
        "  real_server 10.0.0.3 80 {\n    MISC_CHECK {\n"
        f"      misc_path {progs['chk_noexec']}\n    }}\n"
        f"    MISC_CHECK {{\n      misc_path {progs['chk_ok']}\n    }}\n  }}\n}}\n"
    )
    ka_rc, ka_out = keepalived_t(path)
    rc, out = _hafast(path, capsys)
    assert (ka_rc, ka_out) == (0, "")
    assert (rc, out) == (0, "")
    with caplog.at_level(logging.INFO, logger="hafast.config"):
        cfg = load_file(str(path)).config
    vs = cfg.virtual_servers[0]
    assert vs.quorum_up is None
    # no checker left on the first: keepalived (and hafast) keep such a server up
    assert [len(rs.checkers) for rs in vs.real_servers] == [0, 1]
    # keepalived checks every MISC_CHECK before the notify scripts; hafast goes server by
    # server: the same lines, in another order
    said = sorted(r.getMessage() for r in caplog.records if r.levelno == logging.INFO)
    missing = Path(progs["chk_missing"])
    assert said == sorted([
        f"Script {missing} cannot be accessed - No such file or directory",
        f"Script {missing} cannot be accessed - No such file or directory",
        f"Disabling misc script '{missing}' 'x' since not found/accessible",
        f"WARNING - script '{progs['chk_noexec']}' is not executable for uid:gid 0:0 - "
        "disabling.",
    ])


def test_golden_clean_config_says_nothing_and_drops_what_keepalived_drops(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The golden clean config names a notify script and a MISC_CHECK program that are
    not on this machine: keepalived -t says nothing about them (its daemon drops both,
    logging it), and hafast -t says nothing either."""
    ka_rc, ka_out = keepalived_t(GOLDEN)
    rc, out = _hafast(GOLDEN, capsys)
    assert (ka_rc, ka_out) == (0, "")
    assert (rc, out) == (0, "")
    res = load_file(str(GOLDEN))
    assert res.diagnostics == []
    if os.path.exists("/etc/keepalived/notify.sh") or os.path.exists("/usr/local/bin/check.sh"):
        pytest.skip("this machine has the golden config's scripts")
    cfg = res.config
    assert cfg.vrrp_instances[0].notify_master is None
    fwmark_rs = cfg.virtual_servers[-1].real_servers[0]
    assert [type(c).__name__ for c in fwmark_rs.checkers] == ["SmtpCheck"]
    # the vrrp_script's program is on this machine: still tracked
    assert [r.name for r in cfg.vrrp_instances[0].track_script] == ["chk_nginx"]
