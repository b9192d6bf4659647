"""The keepalived.conf keyword table: where a keyword may stand, its shape, its converter.

Every keyword keepalived 2.2/2.3 registers (``install_keyword*`` in ``global_parser.c``,
``vrrp_parser.c``, ``check_parser.c``, ``check_*.c``, ``bfd_parser.c``, ``track_file.c``)
has one row per context it may appear in.  A row is
``keyword  kind  arity  conv  field``:

kind
    ``v`` value (``arity`` words after the keyword), ``f`` flag (optional boolean word),
    ``b`` block (``conv`` names the child context; arity counts the words before ``{``),
    ``l`` list block (each line inside is converted by the line converter ``conv``).
arity
    ``N``, ``N-M`` or ``N+`` words after the keyword.
conv
    a converter name from :data:`CONVERTERS` (``name:arg,arg`` passes arguments).
field
    the model field it sets; ``+field`` appends (repeatable keyword); ``-`` means hafast
    accepts the keyword but does not act on it yet (the loader warns once per keyword).

A few rows are hafast extensions keepalived does not know (``lvs_backend``,
``metrics_listen``, ``check_workers`` in global_defs); :data:`EXTENSIONS` holds their help
text, which every message about them carries.

The checker blocks (``TCP_CHECK { }``, ...) are not written here: each checker kind's
descriptor (:mod:`hafast.config.kinds`) carries its rows, and :data:`TABLE` takes them in
as kinds register.

The loader is table driven: it never branches on keyword names, only on these rows.
Timers are converted to integer microseconds, as keepalived keeps them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hafast.config import model  # noqa: F401  (registers the built-in checker kinds)
from hafast.config.kinds import CHECK_TIMERS, CHILDREN, CheckerKind, subscribe
from hafast.config.lvs_syncd import conv_lvs_syncd
from hafast.config.pool_backends import POOL_BACKENDS, help_text
from hafast.config.support import Gap, gap
from hafast.config.tokens import Token
from hafast.lib.units import US_PER_S


class BadValue(Exception):
    """A converter rejected a word; the loader turns it into a Diagnostic at ``token``."""

    def __init__(self, token: Token, message: str) -> None:
        super().__init__(message)
        self.token = token
        self.message = message


Converter = Callable[[Sequence[Token]], Any]


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: a cache key per row
class Keyword:
    context: str
    name: str
    kind: str  # "v" value, "f" flag, "b" block, "l" list block
    min_args: int
    max_args: int  # -1: no upper bound
    conv: Converter | None
    conv_name: str
    field: str | None  # None: accepted, not yet supported
    append: bool
    child: str | None  # child context of a "b" row
    note: str = ""  # help text added to the shape (hafast extensions say so)
    # "keyword VALUE" sets a field outright (a value or flag row that takes one word and
    # does not repeat): the loader's short path for most lines of a large config
    one_word: bool = False
    # an old spelling keepalived still honours but flags: its warning, once per load
    deprecated: str = ""
    # accepted without effect: the warning or error hafast -t owes (hafast.config.support)
    gap: Gap | None = None

    @property
    def supported(self) -> bool:
        return self.gap is None

    def shape(self) -> str:
        """How the keyword is written, for error messages: ``priority <1..255>``."""
        if self.kind == "b":
            text = f"{self.name}{' NAME' * self.min_args} {{ ... }}"
        elif self.kind == "l":
            text = f"{self.name} {{ <{self.conv_name}> ... }}"
        elif self.kind == "f":
            text = f"{self.name} [on|off]"
        else:
            text = f"{self.name} <{self.conv_name}>"
        return f"{text}; {self.note}" if self.note else text


# --------------------------------------------------------------------------- converters
# Each takes the words after the keyword (already arity-checked) and returns the value.


def _one(args: Sequence[Token]) -> Token:
    return args[0]


def conv_str(args: Sequence[Token]) -> str:
    return args[0].text if args else ""  # "" for rows whose value is optional


def conv_words(args: Sequence[Token]) -> tuple[str, ...]:
    """A command line: keepalived splits a quoted script string on spaces too."""
    out: list[str] = []
    for t in args:
        if t.quoted and " " in t.text:
            out.extend(t.text.split())
        else:
            out.append(t.text)
    return tuple(out)


def conv_script(args: Sequence[Token]) -> Any:
    """keepalived's notify_script_init: the first word is the command line (split again,
    so ``"/bin/x.sh a b"`` gives three argv words); the next two are user and group.

    The loader re-splits from the raw line (``Line.raw``) for shell-like quoting; this
    token form serves lines built without the lexer.
    """
    from hafast.config.model import Script

    if not args:  # a keyword whose script is optional (notify_deleted): on, no script
        return Script(())
    if len(args) > 3:
        raise BadValue(
            args[3],
            f"unexpected '{args[3].text}' after the script, user and group "
            '(quote a command with arguments: "/path/script arg")',
        )
    first = args[0].text
    argv = tuple(first.split()) if args[0].quoted else (first,)
    return Script(
        argv, args[1].text if len(args) > 1 else None, args[2].text if len(args) > 2 else None
    )


def conv_text(args: Sequence[Token]) -> str:
    return " ".join(t.text for t in args)


def conv_regex(args: Sequence[Token]) -> str:
    """A url's ``regex``: keepalived reads it with ``alloc_strvec_quoted_escaped``, so
    quotes group and ``\\`` escapes (``\\K`` is ``K``; PCRE's ``\\K`` is written
    ``\\\\K``), and it must be one word.  The walker re-splits the raw line; this token
    form serves lines built without the lexer."""
    return regex_pattern(" ".join(t.text for t in args), args[0])


def regex_pattern(text: str, at: Token) -> str:
    """The pattern in ``text`` (the words after ``regex``), split as keepalived does."""
    from hafast.config.lexer import split_script
    from hafast.config.tokens import ConfigError

    try:
        words = split_script(text)
    except ConfigError as exc:
        raise BadValue(at, exc.diagnostics[0].message) from None
    if len(words) != 1:
        raise BadValue(
            at,
            f"regex needs one pattern, got {len(words)} words (keepalived ignores the "
            "regex: 'regex missing or too many fields'); quote a pattern with spaces",
        )
    return words[0]


def conv_int(lo: int, hi: int) -> Converter:
    def conv(args: Sequence[Token]) -> int | None:
        if not args:  # rows whose value is optional (max_auto_priority, ...)
            return None
        t = args[0]
        try:
            v = int(t.text, 0) if t.text[:2].lower() == "0x" else int(t.text)
        except ValueError:
            raise BadValue(t, f"'{t.text}' is not an integer (expected {lo}..{hi})") from None
        if not lo <= v <= hi:
            raise BadValue(t, f"number '{t.text}' outside range [{lo}, {hi}]")
        return v

    conv.__name__ = f"integer {lo}..{hi}"
    return conv


def _seconds_to_us(t: Token) -> int:
    text = t.text
    if text.isdigit():  # the common case, without float rounding
        return int(text) * US_PER_S
    try:
        v = float(text)
    except ValueError:
        raise BadValue(t, f"'{text}' is not a time in seconds (e.g. 3 or 0.5)") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise BadValue(t, f"'{text}' is not a time in seconds (e.g. 3 or 0.5)")
    return round(v * US_PER_S)


def _plain(s: float) -> str:
    """Seconds without an exponent: keepalived's 0.000001, not 1e-06."""
    return f"{s:.6f}".rstrip("0").rstrip(".")


def conv_timer(lo_s: float, hi_s: float) -> Converter:
    """Seconds with fractions -> integer microseconds (keepalived's TIMER)."""
    lo, hi = round(lo_s * US_PER_S), round(hi_s * US_PER_S)

    def conv(args: Sequence[Token]) -> int:
        us = _seconds_to_us(args[0])
        if not lo <= us <= hi:
            raise BadValue(
                args[0],
                f"time '{args[0].text}' outside range [{_plain(lo_s)}, {_plain(hi_s)}] seconds",
            )
        return us

    return conv


def conv_opt_timer(default_s: float, lo_s: float, hi_s: float) -> Converter:
    inner = conv_timer(lo_s, hi_s)

    def conv(args: Sequence[Token]) -> int:
        return inner(args) if args else round(default_s * US_PER_S)

    return conv


