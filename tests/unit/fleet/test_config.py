"""Fleet mode's config blocks (hafast.config.bgp): values, and errors at file:line."""

from __future__ import annotations

import pytest

from hafast.config.loader import load_text
from hafast.config.model import Announce, BgpNeighbor, BgpSpeaker

SPEAKER = """bgp_speaker {
  daemon frr
  local_as 65001
  router_id 10.255.0.1
  neighbor 10.0.1.1 {
    remote_as 65000
    bfd
  }
  neighbor 2001:db8::1 {
    remote_as 4200000000
  }
  hold_time 30
  keepalive 10
}
"""
VS = """virtual_server 192.0.2.100 80 {
  protocol TCP
  lvs_sched wlc
  lvs_method DR
  announce {
    prefix %s
    announce_delay 2.5
  }
  real_server 10.1.0.1 80 {
    TCP_CHECK {
    }
  }
}
"""


def test_values_are_typed() -> None:
    res = load_text(SPEAKER + VS % "192.0.2.100/32", file="k.conf")
    assert res.ok and not res.warnings, [d.format() for d in res.diagnostics]
    assert res.config.bgp_speaker == BgpSpeaker(
        daemon="frr", local_as=65001, router_id="10.255.0.1",
        neighbors=(BgpNeighbor("10.0.1.1", 65000, bfd=True),
                   BgpNeighbor("2001:db8::1", 4200000000)),
        hold_time=30, keepalive=10)
    announce = res.config.virtual_servers[0].announce
    assert announce == Announce("192.0.2.100/32", ("192.0.2.100/32",), 2_500_000)
    assert announce is not None and announce.where == "k.conf:19:3"


def test_defaults() -> None:
    res = load_text("bgp_speaker {\n local_as 65001\n}\n")
    sp = res.config.bgp_speaker
    assert sp is not None and (sp.hold_time, sp.keepalive, sp.neighbors) == (9, 3, ())


@pytest.mark.parametrize(("text", "message"), [
    ("bgp_speaker {\n router_id 10.0.0.1\n}\n",
     "k.conf:1:1: error: bgp_speaker needs local_as"),
    ("bgp_speaker {\n local_as 1\n neighbor 10.0.0.1 {\n bfd\n }\n}\n",
     "k.conf:3:2: error: neighbor 10.0.0.1 needs remote_as"),
    ("bgp_speaker {\n local_as 1\n neighbor bogus {\n remote_as 2\n }\n}\n",
     "k.conf:3:11: error: neighbor 'bogus' is not an IP address"),
    ("bgp_speaker {\n local_as 1\n neighbor 10.0.0.1 {\n remote_as 2\n }\n"
     " neighbor 10.0.0.1 {\n remote_as 2\n }\n}\n",
     "k.conf:6:2: error: neighbor 10.0.0.1 given twice"),
    ("bgp_speaker {\n local_as 1\n router_id 2001:db8::1\n}\n",
     "k.conf:3:2: error: router_id 2001:db8::1 is not an IPv4 address"),
    ("bgp_speaker {\n local_as 0\n}\n",
     "k.conf:2:11: error: number '0' outside range [1, 4294967295]"),
    ("bgp_speaker {\n local_as 1\n hold_time 2\n}\n",
     "k.conf:3:12: error: number '2' outside range [3, 65535]"),
    ("bgp_speaker {\n local_as 1\n daemon bird\n}\n", "k.conf:3:9: error: 'bird'"),
    (VS % "192.0.2.0/24", "k.conf:6:12: error: '192.0.2.0/24' is not a host prefix (/32)"),
    (VS % "192.0.2.1/24", "k.conf:6:12: error: '192.0.2.1/24' is not an IP prefix"),
    ("virtual_server 192.0.2.100 80 {\n announce {\n announce_delay 1\n }\n}\n",
     "k.conf:2:2: error: announce needs a prefix"),
])
def test_errors_name_file_and_line(text: str, message: str) -> None:
    res = load_text(text, file="k.conf")
    errors = [d.format() for d in res.errors]
    assert any(e.startswith(message) for e in errors), errors


