"""The real-server farm: thousands of HTTP servers in a namespace, one nginx.

Topology (nothing is created in the host namespace)::

    director ns "<name>-dir"                 server ns "<name>-srv"
      srv0 10.200.0.2/24  ---- veth ----  d0 10.200.0.1/24   (or d0 -> bridge lab0)
      route 10.201.0.1-N via 10.200.0.1     local route 10.201.0.1-N dev lo
                                            nginx on 0.0.0.0:80 (+ fault ports)
                                            nft table hafast_lab (faults)

Why one local route and not N addresses: adding /32 addresses one at a time costs
the kernel quadratically (4,096 took 0.5 s, 16,384 about 16 s), while ``ip route
add local <range> dev lo`` makes every address of the range local at once, and an
nginx listening on 0.0.0.0 answers on all of them, ``$server_addr`` naming the one
the client dialled. The range is covered exactly (by the few CIDR blocks that sum
to it), so the address after the last server does not answer.

Every real server answers ``GET /`` with ``rs <its address>\\n`` (so each body's MD5
differs), ``GET /fixed`` with :data:`FIXED_BODY` (the same everywhere, for digest
checks) and ``GET /big`` with :data:`BIG_SIZE` deterministic bytes (a body that
arrives in many chunks).

Example::

    with Farm(1000) as farm:
        reply = farm.fetch(farm.addresses[0])        # from the director namespace
        assert reply.body == body_for(farm.addresses[0])
        farm.faults.apply(farm.addresses[:3], "http500")
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hafast.lab.faults import FAULT_PORTS, SERVICE_PORT, TLS_FAULT_PORTS, TLS_PORT, Faults
from hafast.lab.netns import (
    NetnsError,
    Registry,
    call_in,
    delete_netns,
    pid_alive,
    socket_in,
    stop_pid,
)

NGINX = "/usr/sbin/nginx"
LAB_ROOT = Path("/run/hafast-lab")
FIXED_PATH = "/fixed"
FIXED_BODY = b"hafast lab fixed body\n"
BIG_PATH = "/big"
BIG_SIZE = 256 * 1024
CHANGED_SUFFIX = b" changed"  # what the "body" fault puts into every body


def body_for(addr: str) -> bytes:
    """The body real server ``addr`` returns for ``GET /``.

    Example: ``body_for("10.201.0.1") == b"rs 10.201.0.1\\n"``
    """
    return f"rs {addr}\n".encode()


def changed_body_for(addr: str) -> bytes:
    """The body ``addr`` returns for ``GET /`` while it has the "body" fault."""
    return f"rs {addr}".encode() + CHANGED_SUFFIX + b"\n"


def big_body() -> bytes:
    """The :data:`BIG_PATH` body: ``BIG_SIZE`` bytes of a repeating counter."""
    block = b"".join(b"%07d\n" % i for i in range(BIG_SIZE // 8 + 1))
    return block[:BIG_SIZE]


def md5_hex(body: bytes) -> str:
    """keepalived's ``digest`` for a body (what genhash prints)."""
    return hashlib.md5(body).hexdigest()


def server_range(network: str, offset: int, count: int) -> list[str]:
    """The ``count`` addresses of ``network`` from ``offset`` on.

    Example: ``server_range("10.201.0.0/16", 1, 3) == ["10.201.0.1", "10.201.0.2",
    "10.201.0.3"]``
    """
    net = ipaddress.IPv4Network(network)
    first = int(net.network_address) + offset
    if offset < 0 or count < 1 or offset + count > net.num_addresses:
        raise ValueError(
            f"{count} servers from offset {offset} do not fit in {network} "
            f"({net.num_addresses} addresses)"
        )
    return [str(ipaddress.IPv4Address(first + i)) for i in range(count)]


def range_blocks(first: str, last: str) -> list[str]:
    """The fewest CIDR blocks covering exactly ``first``..``last`` (inclusive)."""
    return [
        str(b)
        for b in ipaddress.summarize_address_range(
            ipaddress.IPv4Address(first), ipaddress.IPv4Address(last)
        )
    ]


