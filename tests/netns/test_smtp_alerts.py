"""Email alerts side by side with Debian's keepalived 2.2.7 (issue 14), and against a
hostile SMTP server.

The lab is :class:`~tests.netns.vrrp_fixtures.VrrpLab`: router ``r1`` runs keepalived
(``-P``) in one lab and hafast's VRRP worker in another, at the same time, on the same
configuration (two instances in a sync group that become MASTER alone on the link,
``smtp_alert`` on); each lab's client namespace ``cl`` runs an aiosmtpd server that
writes each mail it gets (HELO, envelope, message) as a JSON line.  The two runs'
mails must match in envelope, headers, subjects and bodies (the Date aside).  The
hostile server accepts connections and never says a word: the instance still becomes
MASTER on time, and the failure is counted.
"""

from __future__ import annotations

import email
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require, require_root, require_tool
from tests.netns.vrrp_fixtures import ADDR4, KEEPALIVED, REPO, VIP4, VrrpLab, labs_per_kind

pytestmark = pytest.mark.timeout(180)

SMTP_PORT = 2525
SILENT_PORT = 2526

# An SMTP server in the client namespace: aiosmtpd, one JSON line per mail.
SERVER = r"""
import asyncio, json, sys
from aiosmtpd.smtp import SMTP

class Keep:
    async def handle_HELO(self, server, session, envelope, hostname):
        session.host_name = hostname
        return "250 hello"

    async def handle_DATA(self, server, session, envelope):
        with open(sys.argv[3], "a") as f:
            f.write(json.dumps({"helo": session.host_name, "from": envelope.mail_from,
                                "to": envelope.rcpt_tos,
                                "data": envelope.original_content.decode()}) + "\n")
        return "250 OK queued"

async def main():
    loop = asyncio.get_running_loop()
    await loop.create_server(lambda: SMTP(Keep()), sys.argv[1], int(sys.argv[2]))
    await asyncio.Event().wait()

asyncio.run(main())
"""

# Accepts every connection and never answers (nor closes).
SILENT = r"""
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(64)
held = []
while True:
    held.append(s.accept()[0])
"""


def config(port: int, extra: str = "", *, defaults: bool = False) -> str:
    """Two instances in a sync group; ``defaults`` leaves router_id, the sender and the
    HELO name to keepalived's defaults (the host's canonical name)."""
    insts = []
    for name, vrid in (("VI_1", 51), ("VI_2", 52)):
        vip = VIP4 if vrid == 51 else "10.77.0.101"
        insts.append(f"""vrrp_instance {name} {{
  state BACKUP
  interface eth0
  virtual_router_id {vrid}
  priority 150
  advert_int 1
  virtual_ipaddress {{
    {vip}/24
  }}
}}
""")
    named = "" if defaults else """  router_id lab-r1
  notification_email_from keepalived@lab.example.com
  smtp_helo_name r1.lab.example.com
"""
    return f"""global_defs {{
{named}  notification_email {{
    ops@example.com
    noc@example.com
  }}
  smtp_server {ADDR4["cl"]} {port}
  smtp_alert
  vrrp_garp_master_delay 0
  script_user root
{extra}
}}
{"".join(insts)}
vrrp_sync_group G1 {{
  group {{
    VI_1
    VI_2
  }}
}}
"""


class Background:
    """A Python program in a namespace, stopped by PID."""

    def __init__(self, ns: str, code: str, *args: str, log: Path) -> None:
        with log.open("wb") as out:
            self.proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c",
                                          code, *args], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, cwd=REPO)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


KINDS = ("keepalived", "hafast")


def _prerequisites() -> None:
    require_root()
    require_tool(KEEPALIVED)
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        require(False, "needs aiosmtpd (pip install aiosmtpd; the test extra has it)")


@pytest.fixture
def lab() -> Iterator[VrrpLab]:
    _prerequisites()
    # named with the PID, as labs_per_kind's: a second run at the same time must not
    # find (or delete) these namespaces
    with VrrpLab(f"sa{os.getpid() % 100000}") as lab:
        yield lab


@pytest.fixture
def labs() -> Iterator[dict[str, VrrpLab]]:
    """A lab for each kind, run side by side at the same time."""
    _prerequisites()
    with labs_per_kind("sa", KINDS) as made:
        yield made