_BOOL = {"on": True, "true": True, "yes": True, "off": False, "false": False, "no": False}


def conv_flag(args: Sequence[Token]) -> bool:
    """``keyword`` alone means on; keepalived also takes on|off|true|false|yes|no."""
    if not args:
        return True
    v = _BOOL.get(args[0].text.lower())
    if v is None:
        raise BadValue(
            args[0], f"'{args[0].text}' is not a boolean (expected on|off|true|false|yes|no)"
        )
    return v


def conv_choice(*choices: str) -> Converter:
    table = {c.upper(): c for c in choices}

    def conv(args: Sequence[Token]) -> str:
        t = args[0]
        v = table.get(t.text.upper())
        if v is None:
            raise BadValue(t, f"'{t.text}' is not one of {'|'.join(choices)}")
        return v

    return conv


def conv_opt_choice(alone: str, *choices: str) -> Converter:
    """One of ``choices``, or ``alone`` when the keyword has no word (``alone`` itself is
    not a word keepalived takes: ``param_match`` alone means exact, ``param_match
    exact`` is an error in keepalived 2.2.7)."""
    inner = conv_choice(*choices)

    def conv(args: Sequence[Token]) -> str:
        return inner(args) if args else alone

    return conv


def conv_lvs_flush_on_stop(args: Sequence[Token]) -> str:
    """``lvs_flush_on_stop`` alone: "full" (flush the whole IPVS table at stop);
    ``lvs_flush_on_stop VS``: "VS" (delete each configured virtual server).  keepalived
    2.2.7 compares the word with strcmp, so ``vs`` is an error there too."""
    if not args:
        return "full"
    if args[0].text != "VS":
        raise BadValue(args[0], f"'{args[0].text}' is not VS (unknown lvs_flush_on_stop type)")
    return "VS"


# Dotted-quad IPv4 without leading zeros: the common case, checked without ipaddress
# (ipaddress costs ~10x more and a 37k-real-server config has 40k addresses).
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4_RE = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}\Z")


def _ip(t: Token, text: str | None = None) -> str:
    s = t.text if text is None else text
    if IPV4_RE.match(s):
        return s
    try:
        return str(ipaddress.ip_address(s))
    except ValueError:
        raise BadValue(t, f"'{t.text}' is not an IPv4 or IPv6 address") from None


def conv_ip(args: Sequence[Token]) -> str:
    return _ip(args[0])


def _port(t: Token) -> int:
    if not t.text.isdigit() or int(t.text) > 65535:
        raise BadValue(t, f"'{t.text}' is not a port number (0..65535)")
    return int(t.text)


def conv_port(args: Sequence[Token]) -> int:
    return _port(args[0])


def conv_connect_port(args: Sequence[Token]) -> int:
    """A port to connect to: 1..65535 (keepalived refuses 0)."""
    p = _port(args[0])
    if p == 0:
        raise BadValue(args[0], "port 0 cannot be connected to (expected 1..65535)")
    return p


def conv_ip_port(args: Sequence[Token]) -> tuple[str, int | None]:
    """``IP [PORT]``: sorry_server, smtp_server, real_server."""
    return _ip(args[0]), (_port(args[1]) if len(args) > 1 else None)


# RFC 1123 §2.1 host name: labels of letters, digits and inner hyphens; the last label
# not all digits, so a mistyped address (10.0.0.300) is not taken for a name
_HOSTNAME = re.compile(
    r"(?=.{1,253}\.?\Z)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
    r"(?=[A-Za-z0-9-]*[A-Za-z-])[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?\Z"
)


def conv_host_port(args: Sequence[Token]) -> tuple[str, int | None]:
    """``IP|HOST [PORT]``: smtp_server.  keepalived resolves a name there; the name is
    kept as written and resolved when a mail is sent, so ``-t`` does no DNS lookup."""
    t = args[0]
    port = _port(args[1]) if len(args) > 1 else None
    try:
        return _ip(t), port
    except BadValue:
        if _HOSTNAME.match(t.text):
            return t.text, port
        raise BadValue(t, f"'{t.text}' is neither an IP address nor a host name") from None


_HEX32 = re.compile(r"[0-9a-fA-F]{32}\Z")


def conv_digest(args: Sequence[Token]) -> str:
    t = args[0]
    if not _HEX32.match(t.text):
        raise BadValue(
            t, f"digest '{t.text}' is not an MD5 sum of 32 hex digits (make one with genhash)"
        )
    return t.text.lower()


def conv_status_codes(args: Sequence[Token]) -> tuple[tuple[int, int], ...]:
    """``status_code 200 301-302 ...`` -> ((200, 200), (301, 302))."""
    out = []
    for t in args:
        lo_s, _, hi_s = t.text.partition("-")
        if not lo_s.isdigit() or (hi_s and not hi_s.isdigit()):
            raise BadValue(t, f"status_code '{t.text}' is not N or N-M (e.g. 200 or 200-299)")
        lo, hi = int(lo_s), int(hi_s or lo_s)
        if not 100 <= lo <= hi <= 599:
            raise BadValue(t, f"status_code '{t.text}' outside 100..599 or not ascending")
        out.append((lo, hi))
    return tuple(out)


def conv_hex(args: Sequence[Token]) -> str:
    t = args[0]
    try:
        bytes.fromhex(t.text)
    except ValueError:
        raise BadValue(t, f"'{t.text}' is not a hex string (e.g. 0a1b2c)") from None
    return t.text.lower()


def conv_weight_ref(lo: int, hi: int) -> Converter:
    """``W [reverse]`` (vrrp_script/track_file/track_process weight)."""
    num = conv_int(lo, hi)

    def conv(args: Sequence[Token]) -> tuple[int, bool]:
        if len(args) > 1 and args[1].text != "reverse":
            raise BadValue(args[1], f"'{args[1].text}' after the weight: expected 'reverse'")
        return num(args[:1]), len(args) > 1

    return conv


def conv_persistence(args: Sequence[Token]) -> int:
    """keepalived: ``persistence_timeout`` without a value means 360 s (RFC-less LVS default)."""
    if not args:
        return 360
    return conv_int(1, 2**31 - 1)(args)


# keepalived check_data.h: LVS_MAX_TIMEOUT, 31 days (the kernel takes up to INT_MAX / HZ)
LVS_MAX_TIMEOUT_S = 86400 * 31
_LVS_TIMEOUT_WORDS = ("tcp", "tcpfin", "udp")


def conv_lvs_timeouts(args: Sequence[Token]) -> Any:
    """``lvs_timeouts [tcp S] [tcpfin S] [udp S]`` (keepalived global_parser.c): whole
    seconds 0..31 days, 0 = leave the kernel's value; a word given twice: the last wins."""
    from hafast.config.model import LvsTimeouts

    values = {"tcp": 0, "tcpfin": 0, "udp": 0}
    i = 0
    while i < len(args):
        w = args[i].text
        if w not in values:
            raise BadValue(
                args[i], f"unknown lvs_timeouts option '{w}' (expected tcp|tcpfin|udp SECONDS)"
            )
        if i + 1 >= len(args):
            raise BadValue(args[i], f"'{w}' needs a value in seconds (0..{LVS_MAX_TIMEOUT_S})")
        t = args[i + 1]
        if not t.text.isdigit() or int(t.text) > LVS_MAX_TIMEOUT_S:
            raise BadValue(
                t,
                f"lvs_timeouts {w} '{t.text}' is not a whole number of seconds "
                f"0..{LVS_MAX_TIMEOUT_S} (0 leaves the kernel's value)",
            )
        values[w] = int(t.text)
        i += 2
    return LvsTimeouts(**values)


