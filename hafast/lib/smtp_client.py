"""The email alerts' sender: :class:`Mailer`, the asyncio shell around
:class:`hafast.lib.smtp_alert.Dialogue`.

It runs on the loop of the process that saw the event (the VRRP worker for state
changes, a check worker for its checkers) and never holds that loop up: :meth:`send`
only queues; one task talks to the server, one mail at a time, each step bounded by
``smtp_connect_timeout`` (keepalived uses it for the connect and for every reply).
The queue is bounded: when a dead server lets it fill, the oldest alert is dropped
(the newest says where things stand now).  Every outcome is counted (``sent``,
``failed:<reason>``, ``dropped``) and failures are logged, at most once a minute
per reason, with how many were not logged.

keepalived's defaults, filled in when the configuration leaves them out
(``global_data.c`` init_global_data): ``router_id`` and ``smtp_helo_name`` are the
host's canonical name (``getaddrinfo(uname nodename, AI_CANONNAME)``, looked up here
off the loop, once), ``notification_email_from`` is ``USER@that name``.  Nothing is
sent without ``smtp_server`` and at least one ``notification_email``.

Example::

    mailer = Mailer(loop, MailSettings.of(config.global_defs))
    mailer.send(instance_alert("VI_1", "MASTER"))   # returns at once
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import pwd
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hafast.lib.smtp_alert import DEFAULT_PORT, Alert, Dialogue, Mail

log = logging.getLogger("hafast.alert")

QUEUE_MAX = 64
LOG_EVERY_S = 60.0
UNKNOWN_NAME = "[unknown]"  # keepalived global_data.c when the name lookup fails


@dataclass(frozen=True, slots=True)
class MailSettings:
    """global_defs' email settings; None where keepalived fills in a default."""

    server: tuple[str, int | None] | None = None
    recipients: tuple[str, ...] = ()
    sender: str | None = None
    helo: str | None = None
    router_id: str | None = None
    timeout_s: float = 30.0  # keepalived DEFAULT_SMTP_CONNECTION_TIMEOUT

    @property
    def enabled(self) -> bool:
        """keepalived smtp_alert(): no server or no recipient, no mail."""
        return self.server is not None and bool(self.recipients)

    @classmethod
    def of(cls, gd: Any) -> MailSettings:
        """From a :class:`hafast.config.model.GlobalDefs` (read by name: this layer does
        not import the configuration)."""
        return cls(server=gd.smtp_server, recipients=tuple(gd.notification_email),
                   sender=gd.notification_email_from, helo=gd.smtp_helo_name,
                   router_id=gd.router_id, timeout_s=gd.smtp_connect_timeout_us / 1e6)


def canonical_name() -> str | None:
    """keepalived get_local_name(): the canonical name of ``uname -n`` (blocking; the
    mailer calls it in an executor)."""
    try:
        infos = socket.getaddrinfo(os.uname().nodename, None, flags=socket.AI_CANONNAME)
    except OSError:
        return None
    return next((i[3] for i in infos if i[3]), None)


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


class _RateLimited:
    """One log line per reason every ``every`` seconds, with the count left out."""

    def __init__(self, every: float = LOG_EVERY_S) -> None:
        self.every = every
        self._last: dict[str, tuple[float, int]] = {}

    def warning(self, reason: str, msg: str, *args: object) -> None:
        now = time.monotonic()
        last, skipped = self._last.get(reason, (-1e18, 0))
        if now - last < self.every:
            self._last[reason] = (last, skipped + 1)
            return
        self._last[reason] = (now, 0)
        if skipped:
            msg += f" ({skipped} more since the last report)"
        log.warning(msg, *args)


