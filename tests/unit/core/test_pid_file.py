"""Pid files as keepalived writes them (``pidfile.c``): 0644 whatever the umask the
daemon was started with, and never through a symlink (issue 17)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from hafast.app.process import write_pid_file


@pytest.fixture
def umask_0() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_0644_under_a_umask_of_0(tmp_path: Path, umask_0: None) -> None:
    path = tmp_path / "run" / "hafast.pid"
    write_pid_file(str(path), 1234)
    assert path.read_text() == "1234\n"
    assert mode(path) == 0o644


def test_a_stale_file_writable_by_all_is_made_0644(tmp_path: Path, umask_0: None) -> None:
    path = tmp_path / "hafast.pid"
    path.write_text("99999999\n")
    path.chmod(0o666)
    write_pid_file(str(path), 42)
    assert (path.read_text(), mode(path)) == ("42\n", 0o644)


def test_a_stricter_umask_is_kept(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        write_pid_file(str(tmp_path / "hafast.pid"), 7)
    finally:
        os.umask(old)
    assert mode(tmp_path / "hafast.pid") == 0o600


def test_a_symlink_is_not_followed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    target = tmp_path / "precious"
    target.write_text("keep me\n")
    link = tmp_path / "hafast.pid"
    link.symlink_to(target)
    write_pid_file(str(link), 1)
    assert target.read_text() == "keep me\n"
    assert "cannot write pid file" in caplog.text