def conv_rx_bufs_policy(args: Sequence[Token]) -> str | int:
    """``vrrp_rx_bufs_policy MTU|ADVERT|NUMBER`` (keepalived global_parser.c): one of
    them.  keepalived reports two policies, or a policy with a size, as a config
    error (and then keeps one); we refuse it, as ``keepalived -t`` does."""
    policies: list[str] = []
    sizes: list[int] = []
    for t in args:
        word = t.text.upper()
        if word in ("MTU", "ADVERT"):
            policies.append(word)
        elif t.text.isdigit() and int(t.text) <= 0xFFFFFFFF:
            sizes.append(int(t.text))
        else:
            raise BadValue(t, f"'{t.text}' is not MTU, ADVERT or a size in bytes "
                              "(0..4294967295)")
    if sizes and policies:
        raise BadValue(args[0], "a size and a policy cannot both be given (keepalived "
                                "ignores the policy)")
    if len(set(policies)) > 1:
        raise BadValue(args[0], "MTU and ADVERT cannot both be given (keepalived ignores "
                                "ADVERT)")
    return policies[0] if policies else sizes[-1]


def conv_listen(args: Sequence[Token]) -> str:
    """``ADDR:PORT`` or ``[IPv6]:PORT`` -> the same text, address normalised."""
    t = args[0]
    host, sep, port = t.text.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    ok = bool(sep) and port.isdigit() and 0 < int(port) <= 65535
    if ok and not bracketed and ":" in host:
        ok = False  # a bare IPv6 address: the port would be ambiguous
    if ok:
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            ok = False
        else:
            ok = (addr.version == 6) == bracketed
    if not ok:
        raise BadValue(
            t, f"'{t.text}' is not ADDR:PORT (e.g. 127.0.0.1:9650 or [::1]:9650, port 1..65535)"
        )
    return f"[{addr}]:{int(port)}" if bracketed else f"{addr}:{int(port)}"


def conv_sched_flag(name: str) -> Converter:
    """A virtual_server scheduler flag keyword: its own name while on, None when off
    (the loader maps names onto IP_VS_SVC_F_SCHED1..3 once it knows the scheduler)."""

    def conv(args: Sequence[Token]) -> str | None:
        return name if conv_flag(args) else None

    return conv


def conv_extra_if(lo: int) -> Converter:
    """``garp_extra_if [SECONDS] [all]`` (keepalived ``vrrp_garp_extra_if_handler``):
    (seconds, all); the words come in any order, a time is required (``lo``..86400:
    an instance may say 0, global_defs may not)."""

    def conv(args: Sequence[Token]) -> tuple[int, bool]:
        seconds: int | None = None
        for t in args:
            if t.text == "all":
                continue
            if not t.text.isdigit() or not lo <= int(t.text) <= 86400:
                raise BadValue(t, f"'{t.text}' is neither 'all' nor seconds {lo}..86400")
            seconds = int(t.text)
        if seconds is None:
            raise BadValue(args[0], "no time given (keepalived ignores it then)")
        return seconds, any(t.text == "all" for t in args)

    return conv


# -- list-line converters: one line inside a list block -> one item


def line_name(args: Sequence[Token]) -> str:
    if len(args) != 1:
        raise BadValue(args[1], f"one name per line expected, got '{args[1].text}' too")
    return args[0].text


def line_words(args: Sequence[Token]) -> tuple[str, ...]:
    return tuple(t.text for t in args)


def line_vip(args: Sequence[Token]) -> Any:
    from hafast.config.model import VirtualAddress

    t = args[0]
    text = t.text
    addr, _, plen = text.partition("/")
    address = _ip(t, addr)
    fam = 6 if ":" in address else 4
    if plen:
        if not plen.isdigit() or int(plen) > (128 if fam == 6 else 32):
            raise BadValue(t, f"'{text}': prefix length must be 0..{128 if fam == 6 else 32}")
    opts: dict[str, str] = {}
    flags: list[str] = []
    i = 1
    while i < len(args):
        w = args[i].text
        if w in _VIP_VALUE_OPTS:
            if i + 1 >= len(args):
                raise BadValue(args[i], f"'{w}' needs a value")
            opts[w] = args[i + 1].text
            i += 2
        elif w in _VIP_FLAG_OPTS:
            flags.append(w)
            i += 1
        else:
            raise BadValue(
                args[i],
                f"unknown address option '{w}' (expected one of "
                f"{', '.join(sorted(_VIP_VALUE_OPTS | _VIP_FLAG_OPTS))})",
            )
    return VirtualAddress(
        address=address,
        prefix=int(plen) if plen else (128 if fam == 6 else 32),
        family=fam,
        dev=opts.get("dev"),
        label=opts.get("label"),
        scope=opts.get("scope"),
        brd=opts.get("brd") or opts.get("broadcast"),
        peer=opts.get("peer"),
        options=tuple(flags)
        + tuple(
            f"{k} {v}"
            for k, v in opts.items()
            if k not in ("dev", "label", "scope", "brd", "broadcast", "peer")
        ),
    )


_VIP_VALUE_OPTS = frozenset(
    {
        "dev",
        "label",
        "scope",
        "brd",
        "broadcast",
        "peer",
        "preferred_lft",
        "track_group",
        "use_vmac",
    }
)
_VIP_FLAG_OPTS = frozenset(
    {"home", "-nodad", "nodad", "mngtmpaddr", "noprefixroute", "autojoin", "no_track"}
)


def line_track(args: Sequence[Token]) -> Any:
    """``NAME [weight W [reverse|noreverse]]`` inside track_* lists."""
    from hafast.config.model import TrackRef

    weight: int | None = None
    reverse = False
    i = 1
    while i < len(args):
        w = args[i].text
        if w == "weight":
            if i + 1 >= len(args):
                raise BadValue(args[i], "'weight' needs a value (-254..254)")
            weight = conv_int(-254, 254)(args[i + 1 : i + 2])
            i += 2
        elif w in ("reverse", "noreverse"):
            reverse = w == "reverse"
            i += 1
        else:
            raise BadValue(args[i], f"'{w}' after a tracked name: expected 'weight W [reverse]'")
    return TrackRef(args[0].text, weight, reverse)


def line_peer(args: Sequence[Token]) -> Any:
    """``IP [min_ttl N] [max_ttl N]`` inside unicast_peer."""
    from hafast.config.model import UnicastPeer

    ttl = {"min_ttl": 0, "max_ttl": 255}
    i = 1
    while i < len(args):
        w = args[i].text
        if w not in ttl or i + 1 >= len(args):
            raise BadValue(
                args[i], f"'{w}' after a peer address: expected 'min_ttl N' or 'max_ttl N'"
            )
        ttl[w] = conv_int(0, 255)(args[i + 1 : i + 2])
        i += 2
    return UnicastPeer(_ip(args[0]), ttl["min_ttl"], ttl["max_ttl"])


def line_vsg(args: Sequence[Token]) -> Any:
    """A virtual_server_group line: ``IP [PORT]``, ``IP-LAST [PORT]``, ``fwmark N``."""
    from hafast.config.model import VsgMember

    first = args[0]
    if first.text == "fwmark":
        if len(args) < 2:
            raise BadValue(first, "'fwmark' needs a mark number")
        family = conv_choice("inet", "inet6")(args[2:3]) if len(args) > 2 else None
        if len(args) > 3:
            raise BadValue(args[3], f"unexpected '{args[3].text}' (expected fwmark N [inet|inet6])")
        return VsgMember(None, None, None, conv_int(1, 2**32 - 1)(args[1:2]), family)
    text = first.text
    last: str | None = None
    if "/" not in text and "-" in text:
        text, _, last = text.partition("-")
    address = _ip(first, text.split("/")[0])
    if last is not None:
        # a.b.c.d-e: the last octet (IPv4) or last group (IPv6) runs up to e
        base = int(address.rsplit(".", 1)[1]) if "." in address else None
        ok = last.isdigit() and base is not None and base <= int(last) <= 255
        if base is None:
            try:
                ok = 0 <= int(last, 16) <= 0xFFFF
            except ValueError:
                ok = False
        if not ok:
            raise BadValue(
                first,
                f"range '{first.text}': the end must be a number not below "
                "the start's last part (e.g. 10.0.0.1-20)",
            )
    port = _port(args[1]) if len(args) > 1 else None
    if len(args) > 2:
        raise BadValue(args[2], f"unexpected '{args[2].text}' (expected IP[-RANGE] [PORT])")
    if "/" in first.text:  # a CIDR block stays as written
        address = first.text
    return VsgMember(address, last, port, None, None)


