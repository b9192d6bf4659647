"""load_file walks the config while the lexer reads it (issue 16): the result must be
exactly what the whole-list path gives (``load_lines(read_config(path).lines)``): the
same model, the same diagnostics in the same order, whatever the chunk size."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hafast.config import lexer
from hafast.config.loader import LoadResult, load_file, load_lines

HERE = Path(__file__).parent
SAMPLES = Path("/usr/share/doc/keepalived/samples")
CONFIGS = sorted(
    [
        *(HERE / "golden" / "loader").glob("*.conf"),
        *(HERE / "golden" / "lexer").glob("*/keepalived.conf"),
        *SAMPLES.glob("keepalived.conf*"),
    ]
)


def _whole(path: str) -> LoadResult:
    lex = lexer.read_config(path)
    res = load_lines(lex.lines, lex_diagnostics=lex.diagnostics, report_braces=False)
    res.files = list(lex.files)
    return res


def _same(path: str) -> None:
    want, got = _whole(path), load_file(path)
    assert [d.format() for d in got.diagnostics] == [d.format() for d in want.diagnostics]
    assert got.diagnostics == want.diagnostics
    assert got.files == want.files
    assert got.config == want.config


@pytest.mark.parametrize("chunk", [1, 2, 3, 4096])
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_streaming_load_is_the_whole_list_load(
    path: Path, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lexer, "_CHUNK", chunk)
    _same(str(path))


def test_there_are_configs_to_compare() -> None:
    assert len(CONFIGS) > 20


LINES = st.sampled_from(
    [
        "global_defs {",
        "router_id r1",
        "}",
        "{",
        "} }",
        "virtual_server 10.0.0.1 80 {",
        "virtual_server 10.0.0.1 80",
        "real_server 10.0.1.1 80 {",
        "weight 2",
        "weight x",
        "TCP_CHECK {",
        "connect_timeout 3",
        "vrrp_instance V {",
        "state MASTER",
        "interface eth0",
        "virtual_router_id 7",
        "priority 100",
        "virtual_ipaddress {",
        "10.0.0.9/24",
        "unknown_kw 1",
        '"quoted {" word',
        "$P=weight 3",
        "$P",
        "# comment",
        "",
        "lvs_sched wrr",
        "virtual_server group G {",
        "virtual_server_group G {",
        "10.0.0.2 80",
        "virtual_server fwmark 3 {",
        "real_server 10.0.1.1 {",
    ]
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(LINES, max_size=40), chunk=st.integers(1, 5))
def test_streaming_load_random_configs(
    lines: list[str], chunk: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "k.conf"
    conf.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(lexer, "_CHUNK", chunk)
    _same(str(conf))


def test_virtual_servers_built_early_report_in_their_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A virtual server is built as soon as its block is walked (its pending blocks are
    dropped then), but what it says still comes after the VRRP side's diagnostics."""
    conf = tmp_path / "k.conf"
    conf.write_text(
        "virtual_server 10.0.0.1 80 {\n protocol TCP\n real_server 10.0.1.1 80 {\n }\n}\n"
        "vrrp_instance V {\n priority 300\n}\n"
    )
    monkeypatch.setattr(lexer, "_CHUNK", 1)
    _same(str(conf))
    lines = [d.line for d in load_file(str(conf)).diagnostics]
    assert lines[:2] == [7, 6] and 1 in lines[2:], lines


def test_a_virtual_server_group_named_empty_is_no_other_servers_group(tmp_path: Path) -> None:
    """Only 'virtual_server group NAME' looks its group up: a group called "" with a
    fwmark in it made every other virtual server's real servers 'fwmark' ones."""
    conf = tmp_path / "k.conf"
    conf.write_text(
        'virtual_server_group "" {\n fwmark 9\n}\n'
        "virtual_server 10.0.0.1 80 {\n protocol TCP\n lvs_sched rr\n lvs_method DR\n"
        " real_server 10.0.1.1 80 {\n }\n}\n"
    )
    _same(str(conf))
    assert not load_file(str(conf)).diagnostics


def test_an_early_build_failure_is_the_whole_list_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug that raises while a virtual server is built early comes out as the same
    'internal loader error', after the same diagnostics, as on the whole-list path."""
    from hafast.config.build_lvs import LvsBuilder

    def broken(*args: object) -> None:
        raise TypeError("broken on purpose")

    monkeypatch.setattr(LvsBuilder, "real_server", broken)
    conf = tmp_path / "k.conf"
    conf.write_text(
        "virtual_server 10.0.0.1 80 {\n real_server 10.0.1.1 80 {\n }\n}\n"
        "vrrp_instance V {\n priority 300\n}\nbad_keyword 1\n"
    )
    _same(str(conf))
    assert "internal loader error (TypeError: broken on purpose)" in (
        load_file(str(conf)).diagnostics[-1].message)


def test_a_second_global_defs_adds_to_the_first(tmp_path: Path) -> None:
    """keepalived 2.2.7 reads every global_defs block into one set of globals (the
    netns test compares with its -d dump); both load paths merge them."""
    from hafast.config.loader import load_file, load_text

    text = ("global_defs {\n router_id FIRST\n smtp_server 127.0.0.1\n"
            " notification_email {\n one@example.org\n }\n}\n"
            "global_defs {\n router_id SECOND\n notification_email {\n two@example.org\n }\n}\n")
    path = tmp_path / "k.conf"
    path.write_text(text)
    for res in (load_text(text), load_file(str(path))):
        g = res.config.global_defs
        assert res.ok
        assert (g.router_id, g.smtp_server, g.notification_email) == (
            "SECOND", ("127.0.0.1", None), ("one@example.org", "two@example.org"))
