"""Broken configs: hafast reports the error on the line ``keepalived -t -f FILE`` does.

keepalived 2.2.7 (Debian) prints ``(FILE: Line N) message`` for problems it can place,
and a bare ``(VI_1) message`` for cross checks done after parsing; for those we check
that both refuse the config.  Documented differences:

* ``unicast_peer`` with ``vrrp_strict``: keepalived 2.2.7 accepts it (exit 0); hafast
  refuses it, as the issue asks (strict mode is RFC 5798 multicast).
* A keyword without its value: keepalived exits 2 (it stops reading); hafast reports it
  and carries on, so every other problem is reported in the same run.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from hafast.config.loader import load_file
from tests.conftest import require_tool

_LINE = re.compile(r"^\((?:[^()]*: )?Line (\d+)\)", re.M)

VRRP = (
    "vrrp_instance VI_1 {{\n  interface eth0\n{body}"
    "  virtual_ipaddress {{\n    10.0.0.1\n  }}\n}}\n"
)

# name -> (config text, the line both must report)
PLACED = {
    "bad_priority": (VRRP.format(body="  virtual_router_id 5\n  priority 300\n"), 4),
    "bad_vrid": (VRRP.format(body="  virtual_router_id 300\n"), 3),
    "bad_advert_int": (VRRP.format(body="  virtual_router_id 5\n  advert_int abc\n"), 4),
    "bad_state": (VRRP.format(body="  state PRIMARY\n  virtual_router_id 5\n"), 3),
    "unknown_keyword": (VRRP.format(body="  virtual_router_id 5\n  priorty 100\n"), 4),
    "value_missing": (VRRP.format(body="  virtual_router_id 5\n  priority\n"), 4),
    "bad_vip": (
        "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 5\n"
        "  virtual_ipaddress {\n    10.0.0.300\n  }\n}\n",
        5,
    ),
    "bad_digest": (
        "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  real_server 10.0.1.1 80 {\n"
        "    HTTP_GET {\n      url {\n        path /\n        digest 12345\n      }\n"
        "    }\n  }\n}\n",
        7,
    ),
    "bad_script_weight": ("vrrp_script chk {\n  script /bin/true\n  weight 500\n}\n", 3),
    "unknown_global": ("global_defs {\n  router_idd x\n}\n", 2),
}

LVS = (
    "virtual_server 10.0.0.1 80 {{\n  protocol TCP\n  {vs}\n  real_server 10.0.1.1 80 {{\n"
    "    {rs}\n    TCP_CHECK {{\n      {chk}\n    }}\n  }}\n}}\n"
)
# (virtual server line 3, real server line 5, checker line 7)
for _name, (_vs, _rs, _chk, _line) in {
    "bad_lb_kind": ("lb_kind FOO", "weight 1", "retry 1", 3),
    "bad_delay_loop": ("delay_loop abc", "weight 1", "retry 1", 3),
    "bad_real_server_weight": ("lb_algo rr", "weight -1", "retry 1", 5),
    "bad_connect_port": ("lb_algo rr", "weight 1", "connect_port 99999", 7),
    "unknown_in_real_server": ("lb_algo rr", "frob 1", "retry 1", 5),
    "bad_retry": ("lb_algo rr", "weight 1", "retry x", 7),
    "bad_quorum": ("quorum 0", "weight 1", "retry 1", 3),
    "bad_sorry_server": ("sorry_server 1.2.3", "weight 1", "retry 1", 3),
    "notify_up_missing": ("lb_algo rr", "notify_up", "retry 1", 5),
    "bad_bindto": ("lb_algo rr", "weight 1", "bindto 1.2.3", 7),
    "bad_warmup": ("lb_algo rr", "weight 1", "warmup -1", 7),
}.items():
    PLACED[_name] = (LVS.format(vs=_vs, rs=_rs, chk=_chk), _line)

# cross checks keepalived reports without a line: both must refuse the config
UNPLACED = {
    "missing_vrid": VRRP.format(body="  priority 100\n"),
    "duplicate_vrid": VRRP.format(body="  virtual_router_id 5\n")
    + VRRP.format(body="  virtual_router_id 5\n")
    .replace("VI_1", "VI_2")
    .replace("10.0.0.1", "10.0.0.2"),
}


def _keepalived(exe: str, path: Path) -> tuple[int, str]:
    proc = subprocess.run(
        [exe, "-t", "-f", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", sorted(PLACED))
def test_same_line_as_keepalived(name: str, tmp_path: Path) -> None:
    exe = require_tool("keepalived")
    text, line = PLACED[name]
    path = tmp_path / f"{name}.conf"
    path.write_text(text)
    rc, out = _keepalived(exe, path)
    ka_lines = {int(n) for n in _LINE.findall(out)}
    assert rc != 0, out
    assert line in ka_lines, out
    ours = {d.line for d in load_file(str(path)).errors}
    assert line in ours
    # nothing we call an error on a line keepalived found fine, in these one-fault files
    assert ours <= ka_lines | {1}


@pytest.mark.parametrize("name", sorted(UNPLACED))
def test_both_refuse(name: str, tmp_path: Path) -> None:
    exe = require_tool("keepalived")
    path = tmp_path / f"{name}.conf"
    path.write_text(UNPLACED[name])
    rc, out = _keepalived(exe, path)
    assert rc != 0, out
    assert load_file(str(path)).errors


def test_clean_config_passes_both(tmp_path: Path) -> None:
    exe = require_tool("keepalived")
    path = tmp_path / "clean.conf"
    path.write_text(VRRP.format(body="  virtual_router_id 5\n  priority 100\n"))
    rc, out = _keepalived(exe, path)
    assert rc == 0, out
    assert load_file(str(path)).ok


def test_strict_unicast_divergence(tmp_path: Path) -> None:
    """keepalived 2.2.7 accepts unicast_peer under vrrp_strict; hafast refuses it."""
    exe = require_tool("keepalived")
    path = tmp_path / "strict.conf"
    path.write_text(
        "global_defs {\n  vrrp_strict\n}\n"
        + VRRP.format(body="  virtual_router_id 5\n  unicast_peer {\n    10.0.0.2\n  }\n")
    )
    rc, _ = _keepalived(exe, path)
    assert rc == 0
    assert [d.line for d in load_file(str(path)).errors] == [7]
