"""bgpd's vty socket (hafast.fleet.bgpdvty) against a fake bgpd on a unix socket that
speaks vtysh's protocol: a command ends in NUL, an answer in three NULs and a status
byte.  The real bgpd answers it in tests/netns/test_fleet_bgp.py (status and latency
read through it)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hafast.fleet import bgpdvty

Handler = Callable[[str], bytes | None]  # a command -> the bytes sent back (None: hang up)


def answer(text: str, status: int = 0) -> bytes:
    return text.encode() + b"\x00\x00\x00" + bytes([status])


async def serve(path: Path, handler: Handler, chunk: int = 1 << 16) -> asyncio.Server:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                command = await reader.readuntil(b"\x00")
                out = handler(command[:-1].decode())
                if out is None:
                    break
                for at in range(0, len(out), chunk):  # as bgpd's buffer flushes
                    writer.write(out[at:at + chunk])
                    await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()
    return await asyncio.start_unix_server(client, str(path))


def ask(path: Path, handler: Handler, commands: list[str], timeout: float = 5.0,
        chunk: int = 1 << 16) -> list[str]:
    async def go() -> list[str]:
        server = await serve(path, handler, chunk)
        try:
            return await bgpdvty.ask(path, commands, timeout)
        finally:
            server.close()
    return asyncio.run(go())


def test_commands_go_one_after_the_other_on_one_connection(tmp_path: Path) -> None:
    seen: list[str] = []

    def bgpd(command: str) -> bytes:
        seen.append(command)
        return answer(f'{{"cmd": "{command}"}}\n')
    got = ask(tmp_path / "bgpd.vty", bgpd, ["show bgp neighbors json", "show version"])
    assert got == ['{"cmd": "show bgp neighbors json"}\n', '{"cmd": "show version"}\n']
    assert seen == ["show bgp neighbors json", "show version"]


def test_an_answer_in_small_pieces_is_put_together(tmp_path: Path) -> None:
    body = "{" + ",".join(f'"{i}": {i}' for i in range(500)) + "}\n"
    assert ask(tmp_path / "b.vty", lambda c: answer(body), ["x", "y"], chunk=7) == [body] * 2


def test_an_empty_answer_is_an_answer(tmp_path: Path) -> None:
    assert ask(tmp_path / "b.vty", lambda c: answer(""), ["x"]) == [""]


@pytest.mark.parametrize(("status", "what"), [(2, "unknown command"), (1, "warning"),
                                              (9, "status 9")])
def test_a_failed_command_is_an_error_with_bgpds_words(tmp_path: Path, status: int,
                                                       what: str) -> None:
    def bgpd(command: str) -> bytes:
        return answer(f"% [BGP] Unknown command: {command}\n", status)
    with pytest.raises(OSError, match=f"bgpd: {what} for 'show nothing': % \\[BGP\\] Unknown"):
        ask(tmp_path / "b.vty", bgpd, ["show nothing"])


def test_a_bgpd_that_hangs_up_mid_answer_fails_the_read(tmp_path: Path) -> None:
    replies = iter([answer("{}"), None])
    with pytest.raises(OSError, match="bgpd closed its vty during 'second'"):
        ask(tmp_path / "b.vty", lambda c: next(replies), ["first", "second"])


def test_a_bgpd_that_does_not_answer_fails_the_read_in_time(tmp_path: Path) -> None:
    with pytest.raises(OSError, match=r"gave no answer in 0\.2 s"):
        ask(tmp_path / "b.vty", lambda c: b"{", ["x"], timeout=0.2)


def test_no_bgpd_names_the_socket(tmp_path: Path) -> None:
    path = tmp_path / "d1" / "bgpd.vty"
    with pytest.raises(OSError, match=f"cannot reach bgpd at {path}: No such file"):
        asyncio.run(bgpdvty.ask(path, ["x"], 1.0))


@given(st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
               max_size=300), st.integers(0, 255))
def test_split_answer_reads_back_what_was_framed(text: str, status: int) -> None:
    assert bgpdvty.split_answer(answer(text, status)) == (text, status)