class Mailer:
    """Sends :class:`~hafast.lib.smtp_alert.Alert` objects in the background."""

    def __init__(self, loop: asyncio.AbstractEventLoop, settings: MailSettings, *,
                 queue_max: int = QUEUE_MAX,
                 local_name: Callable[[], str | None] = canonical_name) -> None:
        self.loop = loop
        self.settings = settings
        self.queue_max = queue_max
        self.counters: collections.Counter[str] = collections.Counter()
        self._queue: collections.deque[Alert] = collections.deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._local_name = local_name
        self._looked_up = False
        self._name: str | None = None
        self._rlog = _RateLimited()
        self.closed = False

    def configure(self, settings: MailSettings) -> None:
        """A reload's settings; alerts already queued go out with them."""
        self.settings = settings

    def send(self, alert: Alert) -> bool:
        """Queue ``alert``; never blocks.  False when email is off (no server or no
        recipient) or the mailer is closed."""
        if self.closed or not self.settings.enabled:
            return False
        if len(self._queue) >= self.queue_max:
            self._queue.popleft()
            self.counters["dropped"] += 1
            self._rlog.warning("dropped", "SMTP alert queue full (%d): oldest alert dropped",
                               self.queue_max)
        self._queue.append(alert)
        self.counters["queued"] += 1
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = self.loop.create_task(self._run())
        assert self._wake is not None
        self._wake.set()
        return True

    @property
    def pending(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        """Stop sending; what is queued is dropped (counted)."""
        self.closed = True
        self.counters["dropped"] += len(self._queue)
        self._queue.clear()
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def drain(self, timeout: float) -> bool:
        """Wait until the queue is empty and no mail is in flight (tests, shutdown)."""
        deadline = self.loop.time() + timeout
        while self._queue or self.counters["queued"] > self._finished():
            if self.loop.time() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    def _finished(self) -> int:
        c = self.counters
        return c["sent"] + c["dropped"] + sum(v for k, v in c.items() if k.startswith("failed:"))

    async def _names(self) -> str | None:
        if not self._looked_up:
            self._name = await self.loop.run_in_executor(None, self._local_name)
            self._looked_up = True
        return self._name

    async def _mail(self, alert: Alert) -> Mail:
        s = self.settings
        name = None
        if s.router_id is None or s.sender is None:
            name = await self._names()
        router_id = s.router_id or name or UNKNOWN_NAME
        sender = s.sender or f"{_user()}@{name or 'localhost'}"
        return Mail(sender, s.recipients, router_id, alert)

    async def _helo(self) -> str:
        # keepalived: the canonical name, else "localhost"
        return self.settings.helo or await self._names() or "localhost"

    async def _run(self) -> None:
        assert self._wake is not None
        while not self.closed:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            alert = self._queue.popleft()
            try:
                failure = await self._deliver(alert)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let one mail end the sender
                log.exception("SMTP alert: unexpected error")
                failure = f"error:{type(exc).__name__}"
            if failure:
                self.counters["failed:" + failure] += 1
                host, port = self._where()
                self._rlog.warning(failure, "SMTP alert to [%s]:%d not sent (%s): %s",
                                   host, port, failure, alert.subject)
            else:
                self.counters["sent"] += 1
                log.info("SMTP alert successfully sent: %s", alert.subject)

    def _where(self) -> tuple[str, int]:
        server = self.settings.server or ("?", None)
        return server[0], server[1] or DEFAULT_PORT

    async def _deliver(self, alert: Alert) -> str:
        """One mail; returns "" when the server took it, else the failure reason."""
        mail = await self._mail(alert)
        d = Dialogue(mail, await self._helo())
        host, port = self._where()
        timeout = self.settings.timeout_s
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), timeout)
        except TimeoutError:
            return "connect-timeout"
        except OSError as exc:
            return f"connect:{exc.__class__.__name__}"
        try:
            while not d.done:
                try:
                    data = await asyncio.wait_for(reader.read(4096), timeout)
                except TimeoutError:
                    return d.failure or ("timeout" if not d.sent else "")
                except OSError as exc:
                    return d.failure or ("" if d.sent else f"read:{exc.__class__.__name__}")
                if not data:
                    return d.failure or ("" if d.sent else "closed")
                out = d.receive(data)
                if out:
                    writer.write(out)
                    try:
                        await asyncio.wait_for(writer.drain(), timeout)
                    except (TimeoutError, OSError):
                        return d.failure or ("" if d.sent else "write")
            return d.failure
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