def nginx_config(
    lab: Path, *, workers: int, port: int, slow_rate: int, access_log: bool,
    tls_port: int | None = None,
) -> str:
    """nginx.conf for the farm: everything (pid, logs, temp, cert) inside ``lab``."""
    tmp = lab / "tmp"

    def listen(plain: int, tls: int, extra: str = "") -> str:
        lines = f"listen {plain}{extra} backlog=8192;"
        if tls_port is not None:
            lines += f"\n    listen {tls} ssl{extra} backlog=8192;"
        return lines

    certs = (
        f"ssl_certificate {lab}/tls.crt;\n  ssl_certificate_key {lab}/tls.key;"
        if tls_port is not None else ""
    )
    fixed = FIXED_BODY.decode().strip()
    changed = CHANGED_SUFFIX.decode()
    log = f"access_log {lab}/access.log;" if access_log else "access_log off;"
    # Fault servers listen on all addresses, so a DNAT to <same address>:<port>
    # keeps $server_addr (see faults.py). The slow one trickles the *normal* body:
    # only its timing is wrong.
    return f"""\
# hafast lab nginx: generated, do not edit (rebuilt by every `up`)
daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile 65536;
pid {lab}/nginx.pid;
error_log {lab}/error.log warn;
events {{ worker_connections 16384; multi_accept on; }}
http {{
  {log}
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  default_type text/plain;
  server_tokens off;
  keepalive_timeout 10s;
  root {lab}/www;
  {certs}
  server {{
    {listen(port, tls_port or 0, " default_server")}
    location = {FIXED_PATH} {{ return 200 "{fixed}\\n"; }}
    location = {BIG_PATH} {{ try_files /big.bin =404; }}
    location / {{ return 200 "rs $server_addr\\n"; }}
  }}
  server {{
    {listen(FAULT_PORTS["http500"], TLS_FAULT_PORTS["http500"])}
    location / {{ return 500 "fault http500 $server_addr\\n"; }}
  }}
  server {{
    {listen(FAULT_PORTS["body"], TLS_FAULT_PORTS["body"])}
    location = {FIXED_PATH} {{ return 200 "{fixed}{changed}\\n"; }}
    location = {BIG_PATH} {{ return 200 "big{changed}\\n"; }}
    location / {{ return 200 "rs $server_addr{changed}\\n"; }}
  }}
  server {{
    {listen(FAULT_PORTS["slow"], TLS_FAULT_PORTS["slow"])}
    limit_rate {slow_rate};
    location = {FIXED_PATH} {{ return 200 "{fixed}\\n"; }}
    location = {BIG_PATH} {{ try_files /big.bin =404; }}
    location / {{ return 200 "rs $server_addr\\n"; }}
  }}
}}
"""


@dataclass
class HttpReply:
    """What :func:`http_get` saw: ``status`` 0 and ``error`` set when it got no reply."""

    addr: str
    status: int = 0
    body: bytes = b""
    error: str | None = None
    seconds: float = 0.0


def _unverified() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # The lab's certificate is self-signed and names no server address.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


_UNVERIFIED = _unverified()

# errno -> the short reason a fetch reports (what a checker would log)
_ERRORS = {
    errno.ECONNREFUSED: "refused",
    errno.ECONNRESET: "reset",
    errno.EHOSTUNREACH: "unreachable",
    errno.ENETUNREACH: "unreachable",
}


def http_get(
    addr: str, path: str = "/", *, port: int = SERVICE_PORT, timeout: float = 2.0,
    sock: socket.socket | None = None, tls: bool = False,
) -> HttpReply:
    """A tiny HTTP/1.0 GET; never raises for network errors (see ``HttpReply.error``).

    ``tls`` speaks HTTPS without verifying the lab's self-signed certificate.

    Run it inside a namespace with :func:`~hafast.lab.netns.call_in`, or pass a
    socket made there by :func:`~hafast.lab.netns.socket_in`.
    """
    reply = HttpReply(addr)
    start = time.monotonic()
    s = sock or socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect((addr, port))
        if tls:
            s = _UNVERIFIED.wrap_socket(s, server_hostname=None)
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n".encode())
        chunks = []
        while True:
            left = timeout - (time.monotonic() - start)
            if left <= 0:
                raise TimeoutError
            s.settimeout(left)
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
        raw = b"".join(chunks)
        head, _, reply.body = raw.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].split()
        reply.status = int(status_line[1]) if len(status_line) > 1 else 0
        if not reply.status:
            reply.error = "bad-reply"
    except TimeoutError:
        reply.error = "timeout"
    except ssl.SSLError as exc:
        reply.error = f"tls-{exc.reason or 'error'}"
    except OSError as exc:
        reply.error = _ERRORS.get(exc.errno or 0, f"errno-{exc.errno}")
    finally:
        s.close()
        reply.seconds = time.monotonic() - start
    return reply


