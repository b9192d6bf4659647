"""keepalived's email alerts, the pure part: texts, the message, the reply parser and
the SMTP dialogue (hafast.lib.smtp_alert)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hafast.lib.smtp_alert import (
    REPLY_MAX,
    SUBJECT_MAX,
    Alert,
    Dialogue,
    Mail,
    checker_alert,
    checker_body,
    group_alert,
    instance_alert,
    message,
    parse_reply,
)

DATE = "Sun, 06 Dec 2026 07:43:12 +0000"


def mail(*to: str) -> Mail:
    return Mail("keepalived@lb1", to or ("ops@example.com",), "lb1",
                instance_alert("VI_1", "MASTER"))  # type: ignore[arg-type]


def run(d: Dialogue, replies: list[bytes]) -> list[bytes]:
    """The client's lines, the server answering with ``replies`` in turn."""
    sent = []
    for r in replies:
        out = d.receive(r)
        if out:
            sent.append(out)
        if d.done:
            break
    return sent


def test_keepalived_words() -> None:
    # keepalived 2.2.7 vrrp_notify.c and ipwrapper.c, word for word
    a = instance_alert("VI_1", "BACKUP")
    assert a == Alert("VRRP Instance VI_1 - Entering BACKUP state",
                      "=> VRRP Instance is no longer owning VRRP VIPs <=")
    assert instance_alert("VI_1", "STOP") == Alert("VRRP Instance VI_1 - Stopping",
                                                   "=> VRRP Instance stopping <=")
    assert group_alert("G", "FAULT") == Alert(
        "VRRP Group G - Entering FAULT state",
        "=> All VRRP group instances are now in FAULT state <=")
    assert instance_alert("VI_1", "INIT") is None
    assert group_alert("G", "DELETED") is None
    assert checker_body("TCP_CHECK", True) == "=> TCP CHECK succeed on service <="
    assert checker_body("HTTP_GET", False) == (
        "=> CHECK failed on service : HTTP request failed <=")
    assert checker_body("FILE_CHECK", False) is None
    assert checker_alert("[10.0.0.2]:tcp:80", "[10.0.0.1]:tcp:80", False, "b").subject == (
        "Realserver [10.0.0.2]:tcp:80 of virtual server [10.0.0.1]:tcp:80 - DOWN")


def test_message_headers_and_caps() -> None:
    m = Mail("a@b", ("c@d", "e@f"), "r" * 300, Alert("s", "." + "x" * 600))
    text = message(m, DATE).decode()
    head, _, rest = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    assert [h.split(":")[0] for h in lines] == ["Date", "From", "Subject", "X-Mailer", "To"]
    assert lines[2] == "Subject: " + ("[" + "r" * 300)[:SUBJECT_MAX]
    assert lines[4] == "To: c@d, e@f"
    # the body is capped at 511 characters, then dot-stuffed (it starts with a dot)
    assert rest == "." + ("." + "x" * 600)[:511] + "\r\n\r\n.\r\n"


def test_dialogue_happy_path() -> None:
    d = Dialogue(mail("a@x", "b@x"), "lb1", DATE)
    sent = run(d, [b"220 mx ESMTP\r\n", b"250 hi\r\n", b"250 ok\r\n", b"250 ok\r\n",
                   b"250 ok\r\n", b"354 go\r\n", b"250 queued\r\n", b"221 bye\r\n"])
    assert sent[:5] == [b"HELO lb1\r\n", b"MAIL FROM:<keepalived@lb1>\r\n",
                        b"RCPT TO:<a@x>\r\n", b"RCPT TO:<b@x>\r\n", b"DATA\r\n"]
    assert sent[5].endswith(b"\r\n.\r\n") and b"X-Mailer: Keepalived" in sent[5]
    assert sent[6] == b"QUIT\r\n"
    assert d.done and d.sent and not d.failure


def test_dialogue_multiline_and_split_replies() -> None:
    d = Dialogue(mail(), "h", DATE)
    # the greeting in three pieces, HELO's reply multi-line
    assert d.receive(b"22") == b""
    assert d.receive(b"0 mx\r") == b""
    assert d.receive(b"\n") == b"HELO h\r\n"
    assert d.receive(b"250-mx\r\n250-PIPELINING\r\n250 8BITMIME\r\n").startswith(b"MAIL")


def test_dialogue_refusal_quits() -> None:
    d = Dialogue(mail(), "h", DATE)
    sent = run(d, [b"220 mx\r\n", b"250 hi\r\n", b"250 ok\r\n", b"550 no such user\r\n",
                   b"221 bye\r\n"])
    assert sent[-1] == b"QUIT\r\n"
    assert d.done and not d.sent and d.failure == "refused:rcpt:550"


def test_dialogue_garbage_and_overflow() -> None:
    d = Dialogue(mail(), "h", DATE)
    assert d.receive(b"hello there\r\n") == b"QUIT\r\n"
    assert d.failure == "garbage"
    d = Dialogue(mail(), "h", DATE)
    assert d.receive(b"2" * REPLY_MAX) == b"QUIT\r\n"
    assert d.failure == "overflow"
    assert d.receive(b"9" * REPLY_MAX) == b""  # after QUIT: give up, no second QUIT
    assert d.done


@given(st.lists(st.binary(max_size=40), max_size=30))
def test_dialogue_never_raises_and_ends(chunks: list[bytes]) -> None:
    """Whatever a server sends, the dialogue neither raises nor sends after QUIT."""
    d = Dialogue(mail(), "h", DATE)
    quits = 0
    for c in chunks:
        out = d.receive(c)
        quits += out.count(b"QUIT\r\n")
        assert quits <= 1
        if d.done:
            break
    assert not (d.sent and d.failure)


@st.composite
def replies(draw: st.DrawFn) -> tuple[int, bytes]:
    code = draw(st.integers(100, 599))
    texts = draw(st.lists(st.text(st.characters(codec="ascii", blacklist_characters="\r\n"),
                                  max_size=20), min_size=1, max_size=4))
    lines = [f"{code}-{t}" for t in texts[:-1]] + [f"{code} {texts[-1]}"]
    return code, ("\r\n".join(lines) + "\r\n").encode()


@given(replies(), st.binary(max_size=20), st.data())
def test_parse_reply_any_split(reply: tuple[int, bytes], tail: bytes,
                               data: st.DataObject) -> None:
    """RFC 5321 §4.2.1 replies, multi-line or not, found whole, with the bytes used,
    and never before the last line arrived."""
    code, raw = reply
    assert parse_reply(raw + tail) == (code, len(raw))
    cut = data.draw(st.integers(0, len(raw) - 1))
    assert parse_reply(raw[:cut]) == (None, 0)