def wait_for(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def read_mails(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def comparable(mail: dict[str, Any]) -> tuple[Any, ...]:
    msg = email.message_from_string(mail["data"])
    date = msg["Date"]
    # keepalived's strftime("%a, %d %b %Y %H:%M:%S %z")
    assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}", date), date
    headers = [k for k in msg.keys() if not k.startswith("X-") or k == "X-Mailer"]
    return (mail["helo"], mail["from"], tuple(mail["to"]), tuple(headers),
            msg["From"], msg["To"], msg["Subject"], msg["X-Mailer"],
            str(msg.get_payload()))


def listening(lab: VrrpLab, port: int) -> bool:
    return subprocess.run(["ip", "netns", "exec", lab.ns("cl"), "ss", "-ltn"],
                          capture_output=True, text=True).stdout.count(f":{port}") > 0


def servers(labs: dict[str, VrrpLab], name: str) -> dict[str, Background]:
    """An SMTP server in each lab's client, listening; its mails in ``<name>-<kind>.jsonl``."""
    made: dict[str, Background] = {}
    try:
        for kind, lab in labs.items():
            made[kind] = Background(lab.ns("cl"), SERVER, ADDR4["cl"], str(SMTP_PORT),
                                    str(lab.tmp / f"{name}-{kind}.jsonl"),
                                    log=lab.tmp / f"smtp-{name}-{kind}.log")
        for lab in labs.values():
            wait_for(lambda lab=lab: listening(lab, SMTP_PORT), 10, "the SMTP server")
    except BaseException:
        for server in made.values():
            server.close()
        raise
    return made


@pytest.mark.parametrize("defaults", [False, True], ids=["named", "defaults"])
def test_mails_match_keepalived(labs: dict[str, VrrpLab], defaults: bool) -> None:
    """Each instance and the group: BACKUP at start, then MASTER: 6 mails, the same
    (with ``defaults``: the same router id, sender and HELO name made up)."""
    got: dict[str, list[tuple[Any, ...]]] = {}
    mails = {kind: lab.tmp / f"mails-{kind}.jsonl" for kind, lab in labs.items()}
    running = servers(labs, "mails")
    routers = {}
    try:
        for kind, lab in labs.items():
            routers[kind] = lab.start("r1", kind, config(SMTP_PORT, defaults=defaults))
        for kind, lab in labs.items():
            lab.wait_for(lambda lab=lab: lab.has_vip("r1")  # type: ignore[misc]
                         and lab.has_vip("r1", "10.77.0.101"), 15, f"{kind} master")
            wait_for(lambda k=kind: len(read_mails(mails[k])) >= 6, 10, f"6 mails from {kind}")
        time.sleep(1.0)  # anything more they would send
        for kind in labs:
            got[kind] = sorted(comparable(m) for m in read_mails(mails[kind]))
    finally:
        for kind, router in routers.items():
            labs[kind].stop(router)
        for server in running.values():
            server.close()
    subjects = [m[6].split("] ", 1)[1] for m in got["keepalived"]]
    assert "VRRP Instance VI_1 - Entering MASTER state" in subjects
    assert "VRRP Group G1 - Entering MASTER state" in subjects
    # keepalived sends STOP mails on its way out too; compare what both sent while up
    ka = [m for m in got["keepalived"] if "Stopping" not in m[6]]
    ha = [m for m in got["hafast"] if "Stopping" not in m[6]]
    assert ha == ka


def _stats(lab: VrrpLab, router: Any) -> dict[str, Any]:
    path = lab.tmp / "r1.json"
    path.unlink(missing_ok=True)
    router.proc.send_signal(signal.SIGUSR2)
    wait_for(lambda: path.exists() and path.stat().st_size > 0, 5, "the stats file")
    time.sleep(0.1)
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_silent_smtp_server_delays_nothing(lab: VrrpLab) -> None:
    """The server accepts and never answers: MASTER comes on time (Master_Down_Interval
    3.4 s for priority 150, advert_int 1) while the first mail is still waiting
    for a greeting, and the mail is counted failed once smtp_connect_timeout passed."""
    silent = Background(lab.ns("cl"), SILENT, ADDR4["cl"], str(SILENT_PORT),
                        log=lab.tmp / "silent.log")
    try:
        wait_for(lambda: subprocess.run(
            ["ip", "netns", "exec", lab.ns("cl"), "ss", "-ltn"], capture_output=True,
            text=True).stdout.count(f":{SILENT_PORT}") > 0, 10, "the silent server")
        conf = config(SILENT_PORT, "  smtp_connect_timeout 8")
        t0 = time.monotonic()
        router = lab.start("r1", "hafast", conf)
        took = lab.wait_for(lambda: lab.has_vip("r1") and lab.has_vip("r1", "10.77.0.101"),
                            10, "hafast master")
        took = time.monotonic() - t0
        # Python's start (about a second here) plus the 3.4 s down interval
        assert took < 6.5, took
        alerts = _stats(lab, router)["alerts"]
        assert not any(k.startswith("failed:") for k in alerts), alerts  # still waiting
        wait_for(lambda: _stats(lab, router)["alerts"].get("failed:timeout", 0) >= 1, 15,
                 "the timeout to be counted")
        assert "not sent (timeout)" in router.log_text()
    finally:
        silent.close()


def test_fault_at_start_matches_keepalived(labs: dict[str, VrrpLab]) -> None:
    """A vrrp_script whose first run fails: keepalived 2.2.7 goes from INIT straight
    to FAULT (silently, waiting for the script) and mails only VI_1 FAULT and
    G1 FAULT (VI_2, held by the group, is in FAULT already); so does hafast."""
    conf = config(SMTP_PORT).replace(
        "vrrp_instance VI_1 {",
        'vrrp_script chk {\n  script "/bin/false"\n  interval 1\n  fall 1\n  rise 1\n}\n'
        "vrrp_instance VI_1 {\n  track_script {\n    chk\n  }", 1)
    conf = conf.replace("script_user root", "script_user root\n  enable_script_security")
    mails = {kind: lab.tmp / f"fault-{kind}.jsonl" for kind, lab in labs.items()}
    running = servers(labs, "fault")
    routers = {}
    try:
        for kind, lab in labs.items():
            routers[kind] = lab.start("r1", kind, conf)
        for kind in labs:
            wait_for(lambda path=mails[kind]: any("G1 - Entering FAULT" in m["data"]
                                                  for m in read_mails(path)),
                     15, f"{kind}: G1 FAULT")
        time.sleep(2)
    finally:
        for kind, router in routers.items():
            labs[kind].stop(router)
        for server in running.values():
            server.close()
    got = {kind: sorted(comparable(m) for m in read_mails(path) if "Stopping" not in m["data"])
           for kind, path in mails.items()}
    assert got["hafast"] == got["keepalived"]
