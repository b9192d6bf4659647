"""Settings the runtime reads: lvs_timeouts, scheduler flags, rs_init_notifies,
v3_checksum_as_v2, and hafast's own global_defs keywords (lvs_backend, metrics_listen,
check_workers)."""

from __future__ import annotations

import json

import pytest

from hafast.config import model as m
from hafast.config.cli_config import run_config
from hafast.config.diff import diff
from hafast.config.dump import dump_json, dump_text
from hafast.config.grammar import EXTENSIONS, TABLE
from hafast.config.loader import load_text


def _load(text: str) -> tuple[m.Config, list[str]]:
    res = load_text(text, file="t.conf")
    return res.config, [d.format() for d in res.diagnostics]


def _gd(body: str) -> tuple[m.GlobalDefs, list[str]]:
    cfg, diags = _load("global_defs {\n" + body + "\n}\n")
    return cfg.global_defs, diags


def _vs(body: str) -> tuple[m.VirtualServer, list[str]]:
    cfg, diags = _load(
        "virtual_server 10.0.0.1 80 {\n protocol TCP\n lvs_method NAT\n"
        + body
        + "\n real_server 10.0.0.2 80 {\n }\n}\n"
    )
    return cfg.virtual_servers[0], diags


# --------------------------------------------------------------------------- lvs_timeouts


def test_lvs_timeouts_default_leaves_the_kernel_alone() -> None:
    gd, diags = _gd("router_id r")
    assert gd.lvs_timeouts == m.LvsTimeouts(0, 0, 0)
    assert diags == []


@pytest.mark.parametrize(
    ("line", "want"),
    [
        ("lvs_timeouts tcp 900 tcpfin 120 udp 300", (900, 120, 300)),
        ("lvs_timeouts udp 5 tcp 7", (7, 0, 5)),
        ("lvs_timeouts tcpfin 0 tcp 1", (1, 0, 0)),
        ("lvs_timeouts tcp 1 tcp 2", (2, 0, 0)),  # keepalived: the last one wins
        ("lvs_timeouts tcp 2678400", (2678400, 0, 0)),  # LVS_MAX_TIMEOUT, 31 days
    ],
)
def test_lvs_timeouts_modelled(line: str, want: tuple[int, int, int]) -> None:
    gd, diags = _gd(line)
    assert diags == []
    assert (gd.lvs_timeouts.tcp, gd.lvs_timeouts.tcpfin, gd.lvs_timeouts.udp) == want


@pytest.mark.parametrize(
    ("line", "col", "says"),
    [
        ("lvs_timeouts tcp -1", 18, "'-1' is not a whole number of seconds 0..2678400"),
        ("lvs_timeouts tcp 1.5", 18, "'1.5' is not a whole number of seconds"),
        ("lvs_timeouts tcp 2678401", 18, "0..2678400"),
        ("lvs_timeouts tcp 1 fin 2", 20, "unknown lvs_timeouts option 'fin' (expected tcp|tcpfin"),
        ("lvs_timeouts tcp 1 udp", 20, "'udp' needs a value in seconds"),
        ("lvs_timeouts tcp", 1, "'lvs_timeouts' needs a value"),
    ],
)
def test_lvs_timeouts_errors_say_what_is_right(line: str, col: int, says: str) -> None:
    _, diags = _gd(line)
    assert len(diags) == 1, diags
    assert diags[0].startswith(f"t.conf:2:{col}: error: ")
    assert says in diags[0]


# --------------------------------------------------------------------------- sched flags


@pytest.mark.parametrize(
    ("sched", "words", "want"),
    [
        ("sh", ["sh-fallback"], ("flag-1",)),
        ("sh", ["sh-port"], ("flag-2",)),
        ("sh", ["sh-port", "sh-fallback"], ("flag-1", "flag-2")),
        ("mh", ["mh-fallback", "mh-port"], ("flag-1", "flag-2")),
        ("wrr", ["flag-3"], ("flag-3",)),
        ("sh", ["flag-2", "sh-port"], ("flag-2",)),  # the same bit twice: once
        ("sh", ["flag-1 on", "flag-2 off"], ("flag-1",)),
        ("rr", [], ()),
    ],
)
def test_sched_flags_canonical(sched: str, words: list[str], want: tuple[str, ...]) -> None:
    body = f" lvs_sched {sched}\n" + "".join(f" {w}\n" for w in words)
    vs, diags = _vs(body)
    assert diags == []
    assert vs.sched_flags == want


