"""Write the seed corpus under tests/fuzz/corpus/<target>/ (run it again after a change
to a harness's input layout, then review ``git status``)::

    python -m tests.fuzz.seeds

Where the seeds come from: VRRP from Debian keepalived 2.2.7's adverts captured in
tests/vectors/keepalived-2.2.7 (every distinct advert of every capture, with the
expectations its instance had), configs from the lexer's and loader's golden files
and packaging/keepalived.conf.sample, HTTP, ICMP and control requests written here
from the protocols (replies as nginx and keepalived's genhash tests see them, echo
replies and errors as Linux sends them). Inputs a fuzz run stopped at are added by
hand and never rewritten here: ``regress-*`` found a bug in hafast, ``found-*`` a
false alarm of the harness itself (both must keep passing).
"""

from __future__ import annotations

import hashlib
import json
import struct

from tests.fuzz._common import CORPUS, REPO
from tests.fuzz.fuzz_icmp import with_checksum
from tests.vectors.pcap import read_pcap

VECTORS = REPO / "tests" / "vectors" / "keepalived-2.2.7"
GOLDEN = REPO / "tests" / "unit" / "config" / "golden"

# capture -> the EXPECTS entry its instance would hold (see tests/vectors/README.md)
_VRRP_EXPECT = {"vrrp_v2_ah": 3, "vrrp_v2_pass": 1, "vrrp_v2_noauth": 2, "vrrp_v3_ipv4": 5}


def vrrp_seeds() -> dict[str, bytes]:
    seeds: dict[str, bytes] = {}
    seen: set[bytes] = set()
    for pcap in sorted(VECTORS.glob("*.pcap")):
        which = next((i for k, i in _VRRP_EXPECT.items() if pcap.stem.startswith(k)), 0)
        n = 0
        for frame in read_pcap(pcap):
            if frame.protocol not in (112, 51) or n >= 4:
                continue
            if frame.ip_version == 4:
                data = bytes([0, which]) + frame.ip_packet
            else:
                head = bytes([0x01 | 0x02, which, frame.ttl & 0xFF])
                data = head + frame.src + frame.dst + frame.payload
            if data in seen:
                continue
            seen.add(data)
            seeds[f"{pcap.stem}-{n}"] = data
            n += 1
    return seeds


def http_seeds() -> dict[str, bytes]:
    page = b"<html><body>ok</body></html>\n"
    replies = {
        "nginx-200": b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/html\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(page) + page,
        "no-length": b"HTTP/1.0 200 OK\r\n\r\n" + page,
        "short-length": b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n" + page,
        "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"1d\r\n" + page + b"\r\n0\r\n\r\n",
        "404": b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        "no-reason": b"HTTP/1.0 200\r\n\r\nbody",
        "lowercase-length": b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nabcdef",
        "negative-length": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nabc",
        "huge-length": b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nab",
        "no-header-end": b"HTTP/1.1 200 OK\r\nServer: x\r\n",
        "bare": b"garbage",
    }
    # flags: byte 0 chunk pattern, byte 1 cap and options (see fuzz_http.py)
    seeds = {}
    for i, (name, reply) in enumerate(sorted(replies.items())):
        seeds[name] = bytes([(i * 37) & 0xFF, (i % 8) | (0x08 if i % 3 == 0 else 0)]) + reply
    return seeds


def _ipv4(src: bytes, dst: bytes, payload: bytes, proto: int = 1) -> bytes:
    total = 20 + len(payload)
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, proto, 0, src, dst) + payload


def icmp_seeds() -> dict[str, bytes]:
    v4_src, v4_dst = bytes([10, 200, 0, 2]), bytes([10, 200, 0, 1])
    v6_src = bytes.fromhex("fd000000000000000000000000000002")
    echo = struct.pack("!HHQ", 0x4242, 17, 0xAABB) + bytes(8)
    request4 = with_checksum(_ipv4(v4_dst, v4_src, bytes([8, 0, 0, 0]) + echo))[20:]
    reply4 = _ipv4(v4_src, v4_dst, bytes([0, 0, 0, 0]) + echo)
    unreach4 = _ipv4(bytes([10, 201, 0, 1]), v4_dst,
                     bytes([3, 1, 0, 0]) + bytes(4) + _ipv4(v4_dst, v4_src, request4))
    v6_header = struct.pack("!IHBB16s16s", 6 << 28, 24, 58, 64, bytes(16), v6_src)
    return {
        "v4-reply": bytes([0x02]) + v4_src + reply4,
        "v4-reply-bad-checksum": bytes([0x00]) + v4_src + reply4,
        "v4-unreachable": bytes([0x02]) + bytes(4) + unreach4,
        "v6-reply": bytes([0x01]) + v6_src + bytes([129, 0, 0, 0]) + echo,
        "v6-unreachable": bytes([0x01]) + bytes(16) + bytes([1, 3, 0, 0]) + bytes(4)
        + v6_header + bytes([128, 0, 0, 0]) + echo,
        "v6-time-exceeded": bytes([0x01]) + bytes(16) + bytes([3, 0, 0, 0]) + bytes(4)
        + v6_header + bytes([128, 0, 0, 0]) + echo[:4],
    }