def line_email(args: Sequence[Token]) -> str:
    return args[0].text


# --------------------------------------------------------------------------- the table

CONVERTERS: dict[str, Callable[..., Converter] | Converter] = {
    "str": conv_str,
    "words": conv_words,
    "script": conv_script,
    "text": conv_text,
    "regex": conv_regex,
    "flag": conv_flag,
    "ip": conv_ip,
    "port": conv_port,
    "cport": conv_connect_port,
    "ip_port": conv_ip_port,
    "host_port": conv_host_port,
    "digest": conv_digest,
    "status": conv_status_codes,
    "hex": conv_hex,
    "persist": conv_persistence,
    "lvs_timeouts": conv_lvs_timeouts,
    "lvs_syncd": conv_lvs_syncd,
    "listen": conv_listen,
    "rxbufs": conv_rx_bufs_policy,
    "flushstop": conv_lvs_flush_on_stop,
    "any": line_words,
    # factories: name:arg,arg
    "int": conv_int,
    "timer": conv_timer,
    "opttimer": conv_opt_timer,
    "choice": conv_choice,
    "optchoice": conv_opt_choice,
    "wref": conv_weight_ref,
    "schedflag": conv_sched_flag,
    "extraif": conv_extra_if,
    # list-line converters
    "name": line_name,
    "vip": line_vip,
    "track": line_track,
    "peer": line_peer,
    "vsg": line_vsg,
    "email": line_email,
    "route": line_words,
}
_FACTORIES = {"int", "timer", "opttimer", "choice", "optchoice", "wref", "schedflag", "extraif"}

_RS_INHERITED = CHECK_TIMERS + """inhibit_on_failure  f  0-1  flag          inhibit_on_failure
smtp_alert          f  0-1  flag          smtp_alert
virtualhost         v  1    str           virtualhost
alpha               f  0-1  flag          alpha
"""
_NOTIFY = """
notify_master       v  1+   script         notify_master
notify_backup       v  1+   script         notify_backup
notify_fault        v  1+   script         notify_fault
notify_stop         v  1+   script         notify_stop
notify              v  1+   script         notify
notify_priority_changes f 0-1 flag        notify_priority_changes
smtp_alert          f  0-1  flag          smtp_alert
"""
_TRACKS = """
track_interface     l  0    track         +track_interface
track_script        l  0    track         +track_script
track_file          l  0    track         +track_file
track_process       l  0    track         +track_process
track_bfd           l  0    track         +track_bfd
"""
# Top-level keywords keepalived installs as "root" keywords (outside global_defs).
_ROOT_ONLY = """
net_namespace       v  1    str           +net_namespace
net_namespace_ipvs  v  0-1  str           -
namespace_with_ipsets f 0-1 flag          -
instance            v  1    str           -
use_pid_dir         f  0-1  flag          -
child_wait_time     v  1    int:0,2147483647 -
linkbeat_use_polling f 0-1  flag          -
include_check       v  0+   any           -
"""

# hafast extensions in global_defs: keepalived does not know these keywords (its -t calls
# them unknown), so a config using them is for hafast only.  EXTENSIONS gives each its
# help text, shown in every message about the keyword.
_HAFAST_GLOBAL = f"""
lvs_backend         v  1    choice:{','.join(POOL_BACKENDS)} lvs_backend
metrics_listen      v  1    listen        metrics_listen
check_workers       v  1    int:0,1024    check_workers
"""
EXTENSIONS: dict[tuple[str, str], str] = {
    ("global_defs", "lvs_backend"): "a hafast extension (keepalived does not know it): "
    f"the pool backend, {help_text()}",
    ("global_defs", "metrics_listen"): "a hafast extension (keepalived does not know it): "
    "where to serve Prometheus /metrics",
    ("global_defs", "check_workers"): "a hafast extension (keepalived does not know it): "
    "check worker processes, 0 = one per core",
    # keepalived's man page documents these names; its parser reads only *_dump_file
    **{("global_defs", f"{w}_file_location"): "a hafast extension (keepalived does not "
       f"know it): the keepalived man page's name for {w}_dump_file"
       for w in ("state", "stats", "json")},
}

# hafast extensions for fleet mode (docs/fleet.md): a BGP speaker that announces each
# virtual server's VIP while the virtual server has its quorum.
_BGP_SPEAKER = """
daemon              v  1    choice:frr    daemon
local_as            v  1    int:1,4294967295 local_as
router_id           v  1    ip            router_id
neighbor            b  1    bgp_neighbor  +neighbors
hold_time           v  1    int:3,65535   hold_time
keepalive           v  1    int:1,21845   keepalive
frr_pathspace       v  1    str           frr_pathspace
frr_control         v  1    choice:none,reload,run frr_control
frr_dir             v  1    str           frr_dir
"""
_BGP_NEIGHBOR = """
remote_as           v  1    int:1,4294967295 remote_as
bfd                 f  0-1  flag          bfd
"""
_ANNOUNCE = """
prefix              v  1    hostprefix    +prefixes
announce_delay      v  1    timer:0,3600  announce_delay_us
drain_method        v  1-2  drainmethod   drain_method
shutdown_drain_time v  1    timer:0,3600  shutdown_drain_time_us
announce_hold_down  v  1    timer:0,3600  announce_hold_down_us
announce_max_changes_per_minute v 1 int:0,1000 announce_max_changes_per_minute
communities         v  1+   communities   communities
large_communities   v  1+   largecommunities large_communities
track_script        l  0    track         +track_script
track_file          l  0    track         +track_file
track_interface     l  0    track         +track_interface
track_process       l  0    track         +track_process
"""
_FLEET_HELP = {
    ("top", "bgp_speaker"): "the director's BGP speaker (FRR) for fleet mode",
    ("bgp_speaker", "daemon"): "the routing daemon hafast configures (frr)",
    ("bgp_speaker", "local_as"): "this director's AS number",
    ("bgp_speaker", "router_id"): "the BGP router id (an IPv4 address)",
    ("bgp_speaker", "neighbor"): "a BGP peer (the upstream router): "
    "neighbor ADDR { remote_as N bfd }",
    ("bgp_speaker", "hold_time"): "BGP hold time in seconds (default 9)",
    ("bgp_speaker", "keepalive"): "BGP keepalive interval in seconds (default 3)",
    ("bgp_speaker", "frr_pathspace"): "the FRR instance's pathspace (its daemons' and "
    "vtysh's -N NAME), where hafast reads the BGP and BFD session states",
    ("bgp_speaker", "frr_control"): "none (the operator runs FRR), reload (hafast keeps "
    "an operator-run FRR on its rendered config with frr-reload.py) or run (hafast runs "
    "zebra, bfdd and bgpd itself)",
    ("bgp_speaker", "frr_dir"): "where hafast writes FRR's config (default /etc/frr, or "
    "/etc/frr/PATHSPACE)",
    ("bgp_neighbor", "remote_as"): "the peer's AS number",
    ("bgp_neighbor", "bfd"): "BFD on this session (50 ms x 3)",
    ("virtual_server", "announce"): "announce the VIP by BGP while the quorum is up",
    ("announce", "prefix"): "a VIP as a host prefix, A/32 or A/128 (one line each; "
    "all follow the block's quorum)",
    ("announce", "communities"): "BGP communities the VIP's path carries (AS:N or a "
    "well-known name such as no-export), serving and draining",
    ("announce", "large_communities"): "BGP large communities (RFC 8092, "
    "GLOBAL:LOCAL1:LOCAL2) the VIP's path carries, serving and draining",
    ("announce", "track_script"): "vrrp_scripts that must succeed for the VIP to be "
    "announced (the director's own checks)",
    ("announce", "track_file"): "track_files that must read 0 for the VIP to be announced",
    ("announce", "track_interface"): "interfaces that must be up for the VIP to be "
    "announced",
    ("announce", "track_process"): "vrrp_track_processes whose quorum of processes must "
    "hold for the VIP to be announced",
    ("announce", "announce_delay"): "seconds to hold the first announcement after the "
    "first full round of checks",
    ("announce", "drain_method"): "how SIGTERM drains the VIP before withdrawing it: "
    "withdraw | med N | prepend N | graceful_shutdown",
    ("announce", "shutdown_drain_time"): "seconds SIGTERM keeps the VIP drained (or, "
    "for withdraw, serving after the withdrawal) before the daemon exits",
    ("announce", "announce_hold_down"): "seconds a VIP withdrawn for a lost quorum stays "
    "withdrawn before it may be announced again",
    ("announce", "announce_max_changes_per_minute"): "at most this many announcements "
    "and withdrawals in any minute; an announcement over it waits (0: no cap)",
}
EXTENSIONS.update({k: f"a hafast extension (keepalived does not know it): {v}"
                   for k, v in _FLEET_HELP.items()})

