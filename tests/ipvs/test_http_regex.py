"""HTTP_GET ``regex`` side by side with Debian's keepalived 2.2.7 (issue 15), run INSIDE
the IPVS VM: keepalived's checker process exits at start without IPVS ("IPVS: Can't
initialize ipvs"), which the host kernel lacks, so this cannot be a host netns test.

On the guest's loopback, one Python server answers on several ports, each reply
written in one ``sendall`` (header and body arrive in one read); each port is a real
server whose HTTP_GET has one url with its own regex settings, PCRE-only syntax
included (``\\K``, lookbehind, recursion).  The virtual server has ``alpha``, so a
real server is in the IPVS table exactly when its check passed.  keepalived ``-C``
runs first, then hafast ``-C`` on the same file; the tables must list the same real
servers, and the expected ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import require_root, require_tool
from tests.ipvs import side_by_side
from tests.ipvs.side_by_side import KEEPALIVED, stop

if os.environ.get("HAFAST_IN_VM") != "1":
    pytest.skip("runs inside the IPVS VM (tests/netns/test_ipvs_vm_boot.py boots it)",
                allow_module_level=True)

pytestmark = [pytest.mark.ipvs, pytest.mark.timeout(300)]

RS = "127.0.0.2"
VS = "10.9.9.10"

STATUS = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nstatus: ready\nload 0.5"
DEEP = b"HTTP/1.0 200 OK\r\n\r\n" + b"a" * 1000 + b"b" * 1000 + b"c\n"

# port -> (reply, url lines, UP?) -- the config text is keepalived's: "\\K" is PCRE's \K
CASES: dict[int, tuple[bytes, str, bool]] = {
    8081: (STATUS, 'regex "status: \\\\Kready"', True),
    8082: (STATUS, 'regex "status: \\\\Kdown"', False),
    # the first read holds the header too: keepalived's subject starts at the status line
    8083: (STATUS, 'regex "^HTTP/1\\\\.0 200"', True),
    # a match that could go on past the last byte stays partial (no match at EOF)
    8084: (STATUS, 'regex "load [0-9.]+"', False),
    8085: (STATUS, 'regex "load [0-9]\\\\.5"', True),  # nothing left to try: a match
    8086: (STATUS, 'regex READY\n        regex_options caseless', True),
    8087: (STATUS, 'regex ready\n        regex_no_match', False),
    8088: (STATUS, 'regex "(?<=status: )ready"', True),
    8089: (STATUS, 'regex ready\n        regex_max_offset 40', False),
    8090: (STATUS, 'regex ready\n        regex_min_offset 47\n        regex_max_offset 60',
           True),
    # deep recursion: past the JIT's default 32 KiB stack unless regex_stack grows it
    8091: (DEEP, 'regex "(a(?1)?b)c"', False),
    8092: (DEEP, 'regex "(a(?1)?b)c"\n        regex_stack 32768 1048576', True),
}

SERVER = f"""
import socket, selectors
replies = {{p: r for p, (r, _, _) in {CASES!r}.items()}}
sel = selectors.DefaultSelector()
for port in replies:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(({RS!r}, port))
    s.listen(64)
    sel.register(s, selectors.EVENT_READ, port)
while True:
    for key, _ in sel.select():
        c, _ = key.fileobj.accept()
        c.settimeout(2)
        try:
            c.recv(4096)
            c.sendall(replies[key.data])
        except OSError:
            pass
        c.close()
"""


def config() -> str:
    servers = "".join(f"""
  real_server {RS} {port} {{
    HTTP_GET {{
      connect_timeout 2
      retry 0
      delay_loop 1
      warmup 0
      url {{
        path /
        {lines}
      }}
    }}
  }}""" for port, (_, lines, _) in CASES.items())
    return f"""global_defs {{
  router_id regex-vm
}}
virtual_server {VS} 80 {{
  protocol TCP
  lb_algo rr
  lb_kind NAT
  alpha
{servers}
}}
"""


def start(kind: str, d: Path) -> subprocess.Popen[bytes]:
    conf = d / f"{kind}.conf"
    conf.write_text(config())
    return side_by_side.start(kind, d, conf)


def up_ports() -> set[int]:
    out = subprocess.run(["ipvsadm", "-Ln"], capture_output=True, text=True).stdout
    return {int(line.split()[1].rsplit(":", 1)[1]) for line in out.splitlines()
            if line.strip().startswith(f"-> {RS}:")}


def one_run(kind: str, d: Path) -> set[int]:
    proc = start(kind, d)
    want = {p for p, (_, _, up) in CASES.items() if up}
    try:
        # every check has run several times by then (delay_loop 1); wait longer on a
        # slow guest for the expected set, then let any late change show
        deadline = time.monotonic() + 60
        while up_ports() != want and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(4)
        got = up_ports()
    finally:
        stop(proc)
        subprocess.run(["ipvsadm", "-C"], capture_output=True)
    return got


def test_regex_verdicts_match_keepalived(tmp_path: Path) -> None:
    require_root()
    require_tool(KEEPALIVED)
    require_tool("ipvsadm")
    subprocess.run(["ip", "addr", "add", f"{RS}/8", "dev", "lo"], capture_output=True)
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.DEVNULL)
    try:
        time.sleep(1)
        ka = one_run("keepalived", tmp_path)
        ha = one_run("hafast", tmp_path)
    finally:
        server.kill()
        server.wait(5)
    want = {p for p, (_, _, up) in CASES.items() if up}
    logs = {k: (tmp_path / f"{k}.log").read_text(errors="replace")[-3000:]
            for k in ("keepalived", "hafast")}
    assert ka == want, logs["keepalived"]
    assert ha == ka, logs["hafast"]
