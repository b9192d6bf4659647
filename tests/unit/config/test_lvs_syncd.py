"""lvs_sync_daemon and lvs_sync_daemon_interface read as keepalived 2.2.7 reads them
(global_parser.c lvs_syncd_handler, vrrp_parser.c, vrrp.c's instance look-up)."""

from __future__ import annotations

import pytest

from hafast.config import model as m
from hafast.config.loader import load_text
from hafast.config.lvs_syncd import resolve

VRRP = """vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 51
  virtual_ipaddress {
    10.0.0.1
  }
}
"""
LEGACY = "  interface eth0\n  lvs_sync_daemon_interface eth2\n"


def _load(glob: str, vrrp: str = VRRP) -> tuple[m.Config, list[str], list[str]]:
    res = load_text("global_defs {\n" + glob + "}\n" + vrrp, file="k.conf")
    return (res.config, [d.message for d in res.errors],
            [f"{d.line}: {d.message}" for d in res.warnings])


@pytest.mark.parametrize(("line", "want"), [
    ("lvs_sync_daemon eth1 VI_1", m.LvsSyncDaemon("eth1", "VI_1", 51)),
    ("lvs_sync_daemon eth1 inst VI_1", m.LvsSyncDaemon("eth1", "VI_1", 51)),
    ("lvs_sync_daemon eth1 VI_1 id 7", m.LvsSyncDaemon("eth1", "VI_1", 7)),
    ("lvs_sync_daemon eth1 VI_1 id 0", m.LvsSyncDaemon("eth1", "VI_1", 0)),
    ("lvs_sync_daemon eth1 VI_1 9", m.LvsSyncDaemon("eth1", "VI_1", 9)),  # the old form
    ("lvs_sync_daemon eth1", m.LvsSyncDaemon("eth1", None, 0)),
    ("lvs_sync_daemon eth1 id 3 maxlen 1400 port 8849 ttl 2 group 224.0.0.82 inst VI_1",
     m.LvsSyncDaemon("eth1", "VI_1", 3, 1400, 8849, 2, "224.0.0.82")),
    ("lvs_sync_daemon eth1 VI_1 group ff02::1:81", m.LvsSyncDaemon("eth1", "VI_1", 51,
                                                                   group="ff02::1:81")),
])
def test_the_forms_resolve_as_keepalived(line: str, want: m.LvsSyncDaemon) -> None:
    config, errors, warnings = _load(f"  {line}\n")
    assert errors == [] and warnings == []
    assert resolve(config) == want


@pytest.mark.parametrize(("line", "message"), [
    ("lvs_sync_daemon eth1 VI_1 id 256", "invalid lvs_sync_daemon id '256' (expected 0..255)"),
    ("lvs_sync_daemon eth1 VI_1 maxlen 0", "invalid lvs_sync_daemon maxlen '0'"),
    ("lvs_sync_daemon eth1 VI_1 port 70000", "invalid lvs_sync_daemon port '70000'"),
    ("lvs_sync_daemon eth1 VI_1 ttl 0", "invalid lvs_sync_daemon ttl '0'"),
    ("lvs_sync_daemon eth1 VI_1 group 10.0.0.9", "10.0.0.9 is not multicast"),
    ("lvs_sync_daemon eth1 VI_1 group", "no value for lvs_sync_daemon group"),
    ("lvs_sync_daemon eth1 VI_1 7 bogus", "unknown option 'bogus'"),
    ("lvs_sync_daemon averyveryverylongif VI_1", "too long"),
])
def test_bad_words_are_errors_at_the_word(line: str, message: str) -> None:
    _config, errors, _warnings = _load(f"  {line}\n")
    assert len(errors) == 1 and message in errors[0], errors


def test_an_unknown_instance_clears_the_setting() -> None:
    config, errors, warnings = _load("  lvs_sync_daemon eth1 VI_9\n")
    assert errors == []
    assert warnings == ["2: Unable to find vrrp instance VI_9 for lvs_syncd - clearing "
                        "lvs_syncd config"]
    assert resolve(config) is None


def test_the_deprecated_interface_keyword_syncs_with_id_0() -> None:
    vrrp = VRRP.replace("  interface eth0\n", LEGACY)
    config, errors, warnings = _load("", vrrp)
    assert errors == []
    # keepalived sets the instance directly: the "no id, use the VRID" branch is not taken
    assert resolve(config) == m.LvsSyncDaemon("eth2", "VI_1", 0)
    assert warnings == ["5: Specifying lvs_sync_daemon_interface against a vrrp is deprecated. "
                        "Please use global lvs_sync_daemon"]


def test_the_global_keyword_wins_over_the_instance_one() -> None:
    vrrp = VRRP.replace("  interface eth0\n", LEGACY)
    config, errors, warnings = _load("  lvs_sync_daemon eth1 VI_1\n", vrrp)
    assert errors == []
    assert resolve(config) == m.LvsSyncDaemon("eth1", "VI_1", 51)
    assert "4: (VI_1) lvs_sync_daemon_interface has already been specified as eth1 - ignoring" \
        in warnings


def test_no_keyword_no_daemon() -> None:
    config, _errors, _warnings = _load("")
    assert resolve(config) is None
