"""Ask bgpd directly on its vty socket, as vtysh does, without starting vtysh.

The announcement's status (hafast.fleet.sessions, every few seconds) and the
announce latency probe (hafast.fleet.latency, several reads per change) only ever
ask bgpd ``show ...`` commands.  Starting ``vtysh`` for each read cost 35 ms of wall
time on a host, and about a second of CPU in the emulated IPVS VM, where three
directors polling every 5 s took most of the guest's one CPU and starved their own
check workers.  bgpd answers the same question on its unix socket in under a
millisecond (FRR 8.4.4, measured with ``show bgp neighbors json``).

The socket is ``bgpd.vty`` in FRR's run folder for the pathspace
(:func:`hafast.fleet.frrlife.run_dir`, FRR's ``-N PATHSPACE``), the one vtysh itself
connects to.  Its protocol, as FRR's vtysh speaks it: each command is
sent as text ended by one NUL byte; bgpd answers with the command's output followed by
three NUL bytes and one status byte (FRR's ``CMD_SUCCESS`` is 0; a command it does
not know is ``CMD_ERR_NO_MATCH``, 2).  One connection carries the commands one after
the other.

A read that does not finish within its timeout (a bgpd that is stuck) fails; the
loop never waits on it (nothing here blocks).

Example (a fake bgpd that answers every command the same way)::

    >>> split_answer(b'{"a": 1}\\n\\x00\\x00\\x00\\x00')
    ('{"a": 1}\\n', 0)
    >>> split_answer(b'% Unknown command\\n\\x00\\x00\\x00\\x02')
    ('% Unknown command\\n', 2)
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from hafast.config import model as m
from hafast.fleet.frrlife import run_dir

END_MARK = b"\x00\x00\x00"  # then one status byte
CMD_SUCCESS = 0
MAX_ANSWER = 64 << 20  # bytes; a bgpd answering more is not answering our question
# FRR's lib/command.h return codes, for the error a failed command reports
CMD_NAMES = {1: "warning", 2: "unknown command", 3: "ambiguous command",
             4: "incomplete command", 5: "exceeds the command's arguments"}


def socket_path(speaker: m.BgpSpeaker) -> Path:
    """The bgpd vty socket of the speaker's FRR (its ``frr_pathspace``, if any)."""
    return Path(run_dir(speaker)) / "bgpd.vty"


def split_answer(data: bytes) -> tuple[str, int]:
    """A whole answer (ending in :data:`END_MARK` and the status byte) -> its text
    and its status."""
    return data[:-4].decode(errors="replace"), data[-1]


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               command: str) -> str:
    writer.write(command.encode() + b"\x00")
    await writer.drain()
    got = bytearray()
    while True:
        chunk = await reader.read(1 << 16)
        if not chunk:
            raise OSError(f"bgpd closed its vty during {command!r}")
        got += chunk
        # the mark is the last 4 bytes; a JSON or text body holds no NUL
        if len(got) >= 4 and got[-4:-1] == END_MARK:
            break
        if len(got) > MAX_ANSWER:
            raise OSError(f"bgpd's answer to {command!r} passed {MAX_ANSWER} bytes")
    text, status = split_answer(bytes(got))
    if status != CMD_SUCCESS:
        what = CMD_NAMES.get(status, f"status {status}")
        raise OSError(f"bgpd: {what} for {command!r}: {text.strip()[:200]}")
    return text


async def _ask(path: Path, commands: list[str]) -> list[str]:
    try:
        reader, writer = await asyncio.open_unix_connection(str(path))
    except OSError as exc:
        raise OSError(f"cannot reach bgpd at {path}: {exc.strerror or exc}") from None
    try:
        return [await _one(reader, writer, c) for c in commands]
    finally:
        writer.close()


async def ask(path: Path, commands: list[str], timeout: float) -> list[str]:
    """Each command's answer from the bgpd listening on ``path``, in order.  Raises
    OSError when bgpd cannot be reached, a command fails, or the whole exchange takes
    over ``timeout`` seconds."""
    try:
        return await asyncio.wait_for(_ask(path, commands), timeout)
    except TimeoutError:
        raise OSError(f"bgpd at {path} gave no answer in {timeout:g} s") from None
