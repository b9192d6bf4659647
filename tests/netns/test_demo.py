"""The README's main job (until the daemon exists): the foundation demo, end to end."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import KEEPALIVED_GENHASH, require_root, require_tool


def test_demo_runs_on_a_real_farm_and_cleans_up() -> None:
    require_root()
    require_tool("nginx")
    require_tool(KEEPALIVED_GENHASH)
    out = subprocess.run(
        [sys.executable, "-m", "hafast", "core-demo", "--targets", "50"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    assert "reason=ok" in out
    assert "-> checksum_err" in out and "-> auth_failure" in out
    assert "50/50 servers answered, 64/64 unassigned got no answer" in out
    assert out.count("genhash agrees") == 5
    assert "status 500" in out and "recovered: " in out
    made = re.search(r" in (\S+-srv), director (\S+-dir)", out)
    assert made, out
    after = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    assert made.group(1) not in after and made.group(2) not in after
