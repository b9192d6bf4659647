"""``hafast demo --fleet`` (hafast.fleet_demo) runs against real FRR, shows what it
says, and cleans up: three directors by ECMP, a silent director out by BFD, a
withdrawal on quorum loss, the client's failures only in those two windows, and the
directors' SIGTERM taking their FRR with them.  Run alone (conftest.RUN_LAST): 50 ms x
3 BFD sessions of three directors flap on a machine loaded by other tests
(docs/fleet.md)."""

from __future__ import annotations

import argparse
import os
import re
import shutil
from pathlib import Path

import pytest

from hafast.fleet_demo import run_fleet_demo
from hafast.lab.netns import list_netns
from tests.conftest import require, require_root, require_tool

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(200)]


def test_fleet_demo(capsys: pytest.CaptureFixture[str]) -> None:
    require_root()
    require_tool("nft")
    require(shutil.which("vtysh"), "needs FRR (Debian package frr)")
    require(Path("/usr/lib/frr/frr-reload.py").exists(), "needs frr-pythontools")
    rc = run_fleet_demo(argparse.Namespace(servers=0, fleet=True))
    out, err = capsys.readouterr()
    assert rc == 0, out + err
    assert "by three-way ECMP" in out
    assert "BGP session Established, BFD up" in out
    silent = re.search(r"the router dropped d2 after (\d+) ms \(BFD\)", out)
    assert silent is not None and int(silent.group(1)) < 5000, out  # not the 9 s hold
    assert "it withdrew the VIP" in out
    assert "0 failed at any other time" in out
    assert re.findall(r"d\d exit (\d+)", out) == ["0", "0", "0"], out
    assert "the router's next hops: none" in out  # every director withdrew on SIGTERM
    assert [ns for ns in list_netns() if ns.startswith(f"hfd{os.getpid() % 10000}")] == []
    assert not [p for p in Path("/var/run/frr").glob(f"hfd{os.getpid() % 10000}*")]
