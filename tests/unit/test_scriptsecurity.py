"""Script security (keepalived's check_script_secure) on real files in a tmp dir.

The tmp dir's own parents (/tmp is 1777, pytest's folders are 0700 root) are safe, so
each case decides its verdict by what it does to the script and its folder.  The tests
run as root, as the daemon does.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hafast.config.loader import load_file
from hafast.lib.scriptsecurity import Sc, check_script, is_executable, path_safety
from hafast.lib.scriptuser import default_script_user

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="permission rules are root's")

NOBODY = 65534


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    d = tmp_path / "bin"
    d.mkdir(mode=0o755)
    d.chmod(0o755)  # not the umask's word
    return d


def _script(folder: Path, name: str = "chk.sh", mode: int = 0o755) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(mode)
    return path


def test_safe_script_runs(bin_dir: Path) -> None:
    path = _script(bin_dir)
    c = check_script(str(path), 0, 0, security=True)
    assert c.flags == Sc.ISSCRIPT | Sc.EXECUTABLE
    assert (c.found, c.insecure, c.disabled, c.log) == (True, False, False, ())


@pytest.mark.parametrize(("mode", "why"), [(0o775, "writable by group 100"),
                                           (0o757, "writable by others")])
def test_writable_script_is_disabled_with_security(bin_dir: Path, mode: int, why: str) -> None:
    path = _script(bin_dir, mode=mode)
    os.chown(path, 0, 100)
    c = check_script(str(path), 0, 0, security=True)
    assert c.insecure and c.inhibited and c.disabled
    assert c.log == (f"Unsafe permissions found for script '{path}' - disabling.",)
    assert (c.culprit, c.why) == (str(path), why)
    # without enable_script_security: the same finding, and it still runs
    c = check_script(str(path), 0, 0, security=False)
    assert c.insecure and not c.disabled
    assert c.log == (f"Unsafe permissions found for script '{path}'.",)


def test_group_root_may_write(bin_dir: Path) -> None:
    """keepalived trusts group root: g+w with gid 0 is safe."""
    path = _script(bin_dir, mode=0o775)
    assert not check_script(str(path), 0, 0, security=True).insecure


def test_writable_parent_directory_is_unsafe(bin_dir: Path) -> None:
    path = _script(bin_dir)
    os.chown(bin_dir, 0, 100)
    bin_dir.chmod(0o775)
    c = check_script(str(path), 0, 0, security=True)
    assert c.disabled and (c.culprit, c.why) == (str(bin_dir), "writable by group 100")
    # a sticky directory (like /tmp) cannot have its files replaced: safe
    bin_dir.chmod(0o1777)
    assert not check_script(str(path), 0, 0, security=True).insecure


def test_directory_owned_by_a_user_is_unsafe(bin_dir: Path) -> None:
    path = _script(bin_dir)
    os.chown(bin_dir, NOBODY, 0)
    c = check_script(str(path), 0, 0, security=True)
    assert c.disabled and c.why == f"owned by uid {NOBODY}, not root"


def test_symlink_is_judged_by_its_target_path(bin_dir: Path, tmp_path: Path) -> None:
    """keepalived resolves the path (realpath) and checks where the file really is: a
    safe link into an unsafe folder is unsafe."""
    unsafe = tmp_path / "unsafe"
    unsafe.mkdir()
    os.chown(unsafe, 0, 100)
    unsafe.chmod(0o775)
    target = _script(unsafe)
    link = bin_dir / "chk.sh"
    link.symlink_to(target)
    c = check_script(str(link), 0, 0, security=True)
    assert c.disabled and c.culprit == str(unsafe)
    # the file name as written is kept when it names the same file (busybox style)
    _script(bin_dir, "real.sh")
    (bin_dir / "alias").symlink_to("real.sh")
    c = check_script(str(bin_dir / "alias"), 0, 0, security=True)
    assert not c.disabled and c.program == str(bin_dir / "alias")


def test_symlink_owned_by_a_user_is_unsafe(bin_dir: Path) -> None:
    """When the name as written is kept, the link itself is checked, by its owner."""
    _script(bin_dir, "real.sh")
    link = bin_dir / "alias"
    link.symlink_to("real.sh")
    os.lchown(link, NOBODY, NOBODY)
    c = check_script(str(link), 0, 0, security=True)
    assert c.disabled and c.culprit == str(link)


def test_non_root_user_is_not_checked_for_permissions(bin_dir: Path) -> None:
    path = _script(bin_dir, mode=0o777)
    c = check_script(str(path), NOBODY, NOBODY, security=True)
    assert c.flags == Sc.ISSCRIPT | Sc.EXECUTABLE and not c.disabled
    # ... but must be able to execute it
    path.chmod(0o744)
    c = check_script(str(path), NOBODY, NOBODY, security=True)
    assert c.disabled and not c.insecure
    assert c.log == (f"WARNING - script '{path}' is not executable for uid:gid "
                     f"{NOBODY}:{NOBODY} - disabling.",)


def test_setuid_root_script_is_checked_even_for_a_user(bin_dir: Path) -> None:
    path = _script(bin_dir, mode=0o4777)
    assert check_script(str(path), NOBODY, NOBODY, security=True).disabled


def test_bare_name_is_searched_on_path(bin_dir: Path) -> None:
    _script(bin_dir)
    c = check_script("chk.sh", 0, 0, security=True, search=f"/nonexistent:{bin_dir}")
    assert c.program == str(bin_dir / "chk.sh") and not c.disabled
    assert c.log[0].startswith("WARNING - script `chk.sh` resolved by path search")
    c = check_script("absent.sh", 0, 0, security=True, search=str(bin_dir))
    assert c.flags == Sc.NOTFOUND and not c.found
    assert c.log == ("Cannot find script absent.sh in path - disabling",)


def test_missing_script_is_not_found(tmp_path: Path) -> None:
    c = check_script(str(tmp_path / "x.sh"), 0, 0, security=True)
    assert c.flags == Sc.NOTFOUND and not c.insecure


def test_is_executable_follows_keepalived(bin_dir: Path) -> None:
    st = os.stat(_script(bin_dir, mode=0o700))
    assert is_executable(st, 0, 0) and not is_executable(st, NOBODY, 0)


def test_path_safety_walks_from_the_root(bin_dir: Path) -> None:
    path = _script(bin_dir)
    assert path_safety(str(path), True)[0] == Sc(0)


# ---------------------------------------------------------------------- the loader pass


def _conf(tmp_path: Path, body: str, security: bool = True, user: str | None = "root",
          extra: str = "") -> Path:
    gd = ["global_defs {", *([extra] if extra else [])]
    if security:
        gd.append("  enable_script_security")
    if user:
        gd.append(f"  script_user {user}")
    gd.append("}")
    path = tmp_path / "k.conf"
    path.write_text("\n".join(gd) + "\n" + body)
    return path


VRRP = """\
vrrp_script chk_safe {{
  script "{safe}"
}}
vrrp_script chk_unsafe {{
  script "{unsafe} arg"
  weight -10
}}
vrrp_instance VI_1 {{
  interface eth0
  virtual_router_id 5
  notify_master "{unsafe}"
  notify_backup "{safe}"
  track_script {{
    chk_safe
    chk_unsafe
  }}
  virtual_ipaddress {{
    10.0.0.1
  }}
}}
vrrp_sync_group G {{
  group {{
    VI_1
  }}
  track_script {{
    chk_unsafe
  }}
  notify "{unsafe}"
}}
"""


def _pair(bin_dir: Path) -> tuple[Path, Path]:
    safe = _script(bin_dir, "safe.sh")
    unsafe = _script(bin_dir, "unsafe.sh", 0o775)
    os.chown(unsafe, 0, 100)
    return safe, unsafe


def test_loader_disables_unsafe_vrrp_scripts(tmp_path: Path, bin_dir: Path) -> None:
    safe, unsafe = _pair(bin_dir)
    res = load_file(str(_conf(tmp_path, VRRP.format(safe=safe, unsafe=unsafe))))
    assert res.ok
    cfg = res.config
    assert [s.name for s in cfg.vrrp_scripts] == ["chk_safe"]
    inst = cfg.vrrp_instances[0]
    # keepalived takes it out of tracking: the instance is not put in FAULT
    assert [r.name for r in inst.track_script] == ["chk_safe"]
    assert inst.notify_master is None and inst.notify_backup is not None
    sg = cfg.sync_groups[0]
    assert sg.track_script == () and sg.notify is None
    msgs = [d.message for d in res.warnings]
    unsafe_line = f"Unsafe permissions found for script '{unsafe}' - disabling."
    assert sum(m.startswith(unsafe_line) for m in msgs) == 3  # reported at each line
    assert "Disabling track script chk_unsafe due to insecure" in msgs
    assert not [m for m in msgs if "SECURITY VIOLATION" in m]
    # the vrrp_script runs as script_user (the tracker reads VrrpScript.user)
    assert cfg.vrrp_scripts[0].user == ("root",)


def test_loader_without_security_warns_and_runs(tmp_path: Path, bin_dir: Path) -> None:
    safe, unsafe = _pair(bin_dir)
    res = load_file(str(_conf(tmp_path, VRRP.format(safe=safe, unsafe=unsafe), security=False)))
    cfg = res.config
    assert [s.name for s in cfg.vrrp_scripts] == ["chk_safe", "chk_unsafe"]
    assert cfg.vrrp_instances[0].notify_master is not None
    msgs = [d.message for d in res.warnings]
    assert any(m.startswith(f"Unsafe permissions found for script '{unsafe}'. (") for m in msgs)
    violation = [m for m in msgs if m.startswith("SECURITY VIOLATION")]
    assert len(violation) == 1
    assert violation[0].startswith("SECURITY VIOLATION - scripts are being executed but "
                                   "script_security not enabled. There are insecure scripts.")


def test_loader_disables_unsafe_misc_check(tmp_path: Path, bin_dir: Path) -> None:
    safe, unsafe = _pair(bin_dir)
    body = f"""\