def test_sched_flags_order_independent() -> None:
    """keepalived needs lvs_sched before sh-port; hafast reads the block as a whole."""
    a, _ = _vs(" sh-port\n lvs_sched sh\n")
    b, _ = _vs(" lvs_sched sh\n sh-port\n")
    assert a.sched_flags == b.sched_flags == ("flag-2",)


def test_sched_flag_for_another_scheduler_is_reported_and_ignored() -> None:
    vs, diags = _vs(" lvs_sched wrr\n flag-3\n mh-port\n")
    assert vs.sched_flags == ("flag-3",)
    assert diags == [
        "t.conf:6:2: warning: 'mh-port' applies to the mh scheduler only (lvs_sched is wrr); "
        "keepalived ignores it (remove it or use lvs_sched mh)"
    ]


def test_hashed_is_accepted_and_ignored() -> None:
    vs, diags = _vs(" lvs_sched rr\n hashed\n")
    assert vs.sched_flags == ()
    assert len(diags) == 1 and "'hashed' is obsolete" in diags[0] and "remove it" in diags[0]


def test_ops_stays_its_own_field() -> None:
    vs, _ = _vs(" lvs_sched rr\n ops\n")
    assert vs.ops is True and vs.sched_flags == ()


def test_sched_flags_change_is_a_reload_adopt() -> None:
    a, _ = _load(
        "virtual_server 10.0.0.1 80 {\n protocol TCP\n lvs_sched sh\n"
        " real_server 10.0.0.2 80 {\n }\n}\n"
    )
    b, _ = _load(
        "virtual_server 10.0.0.1 80 {\n protocol TCP\n lvs_sched sh\n sh-port\n"
        " real_server 10.0.0.2 80 {\n }\n}\n"
    )
    plan = diff(a, b)
    assert [new.sched_flags for _, new in plan.virtual_servers.adopt] == [("flag-2",)]


def test_sched_flag_words_match_the_backend() -> None:
    """Every canonical flag is a word the pool backend knows."""
    from hafast.lvs.backend import SCHED_FLAG_WORDS

    vs, _ = _vs(" lvs_sched sh\n flag-1\n flag-2\n flag-3\n")
    assert set(vs.sched_flags) <= set(SCHED_FLAG_WORDS)


# --------------------------------------------------------------------------- other globals


def test_rs_init_notifies() -> None:
    assert _gd("router_id r")[0].rs_init_notifies is False
    gd, diags = _gd("rs_init_notifies")
    assert gd.rs_init_notifies is True and diags == []


def test_v3_checksum_as_v2_global_is_the_instance_default() -> None:
    inst = "vrrp_instance {n} {{\n interface lo\n virtual_router_id {v}\n{extra}}}\n"
    cfg, _ = _load(
        "global_defs {\n v3_checksum_as_v2\n}\n"
        + inst.format(n="A", v=1, extra="")
        + inst.format(n="B", v=2, extra=" v3_checksum_as_v2 off\n")
    )
    assert cfg.global_defs.v3_checksum_as_v2 is True
    assert [i.v3_checksum_as_v2 for i in cfg.vrrp_instances] == [True, False]
    cfg, _ = _load(inst.format(n="C", v=3, extra=" v3_checksum_as_v2\n"))
    assert cfg.global_defs.v3_checksum_as_v2 is False
    assert cfg.vrrp_instances[0].v3_checksum_as_v2 is True


# --------------------------------------------------------------------------- hafast's own


def test_extension_defaults() -> None:
    gd, _ = _gd("router_id r")
    assert (gd.lvs_backend, gd.metrics_listen, gd.check_workers) == (None, None, 0)


@pytest.mark.parametrize("backend", ["ipvs", "nft", "memory"])
def test_lvs_backend(backend: str) -> None:
    gd, diags = _gd(f"lvs_backend {backend}")
    assert gd.lvs_backend == backend and diags == []


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("127.0.0.1:9650", "127.0.0.1:9650"),
        ("0.0.0.0:80", "0.0.0.0:80"),
        ("[::1]:9650", "[::1]:9650"),
        ("[2001:DB8:0::1]:65535", "[2001:db8::1]:65535"),
    ],
)
def test_metrics_listen(text: str, want: str) -> None:
    gd, diags = _gd(f"metrics_listen {text}")
    assert gd.metrics_listen == want and diags == []


