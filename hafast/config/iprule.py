"""keepalived's policy-routing rule lines (``virtual_rules``, ``static_rules``), parsed.

The words are ``ip rule add``'s, as keepalived 2.2.7 reads them (``vrrp_iprule.c``
``alloc_rule``): every option it accepts is accepted here with the same spelling, the
same number bases and the same checks, and what keepalived refuses is refused with its
reason.  The result is an :class:`IpRule`: the fields of a ``fib_rule_hdr`` and its
FRA_* attributes (linux/fib_rules.h), which :mod:`hafast.net.rules` encodes.

Differences from keepalived, each on purpose:

- a line keepalived skips (it logs why and installs nothing) is skipped here too, with
  the same reason as a warning (:class:`RuleError`);
- a value keepalived reports and then drops from the rule (a bad ``protocol``,
  ``ipproto``, ``sport``/``dport``) refuses the config (:class:`RuleRefused`): a rule
  installed without the match the operator wrote would catch traffic it was not
  meant to;
- ``track_group`` (static rules only) names a top-level ``track_group`` block; a rule
  with one and no ``iif``/``dev`` is refused (keepalived drops the track_group and
  installs the rule untracked);
- keepalived (2.2.7 and still in 2.3) steps over the word after ``inet``/``inet6``
  (it advances its index twice): ``inet6 from ::1/128 table 5`` is read as
  ``inet6 ::1/128 table 5`` and skipped.  hafast reads it the same way, and says so;
  where the line would still parse without the word it stepped over, the config is
  refused (keepalived would install another rule).  ``inet6`` at the end of a line
  works in both;
- an interface named by ``iif``/``oif`` need not exist when the config is read (the
  kernel matches by name, and a rule for an interface yet to come is useful).

Example::

    >>> rule, notes = parse_rule(("from", "10.1.0.0/16", "table", "100"))
    >>> rule.src, rule.src_len, rule.table, rule.priority, rule.protocol
    ('10.1.0.0', 16, 100, None, 18)
    >>> notes
    []
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# linux/fib_rules.h: enum { FR_ACT_* }
FR_ACT_TO_TBL, FR_ACT_GOTO, FR_ACT_NOP = 1, 2, 3
FR_ACT_BLACKHOLE, FR_ACT_UNREACHABLE, FR_ACT_PROHIBIT = 6, 7, 8
ACTION_NAMES = {FR_ACT_TO_TBL: "lookup", FR_ACT_GOTO: "goto", FR_ACT_NOP: "nop",
                FR_ACT_BLACKHOLE: "blackhole", FR_ACT_UNREACHABLE: "unreachable",
                FR_ACT_PROHIBIT: "prohibit"}
RTPROT_KEEPALIVED = 18  # linux/rtnetlink.h: the protocol keepalived marks its rules with
# keepalived numbers rules without a preference down from here, per family, in the
# order it reads them (vrrp_iprule.c RULE_START_PRIORITY)
RULE_START_PRIORITY = 16384
U32 = 0xFFFFFFFF

IPROUTE2_DIR = "/etc/iproute2/"  # keepalived 2.2.7 reads only these files (rttables.c)
_RT_TABLE_DEFAULTS = {"default": 253, "main": 254, "local": 255}
# rttables.c rtntypes: names `type` may take; only the last three are rule actions
_RTN_TYPES = {"unicast": 1, "local": 2, "broadcast": 3, "brd": 3, "anycast": 4,
              "multicast": 5, "blackhole": 6, "unreachable": 7, "prohibit": 8,
              "throw": 9, "nat": 10, "xresolve": 11}
_RTN_TO_ACTION = {6: FR_ACT_BLACKHOLE, 7: FR_ACT_UNREACHABLE, 8: FR_ACT_PROHIBIT}


class RuleError(ValueError):
    """A rule line keepalived skips: it says why and installs nothing; so does hafast."""


class RuleRefused(RuleError):
    """A rule line keepalived would install other than written, or hafast cannot honour:
    the config is refused."""


@dataclass(frozen=True, slots=True)
class IpRule:
    """One rule: a ``fib_rule_hdr`` and the FRA_* attributes keepalived would send.

    ``None`` (or 0 where keepalived tests for 0) means the attribute is left out.
    """

    family: int = 4
    src: str | None = None  # FRA_SRC; None: from all
    src_len: int = 0
    dst: str | None = None  # FRA_DST
    dst_len: int = 0
    invert: bool = False  # FIB_RULE_INVERT ("not")
    priority: int | None = None  # FRA_PRIORITY
    tos: int = 0
    fwmark: int | None = None  # FRA_FWMARK
    fwmask: int | None = None  # FRA_FWMASK, only when written as fwmark V/M
    realms: int = 0  # FRA_FLOW: source realm << 16 | destination realm
    suppress_prefixlen: int | None = None
    suppress_ifgroup: int | None = None
    iif: str | None = None  # FRA_IIFNAME ("dev" or "iif")
    oif: str | None = None  # FRA_OIFNAME
    tunnel_id: int = 0  # FRA_TUN_ID
    uidrange: tuple[int, int] | None = None
    l3mdev: bool = False
    protocol: int | None = RTPROT_KEEPALIVED  # FRA_PROTOCOL
    ipproto: int | None = None  # FRA_IP_PROTO
    sport: tuple[int, int] | None = None
    dport: tuple[int, int] | None = None
    action: int = FR_ACT_TO_TBL
    table: int = 0
    goto: int = 0
    no_track: bool = False
    # static_rules: the track_group whose instances track ``iif`` (hafast.net.statics);
    # not the kernel's: a reload that changes only it leaves the rule in place
    track_group: str | None = field(default=None, compare=False)

    def text(self) -> str:
        """The rule as ``ip rule`` would list it (for log lines).

        >>> parse_rule(("to", "10.2.0.0/24", "lookup", "5", "priority", "9"))[0].text()
        'from all to 10.2.0.0/24 priority 9 lookup 5'
        """
        out = ["not"] if self.invert else []
        out += ["from", f"{self.src}/{self.src_len}" if self.src else "all"]
        if self.dst:
            out += ["to", f"{self.dst}/{self.dst_len}"]
        if self.priority is not None:
            out += ["priority", str(self.priority)]
        if self.fwmark is not None:
            out += ["fwmark", hex(self.fwmark) + (f"/{self.fwmask:#x}" if self.fwmask
                                                  is not None else "")]
        for word, val in (("iif", self.iif), ("oif", self.oif)):
            if val:
                out += [word, val]
        if self.action == FR_ACT_TO_TBL:
            out += ["l3mdev"] if self.l3mdev else ["lookup", str(self.table)]
        elif self.action == FR_ACT_GOTO:
            out += ["goto", str(self.goto)]
        else:
            out.append(ACTION_NAMES[self.action])
        return " ".join(out)


def c_ulong(text: str, base: int = 0) -> int | None:
    """The whole of ``text`` as C's ``strtoul(text, &end, base)`` reads it, or None.

    keepalived reads numbers this way: base 0 takes ``0x1f`` (hex) and ``017`` (octal).

    >>> c_ulong("0x10"), c_ulong("010"), c_ulong("10"), c_ulong("1x"), c_ulong("-1")
    (16, 8, 10, None, None)
    """
    t = text.lstrip(" \t")
    if t.startswith("+"):
        t = t[1:]
    if not t or t.startswith("-"):
        return None
    try:
        if base == 0:
            if re.fullmatch(r"0[xX][0-9a-fA-F]+", t):
                return int(t, 16)
            if re.fullmatch(r"0[0-7]*", t):
                return int(t, 8)
            return int(t, 10) if re.fullmatch(r"[1-9][0-9]*", t) else None
        return int(t, base) if re.fullmatch(r"[0-9]+", t) else None
    except ValueError:
        return None


def _names(file: str) -> dict[str, int]:
    """``NUMBER NAME`` lines of an iproute2 table file (rttables.c read_file)."""
    out: dict[str, int] = {}
    try:
        with open(IPROUTE2_DIR + file, encoding="utf-8", errors="replace") as f:
            for line in f:
                words = line.split("#", 1)[0].split()
                if len(words) == 2:
                    num = c_ulong(words[0])
                    if num is not None:
                        out.setdefault(words[1], num)
    except OSError:
        pass
    return out


def rt_lookup(word: str, file: str, top: int, defaults: dict[str, int] | None = None
              ) -> int | None:
    """A number (any base) up to ``top``, or a name from ``/etc/iproute2/<file>``
    (rttables.c find_entry).

    >>> rt_lookup("main", "rt_tables", U32, _RT_TABLE_DEFAULTS), rt_lookup("0x1f", "x", 255)
    (254, 31)
    """
    num = c_ulong(word)
    if num is not None:
        return num if num <= top else None
    names = {**(defaults or {}), **_names(file)}
    found = names.get(word)
    return found if found is not None and found <= top else None


def _protocols() -> dict[str, int]:
    """/etc/protocols names and aliases (what getprotobyname(3) reads)."""
    out: dict[str, int] = {}
    try:
        with open("/etc/protocols", encoding="utf-8", errors="replace") as f:
            for line in f:
                words = line.split("#", 1)[0].split()
                if len(words) >= 2 and words[1].isdigit():
                    for name in (words[0], *words[2:]):
                        out.setdefault(name, int(words[1]))
    except OSError:
        pass
    return out or {"icmp": 1, "tcp": 6, "udp": 17, "ipv6-icmp": 58, "sctp": 132}


def _ipproto(word: str) -> int | None:
    # vrrp_iprule.c inet_proto_a2n: a number only up to INT8_MAX (127), else a name
    num = c_ulong(word, 10)
    if num is not None:
        return num if num <= 127 else None
    return _protocols().get(word.strip())


def _address(word: str) -> tuple[int, str | None, int]:
    """``(family, address, prefix length)``: vrrp_iproute.c parse_route; family 0 for
    ``default``/``any``/``all``."""
    if word in ("default", "any", "all"):
        return 0, None, 0
    if word == "default6":  # keepalived <= 2.0.7's spelling, still read
        return 6, None, 0
    addr, slash, plen = word.partition("/")
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        raise RuleError(f"'{word}' is not an IP address[/prefix] (expected: an address, "
                        "ADDR/LEN, or all)") from None
    top = 32 if ip.version == 4 else 128
    length = top
    if slash:
        n = c_ulong(plen, 10)
        if n is None or n > top:
            raise RuleError(f"Invalid address prefix len {plen} for address {word} "
                            f"(expected: 0..{top})")
        length = n
    return ip.version, str(ip), length


def _range(word: str, what: str, top: int, error: type[RuleError] = RuleError
           ) -> tuple[int, int]:
    m = re.fullmatch(r"\s*\+?(\d+)-\+?(\d+)", word)
    if m is None or int(m[1]) > top or int(m[2]) > top:
        raise error(f"invalid {what} range {word} (expected: {what} START-END, "
                        f"0..{top}; keepalived 2.2.7 wants both ends, e.g. 80-80)")
    return int(m[1]), int(m[2])


class _Reader:
    """One rule line, read word by word as alloc_rule does."""

    def __init__(self, words: Sequence[str], static: bool) -> None:
        self.words = list(words)
        self.i = 0
        self.static = static
        self.f: dict[str, object] = {}
        self.family = 0
        self.action = 0
        self.table_option = False
        self.notes: list[str] = []
        self.stepped_over: str | None = None

    def value(self, keyword: str) -> str:
        self.i += 1
        if self.i >= len(self.words):
            raise RuleRefused(f"rule option '{keyword}' needs a value")
        return self.words[self.i]

    def set_family(self, family: int, why: str) -> None:
        if not family:
            return
        if self.family and self.family != family:
            raise RuleError(why)
        self.family = family

    def set_action(self, action: int, msg: str) -> None:
        if self.action:
            raise RuleError(msg)
        self.action = action

    # -- one handler per keyword (a table, not a chain of ifs) ----------------------

    def family_word(self, kw: str) -> None:
        fam = 6 if kw == "inet6" else 4
        other = "IPv4" if fam == 6 else "IPv6"
        self.set_family(fam, f"{kw} specified for {other} rule")
        self.i += 1  # alloc_rule's extra i++: the next word is never read
        if self.i < len(self.words) and self.stepped_over is None:
            self.stepped_over = f"{kw} {self.words[self.i]}"

    def address(self, kw: str) -> None:
        word = self.value(kw)
        fam, addr, plen = _address(word)
        self.set_family(fam, "rule specification has mixed IPv4 and IPv6")
        key = "src" if kw == "from" else "dst"
        self.f[key], self.f[key + "_len"] = addr, plen

    def table(self, kw: str) -> None:
        word = self.value(kw)
        table = rt_lookup(word, "rt_tables", U32, _RT_TABLE_DEFAULTS)
        if table is None:
            raise RuleError(f"Routing table {word} not found for rule (expected: a number "
                            f"or a name in {IPROUTE2_DIR}rt_tables)")
        if table == 0:
            raise RuleError("Table 0 is not valid")
        self.f["table"] = table
        self.set_action(FR_ACT_TO_TBL, "Cannot specify more than one of table/nop/goto/"
                        "blackhole/prohibit/unreachable for rule")

    def invert(self, kw: str) -> None:
        self.f["invert"] = True

    def priority(self, kw: str) -> None:
        word = self.value(kw)
        n = c_ulong(word)
        if n is None or n > U32:
            raise RuleError(f"Invalid rule preference {word} specified (expected: 0..{U32})")
        self.f["priority"] = n

    def tos(self, kw: str) -> None:
        word = self.value(kw)
        n = rt_lookup(word, "rt_dsfield", 255)
        if n is None:
            raise RuleError(f"TOS value {word} is invalid (expected: 0..255 or a name in "
                            f"{IPROUTE2_DIR}rt_dsfield)")
        self.f["tos"] = n

    def fwmark(self, kw: str) -> None:
        word = self.value(kw)
        mark, slash, mask = word.partition("/")
        v = c_ulong(mark)
        m = c_ulong(mask) if slash and not mask[:1].isspace() else None
        if v is None or v > U32 or (slash and (m is None or m > U32)):
            raise RuleError(f"Invalid rule fwmark {word} specified (expected: fwmark "
                            "MARK[/MASK], 32-bit numbers)")
        self.f["fwmark"] = v
        if slash:
            self.f["fwmask"] = m

    def realms(self, kw: str) -> None:
        word = self.value(kw)
        src, slash, dst = word.partition("/")
        a = rt_lookup(src, "rt_realms", 255)
        b = rt_lookup(dst, "rt_realms", 255) if slash else 0
        if a is None or b is None:
            raise RuleError(f"invalid realms {word} for rule (expected: realms [FROM/]TO, "
                            f"0..255 or names in {IPROUTE2_DIR}rt_realms)")
        self.f["realms"] = (a << 16 | b) if slash else a
        self.table_option = True
        self.set_family(4, "realms is only valid for IPv4")

    def suppress_prefixlen(self, kw: str) -> None:
        word = self.value(kw)
        n = c_ulong(word, 10)
        if n is None or n > 0x7FFFFFFF:
            raise RuleError(f"Invalid suppress_prefixlength {word} specified")
        self.f["suppress_prefixlen"] = n
        self.table_option = True

    def suppress_ifgroup(self, kw: str) -> None:
        word = self.value(kw)
        n = rt_lookup(word, "group", 0x7FFFFFFF)
        if n is None:
            raise RuleError(f"suppress_group {word} is invalid (expected: a number or a "
                            f"name in {IPROUTE2_DIR}group)")
        self.f["suppress_ifgroup"] = n
        self.table_option = True

    def interface(self, kw: str) -> None:
        self.f["oif" if kw == "oif" else "iif"] = self.value(kw)

    def tunnel_id(self, kw: str) -> None:
        word = self.value(kw)
        n = c_ulong(word, 10)
        if n is None or n >= 1 << 64:
            raise RuleError(f"Invalid tunnel-id {word} specified")
        self.f["tunnel_id"] = n

    def uidrange(self, kw: str) -> None:
        self.f["uidrange"] = _range(self.value(kw), "uidrange", U32)

    def l3mdev(self, kw: str) -> None:
        self.f["l3mdev"] = True
        self.set_action(FR_ACT_TO_TBL, "Cannot specify l3mdev with other action")

    def protocol(self, kw: str) -> None:
        word = self.value(kw)
        n = c_ulong(word, 10)
        if n is None or n > 255:
            raise RuleRefused(f"Invalid protocol {word} (expected: 0..255)")
        self.f["protocol"] = n

    def ipproto(self, kw: str) -> None:
        word = self.value(kw)
        n = _ipproto(word)
        if n is None:
            raise RuleRefused(f"Invalid ipproto {word} (expected: a name from /etc/protocols "
                            "such as tcp, udp, sctp, or a number up to 127, as keepalived "
                            "2.2.7 reads it)")
        self.f["ipproto"] = n

    def ports(self, kw: str) -> None:
        self.f[kw] = _range(self.value(kw), kw, 0xFFFF, RuleRefused)

    def no_track(self, kw: str) -> None:
        self.f["no_track"] = True

    def track_group(self, kw: str) -> None:
        if not self.static:
            self.other(kw)
            return
        name = self.value(kw)
        if "track_group" in self.f:
            raise RuleRefused(f"track_group {name} is a duplicate (keepalived reads no "
                              "further on the line)")
        self.f["track_group"] = name

    def other(self, kw: str) -> None:
        word = self.value(kw) if kw == "type" else kw
        if word == "goto":
            target = self.value(word)
            n = c_ulong(target, 10)
            if n is None or n > U32:
                raise RuleError(f"Invalid target {target} specified")
            self.f["goto"] = n
            action = FR_ACT_GOTO
        elif word == "nop":
            action = FR_ACT_NOP
        else:
            rtn = _RTN_TYPES.get(word)
            if rtn is None:
                n = c_ulong(word)
                rtn = n if n is not None and n <= 255 else None
            if rtn is None:
                full = [k for k in _KEYWORDS if k.startswith(word) and k != word]
                if full:  # ip rule's "pref", "prio": keepalived.conf(5) excludes them
                    raise RuleError(f"Unknown rule option {word}: keepalived takes no "
                                    f"shortened option names (write {' or '.join(full)})")
                raise RuleError(f"Unknown rule option {word} (expected: from, to, table, "
                                "preference, fwmark, iif, oif, tos, realms, uidrange, "
                                "sport, dport, ipproto, l3mdev, goto, nop, blackhole, ...)")
            action = _RTN_TO_ACTION.get(rtn, 0)
            if not action:
                raise RuleError(f"Invalid rule action {word} (expected: blackhole, "
                                "unreachable or prohibit)")
        self.set_action(action, "Cannot specify more than one of table/nop/goto/blackhole/"
                        "prohibit/unreachable/l3mdev for rule")


_Handler = Callable[[_Reader, str], None]
_KEYWORDS: dict[str, _Handler] = {
    "inet": _Reader.family_word, "inet6": _Reader.family_word,
    "from": _Reader.address, "to": _Reader.address,
    "table": _Reader.table, "lookup": _Reader.table,
    "not": _Reader.invert,
    "preference": _Reader.priority, "order": _Reader.priority, "priority": _Reader.priority,
    "tos": _Reader.tos, "dsfield": _Reader.tos,
    "fwmark": _Reader.fwmark,
    "realms": _Reader.realms,
    "suppress_prefixlength": _Reader.suppress_prefixlen,
    "sup_pl": _Reader.suppress_prefixlen,
    "suppress_ifgroup": _Reader.suppress_ifgroup, "sup_group": _Reader.suppress_ifgroup,
    "dev": _Reader.interface, "iif": _Reader.interface, "oif": _Reader.interface,
    "tunnel-id": _Reader.tunnel_id,
    "uidrange": _Reader.uidrange,
    "l3mdev": _Reader.l3mdev,
    "protocol": _Reader.protocol,
    "ipproto": _Reader.ipproto,
    "sport": _Reader.ports, "dport": _Reader.ports,
    "no_track": _Reader.no_track,
    "track_group": _Reader.track_group,
}


def parse_rule(words: Sequence[str], *, static: bool = False) -> tuple[IpRule, list[str]]:
    """One ``virtual_rules``/``static_rules`` line -> the rule and keepalived's warnings.

    Raises :class:`RuleError` with keepalived's reason where keepalived skips the
    line, :class:`RuleRefused` where it would install something else.  A rule
    without a preference keeps ``priority=None``: keepalived numbers those in the
    order it reads the whole config (:func:`number_rules`).

    >>> parse_rule(("from", "10.0.0.0/8", "fwmark", "24/12", "goto", "40", "order", "39"))[0].goto
    40
    >>> parse_rule(("to", "::/0", "protocol", "12", "table", "5"))[1]
    ['Rule cannot be tracked if protocol is not RTPROT_KEEPALIVED(18), resetting protocol']
    >>> parse_rule(("from", "all"))
    Traceback (most recent call last):
    ...
    hafast.config.iprule.RuleError: No action specified for rule - ignoring
    """
    r = _Reader(words, static)
    try:
        rule = _read(r)
    except RuleError as exc:
        if r.stepped_over is None or isinstance(exc, RuleRefused):
            raise
        raise RuleError(f"{exc} (keepalived does not read the word after "
                        f"'{r.stepped_over}'; put {r.stepped_over.split()[0]} at the end "
                        "of the line)") from None
    if r.stepped_over is not None:
        word = r.stepped_over.split()[1]
        raise RuleRefused(f"keepalived does not read the word after "
                          f"'{r.stepped_over.split()[0]}' ('{word}') and would install this "
                          f"rule without it; put {r.stepped_over.split()[0]} at the end of "
                          "the line")
    return rule, r.notes


def _read(r: _Reader) -> IpRule:
    while r.i < len(r.words):
        kw = r.words[r.i]
        _KEYWORDS.get(kw, _Reader.other)(r, kw)
        r.i += 1
    f = r.f
    if r.action == FR_ACT_GOTO:
        prio = f.get("priority")
        if prio is None:
            raise RuleError(f"Invalid rule - goto target {f['goto']} specified without "
                            "preference")
        if prio >= f["goto"]:  # type: ignore[operator]
            raise RuleError(f"Invalid rule - preference {prio} >= goto target {f['goto']}")
    if not r.action:
        raise RuleError("No action specified for rule - ignoring")
    if r.action != FR_ACT_TO_TBL and r.table_option:
        raise RuleError("suppressor/realm specified for non table action - skipping")
    if f.get("table") and f.get("l3mdev"):
        raise RuleError("table cannot be specified for l3mdev rules")
    if f.get("track_group") and not f.get("iif"):
        # keepalived reports it and installs the rule without the group: running
        # untracked would differ from what was asked
        raise RuleRefused("Static rule cannot have track_group if dev/iif not specified "
                          "(write iif IF)")
    if not f.get("no_track"):
        # keepalived marks the rules it tracks as its own, so it knows them in dumps
        if f.get("protocol", RTPROT_KEEPALIVED) != RTPROT_KEEPALIVED:
            r.notes.append("Rule cannot be tracked if protocol is not RTPROT_KEEPALIVED"
                           f"({RTPROT_KEEPALIVED}), resetting protocol")
        f["protocol"] = RTPROT_KEEPALIVED
    else:
        f.setdefault("protocol", None)
    return IpRule(family=r.family or 4, action=r.action, **f)  # type: ignore[arg-type]


def number_rules(families: Sequence[int]) -> list[int]:
    """The preferences keepalived gives rules without one, in reading order: down from
    16384, one counter per family.

    >>> number_rules([4, 4, 6])
    [16384, 16383, 16384]
    """
    nxt = {4: RULE_START_PRIORITY, 6: RULE_START_PRIORITY}
    out = []
    for fam in families:
        out.append(nxt[fam])
        nxt[fam] -= 1
    return out
