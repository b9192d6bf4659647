"""keepalived's email alerts without I/O: the texts, the message, the SMTP dialogue.

What keepalived 2.2.7 sends (``keepalived/core/smtp.c``, ``vrrp/vrrp_notify.c``,
``check/check_*.c``), kept word for word because operators filter their mail on it:

* subject ``[ROUTER_ID] VRRP Instance NAME - Entering MASTER state`` (``VRRP Group``
  for a sync group; ``Realserver [ip]:tcp:80 of virtual server [vip]:tcp:80 - UP``
  for a checker), capped at 255 characters; body one line such as
  ``=> VRRP Instance is now owning VRRP VIPs <=``, capped at 511;
* headers ``Date``, ``From``, ``Subject``, ``X-Mailer: Keepalived``, ``To`` (every
  recipient, ``", "``-separated), a blank line, the body, ``CRLF.CRLF``;
* the dialogue: greeting 220, ``HELO name`` 250, ``MAIL FROM:<from>`` 250, one
  ``RCPT TO:<addr>`` per recipient 250 each, ``DATA`` 354, the message 250,
  ``QUIT`` 221.  Any other code: ``QUIT`` and give up (no retry, as keepalived).

:class:`Dialogue` is the client's state machine: bytes from the server in, bytes to
send out, a stable failure reason when it ends badly.  The asyncio shell that owns
the socket is :mod:`hafast.lib.smtp_client`.

Example::

    >>> mail = Mail("root@lb1", ("ops@example.com",), "lb1",
    ...             instance_alert("VI_1", "MASTER"))
    >>> mail.subject
    '[lb1] VRRP Instance VI_1 - Entering MASTER state'
    >>> d = Dialogue(mail, "lb1", date="Sun, 06 Dec 2026 07:43:12 +0000")
    >>> d.receive(b"220 mx ESMTP\\r\\n")
    b'HELO lb1\\r\\n'
"""

from __future__ import annotations

import time
from dataclasses import dataclass

# keepalived smtp.h: MAX_HEADERS_LENGTH 256, MAX_BODY_LENGTH 512, NUL included.
SUBJECT_MAX = 255
BODY_MAX = 511
# keepalived SMTP_BUFFER_MAX: a reply that does not end within this many bytes is
# refused (a server that streams garbage must not grow our memory).
REPLY_MAX = 1024
DEFAULT_PORT = 25  # keepalived SMTP_PORT_STR

# keepalived vrrp_notify.c vrrp_smtp_notifier: the instance's state -> (subject, body).
INSTANCE_TEXTS: dict[str, tuple[str, str]] = {
    "MASTER": ("Entering MASTER state", "=> VRRP Instance is now owning VRRP VIPs <="),
    "BACKUP": ("Entering BACKUP state", "=> VRRP Instance is no longer owning VRRP VIPs <="),
    "FAULT": ("Entering FAULT state", "=> VRRP Instance is no longer owning VRRP VIPs <="),
    "STOP": ("Stopping", "=> VRRP Instance stopping <="),
    "DELETED": ("Deleted", "=> VRRP Deleted at reload <="),
}
# vrrp_sync_smtp_notifier: the same for a vrrp_sync_group (no DELETED).
GROUP_TEXTS: dict[str, tuple[str, str]] = {
    "MASTER": ("Entering MASTER state",
               "=> All VRRP group instances are now in MASTER state <="),
    "BACKUP": ("Entering BACKUP state",
               "=> All VRRP group instances are now in BACKUP state <="),
    "FAULT": ("Entering FAULT state",
              "=> All VRRP group instances are now in FAULT state <="),
    "STOP": ("Stopping", "=> All VRRP group instances are now stopping <="),
}
# check/check_*.c: a checker kind -> (body when it succeeds, body when it fails).
# FILE_CHECK sends none (check_file.c never calls smtp_alert).  MISC_CHECK's words
# are its script's outcome (check_misc.c script_exit_type), see checker_body().
CHECKER_TEXTS: dict[str, tuple[str, str]] = {
    "TCP_CHECK": ("=> TCP CHECK succeed on service <=", "=> TCP CHECK failed on service <="),
    "UDP_CHECK": ("=> UDP CHECK succeed on service <=", "=> UDP CHECK failed on service <="),
    "PING_CHECK": ("=> ICMP CHECK succeed on service <=", "=> ICMP CHECK failed on service <="),
    "DNS_CHECK": ("=> DNS_CHECK: succeed on service <=", "=> DNS_CHECK: failed on service <="),
    "HTTP_GET": ("=> CHECK succeed on service <=",
                 "=> CHECK failed on service : HTTP request failed <="),
    "SSL_GET": ("=> CHECK succeed on service <=",
                "=> CHECK failed on service : HTTP request failed <="),
    "SMTP_CHECK": ("=> CHECK succeed on service <=", "=> CHECK failed on service <="),
    "MISC_CHECK": ("=> MISC CHECK succeeded on service <=", "=> MISC CHECK failed on service <="),
}