def config_seeds() -> dict[str, bytes]:
    seeds = {"sample": (REPO / "packaging" / "keepalived.conf.sample").read_bytes()}
    for path in sorted((GOLDEN / "loader").glob("*.conf")):
        seeds[f"loader-{path.stem}"] = path.read_bytes()
    for path in sorted((GOLDEN / "lexer").glob("*/*.conf")):
        seeds[f"lexer-{path.parent.name}-{path.stem}"] = path.read_bytes()
    return seeds


def control_seeds() -> dict[str, bytes]:
    seeds = {f"cmd-{cmd}": json.dumps({"cmd": cmd}).encode() + b"\n"
             for cmd in ("status", "reload", "data", "stats", "json", "stats_clear", "nope")}
    seeds["empty"] = b""
    seeds["no-newline"] = b'{"cmd": "status"}'
    seeds["extra"] = b'{"cmd": "status", "verbose": [1, 2.5, null, true, {"a": "\\u00e9"}]}\n'
    seeds["not-an-object"] = b'["status"]\n'
    seeds["two-lines"] = b'{"cmd": "status"}\n{"cmd": "reload"}\n'
    # hafast status --down / --vs / --instance / --limit
    filters = {
        "down": {"down": True},
        "vs": {"vs": ["10.0.0.1:80", "fwmark 7", "[2001:DB8::1]:443", "web"], "limit": 1},
        "vs-label": {"vs": "[10.0.0.1]:tcp:80"},
        "instance": {"instance": ["VI_2"], "down": True},
        "bad-limit": {"limit": -1},
    }
    for name, asked in filters.items():
        seeds[f"status-{name}"] = json.dumps({"cmd": "status", **asked}).encode() + b"\n"
    return seeds


# libFuzzer dictionaries (-dict=tests/fuzz/<target>.dict): words a mutation may insert
_LEXER_WORDS = ("{", "}", "\\\n", '"', "#", "!", "@fuzz ", "@^fuzz ", "$X=", "$X", "${X}",
                "${_INSTANCE}", "${_PWD}", "${_ENV HOME}", "${_RANDOM 1 9}", "~SEQ(i,1,3)",
                "~LST(i,a,b)", "include ", "includew ", "include_check ", "sub/*.conf",
                "{a,b}", "random_seed ")
_JSON_WORDS = ("{", "}", "[", "]", ":", ",", '"cmd"', '"status"', '"reload"', '"stats"',
               '"stats_clear"', '"down"', '"vs"', '"instance"', '"limit"', "true", "null",
               "-1", "1e309", "NaN", '"\\u0000"')


def _dict_line(word: str) -> str:
    return '"' + "".join(c if c.isalnum() or c in " _-./{}()[]:,=@$^~*!#+" else
                         f"\\x{ord(c):02x}" for c in word) + '"'


def dictionaries() -> dict[str, list[str]]:
    keywords = []
    for line in (REPO / "tests" / "data" / "keepalived-keywords.txt").read_text().splitlines():
        word = line.split("#", 1)[0].strip().split()
        if word:
            keywords.append(word[0])
    return {
        "config": sorted(set(keywords)) + list(_LEXER_WORDS),
        "control": list(_JSON_WORDS),
    }


SEEDS = {
    "vrrp": vrrp_seeds,
    "http": http_seeds,
    "icmp": icmp_seeds,
    "config": config_seeds,
    "control": control_seeds,
}


def write() -> None:
    for target, make in SEEDS.items():
        folder = CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("seed-*"):
            old.unlink()
        for name, data in make().items():
            (folder / f"seed-{name}").write_bytes(data)
        digest = hashlib.sha1(b"".join(sorted(p.read_bytes() for p in folder.iterdir())))
        print(f"{target}: {len(list(folder.iterdir()))} files ({digest.hexdigest()[:8]})")
    for target, words in dictionaries().items():
        lines = [f"# written by tests/fuzz/seeds.py ({len(words)} words)"]
        lines += [_dict_line(w) for w in dict.fromkeys(words)]
        (CORPUS.parent / f"{target}.dict").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    write()
