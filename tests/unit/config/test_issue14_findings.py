"""Findings of issue 14 in real-world configs: hafast does what keepalived 2.2.7 does.

Each test loads a small config with hafast and, where the behaviour shows in
``keepalived -t`` output, runs Debian's keepalived on the same file to compare.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from hafast.config.loader import load_file
from tests.conftest import keepalived_t


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
    _, out = keepalived_t(path)
    assert "late.conf: Line 8) (VI_1) track script chk_nginx not found, ignoring" in out
    assert "chk_early not found" not in out
    res = load_file(str(path))
    assert [r.name for r in res.config.vrrp_instances[0].track_script] == ["chk_early"]
    late = [d for d in res.warnings if "chk_nginx" in d.message]
    assert [(d.file, d.line) for d in late] == [(str(path), 8)]
    assert "(VI_1) track script chk_nginx not found, ignoring" in late[0].message


def test_garp_and_gna_interval_zero_refused_like_keepalived(tmp_path: Path) -> None:
    text = (
        "global_defs {\n  vrrp_garp_interval 0\n  vrrp_gna_interval 0\n}\n"
        "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 5\n"
        "  virtual_ipaddress {\n    10.0.0.1\n  }\n}\n"
    )
    path = _write(tmp_path, "garp.conf", text)
    rc, out = keepalived_t(path)
    assert rc != 0
    assert "(Line 2) vrrp_garp_interval '0' is invalid" in out
    assert "(Line 3) vrrp_gna_interval '0' is invalid" in out
    res = load_file(str(path))
    assert [(d.line, d.severity) for d in res.diagnostics] == [(2, "error"), (3, "error")]
    # what would be right: keepalived's lower bound, one microsecond
    assert all("outside range [0.000001, 1] seconds" in d.message for d in res.diagnostics)
    ok = load_file(str(_write(tmp_path, "ok.conf", text.replace(" 0\n", " 0.000001\n"))))
    assert ok.ok
    assert ok.config.global_defs.vrrp_garp_interval_us == 1


def test_garp_group_interval_zero_accepted_like_keepalived(tmp_path: Path) -> None:
    """keepalived 2.2.7 takes garp_interval 0 in a garp_group without a word."""
    text = "garp_group {\n  garp_interval 0\n  gna_interval 0\n  interface eth0\n}\n"
    path = _write(tmp_path, "group.conf", text)
    _, out = keepalived_t(path)
    assert "interval" not in out
    assert load_file(str(path)).errors == []


AH_MASTER = """\
vrrp_instance VI_1 {
  interface eth0
  state MASTER
  priority 100
  virtual_router_id 5
  authentication {
    auth_type AH
    auth_pass x
  }
  virtual_ipaddress {
    10.0.0.1
  }
}
"""


def test_state_master_with_auth_ah_starts_as_backup(tmp_path: Path) -> None:
    path = _write(tmp_path, "ah.conf", AH_MASTER)
    _, out = keepalived_t(path)
    assert "(VI_1) Initial state master is incompatible with AH authentication - clearing" in out
    res = load_file(str(path))
    assert res.ok
    assert res.config.vrrp_instances[0].state == "BACKUP"
    [w] = res.warnings
    assert w.line == 3
    assert "Initial state master is incompatible with AH authentication - clearing" in w.message
    # PASS keeps MASTER in both
    pas = _write(tmp_path, "pass.conf", AH_MASTER.replace("AH", "PASS"))
    assert "incompatible" not in keepalived_t(pas)[1]
    assert load_file(str(pas)).config.vrrp_instances[0].state == "MASTER"



@pytest.mark.parametrize("state", ["", "  state MASTER\n"])
def test_address_owner_with_auth_ah_stays_master(tmp_path: Path, state: str) -> None:
    """The owner is exempt from the AH clearing, whether its MASTER state is written or
    follows from priority 255 (the unwritten case once raised KeyError in the loader:
    found by tests/fuzz/fuzz_config.py, kept as corpus/config/regress-owner-ah)."""
    text = AH_MASTER.replace("  state MASTER\n", state).replace("priority 100", "priority 255")
    path = _write(tmp_path, "owner-ah.conf", text)
    assert "incompatible" not in keepalived_t(path)[1]
    res = load_file(str(path))
    assert res.ok, [d.format() for d in res.diagnostics]
    assert not [d for d in res.diagnostics if "incompatible" in d.message]
    assert res.config.vrrp_instances[0].state == "MASTER"

def test_track_interface_own_interface_is_ignored(tmp_path: Path) -> None:
    text = (
        "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 5\n"
        "  track_interface {\n    eth0\n    ifb0\n  }\n"
        "  virtual_ipaddress {\n    10.0.0.1\n  }\n}\n"
    )
    path = _write(tmp_path, "tif.conf", text)
    _, out = keepalived_t(path)
    assert "(VI_1) Ignoring track_interface eth0 since own interface" in out
    assert "ifb0 since own" not in out
    res = load_file(str(path))
    assert res.ok
    assert [t.name for t in res.config.vrrp_instances[0].track_interface] == ["ifb0"]
    [w] = res.warnings
    assert w.line == 5
    assert "(VI_1) Ignoring track_interface eth0 since own interface" in w.message


def test_nb_get_retry_is_deprecated_and_still_sets_retry(tmp_path: Path) -> None:
    text = (
        "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  real_server 10.0.1.1 80 {\n"
        "    HTTP_GET {\n      url {\n        path /\n        status_code 200\n      }\n"
        "      nb_get_retry 3\n    }\n  }\n}\n"
    )
    path = _write(tmp_path, "nb.conf", text)
    _, out = keepalived_t(path)
    assert "nb.conf: Line 9) nb_get_retry is deprecated - please use 'retry'" in out
    res = load_file(str(path))
    assert res.ok
    assert res.config.virtual_servers[0].real_servers[0].checkers[0].retry == 3
    dep = [(d.line, d.message) for d in res.warnings if "deprecated" in d.message]
    assert dep == [(9, "nb_get_retry is deprecated - please use 'retry'")]


SMTP = "global_defs {{\n  smtp_server {}\n}}\n"


def test_smtp_server_host_name_is_kept_unresolved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for server in ("localhost", "10.0.0.300"):
        path = _write(tmp_path, "smtp.conf", SMTP.format(server))
        _, out = keepalived_t(path)  # keepalived resolves the name at -t time
        assert ("Invalid smtp server" in out) == (server != "localhost"), out
        assert load_file(str(path)).ok == (server == "localhost")

    def no_dns(*args: object, **kw: object) -> object:
        raise AssertionError("config load must not resolve names")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(socket, "gethostbyname", no_dns)
    for server, want in (
        ("localhost", ("localhost", None)),
        ("smtp.example.com 587", ("smtp.example.com", 587)),
        ("192.0.2.1 25", ("192.0.2.1", 25)),
    ):
        res = load_file(str(_write(tmp_path, "smtp.conf", SMTP.format(server))))
        assert res.diagnostics == []
        assert res.config.global_defs.smtp_server == want
    bad = load_file(str(_write(tmp_path, "smtp.conf", SMTP.format("-bad_name"))))
    assert ["neither an IP address nor a host name" in d.message for d in bad.errors] == [True]


SCRIPTS = """\
vrrp_script chk {{
  script "{check} arg"
}}
vrrp_instance VI_1 {{
  interface eth0
  virtual_router_id 5
  notify {notify}
  track_script {{
    chk
  }}
  virtual_ipaddress {{
    10.0.0.1
  }}
}}
"""


def test_script_security_warning_only_where_keepalived_warns(tmp_path: Path) -> None:
    """keepalived 2.2.7 raises SECURITY VIOLATION only for scripts it finds on disk."""
    missing = str(tmp_path / "absent.sh")
    cases = {
        "untracked vrrp_script, missing": ("", f"vrrp_script none {{\n  script {missing}\n}}\n"),
        "vrrp_script and notify missing": (missing, missing),
        "notify found": (missing, "/bin/true"),
        "vrrp_script found": ("true", missing),
    }
    for case, (check, notify) in cases.items():
        text = SCRIPTS.format(check=check, notify=notify) if check else notify
        path = _write(tmp_path, "sec.conf", text)
        _, out = keepalived_t(path)
        keepalived_warns = "SECURITY VIOLATION" in out
        warned = [d for d in load_file(str(path)).warnings if "enable_script_security" in d.message]
        assert bool(warned) == keepalived_warns == ("found" in case.split(", ")[-1]), case
    # with the flag set neither warns
    text = "global_defs {\n  enable_script_security\n}\n" + SCRIPTS.format(
        check="/bin/true", notify="/bin/true"
    )
    path = _write(tmp_path, "sec.conf", text)
    assert "SECURITY VIOLATION" not in keepalived_t(path)[1]
    assert not [d for d in load_file(str(path)).warnings if "script_security" in d.message]
