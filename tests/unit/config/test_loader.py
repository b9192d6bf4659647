"""Loader behaviour: keyword coverage, defaults, inheritance, checks, samples."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from hafast.config import model as m
from hafast.config.grammar import TABLE, all_keywords
from hafast.config.loader import load, load_file, load_text
from hafast.config.support import UNSUPPORTED
from hafast.config.tokens import ConfigError, Diagnostic, Line, Token
from hafast.config.tree import build_tree
from tests.conftest import KEEPALIVED_KEYWORDS, require

SAMPLES = Path("/usr/share/doc/keepalived/samples")
S = 1_000_000


def _ok(text: str) -> m.Config:
    res = load_text(text, file="t.conf")
    assert res.ok, [d.format() for d in res.errors]
    return res.config


def _errors(text: str) -> list[str]:
    return [d.format() for d in load_text(text, file="t.conf").errors]


def test_every_keepalived_keyword_is_accepted() -> None:
    """The 361 keywords keepalived's parsers register (tests/data): all in the table."""
    words = set()
    for line in KEEPALIVED_KEYWORDS.read_text().splitlines():
        word = line.split("#", 1)[0].strip()
        if word:
            words.add(word)
    assert len(words) >= 350
    missing = sorted(words - all_keywords())
    assert missing == []
    # the block names registered through a helper (HTTP_GET/SSL_GET) and the url block
    assert {"HTTP_GET", "SSL_GET", "url"} <= all_keywords()


def test_legacy_aliases_map_to_the_same_fields() -> None:
    vs = TABLE["virtual_server"]
    assert vs["lb_algo"].field == vs["lvs_sched"].field
    assert vs["lb_kind"].field == vs["lvs_method"].field
    assert TABLE["HTTP_GET"]["nb_get_retry"].field == TABLE["HTTP_GET"]["retry"].field


def test_defaults() -> None:
    cfg = _ok(
        """
vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 5
}
virtual_server 10.0.0.1 80 {
  protocol TCP
  persistence_timeout
  real_server 10.0.1.1 80 {
    TCP_CHECK {
    }
    HTTP_GET {
      url {
        path /
      }
    }
    DNS_CHECK {
    }
    MISC_CHECK {
      misc_path /bin/true
    }
  }
}
"""
    )
    vi = cfg.vrrp_instances[0]
    assert (vi.priority, vi.advert_int_us, vi.state, vi.version) == (100, S, "BACKUP", 2)
    assert vi.accept is True
    vs = cfg.virtual_servers[0]
    assert vs.delay_loop_us == 60 * S
    assert vs.lvs_method == "NAT" and vs.lvs_sched == "wlc"
    assert vs.quorum == 1 and vs.persistence_timeout == 360
    rs = vs.real_servers[0]
    assert rs.weight == 1
    tcp, http, dns, misc = rs.checkers
    assert (tcp.connect_timeout_us, tcp.retry, tcp.delay_before_retry_us) == (5 * S, 1, S)
    assert isinstance(http, m.HttpGetCheck)
    assert http.delay_before_retry_us == 3 * S
    assert http.urls[0].status_code == ((200, 299),)
    assert isinstance(dns, m.DnsCheck)
    assert (dns.retry, dns.delay_before_retry_us, dns.type, dns.name) == (3, 60 * S, "SOA", ".")
    assert misc.retry == 0


def test_inheritance_virtual_server_to_real_server_to_checker() -> None:
    cfg = _ok(
        """
virtual_server 10.0.0.1 80 {
  protocol TCP
  delay_loop 3
  connect_timeout 4
  retry 2
  lvs_method DR
  virtualhost vs.example
  real_server 10.0.1.1 80 {
    delay_loop 5
    retry 3
    HTTP_GET {
      warmup 1
      url {
        path /
      }
    }
  }
  real_server 10.0.1.2 {
    lvs_method NAT
    TCP_CHECK {
      retry 9
    }
  }
}
"""
    )
    rs1, rs2 = cfg.virtual_servers[0].real_servers
    c1 = rs1.checkers[0]
    assert (c1.delay_loop_us, c1.connect_timeout_us, c1.retry, c1.warmup_us) == (5 * S, 4 * S, 3, S)
    assert isinstance(c1, m.HttpGetCheck) and c1.virtualhost == "vs.example"
    assert rs1.lvs_method == "DR"
    assert rs2.port == 80  # a real server without a port takes the virtual server's
    c2 = rs2.checkers[0]
    assert (c2.delay_loop_us, c2.retry, c2.connect_timeout_us) == (3 * S, 9, 4 * S)
    assert rs2.lvs_method == "NAT"