TABLE_TEXT: dict[str, str] = {
    "top": _ROOT_ONLY
    + """
global_defs         b  0    global_defs   global_defs
vrrp_script         b  1    vrrp_script   +vrrp_scripts
track_file          b  1    track_file    +track_files
vrrp_track_file     b  1    track_file    +track_files
vrrp_track_process  b  1    vrrp_track_process +track_processes
vrrp_sync_group     b  1    vrrp_sync_group +sync_groups
vrrp_instance       b  1    vrrp_instance +vrrp_instances
garp_group          b  0    garp_group    +garp_groups
track_group         b  1    track_group   +track_groups
linkbeat_interfaces l  0    any           -
interface_up_down_delays l 0 any          +interface_up_down_delays
static_ipaddress    l  0    vip           +static_ipaddress
static_routes       l  0    route         +static_routes
static_rules        l  0    route         +static_rules
bfd_instance        b  1    bfd_instance  -
SSL                 b  0    SSL           ssl
virtual_server_group l 1    vsg           +virtual_server_groups
virtual_server      b  1-2  virtual_server +virtual_servers
bgp_speaker         b  0    bgp_speaker   bgp_speaker
""",
    "bgp_speaker": _BGP_SPEAKER,
    "bgp_neighbor": _BGP_NEIGHBOR,
    "announce": _ANNOUNCE,
    "global_defs": """
router_id           v  1    str           router_id
notification_email  l  0    email         +notification_email
notification_email_from v 1 str           notification_email_from
smtp_server         v  1-2  host_port     smtp_server
smtp_helo_name      v  1    str           smtp_helo_name
smtp_connect_timeout v 1    timer:0.001,86400 smtp_connect_timeout_us
smtp_alert          f  0-1  flag          smtp_alert
smtp_alert_vrrp     f  0-1  flag          smtp_alert_vrrp
smtp_alert_checker  f  0-1  flag          smtp_alert_checker
no_email_faults     f  0-1  flag          no_email_faults
no_checker_emails   f  0-1  flag          no_checker_emails
checker_log_all_failures f 0-1 flag       checker_log_all_failures
default_interface   v  1    str           default_interface
vrrp_mcast_group4   v  1    ip            vrrp_mcast_group4
vrrp_mcast_group6   v  1    ip            vrrp_mcast_group6
vrrp_version        v  1    int:2,3       vrrp_version
vrrp_strict         f  0-1  flag          vrrp_strict
vrrp_check_unicast_src f 0-1 flag         vrrp_check_unicast_src
vrrp_skip_check_adv_addr f 0-1 flag       vrrp_skip_check_adv_addr
vrrp_lower_prio_no_advert f 0-1 flag      vrrp_lower_prio_no_advert
vrrp_higher_prio_send_advert f 0-1 flag   vrrp_higher_prio_send_advert
vrrp_down_timer_adverts v 1  int:1,100    vrrp_down_timer_adverts
vrrp_owner_ignore_adverts f 0-1 flag      vrrp_owner_ignore_adverts
vrrp_startup_delay  v  1    timer:0,4294.967295 vrrp_startup_delay_us
vrrp_delay_after_boot v 1   timer:0,4294.967295 vrrp_delay_after_boot_us
vrrp_garp_master_delay v 1  timer:0,255   vrrp_garp_master_delay_us
vrrp_garp_master_repeat v 1 int:0,255     vrrp_garp_master_repeat
vrrp_garp_lower_prio_delay v 1 timer:0,255 vrrp_garp_lower_prio_delay_us
vrrp_garp_lower_prio_repeat v 1 int:0,255 vrrp_garp_lower_prio_repeat
vrrp_garp_master_refresh v 1 timer:0,86400 vrrp_garp_master_refresh_us
vrrp_garp_master_refresh_repeat v 1 int:1,255 vrrp_garp_master_refresh_repeat
vrrp_garp_interval  v  1    timer:0.000001,1 vrrp_garp_interval_us
vrrp_gna_interval   v  1    timer:0.000001,1 vrrp_gna_interval_us
vrrp_min_garp       f  0-1  flag          vrrp_min_garp
vrrp_garp_extra_if  v  1-2  extraif:1     vrrp_garp_extra_if
vrrp_vmac_garp_intvl v 1+   extraif:1     vrrp_garp_extra_if
v3_checksum_as_v2   f  0-1  flag          v3_checksum_as_v2
log_unknown_vrids   f  0-1  flag          -
vmac_prefix         v  1    str           vmac_prefix
vmac_addr_prefix    v  1    str           -
dynamic_interfaces  f  0-1  any           -
disable_local_igmp  f  0-1  flag          -
enable_script_security f 0-1 flag         enable_script_security
script_user         v  1-2  words         script_user
use_symlink_paths   f  0-1  flag          -
set_supplementary_groups f 0-1 flag       -
startup_script      v  1+   script         startup_script
startup_script_timeout v 1  int:1,1000    startup_script_timeout
shutdown_script     v  1+   script         shutdown_script
shutdown_script_timeout v 1 int:1,1000    shutdown_script_timeout
notify_fifo         v  1-3  words         notify_fifo
notify_fifo_script  v  1+   script         notify_fifo_script
vrrp_notify_fifo    v  1-3  words         vrrp_notify_fifo
vrrp_notify_fifo_script v 1+ script        vrrp_notify_fifo_script
lvs_notify_fifo     v  1-3  words         lvs_notify_fifo
lvs_notify_fifo_script v 1+ script         lvs_notify_fifo_script
fifo_write_vrrp_states_on_reload f 0-1 flag fifo_write_vrrp_states_on_reload
vrrp_notify_priority_changes f 0-1 flag   vrrp_notify_priority_changes
rs_init_notifies    f  0-1  flag          rs_init_notifies
tmp_config_directory v 1    str           -
config_save_dir     v  1    str           -
reload_check_config v  0-1  str           -
reload_time_file    v  1    str           -
reload_repeat       f  0-1  flag          -
reload_file         v  0-1  str           -
random_seed         v  1    int:0,4294967295 -
umask               v  1+   any           -
data_use_instance   f  0-1  flag          data_use_instance
state_dump_file     v  1    str           state_dump_file
stats_dump_file     v  1    str           stats_dump_file
json_dump_file      v  1    str           json_dump_file
state_file_location v  1    str           state_dump_file
stats_file_location v  1    str           stats_dump_file
json_file_location  v  1    str           json_dump_file
json_version        v  1    int:1,2       -
iproute_usr_dir     v  1    str           -
iproute_etc_dir     v  1    str           -
process_names       f  0-1  flag          process_names
process_name        v  1    str           process_name
vrrp_process_name   v  1    str           vrrp_process_name
checker_process_name v 1    str           checker_process_name
bfd_process_name    v  1    str           -
lvs_process_name    v  1    str           checker_process_name
vrrp_priority       v  1    int:-20,19    vrrp_process_priority
checker_priority    v  1    int:-20,19    checker_process_priority
bfd_priority        v  1    int:-20,19    -
vrrp_no_swap        f  0-1  flag          vrrp_no_swap
checker_no_swap     f  0-1  flag          checker_no_swap
bfd_no_swap         f  0-1  flag          -
vrrp_cpu_affinity   v  1+   any           vrrp_cpu_affinity
checker_cpu_affinity v 1+   any           checker_cpu_affinity
bfd_cpu_affinity    v  1+   any           -
vrrp_rt_priority    v  1    int:1,99      vrrp_rt_priority
checker_rt_priority v  1    int:1,99      checker_rt_priority
bfd_rt_priority     v  1    int:1,99      -
vrrp_rlimit_rttime  v  1    int:1,4294967295 vrrp_rlimit_rttime
checker_rlimit_rttime v 1   int:1,4294967295 checker_rlimit_rttime
bfd_rlimit_rttime   v  1    int:1,4294967295 -
vrrp_rlimit_rtime   v  1    int:1,4294967295 vrrp_rlimit_rttime
checker_rlimit_rtime v 1    int:1,4294967295 checker_rlimit_rttime
bfd_rlimit_rtime    v  1    int:1,4294967295 -
max_auto_priority   v  0-1  int:-1,99     max_auto_priority
min_auto_priority_delay v 1 int:0,2147483647 min_auto_priority_delay
nftables            v  0-1  str           nftables
nftables_priority   v  1    int:-2147483648,2147483647 nftables_priority
nftables_counters   f  0-1  flag          nftables_counters
nftables_ifindex    f  0-1  flag          nftables_ifindex
nftables_ipvs       v  0-1  str           -
nftables_ipvs_priority v 1  int:-2147483648,2147483647 -
nftables_ipvs_start_fwmark v 1 int:1,4294967295 -
vrrp_iptables       v  0-2  any           vrrp_iptables
vrrp_ipsets         v  0-5  any           -
vrrp_netlink_cmd_rcv_bufs v 1 int:0,2147483647 -
vrrp_netlink_cmd_rcv_bufs_force f 0-1 flag -
vrrp_netlink_monitor_rcv_bufs v 1 int:0,2147483647 -
vrrp_netlink_monitor_rcv_bufs_force f 0-1 flag -
lvs_netlink_cmd_rcv_bufs v 1 int:0,2147483647 -
lvs_netlink_cmd_rcv_bufs_force f 0-1 flag -
lvs_netlink_monitor_rcv_bufs v 1 int:0,2147483647 -
lvs_netlink_monitor_rcv_bufs_force f 0-1 flag -
process_monitor_rcv_bufs v 1 int:0,2147483647 -
process_monitor_rcv_bufs_force f 0-1 flag -
vrrp_rx_bufs_policy v  1+   rxbufs        vrrp_rx_bufs_policy
vrrp_rx_bufs_multiplier v 1 int:1,2147483647 vrrp_rx_bufs_multiplier
lvs_sync_daemon     v  1+   lvs_syncd     lvs_sync_daemon
lvs_timeouts        v  2+   lvs_timeouts  lvs_timeouts
lvs_flush           f  0-1  flag          lvs_flush
lvs_flush_on_stop   v  0-1  flushstop     lvs_flush_on_stop
lvs_flush_onstop    v  0-1  flushstop     lvs_flush_on_stop
snmp_socket         v  1    str           snmp_socket
enable_snmp_vrrp    f  0-1  flag          enable_snmp_vrrp
enable_snmp_keepalived f 0-1 flag         enable_snmp_vrrp
enable_snmp_checker f  0-1  flag          enable_snmp_checker
enable_snmp_rfc     f  0-1  flag          enable_snmp_rfc
enable_snmp_rfcv2   f  0-1  flag          enable_snmp_rfcv2
enable_snmp_rfcv3   f  0-1  flag          enable_snmp_rfcv3
enable_traps        f  0-1  flag          enable_traps
snmp_vs_stats_update_interval v 1 timer:0,86400 -
snmp_rs_stats_update_interval v 1 timer:0,86400 -
enable_dbus         f  0-1  flag          -
dbus_service_name   v  1    str           -
dbus_no_interface_name f 0-1 flag         -
thread_timer_expired f 0-1  flag          -
"""
    + "include_check       v  0+   any           -\n"
    + _HAFAST_GLOBAL,
    "vrrp_script": """
script              v  1+   script         script
interval            v  1    timer:0.001,86400 interval_us
timeout             v  1    timer:0.001,86400 timeout_us
weight              v  1-2  wref:-253,253 weight
rise                v  1    int:1,2147483647 rise
fall                v  1    int:1,2147483647 fall
user                v  1-2  words         user
init_fail           f  0-1  flag          init_fail
""",
    "track_file": """
file                v  1    str           file
weight              v  1-2  wref:-2147483647,2147483647 weight
init_file           v  0-2  any           init_file
""",
    "vrrp_track_process": """
process             v  1+   words         process
param_match         v  0-1  optchoice:exact,initial,partial param_match
weight              v  1-2  wref:-254,254 weight
quorum              v  1    int:1,65535   quorum
quorum_max          v  1    int:0,65535   quorum_max
fork_delay          v  1    timer:0,3600  fork_delay_us
terminate_delay     v  1    timer:0,3600  terminate_delay_us
delay               v  1    timer:0,3600  delay_us
full_command        f  0-1  flag          full_command
""",
    "vrrp_sync_group": """
group               l  0    name          +group
global_tracking     f  0-1  flag          sync_group_tracking_weight
sync_group_tracking_weight f 0-1 flag     sync_group_tracking_weight
notify_deleted      v  0+   any           -
"""
    + _NOTIFY
    + _TRACKS,
    "vrrp_instance": """
state               v  1    choice:MASTER,BACKUP state
interface           v  1    str           interface
vrf                 v  1    str           -
virtual_router_id   v  1    int:1,255     virtual_router_id
priority            v  1    int:1,255     priority
advert_int          v  1    timer:0.01,255 advert_int_us
version             v  1    int:2,3       version
native_ipv6         f  0-1  flag          native_ipv6
debug               v  0-1  any           -
use_vmac            v  0+   any           use_vmac
use_vmac_addr       f  0-1  flag          -
vmac_xmit_base      f  0-1  flag          vmac_xmit_base
vmac_garp_intvl     v  1+   extraif:0     garp_extra_if
use_ipvlan          v  0+   any           use_ipvlan
virtual_ipaddress   l  0    vip           +virtual_ipaddress
virtual_ipaddress_excluded l 0 vip        +virtual_ipaddress_excluded
no_virtual_ipaddress f 0-1  flag          no_virtual_ipaddress
promote_secondaries f  0-1  flag          promote_secondaries
virtual_routes      l  0    route         +virtual_routes
virtual_rules       l  0    route         +virtual_rules
dont_track_primary  f  0-1  flag          dont_track_primary
track_src_ip        f  0-1  flag          -
linkbeat_use_polling f 0-1  flag          -
mcast_src_ip        v  1    ip            mcast_src_ip
unicast_src_ip      v  1    ip            unicast_src_ip
mcast_dst_ip        v  1    ip            mcast_dst_ip
unicast_peer        l  0    peer          +unicast_peer
unicast_ttl         v  1    int:1,255     unicast_ttl
unicast_fault_no_peer f 0-1 flag          unicast_fault_no_peer
check_unicast_src   f  0-1  flag          check_unicast_src
old_unicast_checksum v 0-1  any           -
v3_checksum_as_v2   f  0-1  flag          v3_checksum_as_v2
kernel_rx_buf_size  v  1    int:0,2147483647 kernel_rx_buf_size
nopreempt           f  0-1  flag          nopreempt
preempt             f  0-1  flag          -
preempt_delay       v  1    timer:0,1000  preempt_delay_us
accept              f  0-1  flag          accept
no_accept           f  0-1  flag          no_accept
strict_mode         f  0-1  flag          strict_mode
skip_check_adv_addr f  0-1  flag          skip_check_adv_addr
down_timer_adverts  v  1    int:1,100     down_timer_adverts
timer_expired_backup v 0-1  int:1,254     timer_expired_backup
lower_prio_no_advert f 0-1  flag          lower_prio_no_advert
higher_prio_send_advert f 0-1 flag        higher_prio_send_advert
owner_ignore_adverts f 0-1  flag          owner_ignore_adverts
garp_master_delay   v  1    timer:0,255   garp_master_delay_us
garp_master_repeat  v  1    int:0,255     garp_master_repeat
garp_lower_prio_delay v 1   timer:0,255   garp_lower_prio_delay_us
garp_lower_prio_repeat v 1  int:0,255     garp_lower_prio_repeat
garp_master_refresh v  1    timer:0,86400 garp_master_refresh_us
garp_master_refresh_repeat v 1 int:1,255  garp_master_refresh_repeat
garp_extra_if       v  1-2  extraif:0     garp_extra_if
authentication      b  0    authentication authentication
auth_hmac           b  0    auth_hmac     -
notify_master_rx_lower_pri v 1+ script     notify_master_rx_lower_pri
notify_deleted      v  0+   script        notify_deleted
lvs_sync_daemon_interface v 1 str         lvs_sync_daemon_interface
thread_timer_expired f 0-1  flag          -
"""
    + _NOTIFY
    + _TRACKS,
    "authentication": """
auth_type           v  1    choice:PASS,AH auth_type
auth_pass           v  1    str           auth_pass
""",
    "auth_hmac": """
key                 v  2    any           -
active_key          v  1    str           -
anti_replay         v  1    choice:time,monotonic -
time_window         v  1    int:1,300     -
mode                v  1    choice:enforce,permissive,receive-only -
""",
    "garp_group": """
garp_interval       v  1    timer:0,2147.483647 garp_interval_us
gna_interval        v  1    timer:0,2147.483647 gna_interval_us
interface           v  1    str           +interfaces
interfaces          l  0    name          +interfaces
""",
    "track_group": """
group               l  0    name          group
""",
    "bfd_instance": """
neighbor_ip         v  1    ip            -
neighbour_ip        v  1    ip            -
source_ip           v  1    ip            -
min_rx              v  1    int:1,1000    -
min_tx              v  1    int:1,1000    -
idle_tx             v  1    int:1,1000    -
multiplier          v  1    int:1,255     -
passive             f  0-1  flag          -
ttl                 v  1    int:1,255     -
hoplimit            v  1    int:1,255     -
max_hops            v  1    int:0,255     -
multihop            f  0-1  flag          -
weight              v  1-2  any           -
vrrp                f  0-1  flag          -
checker             f  0-1  flag          -
""",
    "SSL": """
password            v  1    str           password
ca                  v  1    str           ca
certificate         v  1    str           certificate
key                 v  1    str           key
""",
    "virtual_server": """
lvs_sched           v  1    choice:rr,wrr,lc,wlc,lblc,sh,mh,dh,fo,ovf,lblcr,sed,nq,twos lvs_sched
lb_algo             v  1    choice:rr,wrr,lc,wlc,lblc,sh,mh,dh,fo,ovf,lblcr,sed,nq,twos lvs_sched
lvs_method          v  1+   lvs_method    lvs_method
lb_kind             v  1+   lvs_method    lvs_method
protocol            v  1    choice:TCP,UDP,SCTP protocol
ip_family           v  1    choice:inet,inet6 ip_family
persistence_engine  v  1    str           persistence_engine
persistence_timeout v  0-1  persist       persistence_timeout
persistence_granularity v 1 str           persistence_granularity
omega               f  0-1  flag          omega
quorum              v  1    int:1,4294967295 quorum
quorum_up           v  1+   script         quorum_up
quorum_down         v  1+   script         quorum_down
hysteresis          v  1    int:0,2147483647 hysteresis
sorry_server        v  1-2  ip_port       sorry_server
sorry_server_inhibit f 0-1  flag          sorry_server_inhibit
sorry_server_lvs_method v 1+ lvs_method   sorry_server_lvs_method
ha_suspend          f  0-1  flag          ha_suspend
snmp_name           v  1    str           snmp_name
ops                 f  0-1  flag          ops
flag-1              f  0-1  schedflag:flag-1 +sched_flags
flag-2              f  0-1  schedflag:flag-2 +sched_flags
flag-3              f  0-1  schedflag:flag-3 +sched_flags
sh-port             f  0-1  schedflag:sh-port +sched_flags
sh-fallback         f  0-1  schedflag:sh-fallback +sched_flags
mh-port             f  0-1  schedflag:mh-port +sched_flags
mh-fallback         f  0-1  schedflag:mh-fallback +sched_flags
hashed              f  0-1  schedflag:hashed +sched_flags
real_server         b  1-2  real_server   +real_servers
weight              v  1    int:1,2147483647 weight
"""
    + _RS_INHERITED
    # last: keepalived's -t, not knowing the block, misreads every line after it
    # (tests/unit/config/test_vs_keepalived.py feeds the rows in this order)
    + "announce b 0 announce announce\n",
    "real_server": """
weight              v  1    int:0,2147483647 weight
lvs_method          v  1+   lvs_method    lvs_method
notify_up           v  1+   script         notify_up
notify_down         v  1+   script         notify_down
uthreshold          v  1    int:0,2147483647 uthreshold
lthreshold          v  1    int:0,2147483647 lthreshold
snmp_name           v  1    str           snmp_name
"""
    + _RS_INHERITED,
    # the checker blocks (TCP_CHECK { }, ...) and their rows come from
    # hafast.config.kinds: see _install_kind below
}


