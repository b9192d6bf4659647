"""Script security side by side: Debian's keepalived 2.2.7 ``-t`` and ``hafast -t`` on
the same configs and the same files disable the same scripts and give the same warning.

``keepalived -t`` prints its config errors ("Disabling track script X due to insecure",
"SECURITY VIOLATION - ...", "Unable to set default user ..."); what it does to notify
and MISC_CHECK scripts is only logged by the daemon, so tests/netns/
test_script_security.py compares those.  Exit codes differ by design: keepalived -t
exits 5 for any config error and 6 for a SECURITY VIOLATION; hafast -t exits 0 for
warnings, and these are warnings (the daemons of both run the config).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from hafast.cli import main
from hafast.config.loader import load_file
from hafast.lib.scriptuser import default_script_user
from tests.conftest import keepalived_t

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the rules are root's")




def _hafast(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(["-t", "-f", str(path)])
    return rc, capsys.readouterr().err


def _script(path: Path, mode: int = 0o755, gid: int = 0) -> Path:
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(mode)
    os.chown(path, 0, gid)
    return path


@pytest.fixture
def scripts(tmp_path: Path) -> dict[str, Path]:
    """name -> program: one safe, the rest unsafe in a different way each."""
    safe_dir = tmp_path / "bin"
    safe_dir.mkdir()
    safe_dir.chmod(0o755)
    open_dir = tmp_path / "shared"
    open_dir.mkdir()
    os.chown(open_dir, 0, 100)
    open_dir.chmod(0o775)
    group = _script(safe_dir / "group.sh", 0o775, gid=100)
    link = safe_dir / "link.sh"
    link.symlink_to(group)
    return {
        "chk_safe": _script(safe_dir / "safe.sh"),
        "chk_group": group,
        "chk_other": _script(safe_dir / "other.sh", 0o757),
        "chk_dir": _script(open_dir / "indir.sh"),
        "chk_link": link,
        "chk_rootgroup": _script(safe_dir / "rootgroup.sh", 0o775, gid=0),
    }


UNSAFE = {"chk_group", "chk_other", "chk_dir", "chk_link"}


def _vrrp_conf(tmp_path: Path, scripts: dict[str, Path], gd: str) -> Path:
    text = [f"global_defs {{\n{gd}}}"]
    for name, prog in scripts.items():
        text.append(f"vrrp_script {name} {{\n  script \"{prog} arg\"\n  weight -5\n}}")
    tracks = "".join(f"    {n}\n" for n in scripts)
    text.append(
        "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 5\n  priority 100\n"
        f"  track_script {{\n{tracks}  }}\n  virtual_ipaddress {{\n    10.0.0.1\n  }}\n}}\n"
    )
    path = tmp_path / "k.conf"
    path.write_text("\n".join(text))
    return path


def _disabled(out: str) -> set[str]:
    return set(re.findall(r"Disabling track script (\S+) due to insecure", out))


def test_same_track_scripts_disabled(
    tmp_path: Path, scripts: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = _vrrp_conf(tmp_path, scripts, "  enable_script_security\n  script_user root\n")
    ka_rc, ka_out = keepalived_t(path)
    rc, out = _hafast(path, capsys)
    assert _disabled(ka_out) == UNSAFE, ka_out
    assert _disabled(out) == UNSAFE, out
    assert ka_rc == 5 and rc == 0
    # what is left is what runs: the instance tracks the safe ones only
    cfg = load_file(str(path)).config
    assert {s.name for s in cfg.vrrp_scripts} == set(scripts) - UNSAFE
    assert {r.name for r in cfg.vrrp_instances[0].track_script} == set(scripts) - UNSAFE
    # each disabled one says which part of the path is unsafe, at the script's line
    assert f"{scripts['chk_dir'].parent} is writable by group 100" in out


def test_all_safe_nothing_said(
    tmp_path: Path, scripts: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    safe = {k: v for k, v in scripts.items() if k not in UNSAFE}
    path = _vrrp_conf(tmp_path, safe, "  enable_script_security\n  script_user root\n")
    ka_rc, ka_out = keepalived_t(path)
    rc, out = _hafast(path, capsys)
    assert (ka_rc, ka_out) == (0, "")
    assert rc == 0 and "script" not in out.lower()


@pytest.mark.parametrize("unsafe", [True, False])
def test_same_security_violation_without_the_flag(
    tmp_path: Path, scripts: dict[str, Path], capsys: pytest.CaptureFixture[str], unsafe: bool
) -> None:
    chosen = scripts if unsafe else {k: v for k, v in scripts.items() if k not in UNSAFE}
    path = _vrrp_conf(tmp_path, chosen, "  script_user root\n")
    ka_rc, ka_out = keepalived_t(path)
    rc, out = _hafast(path, capsys)
    sentence = "SECURITY VIOLATION - scripts are being executed but script_security not enabled."
    insecure = " There are insecure scripts."
    ka_line = next(x for x in ka_out.splitlines() if x.startswith(sentence))
    assert ka_line == sentence + (insecure if unsafe else "")
    assert ka_rc == 6
    ours = [x.split(": warning: ", 1)[1] for x in out.splitlines() if sentence in x]
    assert len(ours) == 1 and ours[0].startswith(ka_line + " (")
    assert rc == 0
    # and nothing is disabled: both run every script
    assert not _disabled(ka_out) and not _disabled(out)
    assert len(load_file(str(path)).config.vrrp_scripts) == len(chosen)


def test_same_check_side_violation(
    tmp_path: Path, scripts: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "vs.conf"
    path.write_text(
        "global_defs {\n  script_user root\n}\n"
        "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  lvs_sched wlc\n  lvs_method NAT\n"
        "  real_server 10.0.0.2 80 {\n    MISC_CHECK {\n"
        f"      misc_path \"{scripts['chk_dir']} x\"\n    }}\n  }}\n}}\n"
    )
    ka_rc, ka_out = keepalived_t(path)
    rc, out = _hafast(path, capsys)
    line = ("SECURITY VIOLATION - check scripts are being executed but script_security not "
            "enabled. There are insecure scripts.")
    assert (ka_rc, ka_out.strip()) == (6, line)
    assert f"warning: {line} (" in out and rc == 0


@pytest.mark.skipif(default_script_user(None) is not None, reason="keepalived_script exists")
def test_same_scripts_removed_without_a_default_user(
    tmp_path: Path, scripts: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """enable_script_security, no script_user, no keepalived_script user: keepalived
    2.2.7 removes every vrrp_script (the man page says root; the code says no)."""
    safe = {k: v for k, v in scripts.items() if k not in UNSAFE}
    path = _vrrp_conf(tmp_path, safe, "  enable_script_security\n")
    _, ka_out = keepalived_t(path)
    rc, out = _hafast(path, capsys)
    removed = r"Unable to set default user for vrrp script (\S+) - removing"
    assert set(re.findall(removed, ka_out)) == set(re.findall(removed, out)) == set(safe)
    first = "Unable to set default user keepalived_script for script"
    assert ka_out.count(first) == out.count(first) == 1
    assert rc == 0 and load_file(str(path)).config.vrrp_scripts == ()