def test_warnings() -> None:
    res = load_text("bgp_speaker {\n local_as 1\n hold_time 9\n keepalive 4\n}\n"
                    + VS % "192.0.2.7/32", file="k.conf")
    warnings = [d.format() for d in res.warnings]
    assert "k.conf:4:2: warning: keepalive 4 is more than a third of hold_time 9" in warnings
    assert ("k.conf:10:3: warning: announce prefix 192.0.2.7/32 is not this virtual "
            "server's address 192.0.2.100") in warnings


def test_ipv6_host_prefix() -> None:
    res = load_text(VS.replace("192.0.2.100 80", "2001:db8::64 80") % "2001:db8::64/128")
    announce = res.config.virtual_servers[0].announce
    assert announce is not None and announce.prefix == "2001:db8::64/128"
    assert not [w for w in res.warnings if "announce prefix" in w.message]


def _drain(lines: str) -> str:
    return VS.replace("    announce_delay 2.5\n", f"    announce_delay 2.5\n{lines}") \
        % "192.0.2.100/32"


@pytest.mark.parametrize(("lines", "method", "time_us"), [
    ("", "withdraw", 0),
    ("    drain_method withdraw\n    shutdown_drain_time 2\n", "withdraw", 2_000_000),
    ("    drain_method med 500\n", "med 500", 0),
    ("    drain_method prepend 3\n    shutdown_drain_time 0.5\n", "prepend 3", 500_000),
    ("    drain_method graceful_shutdown\n", "graceful_shutdown", 0),
])
def test_drain_values(lines: str, method: str, time_us: int) -> None:
    res = load_text(_drain(lines))
    assert res.ok, [d.format() for d in res.errors]
    a = res.config.virtual_servers[0].announce
    assert a is not None and (a.drain_method, a.shutdown_drain_time_us) == (method, time_us)


@pytest.mark.parametrize(("lines", "message"), [
    ("    drain_method bounce\n", "k.conf:8:18: error: 'bounce' is not a drain method"),
    ("    drain_method med\n", "k.conf:8:18: error: med needs a number"),
    ("    drain_method prepend 11\n", "k.conf:8:26: error: '11' is not an integer 1..10"),
    ("    drain_method med x\n", "k.conf:8:22: error: 'x' is not an integer"),
    ("    drain_method withdraw 3\n", "k.conf:8:27: error: withdraw takes no argument"),
    ("    shutdown_drain_time 4000\n", "k.conf:8:25: error: time '4000' outside range"),
])
def test_drain_errors(lines: str, message: str) -> None:
    errors = [d.format() for d in load_text(_drain(lines), file="k.conf").errors]
    assert any(e.startswith(message) for e in errors), errors


def test_flap_control_values() -> None:
    res = load_text(_drain("    announce_hold_down 2.5\n"
                           "    announce_max_changes_per_minute 6\n"))
    assert res.ok, [d.format() for d in res.errors]
    a = res.config.virtual_servers[0].announce
    assert a is not None
    assert (a.announce_hold_down_us, a.announce_max_changes_per_minute) == (2_500_000, 6)
    default = load_text(_drain("")).config.virtual_servers[0].announce
    assert default is not None
    assert (default.announce_hold_down_us, default.announce_max_changes_per_minute) == (0, 0)


def test_communities_are_normalised_in_order() -> None:
    res = load_text(_drain("    communities 65000:0100 no-export 65000:100 0:0\n"))
    assert res.ok, [d.format() for d in res.errors]
    a = res.config.virtual_servers[0].announce
    assert a is not None and a.communities == ("65000:100", "no-export", "0:0")


@pytest.mark.parametrize(("word", "col"), [("70000:1", 17), ("1:65536", 17), ("65000", 17),
                                           ("no_export", 17), ("1:x", 17)])
def test_a_bad_community_is_an_error_at_its_word(word: str, col: int) -> None:
    errors = [d.format() for d in
              load_text(_drain(f"    communities {word}\n"), file="k.conf").errors]
    assert errors and errors[0].startswith(
        f"k.conf:8:{col}: error: '{word}' is not a BGP community (AS and N are 0..65535"), errors


