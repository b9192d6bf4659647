"""The daemon reads its configuration in a child process (hafast.app.loadconf): the
child's answer is what loading in place gives, and a child that fails costs nothing
but the memory (the load is done in place, with a warning)."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import pytest

from hafast.app import loadconf
from hafast.config.loader import load_file

CONF = """
global_defs { router_id r1 }
vrrp_instance V {
    interface lo
    virtual_router_id 7
    priority 100
    virtual_ipaddress { 10.0.0.100/24 }
}
virtual_server 10.0.0.100 80 {
    delay_loop 1
    real_server 10.0.1.1 80 { TCP_CHECK { connect_timeout 2 } }
    real_server 10.0.1.2 80 { weight 3 TCP_CHECK { connect_timeout 2 } }
    no_such_keyword 1
}
"""


@pytest.fixture
def conf(tmp_path: Path) -> str:
    path = tmp_path / "keepalived.conf"
    path.write_text(CONF)
    return str(path)


def _same(got: object, want: object) -> None:
    assert got == want  # LoadResult: config, diagnostics (file, line, text), files


def test_the_child_gives_what_loading_in_place_gives(conf: str) -> None:
    want = load_file(conf, config_id="r1")
    assert want.warnings  # the unknown keyword travels back with its file and line
    _same(loadconf.load(conf, "r1", child=True), want)
    _same(asyncio.run(loadconf.load_async(conf, "r1", child=True)), want)


def test_a_missing_file_is_reported_as_in_place(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.conf")
    _same(loadconf.load(missing, child=True), load_file(missing))


@pytest.mark.parametrize("child", [
    [sys.executable, "-c", "import sys; sys.exit('boom')"],       # dies
    [sys.executable, "-c", "print('not a pickle')"],               # answers garbage
    [sys.executable, "-c", "import pickle, sys; sys.stdout.buffer.write(pickle.dumps(42))"],
    ["/nonexistent/python"],                                       # cannot start
])
def test_a_failed_child_means_loading_in_place(conf: str, child: list[str],
                                               monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(loadconf, "child_argv", lambda path, cid: child)
    want = load_file(conf)
    with caplog.at_level(logging.WARNING, logger="hafast"):
        _same(loadconf.load(conf, child=True), want)
        _same(asyncio.run(loadconf.load_async(conf, child=True)), want)
    said = [r.getMessage() for r in caplog.records]
    fails = [m for m in said if "in a child process failed" in m]
    assert len(fails) == 2, fails
    assert all("reading it here" in m for m in fails)


def test_only_a_big_configuration_is_read_in_a_child(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The size that decides counts the files the main file includes (one level)."""
    main = tmp_path / "keepalived.conf"
    (tmp_path / "conf.d").mkdir()
    main.write_text("global_defs { router_id r1 }\ninclude conf.d/*.conf\n")
    for i in range(3):
        (tmp_path / "conf.d" / f"vs{i}.conf").write_text("# " + "x" * 1000 + "\n")
    assert loadconf.config_bytes(str(main)) == len(main.read_bytes()) + 3 * 1003
    assert loadconf.config_bytes(str(tmp_path / "missing.conf")) == 0
    monkeypatch.setattr(loadconf, "CHILD_FROM_BYTES", 3000)
    assert loadconf.worth_a_child(str(main))
    monkeypatch.setattr(loadconf, "CHILD_FROM_BYTES", 4000)
    assert not loadconf.worth_a_child(str(main))
    spawned: list[list[str]] = []
    real = loadconf.child_argv

    def counted(path: str, cid: str | None) -> list[str]:
        spawned.append([path])
        return real(path, cid)

    monkeypatch.setattr(loadconf, "child_argv", counted)
    _same(loadconf.load(str(main)), load_file(str(main)))
    assert spawned == []  # small: read in place
    monkeypatch.setattr(loadconf, "CHILD_FROM_BYTES", 3000)
    _same(loadconf.load(str(main)), load_file(str(main)))
    assert spawned == [[str(main)]]


def test_the_size_counts_what_the_include_would_read(tmp_path: Path) -> None:
    """The include variants and {a,b} braces name files as for the load itself (one
    level; a folder, an executable file or a missing name adds nothing)."""
    main = tmp_path / "keepalived.conf"
    (tmp_path / "conf.d").mkdir()
    for name in ("a", "b", "c"):
        (tmp_path / "conf.d" / f"{name}.conf").write_text("x" * 100)
    (tmp_path / "conf.d" / "run.conf").write_text("x" * 100)
    (tmp_path / "conf.d" / "run.conf").chmod(0o755)  # keepalived skips it
    (tmp_path / "conf.d" / "sub.conf").mkdir()
    main.write_text("  include conf.d/{a,b,missing}.conf  # two of three\n"
                    "includer conf.d/c.conf\n"
                    "include conf.d/*.conf\n"  # a, b and c again: the load reads them twice
                    "include_check +match\n")
    assert loadconf.config_bytes(str(main)) == len(main.read_bytes()) + 6 * 100


def test_a_small_file_is_read_in_place_on_the_loop_too(conf: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_child(path: str, cid: str | None) -> list[str]:
        raise AssertionError("no child for a small file")

    monkeypatch.setattr(loadconf, "child_argv", no_child)
    _same(asyncio.run(loadconf.load_async(conf, "r1")), load_file(conf, config_id="r1"))
