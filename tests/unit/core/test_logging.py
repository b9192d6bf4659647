"""Idents, facilities and per-process log files as keepalived names them."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

import pytest

from hafast.lib import logging as hlog


@pytest.mark.parametrize(("text", "facility"), [
    ("0", logging.handlers.SysLogHandler.LOG_LOCAL0),
    ("7", logging.handlers.SysLogHandler.LOG_LOCAL7),
    ("local4", logging.handlers.SysLogHandler.LOG_LOCAL4),
    ("LOG_DAEMON", logging.handlers.SysLogHandler.LOG_DAEMON),
    ("user", logging.handlers.SysLogHandler.LOG_USER),
])
def test_facility(text: str, facility: int) -> None:
    assert hlog.facility_of(text) == facility


@pytest.mark.parametrize("text", ["8", "local8", "kern", ""])
def test_bad_facility(text: str) -> None:
    with pytest.raises(ValueError):
        hlog.facility_of(text)


@pytest.mark.parametrize(("path", "role", "want"), [
    ("/var/log/hafast.log", "parent", "/var/log/hafast.log"),
    ("/var/log/hafast.log", "vrrp", "/var/log/hafast_vrrp.log"),
    ("/var/log/hafast.log", "check", "/var/log/hafast_healthcheckers.log"),
    ("/var/log/hafast", "vrrp", "/var/log/hafast_vrrp"),
    ("/var/log/.hidden", "vrrp", "/var/log/.hidden_vrrp"),
])
def test_per_process_file(path: str, role: str, want: str) -> None:
    assert hlog.per_process_file(path, role) == want


def test_setup_file_and_console(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        opts = hlog.LogOptions(console=True, detail=True, file=str(tmp_path / "h.log"),
                               syslog=False)
        handlers = hlog.setup(opts, "vrrp")
        assert len(handlers) == 2
        assert root.level == logging.DEBUG
        logging.getLogger("hafast.vrrp").info("VI_1: entering MASTER state")
        for h in handlers:
            h.flush()
        text = (tmp_path / "h_vrrp.log").read_text()
        assert "hafast_vrrp[" in text and "entering MASTER" in text
        assert "hafast_vrrp[" in capsys.readouterr().err
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
            h.close()
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])


def test_missing_syslog_falls_back_to_console(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(hlog, "SYSLOG_SOCKET", "/nonexistent/dev-log")
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        handlers = hlog.setup(hlog.LogOptions(), "check")
        assert [type(h) for h in handlers] == [logging.StreamHandler]
        assert "syslog unavailable" in capsys.readouterr().err
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
            h.close()
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
