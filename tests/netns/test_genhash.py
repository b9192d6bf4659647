"""``hafast.genhash`` against Debian keepalived's ``genhash``, on the same urls of a
real nginx, both run inside the lab's director namespace: the digest lines must be
identical (small and 1 MiB bodies, HTTP/1.1 chunked replies, TLS, virtual hosts,
failures).

Needs root, nginx, nft, openssl and keepalived's genhash.  Everything is named after
this process's PID and torn down even when a test fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hafast.lab import BIG_PATH, FIXED_PATH, Farm
from hafast.lab.netns import netns_path, pid_alive, spawn_in, stop_pid
from tests.conftest import KEEPALIVED_GENHASH, REPO, require_root, require_tool

pytestmark = [pytest.mark.root, pytest.mark.netns]

PREFIX = f"hg{os.getpid()}"
EXTRA_PORT = 8600  # our own nginx beside the farm's, in the server namespace
EXTRA_TLS_PORT = 8643
MIB = 1024 * 1024


def _extra_nginx_conf(lab: Path, www: Path) -> str:
    # ssi makes the length unknown to nginx, so an HTTP/1.1 request gets a chunked
    # reply (an HTTP/1.0 one a close-delimited body): exactly what genhash -P 1.1
    # hashes with its framing.
    return f"""\