def test_global_defaults_reach_instances() -> None:
    cfg = _ok(
        """
global_defs {
  default_interface bond0
  vrrp_garp_master_delay 2
  vrrp_version 3
}
vrrp_instance VI_1 {
  virtual_router_id 5
  advert_int 0.5
}
"""
    )
    vi = cfg.vrrp_instances[0]
    assert vi.interface == "bond0"
    assert vi.garp_master_delay_us == 2 * S and vi.garp_lower_prio_delay_us == 2 * S
    assert vi.version == 3 and vi.advert_int_us == 500_000


def test_ipv6_instance_is_version_3() -> None:
    cfg = _ok(
        "vrrp_instance V {\n interface lo\n virtual_router_id 1\n"
        " virtual_ipaddress {\n fe80::1\n }\n}\n"
    )
    assert cfg.vrrp_instances[0].family == 6 and cfg.vrrp_instances[0].version == 3


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("vrrp_instance V {\n virtual_router_id 256\n}\n", "outside range [1, 255]"),
        ("vrrp_instance V {\n virtual_router_id 1\n priority 0\n}\n", "outside range [1, 255]"),
        ("vrrp_instance V {\n priority 10\n}\n", "virtual router id must be set"),
        ("vrrp_instance V {\n virtual_router_id 1\n version 3\n advert_int 41\n}\n", "0.01..40.95"),
        ("vrrp_script s {\n script x\n weight 300\n}\n", "outside range [-253, 253]"),
        (
            "virtual_server 1.2.3.4 80 {\n real_server 1.2.3.5 80 {\n HTTP_GET {\n url {\n"
            " digest zz\n }\n }\n }\n}\n",
            "32 hex digits",
        ),
        ("global_defs {\n router_idd x\n}\n", "did you mean 'router_id'"),
        ("global_defs {\n router_id\n}\n", "'router_id' needs a value"),
        ("global_defs {\n router_id {\n }\n}\n", "takes a value, not a block"),
        ("vrrp_instance V {\n virtual_router_id 1\n priority {\n }\n}\n", "not a block"),
        ("vrrp_instance V {\n virtual_router_id 1\n virtual_ipaddress\n}\n", "needs a block"),
    ],
)
def test_checks(text: str, fragment: str) -> None:
    errs = _errors(text)
    assert any(fragment in e for e in errs), errs


def test_unsupported_keyword_warns_once_and_is_not_fatal() -> None:
    res = load_text("global_defs {\n enable_dbus\n enable_dbus\n}\n", file="t.conf")
    assert res.ok
    assert [d.format() for d in res.warnings] == [
        "t.conf:2:2: warning: 'enable_dbus' has no effect in hafast: DBus is not served"
    ]
    assert [d.code for d in res.warnings] == [UNSUPPORTED]


def test_refused_keyword_is_an_error_once() -> None:
    """nftables_ipvs would mark address ranges in nftables: hafast cannot, so it refuses."""
    res = load_text("global_defs {\n nftables_ipvs\n nftables_ipvs\n}\n", file="t.conf")
    assert not res.ok
    assert [d.format() for d in res.errors] == [
        "t.conf:2:2: error: 'nftables_ipvs' is not supported by hafast and would change what "
        "the config does: keepalived's nftables marks for address-range virtual server "
        "groups (remove it to run without it)"
    ]


def test_load_raises_config_error_with_every_error(tmp_path: Path) -> None:
    p = tmp_path / "k.conf"
    p.write_text("vrrp_instance V {\n priority 300\n bogus 1\n}\n")
    with pytest.raises(ConfigError) as exc:
        load(str(p))
    assert len(exc.value.diagnostics) == 3  # priority, bogus, missing virtual_router_id


@pytest.mark.usefixtures("programs_exist")
def test_scripts_are_split_like_keepalived() -> None:
    cfg = _ok(
        "vrrp_script s {\n script \"/bin/check 'two words' x\"\n}\n"
        'vrrp_instance V {\n virtual_router_id 1\n notify_master "/bin/n a b"\n}\n'
    )
    assert cfg.vrrp_scripts[0].script == m.Script(("/bin/check", "two words", "x"))
    # the whole command in one pair of quotes is split again (keepalived's notify_script_init)
    assert cfg.vrrp_instances[0].notify_master == m.Script(("/bin/n", "a", "b"))


