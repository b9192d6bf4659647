"""``hafast -t`` reports a config ``include`` or a script that a user other than root
can change (issue 17).

keepalived judges scripts run as root ("Unsafe permissions found for script '...'")
and never the files it includes; whoever can change an included file can add a
script that runs as root, so hafast judges includes by the same rule and warns in
the same words.  Files owned by the user running the test count as trusted, so
these run without root too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hafast.cli import main

VS = """virtual_server 10.0.0.1 80 {
  protocol TCP
  lvs_sched rr
  lvs_method NAT
  real_server 10.0.0.2 80 {
    TCP_CHECK {
    }
  }
}
"""


def hafast_t(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(["-t", "-f", str(path)])
    return rc, capsys.readouterr().err


def layout(tmp_path: Path, folder_mode: int, file_mode: int) -> tuple[Path, Path]:
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    inc = conf_d / "vs.conf"
    inc.write_text(VS)
    inc.chmod(file_mode)
    conf_d.chmod(folder_mode)
    tmp_path.chmod(0o755)
    main_conf = tmp_path / "keepalived.conf"
    main_conf.write_text("global_defs {\n  router_id t\n}\ninclude conf.d/*.conf\n")
    return main_conf, inc


@pytest.mark.parametrize(("folder_mode", "file_mode", "culprit", "why"), [
    (0o755, 0o666, "file", "writable by others"),
    (0o777, 0o644, "folder", "writable by others"),
])
def test_an_include_others_can_change_is_reported(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], folder_mode: int, file_mode: int,
        culprit: str, why: str) -> None:
    conf, inc = layout(tmp_path, folder_mode, file_mode)
    rc, err = hafast_t(conf, capsys)
    where = inc if culprit == "file" else inc.parent
    assert rc == 0  # a warning: keepalived reads the file all the same
    assert (f"{conf}:4:9: warning: include: Unsafe permissions found for config file "
            f"'{inc}' ({where} is {why}): make it and every folder above it owned by root "
            "and writable by root only") in err, err
    assert "0 error(s), 1 warning(s)" in err, err


def test_a_safe_include_says_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf, _ = layout(tmp_path, 0o755, 0o644)
    assert hafast_t(conf, capsys) == (0, "")


def test_a_script_others_can_write_is_reported(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Already so before issue 17 (hafast.config.scriptcheck); kept here beside the
    includes so the security defaults are tested in one place."""
    tmp_path.chmod(0o755)
    script = tmp_path / "check.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o757)
    conf = tmp_path / "keepalived.conf"
    conf.write_text(VS.replace("TCP_CHECK {", f"MISC_CHECK {{\n      misc_path {script}"))
    rc, err = hafast_t(conf, capsys)
    assert rc == 0
    assert f"Unsafe permissions found for script '{script}'." in err, err
