"""keepalived's ``use_vmac [NAME] [MAC]`` words (the macvlan's name and MAC) and
``use_ipvlan [NAME] [ADDRESS[/PREFIX]] [bridge|private|vepa]`` words, and what
keepalived 2.2.7 says about the words it ignores.

Pure, in the config layer, so the loader (``hafast -t``) and
:mod:`hafast.vrrp.from_config` read the words one way.

>>> parse_use_vmac(("vmx1", "02:11:22:33:44"), 51)
('vmx1', b'\\x02\\x11"3D3', [])
>>> parse_use_vmac(("a/b", "03:11:22:33:44:55"), 51)[2]
["VMAC interface name 'a/b' too long or invalid characters - ignoring", \
'VMAC MAC address is multicast 03:11:22:33:44:55 - ignoring']
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from hafast.config.tokens import byte_length

# RFC 5798 §7.3: the virtual router MAC, 00-00-5E-00-01-{VRID} (IPv6: 00-00-5E-00-02-{VRID}).
VRRP_MAC_PREFIX = bytes((0x00, 0x00, 0x5E, 0x00))
IFNAMSIZ = 16  # linux/if.h, the NUL included


def vrrp_mac(vrid: int, family: int) -> bytes:
    """The RFC 5798 §7.3 virtual router MAC.

    >>> vrrp_mac(51, 4).hex(":"), vrrp_mac(51, 6).hex(":")
    ('00:00:5e:00:01:33', '00:00:5e:00:02:33')
    """
    return VRRP_MAC_PREFIX + bytes((0x01 if family == 4 else 0x02, vrid))


def dev_name_valid(name: str) -> bool:
    """The kernel's dev_valid_name (net/core/dev.c), as keepalived checks the name."""
    return (0 < byte_length(name) < IFNAMSIZ and name not in (".", "..")
            and not any(c in "/:" or c.isspace() for c in name))


def parse_mac(word: str, vrid: int) -> tuple[bytes | None, str | None]:
    """keepalived's use_vmac MAC: five or six hex octets, five taking the VRID last;
    ``(mac, None)``, or ``(None, what keepalived says)`` for one it ignores."""
    if word.strip("0123456789abcdefABCDEF:"):
        return None, f"VMAC invalid MAC address {word}"
    parts = word.split(":")
    try:
        if len(parts) not in (5, 6) or any(not 1 <= len(p) <= 2 for p in parts):
            raise ValueError(word)
        octets = bytes(int(p, 16) for p in parts)
    except ValueError:
        return None, f"VMAC invalid MAC address {word} - ignored"
    if len(octets) == 5:
        octets += bytes((vrid,))
    if octets[0] & 0x01:
        return None, f"VMAC MAC address is multicast {word} - ignoring"
    if octets[:4] == VRRP_MAC_PREFIX and octets[4] in (1, 2):
        return None, f"VMAC MAC address not allowed to be RFC5798 address ({word}) - ignoring"
    return octets, None


def parse_use_vmac(words: Sequence[str], vrid: int
                   ) -> tuple[str | None, bytes | None, list[str]]:
    """``(name, mac, complaints)`` from ``use_vmac``'s words (None: the default).

    A word with a ``:`` is the MAC (interface names cannot hold one); ``name NAME``
    spells the name explicitly (keepalived 2.3's word; 2.2.7 would name the macvlan
    "name"); the first valid name and MAC count.
    """
    name: str | None = None
    mac: bytes | None = None
    complaints: list[str] = []
    rest = list(words)
    while rest:
        word = rest.pop(0)
        if ":" in word:
            got, why = parse_mac(word, vrid)
            if why is not None:
                complaints.append(why)
            elif mac is None:
                mac = got
            continue
        if word == "name" and rest:
            word = rest.pop(0)
        if not dev_name_valid(word):
            complaints.append(f"VMAC interface name '{word}' too long or invalid characters"
                              " - ignoring")
        elif name is None:
            name = word
        else:
            complaints.append("VMAC interface name already specified")
    return name, mac, complaints


# linux/if_link.h: the ipvlan mode flags (IFLA_IPVLAN_FLAGS); keepalived's words.
IPVLAN_FLAGS = {"bridge": 0, "private": 1, "vepa": 2}  # IPVLAN_F_PRIVATE 1, IPVLAN_F_VEPA 2


def _ipvlan_address(word: str) -> tuple[str, int] | None:
    """keepalived's ``parse_ipaddress(..., allow_subnet_mask=true)``: ``ADDR[/PREFIX]``
    as ``("ADDR/PREFIX", family)`` (the prefix defaults to the whole address), or None
    for a word that is no address (keepalived then takes it for the interface name)."""
    addr, _, plen = word.partition("/")
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return None
    if "%" in addr or (ip.version == 4 and addr.count(".") != 3):
        return None
    bits = ip.max_prefixlen
    if plen and (not plen.isdigit() or int(plen) > bits):
        return None
    return f"{ip}/{int(plen) if plen else bits}", ip.version


def parse_use_ipvlan(words: Sequence[str], iname: str
                     ) -> tuple[str | None, str | None, int, list[str]]:
    """``(name, address, flags, complaints)`` from ``use_ipvlan``'s words, as
    keepalived 2.2.7's ``vrrp_ipvlan_handler`` reads them: ``bridge``, ``private``
    or ``vepa`` the flags (bridge, 0, by default), a word that is an address the
    ipvlan's own address (``ADDR/PREFIX``, the adverts' source), any other word the
    interface name; the first of each counts.  There is no mode word: keepalived
    makes every ipvlan in mode l2 (the mode that receives the VRRP multicast), so a
    word like ``l3`` is taken for a name, as keepalived takes it.

    >>> parse_use_ipvlan(("ipv1", "10.0.0.5/24", "private"), "V")
    ('ipv1', '10.0.0.5/24', 1, [])
    >>> parse_use_ipvlan(("10.0.0.5", "vepa", "bridge", "l3"), "V")
    ... # doctest: +NORMALIZE_WHITESPACE
    ('l3', '10.0.0.5/32', 2, ["(V) ipvlan type already specified - ignoring 'bridge'"])
    """
    name: str | None = None
    address: str | None = None
    flags: int | None = None
    complaints: list[str] = []
    for word in words:
        if word in IPVLAN_FLAGS:
            if flags is not None:
                complaints.append(f"({iname}) ipvlan type already specified - ignoring "
                                  f"'{word}'")
            else:
                flags = IPVLAN_FLAGS[word]
            continue
        if (got := _ipvlan_address(word)) is not None:
            if address is not None:
                complaints.append(f"({iname}) ipvlan address already specified - ignoring "
                                  f"'{word}'")
            else:
                address = got[0]
            continue
        if name is not None:
            complaints.append(f"({iname}) IPVLAN interface already specified - ignoring "
                              f"'{word}'")
        elif byte_length(word) >= IFNAMSIZ:
            complaints.append(f"({iname}) IPVLAN interface name '{word}' too long - ignoring")
        else:
            name = word
    return name, address, flags or 0, complaints
