"""hafast -t's notes about this machine (hafast.app.hostcheck): the pool backend the
daemon would take here and what it will not do, the same lines the daemon logs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from hafast.app import hostcheck
from hafast.app.cmdline import main
from hafast.config import pool_backends as pb
from hafast.config.loader import load_text
from hafast.lvs.nft import limits

VS = """virtual_server 192.0.2.1 80 {
  lvs_sched wlc
  lvs_method DR
  protocol TCP
  real_server 10.1.0.1 80 {
    TCP_CHECK {
      connect_timeout 1
    }
  }
}
"""


def _present(monkeypatch: pytest.MonkeyPatch, **present: bool) -> None:
    for name, here in present.items():
        answer: Callable[[], bool] = (lambda: True) if here else (lambda: False)
        monkeypatch.setitem(pb.POOL_BACKENDS, name, dataclasses.replace(
            pb.POOL_BACKENDS[name], present=answer))


def test_auto_on_nftables_says_each_limit_as_the_daemon_logs_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _present(monkeypatch, ipvs=False, nft=True)
    cfg = load_text(VS).config
    got = hostcheck.host_checks(cfg)
    assert got == [f"pool backend nft (auto): {line}" for line in limits(cfg)]
    assert len(got) == 1  # DR, which says lvs_sched wlc is not applied
    # the same config where IPVS is: nothing to say
    _present(monkeypatch, ipvs=True)
    assert hostcheck.host_checks(cfg) == []


def test_a_named_backend_is_taken_at_its_word(monkeypatch: pytest.MonkeyPatch) -> None:
    _present(monkeypatch, ipvs=True, nft=True)
    cfg = load_text("global_defs {\n  lvs_backend nft\n}\n" + VS).config
    assert all(line.startswith("pool backend nft (lvs_backend nft): ")
               for line in hostcheck.host_checks(cfg))
    # --pool-backend wins over lvs_backend, as in the daemon
    assert hostcheck.host_checks(cfg, "ipvs") == []
    assert hostcheck.host_checks(cfg, "memory") == [
        "pool backend memory (--pool-backend memory): no packet follows the virtual "
        "servers; the checks run and report only"]


def test_no_data_path_says_the_daemon_would_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    _present(monkeypatch, ipvs=False, nft=False)
    (line,) = hostcheck.host_checks(load_text(VS).config)
    assert line.startswith("the daemon would not start here: no ipvs or nft pool backend")
    # no virtual server: no pool, nothing to say
    assert hostcheck.host_checks(load_text("global_defs {\n}\n").config) == []


def test_dash_t_prints_them_as_host_warnings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    _present(monkeypatch, ipvs=False, nft=True)
    path = tmp_path / "k.conf"
    path.write_text(VS)
    assert main(["-t", "-f", str(path)]) == 0  # warnings: the config itself is fine
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (f"{path}:0:0: warning: pool backend nft (auto): virtual_server "
                      "192.0.2.1 80: lvs_method DR on nftables routes from an ingress hook "
                      "without a connection table (each flow by a hash of its addresses and "
                      "ports, not by lvs_sched wlc), so a change of the pool can move "
                      "established flows, and the real servers must be on a directly "
                      "connected network")
    assert err[-1] == f"{path}: 0 error(s), 1 warning(s)"
    assert main(["-t", "-f", str(path), "--pool-backend", "ipvs"]) == 0
    assert capsys.readouterr().err == ""