def test_communities_render_with_each_vip_serving_and_draining() -> None:
    """One route-map entry per group of VIPs with the same communities (and drain): a
    VIP's communities go with it while it serves and while it drains, and a
    graceful_shutdown drain adds its own to them in the entry's one set community."""
    from hafast.fleet.frrconf import render

    sp = BgpSpeaker(local_as=65001, neighbors=(BgpNeighbor("10.0.1.1", 65000),))
    bgpd = render(sp, ["192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32"],
                  drains={"192.0.2.1/32": "graceful_shutdown"},
                  communities={"192.0.2.1/32": ("65000:100", "no-export"),
                               "192.0.2.3/32": ("65000:100", "no-export")}).bgpd
    entries = bgpd.split("router bgp")[0].split("route-map hafast-fleet permit ")[1:]
    assert [e.splitlines()[0] for e in entries] == ["10", "11", "20"]
    assert "hafast-fleet-4" in entries[0] and "set community" not in entries[0]
    assert "hafast-comm1-4" in entries[1] and " set community 65000:100 no-export\n" in entries[1]
    assert "hafast-drain1-4" in entries[2] and entries[2].count("set community") == 1
    assert " set community 65000:100 no-export graceful-shutdown\n" in entries[2]
    assert "ip prefix-list hafast-comm1-4 seq 5 permit 192.0.2.1/32\n" in bgpd
    assert "ip prefix-list hafast-comm1-4 seq 10 permit 192.0.2.3/32\n" in bgpd


def test_large_communities_are_typed_and_rendered_and_frr_takes_them(
        tmp_path: object) -> None:
    """RFC 8092's GLOBAL:LOCAL1:LOCAL2 (each 32 bits) beside the RFC 1997 ones: normalised,
    refused at their word when malformed, set with their own line in each entry (serving
    and draining), and FRR's own check accepts the rendering."""
    import shutil
    from pathlib import Path

    from hafast.fleet.frrconf import check, render_config

    text = SPEAKER + VS % "192.0.2.100/32\n    communities 65000:100\n    large_communities " \
        "65001:0001:2 4294967295:0:7 65001:1:2\n    drain_method graceful_shutdown"
    res = load_text(text, file="k.conf")
    assert res.ok, [d.format() for d in res.diagnostics]
    a = res.config.virtual_servers[0].announce
    assert a is not None and a.large_communities == ("65001:1:2", "4294967295:0:7")
    frr = render_config(res.config)
    assert frr is not None
    entries = frr.bgpd.split("router bgp")[0].split("route-map hafast-fleet permit ")[1:]
    assert len(entries) == 2  # serving, draining
    for e in entries:
        assert " set large-community 65001:1:2 4294967295:0:7\n" in e, e
    assert " set community 65000:100 graceful-shutdown\n" in entries[1]
    if shutil.which("vtysh"):
        path = Path(str(tmp_path)) / "frr.conf"
        path.write_text(frr.integrated)
        check(str(path))  # raises FrrConfigError if FRR refuses it
    for word, col in (("65001:1", 23), ("4294967296:0:0", 23), ("a:b:c", 23)):
        bad = load_text(SPEAKER + VS % f"192.0.2.100/32\n    large_communities {word}",
                        file="k.conf")
        errors = [e.format() for e in bad.errors]
        assert len(errors) == 1 and errors[0].startswith(
            f"k.conf:21:{col}: error: '{word}' is not a BGP large community (GLOBAL:LOCAL1:"
            "LOCAL2, each 0..4294967295, RFC 8092)"), errors


GROUP = """bgp_speaker {
  local_as 65001
  neighbor 10.0.0.1 {
    remote_as 65000
  }
}
virtual_server_group web {
%s
}
virtual_server group web {
  protocol TCP
  lvs_sched wlc
  lvs_method DR
  announce {
    prefix 192.0.2.1/32
  }
  real_server 10.0.0.2 80 {
  }
}
"""


