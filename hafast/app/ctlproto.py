"""The control socket's client side: where the socket is, and one request/reply.

Kept apart from :mod:`hafast.app.control` (the asyncio server) so that
``hafast status`` imports nothing but ``_json`` and ``_socket``: at 10,000 real
servers the client's imports (asyncio, the command line, the dumps: 130-240 ms on a
loaded host) cost more than the daemon's whole answer (issue 16).

Example::

    reply = query(default_socket(None), "status", down=True)
"""

from __future__ import annotations

from hafast.app import ctljson

try:
    # the C module alone: socket.py's enum classes and its selectors import were
    # ~10 ms of every `hafast status` start (issue 16); its socket type has all
    # this client calls
    import _socket as _sock
except ImportError:  # pragma: no cover - an interpreter without it
    import socket as _sock  # type: ignore[no-redef]

TYPE_CHECKING = False  # typing itself is ~3 ms of `hafast status`'s start
if TYPE_CHECKING:
    from typing import Any

# the daemon's default (hafast.app.cmdline.Options.control_path; a unit test keeps
# the two in step, importing cmdline here would cost the client its start-up)
RUN_DIR = "/run"


def default_socket(namespace: str | None) -> str:
    """The control socket of a daemon started with ``-s NAMESPACE`` (or without).

    >>> default_socket(None), default_socket("blue")
    ('/run/hafast.ctl', '/run/hafast_blue.ctl')
    """
    tail = f"_{namespace}" if namespace else ""
    return f"{RUN_DIR}/hafast{tail}.ctl"


def query_raw(path: str, request: dict[str, Any], timeout: float = 10.0) -> bytes:
    """Send ``request`` to the daemon on ``path``; its reply, undecoded (one JSON
    document).  Raises OSError when nobody answers."""
    s = _sock.socket(_sock.AF_UNIX, _sock.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(ctljson.dumps(request).encode() + b"\n")
        chunks = []
        while True:
            chunk = s.recv(1 << 18)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        s.close()
    return b"".join(chunks)


def query(path: str, cmd: str = "status", timeout: float = 10.0, **extra: Any) -> dict[str, Any]:
    """Ask the daemon listening on ``path``; raises OSError when nobody answers."""
    reply: dict[str, Any] = ctljson.loads(query_raw(path, {"cmd": cmd, **extra}, timeout) or b"{}")
    return reply
