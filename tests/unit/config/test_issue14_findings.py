"""Findings of issue 14 in real-world configs: hafast does what keepalived 2.2.7 does.

Each test loads a small config with hafast and, where the behaviour shows in
``keepalived -t`` output, runs Debian's keepalived on the same file to compare.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from hafast.config.loader import load_file
from tests.conftest import require_tool


def _keepalived(path: Path) -> tuple[int, str]:
    exe = require_tool("keepalived")
    proc = subprocess.run(
        [exe, "-t", "-f", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    return proc.returncode, proc.stdout + proc.stderr


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


LATE_SCRIPT = """\
vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 5
  track_script {
    chk_nginx
    chk_early
  }
  virtual_ipaddress {
    10.0.0.1
  }
}
vrrp_script chk_nginx {
  script /bin/true
}
"""


def test_vrrp_script_defined_after_its_instance_is_not_tracked(tmp_path: Path) -> None:
    text = "vrrp_script chk_early {\n  script /bin/true\n}\n" + LATE_SCRIPT
    path = _write(tmp_path, "late.conf", text)
    _, out = _keepalived(path)
    assert "late.conf: Line 8) (VI_1) track script chk_nginx not found, ignoring" in out
    assert "chk_early not found" not in out
    res = load_file(str(path))
    assert [r.name for r in res.config.vrrp_instances[0].track_script] == ["chk_early"]
    late = [d for d in res.warnings if "chk_nginx" in d.message]
    assert [(d.file, d.line) for d in late] == [(str(path), 8)]
    assert "(VI_1) track script chk_nginx not found, ignoring" in late[0].message