@pytest.mark.parametrize(("members", "said"), [
    ("  192.0.2.1 80\n  192.0.2.1 443", None),
    ("  192.0.2.1 80\n  192.0.2.2 80", "also holds 192.0.2.2, which this director does not "
     "announce (add a prefix line for each address to announce)"),
    ("  192.0.2.1 80\n  192.0.2.5-9 80", "also holds 192.0.2.5-9, which this director does "
     "not announce"),
    ("  192.0.2.7 80", "announce prefix 192.0.2.1/32 is not an address of "
     "virtual_server_group web"),
])
def test_an_announced_group_says_what_goes_unannounced(members: str, said: str | None) -> None:
    res = load_text(GROUP % members)
    assert res.ok, [d.format() for d in res.errors]
    fleet = [w.message for w in res.warnings if "announce" in w.message]
    if said is None:
        assert fleet == []
    else:
        assert len(fleet) == 1 and said in fleet[0], fleet
    a = res.config.virtual_servers[0].announce
    assert a is not None and res.config.virtual_servers[0].group == "web"


def test_a_group_announced_by_a_prefix_line_per_address() -> None:
    text = (GROUP % "  192.0.2.1 80\n  192.0.2.2 80").replace(
        "prefix 192.0.2.1/32", "prefix 192.0.2.1/32\n    prefix 192.0.2.2")
    res = load_text(text)
    assert res.ok and not [w for w in res.warnings if "announce" in w.message], [
        d.format() for d in res.diagnostics]
    a = res.config.virtual_servers[0].announce
    assert a is not None and a.prefixes == ("192.0.2.1/32", "192.0.2.2/32")
    assert a.prefix == "192.0.2.1/32"
    from hafast.fleet.frrconf import render_config

    frr = render_config(res.config)
    assert frr is not None and "permit 192.0.2.2/32" in frr.bgpd, frr.bgpd


def test_a_prefix_line_given_twice_is_a_warning_at_the_second() -> None:
    res = load_text(SPEAKER + VS % "192.0.2.100/32\n    prefix 192.0.2.100", file="k.conf")
    assert res.ok
    said = [w.format() for w in res.warnings if "twice" in w.message]
    assert said == ["k.conf:21:5: warning: announce: prefix 192.0.2.100/32 given twice"]
    assert res.config.virtual_servers[0].announce.prefixes == ("192.0.2.100/32",)  # type: ignore[union-attr]


def test_a_prefix_two_virtual_servers_announce_has_one_set_of_settings() -> None:
    """VIP:80 and VIP:443 may both announce VIP/32 (announced while both have their
    quorum); blocks that disagree would have one silently overruled: an error."""
    same = SPEAKER + VS % "192.0.2.100/32" + (VS % "192.0.2.100/32").replace(" 80 {", " 443 {")
    res = load_text(same, file="k.conf")
    assert res.ok, [d.format() for d in res.errors]
    other = same.replace("announce_delay 2.5", "announce_delay 1", 1)
    res = load_text(other, file="k.conf")
    assert [e.format() for e in res.errors] == [
        "k.conf:32:3: error: announce 192.0.2.100/32: also announced by virtual_server "
        "192.0.2.100 80 (k.conf:19:3) with other settings; a prefix has one announcement, "
        "so make both blocks' settings the same"]


@pytest.mark.parametrize(("kind", "block"), [
    ("track_script", "vrrp_script"), ("track_file", "track_file"),
    ("track_process", "vrrp_track_process")])
def test_an_announce_track_of_an_undefined_name_is_an_error(kind: str, block: str) -> None:
    """A tracked object that does not exist would hold the VIP back for good."""
    res = load_text(SPEAKER + VS % f"192.0.2.100/32\n    {kind} {{\n      nothere\n    }}",
                    file="k.conf")
    assert [e.format() for e in res.errors] == [
        f"k.conf:19:3: error: announce 192.0.2.100/32: {kind} nothere is not defined "
        f"(expected the name of a {block} block in this config)"]


def test_an_announce_track_weight_has_no_effect() -> None:
    top = "vrrp_track_process web {\n  process nginx\n}\n"
    res = load_text(top + SPEAKER + VS % (
        "192.0.2.100/32\n    track_process {\n      web weight 10\n    }"), file="k.conf")
    assert res.ok, [d.format() for d in res.errors]
    said = [w.format() for w in res.warnings if "weight" in w.message]
    assert said == ["k.conf:22:3: warning: announce 192.0.2.100/32: track_process web "
                    "weight 10 has no effect: the VIP is withdrawn while the object is down"]
    a = res.config.virtual_servers[0].announce
    assert a is not None and [r.name for r in a.track_process] == ["web"]