def enabled(own: bool | None, specific: bool | None, general: bool | None,
            default: bool = False) -> bool:
    """Whether an instance, sync group or real server sends alerts: its own
    ``smtp_alert`` when set, else global_defs' ``smtp_alert_vrrp`` (or
    ``smtp_alert_checker``: ``specific``), else global ``smtp_alert``, else
    ``default`` (keepalived 2.2.7 vrrp.c and check_data.c: off, but on for a real
    server, "to maintain backwards compatibility").  None is unset.

    >>> enabled(None, None, None), enabled(None, None, None, default=True)
    (False, True)
    >>> enabled(None, False, True), enabled(False, None, True)
    (False, False)
    """
    for value in (own, specific, general):
        if value is not None:
            return value
    return default


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert's subject (without the ``[router_id]`` the sender puts first: the
    router id may have to be looked up) and body."""

    subject: str
    body: str


def instance_alert(name: str, state: str) -> Alert | None:
    """The alert for vrrp_instance ``name`` entering ``state`` (a keepalived state
    word); None for a state keepalived sends none for.

    >>> instance_alert("VI_1", "FAULT").body
    '=> VRRP Instance is no longer owning VRRP VIPs <='
    """
    text = INSTANCE_TEXTS.get(state)
    if text is None:
        return None
    return Alert(f"VRRP Instance {name} - {text[0]}", text[1])


def group_alert(name: str, state: str) -> Alert | None:
    """The alert for vrrp_sync_group ``name`` entering ``state``.

    >>> group_alert("G", "BACKUP").subject
    'VRRP Group G - Entering BACKUP state'
    """
    text = GROUP_TEXTS.get(state)
    if text is None:
        return None
    return Alert(f"VRRP Group {name} - {text[0]}", text[1])


def checker_body(kind: str, up: bool, reason: str = "") -> str | None:
    """The body keepalived writes when a ``kind`` checker goes up or down; None for
    kinds that send no mail.  ``reason`` ``timeout`` makes MISC_CHECK's "timed out".

    >>> checker_body("MISC_CHECK", False, "timeout")
    '=> MISC CHECK timed out on service <='
    """
    text = CHECKER_TEXTS.get(kind)
    if text is None:
        return None
    if kind == "MISC_CHECK" and not up and reason == "timeout":
        return "=> MISC CHECK timed out on service <="
    return text[0] if up else text[1]


def checker_alert(rs_label: str, vs_label: str, alive: bool, body: str) -> Alert:
    """keepalived SMTP_MSG_RS: the subject says whether the real server as a whole is
    alive now (not the checker: a checker that recovers while another still fails
    reports DOWN).

    >>> checker_alert("[10.0.0.2]:tcp:80", "[10.0.0.1]:tcp:80", True, "b").subject
    'Realserver [10.0.0.2]:tcp:80 of virtual server [10.0.0.1]:tcp:80 - UP'
    """
    word = "UP" if alive else "DOWN"
    return Alert(f"Realserver {rs_label} of virtual server {vs_label} - {word}", body)


def quorum_alert(vs_label: str, up: bool, body: str) -> Alert:
    """keepalived SMTP_MSG_VS (ipwrapper.c do_vs_notifies).

    >>> quorum_alert("FWM 5", False, "=> Lost quorum 1+0=1 <= 0 <=").subject
    'Virtualserver FWM 5 - DOWN'
    """
    return Alert(f"Virtualserver {vs_label} - {'UP' if up else 'DOWN'}", body)


def quorum_body(up: bool, init: bool, quorum: int, hysteresis: int, threshold: int,
                weight_sum: int) -> str:
    """keepalived's quorum body: ``=> Gained quorum 3+1=2 <= 4 <=`` (its odd
    ``quorum+hysteresis=threshold`` with the threshold it compared, then the live
    weight).

    >>> quorum_body(False, False, 3, 1, 2, 1)
    '=> Lost quorum 3+1=2 <= 1 <='
    """
    if up:
        what = "Starting with quorum up" if init else "Gained quorum"
    else:
        what = "Starting with quorum down" if init else "Lost quorum"
    return f"=> {what} {quorum}+{hysteresis}={threshold} <= {weight_sum} <="


@dataclass(frozen=True, slots=True)
class Mail:
    """An alert addressed: envelope sender, recipients (in configuration order), and
    the router id its subject starts with."""

    sender: str
    recipients: tuple[str, ...]
    router_id: str
    alert: Alert

    @property
    def subject(self) -> str:
        return f"[{self.router_id}] {self.alert.subject}"[:SUBJECT_MAX]

    @property
    def body(self) -> str:
        return self.alert.body[:BODY_MAX]


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def rfc822_date(when: float | None = None) -> str:
    """keepalived's ``%a, %d %b %Y %H:%M:%S %z`` in local time, English names whatever
    the locale (RFC 5322 §3.3).

    >>> import re
    >>> bool(re.fullmatch(r"\\w{3}, \\d\\d \\w{3} \\d{4} \\d\\d:\\d\\d:\\d\\d [+-]\\d{4}",
    ...                   rfc822_date(0)))
    True
    """
    t = time.localtime(time.time() if when is None else when)
    off = t.tm_gmtoff // 60
    sign = "+" if off >= 0 else "-"
    off = abs(off)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {sign}{off // 60:02d}{off % 60:02d}")


def _one_line(text: str) -> str:
    # A configured name cannot hold a line break, but a header must never get one.
    return text.replace("\r", " ").replace("\n", " ")


def envelope_address(address: str) -> str:
    """``<addr>`` for MAIL FROM / RCPT TO.  keepalived after 2.2.7 (and this) takes the
    ``<...>`` part of ``Name <addr>``; 2.2.7 wrapped the whole text, which servers refuse.

    >>> envelope_address("Ops <ops@example.com>"), envelope_address("a@b")
    ('<ops@example.com>', '<a@b>')
    """
    address = _one_line(address)
    if address.endswith(">") and "<" in address:
        return address[address.rindex("<"):]
    return f"<{address}>"


def message(mail: Mail, date: str) -> bytes:
    """The DATA section, dot-stuffed, ending in ``CRLF.CRLF``.

    >>> m = Mail("a@b", ("c@d", "e@f"), "r", Alert("S", "B"))
    >>> message(m, "D").decode().split("\\r\\n")  # doctest: +NORMALIZE_WHITESPACE
    ['Date: D', 'From: a@b', 'Subject: [r] S', 'X-Mailer: Keepalived',
     'To: c@d, e@f', '', 'B', '', '.', '']
    """
    head = (f"Date: {date}\r\nFrom: {_one_line(mail.sender)}\r\n"
            f"Subject: {_one_line(mail.subject)}\r\nX-Mailer: Keepalived\r\n"
            f"To: {_one_line(', '.join(mail.recipients))}\r\n\r\n")
    body = mail.body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    # RFC 5321 §4.5.2: a line that starts with a dot gets another.
    stuffed = "\r\n".join("." + line if line.startswith(".") else line for line in body)
    return (head + stuffed + "\r\n\r\n.\r\n").encode("utf-8", "replace")


def parse_reply(buf: bytes) -> tuple[int | None, int]:
    """Find the first complete reply in ``buf``: ``(code, bytes used)``; ``(None, 0)``
    while it is incomplete.  RFC 5321 §4.2.1: lines ``NNN-text`` continue a reply,
    ``NNN text`` (or a bare ``NNN``) ends it; keepalived reads the code of the last
    line.  A last line that does not start with three digits is code -1.

    >>> parse_reply(b"250-mx\\r\\n250-SIZE 1\\r\\n250 OK\\r\\nleft")
    (250, 28)
    >>> parse_reply(b"250-mx\\r\\n250 O")
    (None, 0)
    >>> parse_reply(b"hello\\r\\n")
    (-1, 7)
    """
    pos = 0
    while True:
        end = buf.find(b"\n", pos)
        if end < 0:
            return None, 0
        line = buf[pos:end].rstrip(b"\r")
        pos = end + 1
        if len(line) > 3 and line[3:4] == b"-":
            continue
        head = line[:3]
        if len(head) == 3 and head.isdigit() and (len(line) == 3 or line[3:4] == b" "):
            return int(head), pos
        return -1, pos


# The dialogue's steps, in order: what we sent last -> the code that lets us go on.
_EXPECTED: dict[str, int] = {
    "greeting": 220, "helo": 250, "mail": 250, "rcpt": 250, "data": 354, "body": 250,
    "quit": 221,
}


class Dialogue:
    """One alert's SMTP client exchange, sans I/O.

    Feed :meth:`receive` what the server sent; it returns the bytes to send next
    (``b""`` when nothing is due).  When :attr:`done` is set, close the connection:
    :attr:`sent` says whether the server accepted the message, :attr:`failure` is
    the stable reason when it did not (``refused:<step>:<code>``, ``garbage``,
    ``overflow``); a server that stops talking is the shell's ``timeout`` or
    ``closed``.  keepalived quits after any unexpected code and never retries.
    """

    def __init__(self, mail: Mail, helo: str, date: str | None = None) -> None:
        self.mail = mail
        self.helo = _one_line(helo)
        self.date = date
        self.step = "greeting"
        self._rcpt = 0
        self._buf = b""
        self.sent = False
        self.failure = ""
        self.done = False

    def receive(self, data: bytes) -> bytes:
        out = bytearray()
        self._buf += data
        while not self.done:
            code, used = parse_reply(self._buf)
            if code is None:
                if len(self._buf) >= REPLY_MAX:
                    self._buf = b""
                    out += self._fail("overflow")
                break
            self._buf = self._buf[used:]
            out += self._on_reply(code)
        return bytes(out)

    def _fail(self, reason: str) -> bytes:
        self.failure = self.failure or reason
        if self.step == "quit":
            self.done = True
            return b""
        self.step = "quit"
        return b"QUIT\r\n"

    def _on_reply(self, code: int) -> bytes:
        step = self.step
        if code == -1:
            return self._fail("garbage")
        if code != _EXPECTED[step]:
            if step == "quit":  # the alert went through or failed already
                self.done = True
                return b""
            return self._fail(f"refused:{step}:{code}")
        if step == "greeting":
            self.step = "helo"
            return f"HELO {self.helo}\r\n".encode()
        if step == "helo":
            self.step = "mail"
            return f"MAIL FROM:{envelope_address(self.mail.sender)}\r\n".encode()
        if step in ("mail", "rcpt"):
            if step == "rcpt":
                self._rcpt += 1
            if self._rcpt < len(self.mail.recipients):
                self.step = "rcpt"
                addr = envelope_address(self.mail.recipients[self._rcpt])
                return f"RCPT TO:{addr}\r\n".encode()
            self.step = "data"
            return b"DATA\r\n"
        if step == "data":
            self.step = "body"
            return message(self.mail, self.date or rfc822_date())
        if step == "body":
            self.sent = True
            self.step = "quit"
            return b"QUIT\r\n"
        self.done = True  # "quit"
        return b""