def conv_lvs_method(args: Sequence[Token]) -> str:
    """``NAT|DR|TUN [type ipip|gue port N|gre] [nocsum|csum|remcsum]``; options kept as text."""
    t = args[0]
    v = t.text.upper()
    if v not in ("NAT", "DR", "TUN"):
        raise BadValue(t, f"'{t.text}' is not one of NAT|DR|TUN")
    if len(args) > 1 and v != "TUN":
        raise BadValue(args[1], f"'{args[1].text}': only TUN takes tunnel options")
    return " ".join([v, *(a.text for a in args[1:])])


CONVERTERS["lvs_method"] = conv_lvs_method


def conv_host_prefix(args: Sequence[Token]) -> str:
    """A VIP as a host prefix (``A/32``, ``A/128``; a bare address means the host), for
    ``announce { prefix }``: fleet mode announces host routes, one per address."""
    t = args[0]
    try:
        net = ipaddress.ip_network(t.text, strict=True)
    except ValueError as exc:
        raise BadValue(t, f"'{t.text}' is not an IP prefix ({exc})") from None
    if net.prefixlen != net.max_prefixlen:
        raise BadValue(t, f"'{t.text}' is not a host prefix (/{net.max_prefixlen})")
    return str(net)


CONVERTERS["hostprefix"] = conv_host_prefix

