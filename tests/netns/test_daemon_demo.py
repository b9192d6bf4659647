"""The README's main job (hafast.daemon_demo) runs, heals the farm and cleans up."""

from __future__ import annotations

import argparse
import os

import pytest

from hafast.daemon_demo import run_daemon_demo
from hafast.lab.netns import list_netns
from tests.conftest import require_root, require_tool

pytestmark = pytest.mark.timeout(150)


def test_daemon_demo(capsys: pytest.CaptureFixture[str]) -> None:
    require_root()
    require_tool("nginx")
    require_tool("nft")
    assert run_daemon_demo(argparse.Namespace(servers=60)) == 0
    out = capsys.readouterr().out
    assert "all 60 servers passed HTTP_GET + MD5 and joined both pools" in out
    assert "left the pool" in out and "is back in the pool" in out
    assert "d2 holds the VIP" in out and "'INSTANCE \"VI_1\" MASTER 90'" in out
    assert "exit 0; VIP left: False; nftables destinations left: 0" in out
    # other helpers' labs come and go meanwhile: only the demo's own names count
    assert [ns for ns in list_netns() if ns.startswith(f"hdemo{os.getpid()}")] == []
