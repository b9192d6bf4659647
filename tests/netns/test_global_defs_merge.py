"""Two ``global_defs`` blocks, as keepalived 2.2.7 reads them: the second adds to the
first and overrides what both set (its dump, ``keepalived -d``, names the router_id
of the second block beside the smtp_server of the first and both blocks' emails).
hafast used to keep the last block alone, dropping the first one's settings without
a word."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hafast.config.loader import load_file
from tests.conftest import require_root, require_tool

pytestmark = [pytest.mark.root, pytest.mark.netns]

CONF = """\
global_defs {
 router_id FIRST
 smtp_server 127.0.0.1
 notification_email {
  one@example.org
 }
}
global_defs {
 router_id SECOND
 notification_email_from a@example.org
 notification_email {
  two@example.org
 }
 vrrp_garp_master_delay 7
}
vrrp_instance V {
 interface d0
 virtual_router_id 9
 priority 100
 virtual_ipaddress {
  192.0.2.9/32
 }
}
"""


def _keepalived_dump(tmp_path: Path, conf: Path) -> str:
    """keepalived -d's global definitions, from a short run in a namespace of its own."""
    exe = require_tool("keepalived")
    ns = f"hgd{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=30)
    try:
        for argv in (["link", "add", "d0", "type", "veth", "peer", "name", "d1"],
                     ["link", "set", "d0", "up"], ["link", "set", "d1", "up"]):
            subprocess.run(["ip", "-n", ns, *argv], check=True, timeout=30)
        proc = subprocess.run(
            ["ip", "netns", "exec", ns, "timeout", "3", exe, "-n", "-l", "-D", "-d", "-f",
             str(conf), "-p", str(tmp_path / "k.pid"), "-r", str(tmp_path / "kv.pid"),
             "-c", str(tmp_path / "kc.pid")],
            capture_output=True, text=True, timeout=30, check=False)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
    out = proc.stdout + proc.stderr
    start = out.find("------< Global definitions >------")
    assert start >= 0, out[-2000:]
    return out[start:]


def test_a_second_global_defs_adds_to_the_first_as_keepalived_reads_it(tmp_path: Path) -> None:
    require_root()
    conf = tmp_path / "keepalived.conf"
    conf.write_text(CONF)
    # "Mon Dec  7 18:47:09 2026:  Router ID = SECOND": the text after the stamp
    lines = [line.split(": ", 1)[1] for line in _keepalived_dump(tmp_path, conf).splitlines()
             if ": " in line]

    def said(label: str) -> str:
        found = [line.split(" = ", 1)[1] for line in lines
                 if line.strip().startswith(f"{label} = ")]
        assert found, f"no '{label}' in keepalived's dump"
        return found[0].strip()

    at = next(i for i, line in enumerate(lines) if line.strip() == "Email notification to:")
    to = []
    for line in lines[at + 1:]:
        if " = " in line or not line.startswith("   "):
            break
        to.append(line.strip())
    theirs = {
        "router_id": said("Router ID"),
        "smtp_server": said("Smtp server"),
        "from": said("Email notification from"),
        "to": tuple(to),
        "garp_delay_s": int(said("Gratuitous ARP delay")),
    }
    res = load_file(str(conf))
    assert res.ok, [d.format() for d in res.diagnostics]
    g = res.config.global_defs
    ours = {
        "router_id": g.router_id,
        "smtp_server": g.smtp_server[0] if g.smtp_server else None,
        "from": g.notification_email_from,
        "to": tuple(g.notification_email),
        "garp_delay_s": (g.vrrp_garp_master_delay_us or 0) // 1_000_000,
    }
    assert ours == theirs
    assert theirs == {"router_id": "SECOND", "smtp_server": "127.0.0.1",
                      "from": "a@example.org", "to": ("one@example.org", "two@example.org"),
                      "garp_delay_s": 7}