# drain_method: the keyword and its argument's range (RFC 4271 §4.3: MED is 32 bits;
# FRR's ``set as-path prepend`` takes at most 10 repetitions of an AS here)
_DRAIN_METHODS: dict[str, tuple[int, int] | None] = {
    "withdraw": None, "graceful_shutdown": None, "med": (0, 4294967295), "prepend": (1, 10),
}


def conv_drain_method(args: Sequence[Token]) -> str:
    """``withdraw | med N | prepend N | graceful_shutdown``, normalised to text."""
    t = args[0]
    expected = "withdraw | med N | prepend N | graceful_shutdown"
    if t.text not in _DRAIN_METHODS:
        raise BadValue(t, f"'{t.text}' is not a drain method (expected: {expected})")
    rng = _DRAIN_METHODS[t.text]
    if rng is None:
        if len(args) > 1:
            raise BadValue(args[1], f"{t.text} takes no argument")
        return t.text
    if len(args) < 2:
        raise BadValue(t, f"{t.text} needs a number (expected: {t.text} N)")
    try:
        n = int(args[1].text)
    except ValueError:
        n = -1
    if not rng[0] <= n <= rng[1]:
        raise BadValue(args[1], f"'{args[1].text}' is not an integer {rng[0]}..{rng[1]}")
    return f"{t.text} {n}"


CONVERTERS["drainmethod"] = conv_drain_method

# RFC 1997 (and RFC 8326's graceful-shutdown) well-known communities, as FRR names them
_WELL_KNOWN_COMMUNITIES = ("no-export", "no-advertise", "local-AS", "no-peer", "blackhole",
                           "graceful-shutdown", "accept-own")


def conv_communities(args: Sequence[Token]) -> tuple[str, ...]:
    """``AS:N ...`` (each 0..65535) or FRR's well-known names, in the order given."""
    out: list[str] = []
    for t in args:
        if t.text in _WELL_KNOWN_COMMUNITIES:
            out.append(t.text)
            continue
        high, sep, low = t.text.partition(":")
        if not (sep and high.isdigit() and low.isdigit()
                and int(high) <= 65535 and int(low) <= 65535):
            raise BadValue(t, f"'{t.text}' is not a BGP community (AS and N are 0..65535; "
                           f"the well-known ones: {', '.join(_WELL_KNOWN_COMMUNITIES)})")
        out.append(f"{int(high)}:{int(low)}")
    return tuple(dict.fromkeys(out))