@pytest.mark.parametrize(
    "text",
    [
        "127.0.0.1",
        "::1:80",
        "[127.0.0.1]:80",
        "1.2.3.4:0",
        "1.2.3.4:65536",
        "host:80",
        "[::1]:",
        "1.2.3.4:8a",
    ],
)
def test_metrics_listen_rejects(text: str) -> None:
    gd, diags = _gd(f"metrics_listen {text}")
    assert gd.metrics_listen is None
    assert len(diags) == 1 and "is not ADDR:PORT (e.g. 127.0.0.1:9650 or [::1]:9650" in diags[0]


def test_check_workers() -> None:
    assert _gd("check_workers 4")[0].check_workers == 4
    _, diags = _gd("check_workers many")
    assert "check_workers <integer 0..1024>" in diags[0]


def test_extensions_are_supported_and_say_keepalived_does_not_know_them() -> None:
    assert {name for _, name in EXTENSIONS} == {
        "lvs_backend", "metrics_listen", "check_workers",
        # the keepalived man page's names for *_dump_file (its parser does not read them)
        "state_file_location", "stats_file_location", "json_file_location",
        # fleet mode (hafast.fleet)
        "bgp_speaker", "daemon", "local_as", "router_id", "neighbor", "hold_time",
        "keepalive", "frr_pathspace", "frr_control", "frr_dir", "remote_as", "bfd",
        "announce", "prefix", "announce_delay", "drain_method", "shutdown_drain_time",
        "announce_hold_down", "announce_max_changes_per_minute", "communities",
        "large_communities",
        # the director's own checks in announce (keepalived knows these names elsewhere)
        "track_script", "track_file", "track_interface", "track_process"}
    for ctx, name in EXTENSIONS:
        kw = TABLE[ctx][name]
        assert kw.supported, name
        assert "keepalived does not know it" in kw.shape()
    _, diags = _gd("lvs_backend memory\nmetrics_listen 127.0.0.1:1\ncheck_workers 2")
    assert diags == []  # no "not yet supported"
    _, diags = _gd("lvs_backend kernel")
    assert diags == [
        "t.conf:2:13: error: 'kernel' is not one of ipvs|nft|memory (expected: lvs_backend "
        "<ipvs|nft|memory>; a hafast extension (keepalived does not know it): the pool "
        "backend, ipvs (the kernel's IPVS, default), nft (nftables) or memory)"
    ]


def test_no_supported_field_is_left_unmodelled() -> None:
    """The runtime reads these: none of them may be an accepted-but-ignored row."""
    wanted = {
        "global_defs": ("lvs_timeouts", "rs_init_notifies", "v3_checksum_as_v2", "lvs_flush"),
        "vrrp_instance": ("v3_checksum_as_v2", "unicast_peer", "mcast_src_ip", "version"),
        "virtual_server": (
            "flag-1",
            "flag-2",
            "flag-3",
            "sh-port",
            "sh-fallback",
            "mh-port",
            "mh-fallback",
            "ops",
        ),
    }
    for ctx, names in wanted.items():
        for name in names:
            assert TABLE[ctx][name].supported, (ctx, name)


def test_dump_shows_the_new_settings() -> None:
    cfg, _ = _load(
        "global_defs {\n lvs_timeouts tcp 9\n lvs_backend nft\n metrics_listen [::1]:1\n}\n"
        "virtual_server 10.0.0.1 80 {\n protocol TCP\n lvs_sched mh\n mh-port\n"
        " real_server 10.0.0.2 80 {\n }\n}\n"
    )
    data = json.loads(dump_json(cfg))
    assert data["global_defs"]["lvs_timeouts"] == {"tcp": 9, "tcpfin": 0, "udp": 0}
    assert data["global_defs"]["lvs_backend"] == "nft"
    assert data["virtual_servers"][0]["sched_flags"] == ["flag-2"]
    text = dump_text(cfg)
    assert "  lvs_timeouts {\n    tcp 9\n" in text
    assert "  sched_flags flag-2\n" in text


def test_config_test_prints_file_line_col(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "k.conf"
    path.write_text("global_defs {\n  lvs_timeouts tcp x\n  metrics_listen nowhere\n}\n")
    rc = run_config(str(path), test=True, dump=False, as_json=False, config_id=None)
    err = capsys.readouterr().err.splitlines()
    assert rc == 4
    assert err[0].startswith(f"{path}:2:20: error: lvs_timeouts tcp 'x' ")
    assert err[1].startswith(f"{path}:3:18: error: 'nowhere' is not ADDR:PORT")