@pytest.mark.usefixtures("programs_exist")
def test_script_user_and_group() -> None:
    cfg = _ok(
        "vrrp_instance V {\n virtual_router_id 1\n notify_master /bin/m.sh nobody nogroup\n"
        ' notify_backup "/bin/b.sh x" root\n}\n'
    )
    vi = cfg.vrrp_instances[0]
    assert vi.notify_master == m.Script(("/bin/m.sh",), "nobody", "nogroup")
    assert vi.notify_backup == m.Script(("/bin/b.sh", "x"), "root")
    errs = _errors("vrrp_instance V {\n virtual_router_id 1\n notify_master /bin/m.sh a b c\n}\n")
    assert any("quote a command with arguments" in e for e in errs), errs


def _samples() -> list[Path]:
    if not SAMPLES.is_dir():
        return []
    return sorted(p for p in SAMPLES.iterdir() if p.name.startswith("keepalived.conf"))


# keepalived 2.2.7 itself rejects this sample ("Unknown keyword 'VI_2'", "'VI_3'"):
# its sync group lists instances without the group { } block.
BROKEN_SAMPLES = {"keepalived.conf.vrrp.lvs_syncd": [4, 5]}


@pytest.mark.parametrize("sample", _samples(), ids=lambda p: p.name)
def test_debian_samples_load(sample: Path, tmp_path: Path) -> None:
    require(SAMPLES.is_dir(), "Debian keepalived samples not installed")
    name = sample.name
    path = sample
    if name.endswith(".gz"):
        path = tmp_path / name[:-3]
        path.write_bytes(gzip.decompress(sample.read_bytes()))
        name = path.name
    res = load_file(str(path), config_id="high")
    # a keyword hafast refuses (hafast.config.support) is said so, at its line; every
    # other word of keepalived's own samples loads
    errors = [d for d in res.errors if d.code != UNSUPPORTED]
    for d in res.errors:
        if d.code == UNSUPPORTED:
            assert "is not supported by hafast" in d.message, d
    if name in BROKEN_SAMPLES:
        lines = sorted({d.line for d in errors if "unknown keyword" in d.message})
        assert lines == BROKEN_SAMPLES[name]
    else:
        assert errors == []
    assert not any("internal loader error" in d.message for d in res.diagnostics)


def test_samples_present_in_ci() -> None:
    require(len(_samples()) >= 20, "Debian keepalived samples not installed")


def _line(n: int, text: str) -> Line:
    return Line(tuple(Token(w, "b.conf", n, i + 1) for i, w in enumerate(text.split())))


def test_build_tree_braces_on_any_line() -> None:
    """Lines built without the lexer may carry braces among their words."""
    diags: list[Diagnostic] = []
    tree = build_tree(
        [
            _line(1, "vrrp_instance V {"),
            _line(2, "virtual_ipaddress { 10.0.0.1 }"),
            _line(3, "}"),
            _line(4, "global_defs"),
            _line(5, "{"),
            _line(6, "}"),
        ],
        diags,
    )
    assert diags == []
    assert [n.toks[0].text for n in tree] == ["vrrp_instance", "global_defs"]
    vip = tree[0].children[0]  # type: ignore[index]
    assert [c.toks[0].text for c in vip.children] == ["10.0.0.1"]  # type: ignore[union-attr]


def test_build_tree_reports_unbalanced_braces() -> None:
    diags: list[Diagnostic] = []
    build_tree([_line(1, "}"), _line(2, "{"), _line(3, "a {")], diags)
    assert [d.format() for d in diags] == [
        "b.conf:1:1: error: '}' does not close any block",
        "b.conf:2:1: error: '{' without a keyword before it",
        "b.conf:2:1: error: block '{' is never closed (expected '}')",
        "b.conf:3:1: error: block 'a' is never closed (expected '}')",
    ]


def test_load_file_freeze_keeps_gc_state(tmp_path: Path) -> None:
    import gc

    p = tmp_path / "k.conf"
    p.write_text("global_defs {\n router_id r\n}\n")
    was = gc.isenabled()
    before = gc.get_freeze_count()
    try:
        res = load_file(str(p), freeze=True)
        assert res.ok and res.config.global_defs.router_id == "r"
        assert gc.isenabled() == was
        assert gc.get_freeze_count() >= before
    finally:
        gc.unfreeze()