daemon off;
master_process off;
pid {lab}/extra.pid;
error_log {lab}/extra-error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {lab}/extra-tmp;
  default_type text/plain;
  server_tokens off;
  root {www};
  ssl_certificate {lab}/tls.crt;
  ssl_certificate_key {lab}/tls.key;
  server {{
    listen {EXTRA_PORT};
    listen {EXTRA_TLS_PORT} ssl;
    server_name _;
    location = /mib {{ try_files /mib.bin =404; }}
    location = /ssi.html {{ ssi on; }}
    location = /vhost {{ return 200 "host $host\\n"; }}
  }}
}}
"""


@pytest.fixture(scope="module")
def lab() -> Iterator[Farm]:
    require_root()
    for tool in ("nginx", "nft", "nsenter", "openssl", KEEPALIVED_GENHASH):
        require_tool(tool)
    farm = Farm(16, name=PREFIX, tls=True, workers=1)
    proc = None
    try:
        farm.build()
        www = farm.lab_dir / "extra-www"
        www.mkdir()
        (farm.lab_dir / "extra-tmp").mkdir()
        # A 1 MiB body that is not a repetition of one block (so offsets matter).
        lines = (b"%09d\n" % (i * 7919) for i in range(MIB // 10 + 1))
        (www / "mib.bin").write_bytes(b"".join(lines)[:MIB])
        parts = "".join(f"<p>line {i}</p><!--# echo var=\"document_uri\" -->\n" for i in range(3))
        (www / "ssi.html").write_text(f"<html>{parts}</html>\n")
        www.chmod(0o755)
        conf = farm.lab_dir / "extra.conf"
        conf.write_text(_extra_nginx_conf(farm.lab_dir, www))
        proc = spawn_in(farm.server_ns, ["nginx", "-p", f"{farm.lab_dir}/", "-c", str(conf),
                                         "-e", f"{farm.lab_dir}/extra-error.log"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_listening(farm)
        yield farm
    finally:
        if proc is not None and pid_alive(proc.pid):
            stop_pid(proc.pid)
        farm.close()


def _wait_listening(farm: Farm) -> None:
    import time

    for _ in range(500):
        r = farm.fetch(farm.addresses[0], "/vhost", timeout=0.5)
        if r.status:
            return
        time.sleep(0.02)
    raise AssertionError("extra nginx did not start")


def _in_dir(
    farm: Farm, argv: list[str], timeout: float = 30.0
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["nsenter", f"--net={netns_path(farm.director_ns)}", "--", *argv],
        capture_output=True, timeout=timeout, check=False, cwd=REPO,
    )


def _both(farm: Farm, args: list[str]) -> tuple[bytes, bytes, subprocess.CompletedProcess[bytes]]:
    theirs = _in_dir(farm, [KEEPALIVED_GENHASH, *args])
    ours = _in_dir(farm, [sys.executable, "-m", "hafast.genhash", *args])
    return theirs.stdout + theirs.stderr, ours.stdout + ours.stderr, ours


def _digest_line(out: bytes) -> bytes:
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines, out
    return lines[-1]


CASES = [
    # (name, port, path, extra flags)
    ("root", 80, "/", []),
    ("fixed", 80, FIXED_PATH, []),
    ("big-256k", 80, BIG_PATH, []),
    ("mib", EXTRA_PORT, "/mib", []),
    ("mib-1.1", EXTRA_PORT, "/mib", ["-P", "1.1"]),
    ("chunked-1.1", EXTRA_PORT, "/ssi.html", ["-P", "1.1"]),
    ("close-delimited-1.0c", EXTRA_PORT, "/ssi.html", ["-P", "1.0c"]),
    ("vhost", EXTRA_PORT, "/vhost", ["-V", "www.example"]),
    ("404", 80, "/nope/../missing", ["-P", "1.0C"]),
    ("tls-root", 443, "/", ["-S"]),
    ("tls-mib", EXTRA_TLS_PORT, "/mib", ["-S"]),
    ("tls-chunked-sni", EXTRA_TLS_PORT, "/ssi.html",
     ["-S", "-I", "-V", "www.example", "-P", "1.1"]),
]


@pytest.mark.parametrize(("name", "port", "path", "flags"), CASES, ids=[c[0] for c in CASES])
def test_digest_matches_keepalived_genhash(
    lab: Farm, name: str, port: int, path: str, flags: list[str]
) -> None:
    addr = lab.addresses[3]
    args = ["-s", addr, "-p", str(port), "-u", path, "-t", "5", *flags]
    theirs, ours, proc = _both(lab, args)
    want = _digest_line(theirs)
    assert len(want) == 32 and int(want, 16) >= 0, theirs
    assert _digest_line(ours) == want, (name, theirs[-300:], ours[-300:])
    assert ours.strip() == want  # nothing else printed without -v
    assert proc.returncode == 0


def test_chunked_reply_hashes_the_framing(lab: Farm) -> None:
    # The same url, 1.0 (close-delimited) vs 1.1 (chunked): keepalived hashes the raw
    # bytes, so the digests differ -- ours too.
    addr = lab.addresses[3]
    base = ["-s", addr, "-p", str(EXTRA_PORT), "-u", "/ssi.html", "-t", "5"]
    d10 = _digest_line(_both(lab, base)[1])
    d11 = _digest_line(_both(lab, [*base, "-P", "1.1"])[1])
    assert d10 != d11
    shown = _in_dir(lab, [sys.executable, "-m", "hafast.genhash", *base, "-P", "1.1", "-v"])
    assert b"Transfer-Encoding: chunked\r\n" in shown.stdout


def test_verbose_dump_matches_but_for_the_time(lab: Farm) -> None:
    args = ["-s", lab.addresses[5], "-p", "80", "-u", FIXED_PATH, "-v", "-t", "5"]
    theirs, ours, _ = _both(lab, args)

    def strip(out: bytes) -> list[bytes]:
        return [ln for ln in out.splitlines() if not ln.startswith(b"Global response time")]

    a, b = strip(ours), strip(theirs)
    assert len(a) == len(b)
    # Only nginx's Date header may differ (two requests, maybe a second apart):
    # in the header's hex dump (at most 3 lines) and its ASCII copy.
    differ = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    assert len(differ) <= 4, [(a[i], b[i]) for i in differ]
    assert all(b"Date: " in a[i] or a[i][:4].isdigit() for i in differ)
    banner = b.index(b"-----------------------[ HTTP Header Ascii Buffer ]-----------------------")
    assert all(i < banner + 8 for i in differ)  # nothing in the body or digest part
    assert b"Global response time for [/fixed] = " in ours


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("refused", ["-p", "81"]),
        ("tls-to-plain", ["-p", "80", "-S"]),
    ],
)
def test_failure_messages_match(lab: Farm, name: str, args: list[str]) -> None:
    full = ["-s", lab.addresses[2], "-u", "/", "-t", "3", *args]
    theirs, ours, proc = _both(lab, full)
    assert ours.strip() == theirs.strip(), name
    assert proc.returncode == 1  # keepalived says 0; a script should be able to tell


def test_timeout_message_matches(lab: Farm) -> None:
    addr = lab.addresses[7]
    lab.faults.apply([addr], "drop")
    try:
        theirs, ours, proc = _both(lab, ["-s", addr, "-p", "80", "-u", "/", "-t", "1"])
    finally:
        lab.faults.recover()
    assert ours.strip() == theirs.strip() == b"Timeout connecting"
    assert proc.returncode == 1


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["-s", "10.0.0.1"],
        ["-s", "not-an-ip", "-p", "80", "-u", "/"],
        ["-s", "10.0.0.1", "-p", "0", "-u", "/"],
        ["-s", "10.0.0.1", "-p", "80", "-u", "/", "-P", "2.0"],
        ["-s", "10.0.0.1", "-p", "80", "-u", "/", "extra"],
        ["-h"],
    ],
)
def test_bad_command_lines_print_the_usage(args: list[str]) -> None:
    from hafast.genhash import main

    proc = subprocess.run([sys.executable, "-m", "hafast.genhash", *args], capture_output=True,
                          timeout=30, check=False, cwd=REPO)
    assert proc.returncode == 1
    assert b"Usage: genhash COMMAND [OPTIONS]" in proc.stderr
    assert callable(main)
