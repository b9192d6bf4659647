"""The top-level ``net_namespace NAME`` as keepalived 2.2.7 treats it: the loader, which
namespace the daemon runs in (and what is named after it), the reload rule, ``-t``,
and a namespace that does not exist.  No privileges: nothing here enters a namespace
(the one entry attempted is of a namespace that does not exist).  The daemon really
moving is tests/netns/test_net_namespace.py."""

from __future__ import annotations

import asyncio
import logging
import os
import types
from pathlib import Path

import pytest

from hafast.app import cmdline, netns
from hafast.app.daemon import run_daemon
from hafast.app.reload import Reloader
from hafast.config.loader import load_text
from hafast.config.model import Config

MISSING = f"hafast-unit-missing-{os.getpid()}"


def test_the_keyword_loads_without_a_diagnostic() -> None:
    res = load_text("net_namespace blue\nglobal_defs {\n router_id r\n}\n")
    assert res.diagnostics == [] and res.config.net_namespace == "blue"
    assert load_text("global_defs {\n router_id r\n}\n").config.net_namespace is None


def test_a_second_net_namespace_is_ignored_and_reported() -> None:
    # keepalived's net_namespace_handler: "Duplicate net_namespace definition red - ignoring"
    res = load_text("net_namespace blue\nnet_namespace red\n")
    assert res.config.net_namespace == "blue"
    assert [(d.severity, d.line) for d in res.diagnostics] == [("warning", 2)]
    assert "duplicate net_namespace red" in res.diagnostics[0].message


def test_config_test_accepts_it_and_enters_nothing(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "k.conf"
    conf.write_text(f"net_namespace {MISSING}\nglobal_defs {{\n router_id r\n}}\n")
    before = os.readlink("/proc/self/ns/net")
    assert cmdline.main(["-t", str(conf)]) == 0
    assert capsys.readouterr().err == ""
    assert os.readlink("/proc/self/ns/net") == before


def test_the_config_namespace_names_what_s_would() -> None:
    plain = cmdline.parse([])
    o = netns.resolve(plain, Config(net_namespace="blue"))
    by_s = cmdline.parse(["-s", "blue"])
    assert (o.namespace, o.namespace_from_config) == ("blue", True)
    assert (o.pid_file, o.vrrp_pid_file, o.checkers_pid_file) == (
        by_s.pid_file, by_s.vrrp_pid_file, by_s.checkers_pid_file)
    assert o.pid_file == "/run/hafast/blue/hafast.pid"
    assert o.control_path == by_s.control_path == "/run/hafast_blue.ctl"
    assert o.log.namespace == by_s.log.namespace == "blue"
    assert netns.resolve(plain, Config()) is plain


def test_pid_files_given_on_the_command_line_stay() -> None:
    o = netns.resolve(cmdline.parse(["-p", "/tmp/a.pid", "-c", "/tmp/c.pid"]),
                      Config(net_namespace="blue"))
    assert (o.pid_file, o.vrrp_pid_file, o.checkers_pid_file) == (
        "/tmp/a.pid", "/run/hafast/blue/hafast_vrrp.pid", "/tmp/c.pid")


def test_s_overrides_the_file(caplog: pytest.LogCaptureFixture) -> None:
    by_s = cmdline.parse(["-s", "red"])
    with caplog.at_level(logging.INFO, logger="hafast"):
        o = netns.resolve(by_s, Config(net_namespace="blue"))
    assert o is by_s and not o.namespace_from_config
    assert "Overriding config net_namespace 'blue' with command line namespace 'red'" \
        in caplog.text


@pytest.mark.parametrize(("started", "s_flag", "new", "refused"), [
    ("blue", False, "blue", False),
    ("blue", False, "red", True),
    ("blue", False, None, True),
    (None, False, "blue", True),  # keepalived: !!old != !!new
    (None, False, None, False),
    ("red", True, "blue", False),  # -s wins over the file at a reload too
])
def test_reload_rule(started: str | None, s_flag: bool, new: str | None,
                     refused: bool) -> None:
    if s_flag:
        o = cmdline.parse(["-s", str(started)])
    else:
        o = netns.resolve(cmdline.parse([]), Config(net_namespace=started))
    why = netns.reload_refusal(o, Config(net_namespace=new))
    assert (why is not None) == refused
    if why:
        assert why.startswith("Cannot change network namespace at a reload - please restart")


def test_a_reload_that_changes_it_is_rejected_whole(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    conf = tmp_path / "k.conf"
    conf.write_text("net_namespace red\nglobal_defs {\n router_id changed\n}\n")
    opts = netns.resolve(cmdline.parse(["-f", str(conf)]), Config(net_namespace="blue"))

    async def go() -> object:
        sup = types.SimpleNamespace(options=opts, loop=asyncio.get_running_loop())
        return await Reloader(sup).load()  # type: ignore[arg-type]

    with caplog.at_level(logging.INFO, logger="hafast"):
        assert asyncio.run(go()) is None
    assert "Cannot change network namespace at a reload" in caplog.text
    conf.write_text("net_namespace blue\nglobal_defs {\n router_id changed\n}\n")
    got = asyncio.run(go())
    assert isinstance(got, Config) and got.global_defs.router_id == "changed"


def test_a_missing_namespace_is_not_created_and_nothing_starts(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "k.conf"
    conf.write_text(f"net_namespace {MISSING}\nglobal_defs {{\n router_id r\n}}\n")
    pid = tmp_path / "h.pid"
    opts = cmdline.parse(["-f", str(conf), "-n", "-l", "-G", "-p", str(pid),
                          "-g", str(tmp_path / "h.log")])
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        assert run_daemon(opts) == 1
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
            h.close()
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
    err = capfd.readouterr().err
    # keepalived's make_file_name: the namespace before the extension
    assert "Unable to set network namespace" in (tmp_path / f"h_{MISSING}.log").read_text()
    assert f"Failed to open /run/netns/{MISSING}" in err
    assert f"Unable to set network namespace {MISSING} - exiting" in err
    assert f"hafast_{MISSING}[" in err  # the ident carries the name, as keepalived's
    assert not Path(f"/run/netns/{MISSING}").exists() and not pid.exists()
