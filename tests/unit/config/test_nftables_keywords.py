"""global_defs' nftables keywords as keepalived 2.2.7 reads them (issue 14).

The settings the no_accept filter gets (:class:`hafast.net.noaccept.NftSettings`), the
order keepalived's handlers impose (``nftables`` / ``vrrp_iptables`` reset the chain
priority; ``vrrp_iptables`` names the table ``keepalived``), and the warnings
``hafast -t`` gives beside the ones Debian's ``keepalived -t`` prints.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hafast.config.loader import load_text
from hafast.net.noaccept import NftSettings
from tests.conftest import require_tool

VRRP = """vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 5
  no_accept
  virtual_ipaddress {
    10.0.0.1
  }
}
"""


def _load(glob: str) -> tuple[NftSettings, list[str]]:
    res = load_text("global_defs {\n" + glob + "}\n" + VRRP)
    assert res.ok, [d.format() for d in res.diagnostics]
    return (NftSettings.of(res.config.global_defs),
            [d.message for d in res.diagnostics if d.severity == "warning"])


@pytest.mark.parametrize(("glob", "want"), [
    ("", NftSettings("keepalived", -1, False, False)),
    ("  nftables\n", NftSettings("keepalived", -1, False, False)),
    ("  nftables vr\n  nftables_priority -3\n  nftables_counters\n  nftables_ifindex\n",
     NftSettings("vr", -3, True, True)),
    # without `nftables` the priority still counts (the table is keepalived's default)
    ("  nftables_priority 7\n", NftSettings("keepalived", 7, False, False)),
    # `nftables` after the priority resets it to -1
    ("  nftables_priority 7\n  nftables vr\n", NftSettings("vr", -1, False, False)),
    ("  vrrp_iptables\n", NftSettings("keepalived", -1, False, False)),
    ("  nftables_priority 7\n  vrrp_iptables IN OUT\n", NftSettings("keepalived", -1)),
    # vrrp_iptables names the table whatever `nftables` said, before or after it
    ("  nftables vr\n  vrrp_iptables\n", NftSettings("keepalived", -1)),
    ("  vrrp_iptables\n  nftables vr\n  nftables_priority 2\n", NftSettings("keepalived", 2)),
    ("  nftables " + "t" * 256 + "\n", NftSettings("keepalived", -1)),
    ("  nftables " + "t" * 255 + "\n", NftSettings("t" * 255, -1)),
])
def test_settings_as_keepalived_reads_them(glob: str, want: NftSettings) -> None:
    assert _load(glob)[0] == want


def test_warnings() -> None:
    _, warns = _load("  vrrp_iptables\n  vrrp_ipsets a b\n  nftables vr\n")
    assert warns[0].startswith("iptables not supported, using nftables instead. Please "
                               "replace 'vrrp_iptables and 'vrrp_ipsets' with 'nftables'")
    assert "'vrrp_ipsets' has no effect in hafast" in warns[1]
    assert warns[2] == "nftables already specified - ignoring"
    assert _load("  nftables " + "t" * 256 + "\n")[1] == [
        "nftables table name too long - ignoring"]
    # the keywords that work say nothing
    assert _load("  nftables vr\n  nftables_priority -3\n  nftables_counters\n"
                 "  nftables_ifindex\n")[1] == []


def test_keepalived_says_the_same(tmp_path: Path) -> None:
    """Debian's keepalived -t prints these lines for the same config (a build with
    nftables and without iptables)."""
    require_tool("keepalived")
    conf = tmp_path / "k.conf"
    conf.write_text("global_defs {\n  vrrp_iptables\n  nftables vr\n  nftables_priority x\n"
                    "}\n" + VRRP)
    out = subprocess.run(["keepalived", "-t", "-l", "-n", "-f", str(conf)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=30).stdout
    if "iptables not supported" not in out:
        pytest.skip("this keepalived is built with iptables")
    assert "(Line 2) iptables not supported, using nftables instead. Please replace " \
        "'vrrp_iptables and 'vrrp_ipsets' with 'nftables' config option" in out
    assert "(Line 3) nftables already specified - ignoring" in out
    assert "(Line 4) invalid nftables chain priority 'x'" in out
    res = load_text(conf.read_text(), file=str(conf))
    by_line = {(d.line, d.severity): d.message for d in res.diagnostics}
    assert by_line[(2, "warning")].startswith("iptables not supported")
    assert by_line[(3, "warning")] == "nftables already specified - ignoring"
    assert (4, "error") in by_line  # keepalived goes on without it; hafast refuses