@dataclass
class Director:
    """A namespace joined to the farm: its name, link device and link address."""

    ns: str
    dev: str
    address: str
    owned: bool = True  # made by the farm (deleted at teardown), or lent by the caller


@dataclass
class Farm:
    """N real servers behind one nginx in a namespace, with faults on command.

    Build with ``with Farm(...) as farm:`` or ``farm.build()``/``farm.close()``;
    ``close()`` is idempotent and also runs when ``build()`` fails half way.
    A lab of the same ``name`` left behind by a crashed run is removed first.
    """

    count: int = 1000
    name: str = field(default_factory=lambda: f"hl{os.getpid()}")
    network: str = "10.201.0.0/16"
    offset: int = 1
    link_net: str = "10.200.0.0/24"
    bridge: bool = False
    workers: int = 2
    port: int = SERVICE_PORT
    slow_rate: int = 16  # bytes/s: the ~150-byte reply's headers arrive after ~9 s
    access_log: bool = False
    tls: bool = False  # also serve HTTPS on tls_port (self-signed certificate)
    tls_port: int = TLS_PORT
    srv_ns: str = ""  # namespace names; default "<name>-srv" and "<name>-dir"
    dir_ns: str = ""
    lab_root: Path = LAB_ROOT

    addresses: list[str] = field(init=False, default_factory=list)
    directors: list[Director] = field(init=False, default_factory=list)
    build_seconds: float = field(init=False, default=0.0)
    nginx_pid: int = field(init=False, default=0)
    faults: Faults = field(init=False)
    _reg: Registry = field(init=False, default_factory=Registry)
    _detached: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.addresses = server_range(self.network, self.offset, self.count)
        self.faults = Faults(
            self.server_ns, service_port=self.port, tls_port=self.tls_port if self.tls else None
        )

    # -- names --------------------------------------------------------------------

    @property
    def server_ns(self) -> str:
        return self.srv_ns or f"{self.name}-srv"

    @property
    def director_ns(self) -> str:
        """The first director namespace (made by build())."""
        return self.dir_ns or f"{self.name}-dir"

    @property
    def lab_dir(self) -> Path:
        return self.lab_root / self.name

    @property
    def state_file(self) -> Path:
        return self.lab_dir / "state.json"

    @property
    def server_link_address(self) -> str:
        return str(ipaddress.IPv4Network(self.link_net)[1])

    @property
    def blocks(self) -> list[str]:
        """The CIDR blocks that cover the servers exactly."""
        return range_blocks(self.addresses[0], self.addresses[-1])

    # -- life cycle ---------------------------------------------------------------

    def __enter__(self) -> Farm:
        return self.build()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def build(self) -> Farm:
        start = time.perf_counter()
        cleanup_orphans(self.lab_root)
        cleanup_stale(self.name, self.lab_root)
        try:
            self._build()
        except BaseException:
            with contextlib.suppress(Exception):
                self.close()
            raise
        self.build_seconds = time.perf_counter() - start
        self.save_state()
        return self

    def close(self) -> None:
        """Stop nginx, delete the namespaces (and with them links and the nft
        table) and the lab folder. Safe to call twice."""
        self._reg.close()

    def detach(self) -> None:
        """Forget how to tear down: the lab outlives this process (``python -m
        hafast.lab up``); :func:`cleanup_stale` tears it down later from its state."""
        self._detached = True
        self.save_state()
        self._reg = Registry()

    def _build(self) -> None:
        reg, srv = self._reg, self.server_ns
        lab = self.lab_dir
        lab.mkdir(parents=True, exist_ok=True)
        reg.defer(f"lab folder {lab}", lambda: shutil.rmtree(lab, ignore_errors=True))
        # nginx workers run as "nobody": they need to read www/ and nothing else.
        lab.chmod(0o755)
        for sub in ("tmp", "www"):
            (lab / sub).mkdir(exist_ok=True)
        (lab / "www" / "big.bin").write_bytes(big_body())
        if self.tls:
            make_certificate(lab)

        reg.add_netns(srv)
        if self.bridge:
            reg.add_bridge(srv, "lab0")
            reg.add_address(srv, "lab0", f"{self.server_link_address}/{self._plen}")
        for block in self.blocks:
            reg.add_route(srv, block, dev="lo", kind="local")
        self.add_director(self.director_ns)
        self.faults.install()
        self._start_nginx()

    @property
    def _plen(self) -> int:
        return ipaddress.IPv4Network(self.link_net).prefixlen

    def add_director(self, ns: str, *, create: bool = True, dev: str = "srv0") -> Director:
        """Join namespace ``ns`` to the farm through a veth (``dev`` on its side);
        it gets the next link address and a route to the servers. More than one
        needs ``bridge=True``. With ``create=False`` the namespace is the caller's:
        only what the farm added to it is undone.

        Example: ``farm.add_director("hl42-dir2")`` -> ``Director("hl42-dir2",
        "srv0", "10.200.0.3")``
        """
        reg, srv = self._reg, self.server_ns
        k = len(self.directors)
        if k and not self.bridge:
            raise NetnsError("a second director needs Farm(bridge=True)")
        net = ipaddress.IPv4Network(self.link_net)
        address = str(net[2 + k])
        if create:
            reg.add_netns(ns)
        reg.add_veth(srv, f"d{k}", ns, dev)
        if self.bridge:
            reg.set_master(srv, f"d{k}", "lab0")
        else:
            reg.add_address(srv, f"d{k}", f"{self.server_link_address}/{net.prefixlen}")
        reg.add_address(ns, dev, f"{address}/{net.prefixlen}")
        for block in self.blocks:
            reg.add_route(ns, block, via=self.server_link_address)
        if create:
            # Thousands of clients in TIME_WAIT must not run the director out of ports.
            reg.sysctl(ns, "net.ipv4.ip_local_port_range", "1024 65535")
            reg.sysctl(ns, "net.ipv4.tcp_tw_reuse", "1")
        director = Director(ns, dev, address, owned=create)
        self.directors.append(director)
        self.save_state()
        return director

    def _start_nginx(self) -> None:
        lab = self.lab_dir
        conf = lab / "nginx.conf"
        conf.write_text(
            nginx_config(
                lab, workers=self.workers, port=self.port, slow_rate=self.slow_rate,
                access_log=self.access_log, tls_port=self.tls_port if self.tls else None,
            )
        )
        with open(lab / "nginx.out", "wb") as out:
            proc = self._reg.spawn(
                self.server_ns,
                [NGINX, "-p", f"{lab}/", "-c", str(conf), "-e", f"{lab}/error.log"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.nginx_pid = proc.pid
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise NetnsError(f"nginx exited ({proc.returncode}): {self._nginx_log()}")
            if self._listening():
                return
            time.sleep(0.01)
        raise NetnsError(f"nginx did not start listening in 10 s: {self._nginx_log()}")

    def _listening(self) -> bool:
        def probe() -> bool:
            with socket.socket() as s:
                s.settimeout(0.5)
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        return call_in(self.server_ns, probe)

    def _nginx_log(self) -> str:
        parts = []
        for name in ("nginx.out", "error.log"):
            with contextlib.suppress(OSError):
                parts.append((self.lab_dir / name).read_text()[-2000:])
        return " | ".join(p.strip() for p in parts if p.strip())

    # -- state --------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "count": self.count,
            "network": self.network,
            "offset": self.offset,
            "first": self.addresses[0],
            "last": self.addresses[-1],
            "link_net": self.link_net,
            "server_ns": self.server_ns,
            "namespaces": [self.server_ns] + [d.ns for d in self.directors if d.owned],
            "directors": [d.__dict__ for d in self.directors],
            "nginx_pid": self.nginx_pid,
            "nginx_conf": str(self.lab_dir / "nginx.conf"),
            "lab_dir": str(self.lab_dir),
            "nft_table": self.faults.table,
            "port": self.port,
            "tls_port": self.tls_port if self.tls else None,
            "faults": dict(self.faults.active),
            "build_seconds": round(self.build_seconds, 4),
            # A lab whose owner died without detaching is an orphan (cleanup_orphans).
            "owner_pid": os.getpid(),
            "detached": self._detached,
        }

    def save_state(self) -> None:
        if self.lab_dir.is_dir():
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.state(), indent=1) + "\n")
            tmp.replace(self.state_file)

    # -- use ----------------------------------------------------------------------

    def fetch(
        self, addr: str, path: str = "/", *, ns: str | None = None, timeout: float = 2.0,
        tls: bool = False,
    ) -> HttpReply:
        """GET ``path`` from real server ``addr``, from the director namespace."""
        return http_get(addr, path, port=self.tls_port if tls else self.port, timeout=timeout,
                        sock=socket_in(ns or self.director_ns), tls=tls)

    def fetch_many(
        self, addrs: Sequence[str], path: str = "/", *, ns: str | None = None,
        timeout: float = 2.0, tls: bool = False,
    ) -> list[HttpReply]:
        """GET from each address in turn, on one thread inside the namespace."""
        port = self.tls_port if tls else self.port
        return call_in(
            ns or self.director_ns,
            lambda: [http_get(a, path, port=port, timeout=timeout, tls=tls) for a in addrs],
        )

    def nginx_pids(self) -> list[int]:
        """The nginx master and its workers (children of the master)."""
        return [self.nginx_pid, *_children(self.nginx_pid)] if self.nginx_pid else []

    def nginx_rss_kib(self) -> int:
        """Resident memory of nginx, master plus workers, in KiB."""
        return sum(_rss_kib(p) for p in self.nginx_pids())


