"""The pool backend registry (hafast.config.pool_backends): the one list the command
line, the config grammar and make_backend read, and make_backend's ``auto``."""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
from pathlib import Path

import pytest

from hafast.app.cmdline import build_parser, parse
from hafast.config import pool_backends
from hafast.config.grammar import TABLE
from hafast.config.pool_backends import AUTO, POOL_BACKENDS, PoolBackendKind
from hafast.lvs import keeper, manager
from hafast.lvs.manager import make_backend


def _absent(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    for name in names:
        monkeypatch.setitem(POOL_BACKENDS, name,
                            dataclasses.replace(POOL_BACKENDS[name], present=lambda: False))


def test_every_row_names_a_class_of_that_name() -> None:
    for row in POOL_BACKENDS.values():
        module, _, attr = row.factory.partition(":")
        assert getattr(importlib.import_module(module), attr).name == row.name


def test_the_command_line_and_the_grammar_read_the_registry() -> None:
    action = next(a for a in build_parser()._actions if a.dest == "pool_backend")
    assert tuple(action.choices or ()) == (AUTO, *POOL_BACKENDS)
    assert parse([]).pool_backend == AUTO
    row = TABLE["global_defs"]["lvs_backend"]
    assert row.conv_name == "|".join(POOL_BACKENDS)
    assert pool_backends.help_text() in row.note


def test_one_make_backend() -> None:
    assert keeper.make_backend is manager.make_backend


@pytest.mark.parametrize("kind", list(POOL_BACKENDS))
def test_an_explicit_choice_skips_the_probe(monkeypatch: pytest.MonkeyPatch,
                                            kind: str) -> None:
    # ipvs and nft construct without touching the kernel; open() is where they fail
    _absent(monkeypatch, *POOL_BACKENDS)
    assert make_backend(kind).name == kind


def test_auto_takes_the_first_present(monkeypatch: pytest.MonkeyPatch,
                                      caplog: pytest.LogCaptureFixture) -> None:
    _absent(monkeypatch, "ipvs")
    monkeypatch.setitem(POOL_BACKENDS, "nft",
                        dataclasses.replace(POOL_BACKENDS["nft"], present=lambda: True))
    with caplog.at_level(logging.WARNING):
        assert make_backend(AUTO).name == "nft"
    assert caplog.records == []


def test_auto_never_lands_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    # virtual servers no packet follows are run only when memory is asked for by name
    _absent(monkeypatch, "ipvs", "nft")
    with pytest.raises(RuntimeError) as err:
        make_backend(AUTO)
    assert str(err.value).startswith("no ipvs or nft pool backend works here")
    assert "lvs_backend memory" in str(err.value) and "--pool-backend memory" in str(err.value)
    assert make_backend("memory").name == "memory"


def _broken(**kwargs: object) -> None:
    raise OSError("no such module")


def test_a_backend_that_cannot_be_made(monkeypatch: pytest.MonkeyPatch,
                                       caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(POOL_BACKENDS, "ipvs",
                        PoolBackendKind("ipvs", f"{__name__}:_broken", True,
                                        lambda: True, "ipvs"))
    monkeypatch.setitem(POOL_BACKENDS, "nft",
                        dataclasses.replace(POOL_BACKENDS["nft"], present=lambda: True))
    with caplog.at_level(logging.WARNING):
        assert make_backend(AUTO).name == "nft"  # auto: the next one
        with pytest.raises(RuntimeError, match="pool backend ipvs unavailable"):
            make_backend("ipvs")  # an explicit choice: no fallback
    assert "pool backend ipvs unavailable: no such module" in caplog.messages


def test_an_unknown_name_is_both_a_value_and_a_key_error() -> None:
    for error in (ValueError, KeyError):
        with pytest.raises(error, match=r"^pool backend 'kernel': expected one of auto, ipvs"):
            make_backend("kernel")


def test_ipvs_is_present_when_loaded_or_loadable(tmp_path: Path) -> None:
    from hafast.config.pool_backends import ipvs_present

    proc, mods = tmp_path / "ip_vs", tmp_path / "modules"
    release = mods / os.uname().release
    release.mkdir(parents=True)
    assert not ipvs_present(str(proc), str(mods))  # neither loaded nor listed
    (release / "modules.dep").write_text(
        "kernel/net/netfilter/ipvs/ip_vs_rr.ko.xz: kernel/net/netfilter/ipvs/ip_vs.ko.xz\n")
    assert not ipvs_present(str(proc), str(mods))  # a scheduler needing it is not it
    (release / "modules.dep").write_text(
        "kernel/net/netfilter/ipvs/ip_vs.ko.xz: kernel/net/netfilter/nf_conntrack.ko.xz\n")
    assert ipvs_present(str(proc), str(mods))  # modprobe ip_vs would load it
    (release / "modules.dep").unlink()
    (release / "modules.builtin").write_text("kernel/net/netfilter/ipvs/ip_vs.ko\n")
    assert ipvs_present(str(proc), str(mods))  # built in
    (release / "modules.builtin").unlink()
    proc.write_text("")
    assert ipvs_present(str(proc), str(mods))  # loaded
