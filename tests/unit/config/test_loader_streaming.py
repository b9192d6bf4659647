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