def make_certificate(lab: Path) -> None:
    """A throwaway self-signed certificate (tls.crt, tls.key) for the farm's HTTPS."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "7", "-subj", "/CN=hafast-lab", "-keyout", str(lab / "tls.key"),
         "-out", str(lab / "tls.crt")],
        check=True, capture_output=True, timeout=30,
    )
    # nginx's master reads the key as root before dropping to "nobody".
    (lab / "tls.key").chmod(0o600)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _is_our_nginx(pid: int, conf: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return "nginx" in cmdline and conf in cmdline


def load_state(name: str, lab_root: Path = LAB_ROOT) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads((lab_root / name / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return state


def cleanup_stale(name: str, lab_root: Path = LAB_ROOT) -> bool:
    """Tear down a lab called ``name`` from its state file (a crashed run, or one
    left up by ``python -m hafast.lab up``). True when anything was removed."""
    removed = False
    state = load_state(name, lab_root) or {}
    pid = int(state.get("nginx_pid") or 0)
    if pid and pid_alive(pid) and _is_our_nginx(pid, str(state.get("nginx_conf", ""))):
        stop_pid(pid)
        removed = True
    namespaces: Iterable[str] = state.get("namespaces") or [f"{name}-srv", f"{name}-dir"]
    # Directors first: the server namespace's veth ends go with it either way.
    for ns in reversed(list(namespaces)):
        removed |= delete_netns(ns)
    lab = lab_root / name
    if lab.exists():
        shutil.rmtree(lab, ignore_errors=True)
        removed = True
    return removed


def cleanup_orphans(lab_root: Path = LAB_ROOT) -> list[str]:
    """Tear down every lab whose owner process died without closing or detaching
    it (a test run killed half way); labs left up on purpose are kept. Returns the
    names torn down."""
    removed = []
    try:
        folders = sorted(p for p in lab_root.iterdir() if p.is_dir())
    except FileNotFoundError:
        return []
    for folder in folders:
        state = load_state(folder.name, lab_root)
        if not state or state.get("detached", True):
            continue
        owner = int(state.get("owner_pid") or 0)
        if owner and not pid_alive(owner) and cleanup_stale(folder.name, lab_root):
            removed.append(folder.name)
    return removed