CONVERTERS["communities"] = conv_communities


def conv_large_communities(args: Sequence[Token]) -> tuple[str, ...]:
    """``GLOBAL:LOCAL1:LOCAL2 ...`` (RFC 8092 §3: three 32-bit numbers), in the order
    given, duplicates dropped."""
    out: list[str] = []
    for t in args:
        parts = t.text.split(":")
        if not (len(parts) == 3 and all(p.isdigit() and int(p) <= 0xFFFFFFFF for p in parts)):
            raise BadValue(t, f"'{t.text}' is not a BGP large community (GLOBAL:LOCAL1:"
                           "LOCAL2, each 0..4294967295, RFC 8092)")
        out.append(":".join(str(int(p)) for p in parts))
    return tuple(dict.fromkeys(out))


CONVERTERS["largecommunities"] = conv_large_communities


def _arity(text: str) -> tuple[int, int]:
    if text.endswith("+"):
        return int(text[:-1]), -1
    lo, _, hi = text.partition("-")
    return int(lo), int(hi or lo)


def _converter(spec: str) -> Converter:
    name, _, argtext = spec.partition(":")
    if name in _FACTORIES:
        params: list[Any] = []
        for a in argtext.split(","):
            if name in ("choice", "optchoice"):
                params.append(a)
                continue
            try:
                params.append(int(a))
            except ValueError:
                try:
                    params.append(float(a))
                except ValueError:
                    params.append(a)
        factory: Any = CONVERTERS[name]
        result: Converter = factory(*params)
        return result
    return CONVERTERS[name]


def _describe(conv: str) -> str:
    """A human name for a converter, used in "what would be right" messages."""
    name, _, argtext = conv.partition(":")
    args = argtext.split(",")
    if name == "int":
        return f"integer {args[0]}..{args[1]}"
    if name == "timer":
        return f"seconds {args[0]}..{args[1]}"
    if name == "choice":
        return "|".join(args)
    if name == "optchoice":
        return f"[{'|'.join(args[1:])}]"
    if name == "wref":
        return f"weight {args[0]}..{args[1]} [reverse]"
    return _DESCRIPTIONS.get(name, name)


_DESCRIPTIONS = {
    "str": "word",
    "flushstop": "[VS]",
    "words": "words",
    "script": 'script or "script args" [user [group]]',
    "text": "text",
    "flag": "on|off",
    "ip": "IP address",
    "port": "port",
    "cport": "port 1..65535",
    "ip_port": "IP [PORT]",
    "host_port": "IP|HOST [PORT]",
    "digest": "32 hex digit MD5",
    "status": "N|N-M ...",
    "hex": "hex string",
    "persist": "[seconds]",
    "any": "words",
    "name": "name",
    "vip": "IP[/PREFIX] [dev IF] [label L] ...",
    "track": "NAME [weight W [reverse]]",
    "peer": "IP [min_ttl N] [max_ttl N]",
    "vsg": "IP[-LAST] [PORT] | fwmark N",
    "email": "address",
    "route": "route or rule",
    "lvs_method": "NAT|DR|TUN",
    "lvs_timeouts": "[tcp S] [tcpfin S] [udp S]",
    "lvs_syncd": "INTERFACE [[inst] VRRP_INSTANCE] [id N] [maxlen N] [port N] [ttl N] [group IP]",
    "listen": "ADDR:PORT | [IPv6]:PORT",
    "schedflag": "on|off",
    "extraif": "[SECONDS] [all]",
    "hostprefix": "A/32 or A/128",
    "communities": "AS:N ...",
    "largecommunities": "GLOBAL:LOCAL1:LOCAL2 ...",
}


# Old names keepalived 2.2.7 still reads as the new keyword, with a warning.
DEPRECATED_NAMES: dict[str, str] = {
    "nb_get_retry": "retry",
    "global_tracking": "sync_group_tracking_weight",
    "vrrp_rlimit_rtime": "vrrp_rlimit_rttime",
    "checker_rlimit_rtime": "checker_rlimit_rttime",
    "lvs_process_name": "checker_process_name",
    # "Deprecated after v2.2.2 - incorrect keyword in commit 3dcd13c"
    "vrrp_vmac_garp_intvl": "vrrp_garp_extra_if",
    "vmac_garp_intvl": "garp_extra_if",
}


# Keywords keepalived 2.2.7 reads as another, with a warning of its own words.
DEPRECATED_WORDS: dict[str, str] = {
    # Debian's build has nftables and no iptables: vrrp_iptables means `nftables`
    # keepalived's message is two lines (vrrp_parser.c vrrp_lvs_syncd_handler)
    "lvs_sync_daemon_interface": "Specifying lvs_sync_daemon_interface against a vrrp is "
                                 "deprecated. Please use global lvs_sync_daemon",
    "vrrp_iptables": "iptables not supported, using nftables instead. Please replace "
                     "'vrrp_iptables and 'vrrp_ipsets' with 'nftables' config option",
}


def _deprecated(name: str) -> str:
    new = DEPRECATED_NAMES.get(name)
    return f"{name} is deprecated - please use '{new}'" if new else DEPRECATED_WORDS.get(name, "")


def _rows(context: str, text: str) -> dict[str, Keyword]:
    """The rows of one context from their text form."""
    rows: dict[str, Keyword] = {}
    for raw in text.strip().splitlines():
        if not raw.strip():
            continue
        name, kind, arity, conv, fieldspec = raw.split()
        lo, hi = _arity(arity)
        child = conv if kind == "b" else None
        field = None if fieldspec == "-" else fieldspec.lstrip("+")
        rows[name] = Keyword(
            context=context,
            name=name,
            kind=kind,
            min_args=lo,
            max_args=hi,
            conv=None if kind == "b" else _converter(conv),
            conv_name=_describe(conv),
            field=field,
            append=fieldspec.startswith("+"),
            child=child,
            note=EXTENSIONS.get((context, name), ""),
            deprecated=_deprecated(name),
            gap=gap(context, name),
            one_word=kind in ("v", "f")
            and field is not None
            and not fieldspec.startswith("+")
            and lo <= 1 <= (hi if hi >= 0 else 1),
        )
    return rows


def _check_children(table: dict[str, dict[str, Keyword]], contexts: Sequence[str]) -> None:
    for context in contexts:
        for kw in table[context].values():
            if kw.child is not None and kw.child not in table:
                raise AssertionError(f"grammar: {kw.name} names unknown context {kw.child}")


def _build() -> dict[str, dict[str, Keyword]]:
    table = {context: _rows(context, text) for context, text in TABLE_TEXT.items()}
    _check_children(table, list(table))
    return table


TABLE: dict[str, dict[str, Keyword]] = _build()


def _install_kind(kind: CheckerKind, added: bool) -> None:
    """A checker kind's rows in and out of TABLE: its block under real_server, its own
    context, and the contexts of the blocks inside it."""
    name = kind.keyword
    if not added:
        TABLE["real_server"].pop(name, None)
        TABLE.pop(name, None)
        for child in kind.children:
            if child not in CHILDREN:  # no other kind still uses it
                TABLE.pop(child, None)
        return
    for child, block in kind.children.items():
        TABLE.setdefault(child, _rows(child, block.rows))
    TABLE[name] = _rows(name, kind.rows)
    _check_children(TABLE, [name, *kind.children])
    # keepalived registers each checker block as "KEYWORD { ... }" under real_server
    TABLE["real_server"].update(_rows("real_server", f"{name} b 0 {name} +checkers"))


# The built-in kinds are registered by hafast.config.model (imported above); later
# registrations (plugins, tests) are installed as they come.
subscribe(_install_kind)


def all_keywords() -> set[str]:
    """Every keyword hafast accepts somewhere (tests compare it with keepalived's list)."""
    return {name for rows in TABLE.values() for name in rows}
