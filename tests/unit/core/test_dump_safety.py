"""The dump writers against planted names (issue 12 item 4, the class of keepalived's
CVE-2018-19044): no write through a symlink, refused directories, 0644 files.

Unprivileged except the foreign-owner case, which needs root to chown.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from hafast.status import dump
from tests.conftest import require_root

VICTIM_TEXT = "root:precious:0:0\n"
STATUS = {"vrrp": [], "pools": None, "workers": [],
          "checkers": [{"shard": 0, "shards": 1, "checks": 2, "real_servers": 2,
                        "up": 1, "down": 1, "counters": {"tcp_ok": 5}}]}


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    d = tmp_path / "etc"
    d.mkdir()
    v = d / "passwd"
    v.write_text(VICTIM_TEXT)
    return v


def dump_dir(tmp_path: Path, mode: int) -> Path:
    d = tmp_path / "dumps"
    d.mkdir()
    d.chmod(mode)  # explicit: mkdir's mode goes through the umask
    return d


def test_planted_symlinks_are_replaced_not_written_through(tmp_path: Path, victim: Path
                                                           ) -> None:
    d = dump_dir(tmp_path, 0o755)
    final = d / "keepalived.stats"
    old_tmp = d / f"keepalived.stats.{os.getpid()}.tmp"  # the old predictable name
    old_tmp.symlink_to(victim)
    final.symlink_to(victim)

    dump.write_stats(str(final), STATUS)

    assert victim.read_text() == VICTIM_TEXT
    assert stat.S_ISREG(os.lstat(final).st_mode)
    assert final.read_text() == dump.stats_text(STATUS)
    assert "Check worker shard 0/1:" in final.read_text()
    # nothing else appeared beside it (no temporary left over)
    assert sorted(os.listdir(d)) == sorted([final.name, old_tmp.name])


def test_json_writes_both_files_safely(tmp_path: Path, victim: Path) -> None:
    d = dump_dir(tmp_path, 0o755)
    final = d / "keepalived.json"
    check = d / "keepalived_check.json"
    final.symlink_to(victim)
    check.symlink_to(victim)

    dump.write_json(str(final), STATUS)

    assert victim.read_text() == VICTIM_TEXT
    assert json.loads(final.read_text()) == []
    assert json.loads(check.read_text())["checkers"] == STATUS["checkers"]
    assert not final.is_symlink() and not check.is_symlink()


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o757], ids=oct)
def test_directory_writable_by_others_without_sticky_is_refused(
        tmp_path: Path, victim: Path, mode: int) -> None:
    d = dump_dir(tmp_path, mode)
    final = d / "keepalived.stats"
    final.symlink_to(victim)

    with pytest.raises(dump.UnsafeDumpPath) as err:
        dump.write_stats(str(final), STATUS)

    assert isinstance(err.value, PermissionError)  # an OSError: the parent logs it
    assert str(err.value) == (f"refusing to write {final}: directory {d} is writable "
                              f"by others and not sticky")
    assert victim.read_text() == VICTIM_TEXT
    assert os.listdir(d) == [final.name]  # nothing written, nothing left over


def test_sticky_world_writable_directory_is_accepted(tmp_path: Path, victim: Path) -> None:
    d = dump_dir(tmp_path, 0o1777)
    final = d / "keepalived.data"
    final.symlink_to(victim)

    dump.write_data(str(final), {"pid": 1, "workers": []})

    assert victim.read_text() == VICTIM_TEXT
    assert final.read_text().startswith("------< hafast data >------\n")


def test_tmp_itself_is_accepted() -> None:
    st = os.stat("/tmp")
    if st.st_uid != 0 or stat.S_IMODE(st.st_mode) != 0o1777:
        pytest.skip("this machine's /tmp is not root's 1777")
    name = f"/tmp/hafast-dump-safety-{os.getpid()}.stats"
    assert not os.path.lexists(name)
    assert dump._check_target(name) == "/tmp"


def test_directory_owned_by_another_user_is_refused(tmp_path: Path, victim: Path) -> None:
    require_root()
    d = dump_dir(tmp_path, 0o755)
    os.chown(d, 65534, 65534)
    final = d / "keepalived.stats"

    with pytest.raises(dump.UnsafeDumpPath, match=f"directory {d} is owned by uid 65534"):
        dump.write_stats(str(final), STATUS)

    assert os.listdir(d) == []
    assert victim.read_text() == VICTIM_TEXT


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_final_name_that_is_not_a_file_is_refused(tmp_path: Path, kind: str) -> None:
    d = dump_dir(tmp_path, 0o755)
    final = d / "keepalived.stats"
    if kind == "directory":
        final.mkdir()
    else:
        os.mkfifo(final)

    with pytest.raises(dump.UnsafeDumpPath, match="exists and is not a regular file"):
        dump.write_stats(str(final), STATUS)

    assert os.listdir(d) == [final.name]
    assert final.is_dir() if kind == "directory" else final.is_fifo()


@pytest.mark.parametrize("umask", [0o077, 0o022, 0o000], ids=oct)
def test_file_mode_is_0644_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    d = dump_dir(tmp_path, 0o755)
    final = d / "keepalived.stats"
    old = os.umask(umask)
    try:
        dump.write_stats(str(final), STATUS)
        mode_new = stat.S_IMODE(os.stat(final).st_mode)
        final.chmod(0o600)  # an existing file is replaced, not chmodded in place
        dump.write_stats(str(final), STATUS)
    finally:
        os.umask(old)
    assert mode_new == 0o644
    assert stat.S_IMODE(os.stat(final).st_mode) == 0o644


def test_failed_write_leaves_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    d = dump_dir(tmp_path, 0o755)

    def boom(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dump.os, "replace", boom)
    with pytest.raises(OSError, match="No space left"):
        dump.write_stats(str(d / "keepalived.stats"), STATUS)
    assert os.listdir(d) == []