virtual_server 10.0.0.1 80 {{
  protocol TCP
  quorum_up "{unsafe}"
  real_server 10.0.0.2 80 {{
    notify_up "{safe}"
    MISC_CHECK {{
      misc_path "{unsafe} x"
    }}
    MISC_CHECK {{
      misc_path "{safe}"
    }}
  }}
}}
"""
    res = load_file(str(_conf(tmp_path, body)))
    vs = res.config.virtual_servers[0]
    rs = vs.real_servers[0]
    assert vs.quorum_up is None and rs.notify_up is not None
    assert [c.misc_path.argv for c in rs.checkers] == [(str(safe),)]  # type: ignore[attr-defined]
    msgs = [d.message for d in res.warnings]
    assert f"Disabling misc script '{unsafe}' 'x' due to insecure" in msgs
    res = load_file(str(_conf(tmp_path, body, security=False)))
    assert len(res.config.virtual_servers[0].real_servers[0].checkers) == 2
    assert [m for m in (d.message for d in res.warnings)
            if m.startswith("SECURITY VIOLATION - check scripts are being executed")]


@pytest.mark.skipif(default_script_user(None) is not None, reason="keepalived_script exists")
def test_no_default_user_with_security_removes_scripts(tmp_path: Path, bin_dir: Path) -> None:
    """keepalived 2.2.7: with enable_script_security, no script_user and no
    keepalived_script user, a script without its own user is removed."""
    safe, unsafe = _pair(bin_dir)
    body = VRRP.format(safe=safe, unsafe=unsafe).replace(
        f'notify_backup "{safe}"', f'notify_backup "{safe}" nobody')
    res = load_file(str(_conf(tmp_path, body, user=None)))
    cfg = res.config
    assert cfg.vrrp_scripts == () and cfg.vrrp_instances[0].track_script == ()
    assert cfg.vrrp_instances[0].notify_master is None
    assert cfg.vrrp_instances[0].notify_backup is not None  # has its own user
    msgs = [d.message for d in res.warnings]
    assert sum(m.startswith("Unable to set default user keepalived_script for script")
               for m in msgs) == 1
    assert "Unable to set default user for vrrp script chk_safe - removing" in msgs
    # without enable_script_security the default is root, and the scripts stay
    res = load_file(str(_conf(tmp_path, body, security=False, user=None)))
    assert len(res.config.vrrp_scripts) == 2
    assert res.config.global_defs.script_user is None


def test_unknown_script_user_removes_default_scripts(tmp_path: Path, bin_dir: Path) -> None:
    safe, _ = _pair(bin_dir)
    res = load_file(str(_conf(tmp_path, VRRP.format(safe=safe, unsafe=safe), security=False,
                              user="no-such-user-here")))
    assert res.config.vrrp_scripts == ()
    d = [d for d in res.warnings if d.message.startswith("Error setting global script uid/gid")]
    assert [x.line for x in d] == [2]  # at the script_user line


def test_safe_config_is_unchanged(tmp_path: Path, bin_dir: Path) -> None:
    safe, _ = _pair(bin_dir)
    res = load_file(str(_conf(tmp_path, VRRP.format(safe=safe, unsafe=safe))))
    assert not [d.message for d in res.diagnostics if "for script" in d.message
                or "SECURITY" in d.message or "default user" in d.message]
    assert len(res.config.vrrp_scripts) == 2


def test_fifo_script_is_judged_as_run_by_root(tmp_path: Path, bin_dir: Path) -> None:
    """hafast starts FIFO scripts as itself: script_user does not lower the bar for them
    (it does for a notify script, which runs as script_user and is not checked)."""
    _, unsafe = _pair(bin_dir)
    body = VRRP.format(safe=unsafe, unsafe=unsafe)
    fifo = f"  vrrp_notify_fifo {tmp_path}/f\n  vrrp_notify_fifo_script {unsafe}"
    res = load_file(str(_conf(tmp_path, body, user="nobody", extra=fifo)))
    gd = res.config.global_defs
    assert gd.vrrp_notify_fifo is not None and gd.vrrp_notify_fifo_script is None
    assert res.config.vrrp_instances[0].notify_master is not None
    assert len(res.config.vrrp_scripts) == 2


def test_keepalived_script_user_is_the_default(
    tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a keepalived_script user (here: nobody under that name) and no script_user,
    scripts run as it: the model says so for every runner, and a script run as a user
    other than root is not refused for its permissions."""
    import pwd

    from hafast.lib import scriptuser
    from hafast.lib.notify import notify_scripts

    real = pwd.getpwnam

    def getpwnam(name: str) -> pwd.struct_passwd:
        return real("nobody" if name == "keepalived_script" else name)

    monkeypatch.setattr(scriptuser.pwd, "getpwnam", getpwnam)
    safe, unsafe = _pair(bin_dir)
    res = load_file(str(_conf(tmp_path, VRRP.format(safe=safe, unsafe=unsafe), user=None)))
    cfg = res.config
    assert cfg.global_defs.script_user == ("keepalived_script",)
    assert [(s.name, s.user) for s in cfg.vrrp_scripts] == [
        ("chk_safe", ("keepalived_script",)), ("chk_unsafe", ("keepalived_script",))]
    inst = cfg.vrrp_instances[0]
    assert notify_scripts(inst, cfg.global_defs.script_user).run_as("master") == (
        "keepalived_script", None)
    assert not [d for d in res.warnings if "script" in d.message and "default" in d.message]


@pytest.mark.skipif(default_script_user(None) is not None, reason="keepalived_script exists")
def test_root_default_is_logged_like_keepalived(
    tmp_path: Path, bin_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    safe, _ = _pair(bin_dir)
    with caplog.at_level("INFO", logger="hafast.config"):
        res = load_file(str(_conf(tmp_path, VRRP.format(safe=safe, unsafe=safe),
                                  security=False, user=None)))
    assert caplog.messages.count("Script user 'keepalived_script' does not exist") == 1
    assert len(res.config.vrrp_scripts) == 2 and res.config.global_defs.script_user is None
