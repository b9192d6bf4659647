"""The alert sender (hafast.lib.smtp_client.Mailer) against a real SMTP server
(aiosmtpd, on this test's loop on 127.0.0.1) and against hostile ones: silent,
garbage, refusing, gone."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from email import message_from_bytes
from typing import Any

import pytest

from hafast.lib.eventloop import new_loop
from hafast.lib.smtp_alert import instance_alert
from hafast.lib.smtp_client import Mailer, MailSettings

pytest.importorskip("aiosmtpd")
from aiosmtpd.smtp import SMTP


class Capture:
    """aiosmtpd handler: keeps every envelope."""

    def __init__(self) -> None:
        self.mails: list[Any] = []
        self.helo: list[str] = []

    async def handle_HELO(self, server: Any, session: Any, envelope: Any,
                          hostname: str) -> str:
        self.helo.append(hostname)
        session.host_name = hostname
        return "250 hello"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append(envelope)
        return "250 OK queued"


def settings(port: int, **kw: Any) -> MailSettings:
    base: dict[str, Any] = dict(server=("127.0.0.1", port), recipients=("a@x", "b@x"),
                                sender="lb@example.com", helo="lb1.example.com",
                                router_id="lb1", timeout_s=0.5)
    base.update(kw)
    return MailSettings(**base)


def on_loop(body: Callable[[asyncio.AbstractEventLoop], Awaitable[None]]) -> None:
    loop = new_loop()
    try:
        loop.run_until_complete(body(loop))
    finally:
        loop.close()


def test_real_smtp_server_gets_the_mail() -> None:
    cap = Capture()

    async def body(loop: asyncio.AbstractEventLoop) -> None:
        srv = await loop.create_server(lambda: SMTP(cap), "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        mailer = Mailer(loop, settings(port))
        assert mailer.send(instance_alert("VI_1", "MASTER"))  # type: ignore[arg-type]
        assert mailer.send(instance_alert("VI_1", "BACKUP"))  # type: ignore[arg-type]
        assert await mailer.drain(5)
        mailer.close()
        srv.close()
        assert mailer.counters["sent"] == 2

    on_loop(body)
    assert cap.helo == ["lb1.example.com", "lb1.example.com"]
    env = cap.mails[0]
    assert env.mail_from == "lb@example.com"
    assert env.rcpt_tos == ["a@x", "b@x"]
    msg = message_from_bytes(env.original_content)
    assert msg["Subject"] == "[lb1] VRRP Instance VI_1 - Entering MASTER state"
    assert msg["From"] == "lb@example.com"
    assert msg["To"] == "a@x, b@x"
    assert msg["X-Mailer"] == "Keepalived"
    assert str(msg.get_payload()).strip() == "=> VRRP Instance is now owning VRRP VIPs <="
    assert message_from_bytes(cap.mails[1].original_content)["Subject"].endswith("BACKUP state")


def test_defaults_are_the_hosts_name() -> None:
    cap = Capture()

    async def body(loop: asyncio.AbstractEventLoop) -> None:
        srv = await loop.create_server(lambda: SMTP(cap), "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        mailer = Mailer(loop, settings(port, sender=None, helo=None, router_id=None),
                        local_name=lambda: "lb9.example.com")
        mailer.send(instance_alert("VI_1", "FAULT"))  # type: ignore[arg-type]
        assert await mailer.drain(5)
        mailer.close()
        srv.close()

    on_loop(body)
    assert cap.helo == ["lb9.example.com"]
    env = cap.mails[0]
    assert env.mail_from.endswith("@lb9.example.com")
    assert message_from_bytes(env.original_content)["Subject"].startswith("[lb9.example.com] ")


async def _hostile(loop: asyncio.AbstractEventLoop,
                   answer: Callable[[asyncio.StreamWriter], None] | None) -> Mailer:
    """A server that accepts and then does ``answer`` (None: says nothing)."""
    held: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        if answer is not None:
            answer(writer)

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    mailer = Mailer(loop, settings(port, timeout_s=0.3))
    t0 = loop.time()
    mailer.send(instance_alert("VI_1", "MASTER"))  # type: ignore[arg-type]
    # send() returned at once: the loop is not held up by the silent server
    assert loop.time() - t0 < 0.05
    assert await mailer.drain(5)
    mailer.close()
    for w in held:
        w.close()
    srv.close()
    return mailer


def test_silent_server_times_out_and_is_counted() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        t = loop.create_task(ticker())
        mailer = await _hostile(loop, None)
        t.cancel()
        assert mailer.counters["failed:timeout"] == 1
        assert ticks > 15  # the loop kept running meanwhile

    on_loop(body)


def test_garbage_and_refusal_are_counted() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        m = await _hostile(loop, lambda w: w.write(b"\x00\xffnonsense\r\n"))
        assert m.counters["failed:garbage"] == 1
        m = await _hostile(loop, lambda w: w.write(b"554 go away\r\n"))
        assert m.counters["failed:refused:greeting:554"] == 1

    on_loop(body)


def test_no_server_listening() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: the connect is refused

        async def body(loop: asyncio.AbstractEventLoop) -> None:
            mailer = Mailer(loop, settings(port))
            mailer.send(instance_alert("VI_1", "MASTER"))  # type: ignore[arg-type]
            assert await mailer.drain(5)
            assert mailer.counters["failed:connect:ConnectionRefusedError"] == 1
            mailer.close()

        on_loop(body)


def test_queue_is_bounded_and_off_without_server() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        mailer = Mailer(loop, settings(9, timeout_s=0.3), queue_max=3)
        for _ in range(10):
            mailer.send(instance_alert("VI_1", "MASTER"))  # type: ignore[arg-type]
        assert mailer.pending <= 3
        assert mailer.counters["dropped"] >= 6
        mailer.close()
        off = Mailer(loop, MailSettings(server=None, recipients=("a@x",)))
        assert not off.send(instance_alert("VI_1", "MASTER"))  # type: ignore[arg-type]
        off = Mailer(loop, MailSettings(server=("127.0.0.1", 25)))
        assert not off.send(instance_alert("VI_1", "MASTER"))  # type: ignore[arg-type]

    on_loop(body)
