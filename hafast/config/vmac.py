"""keepalived's ``use_vmac [NAME] [MAC]`` words: the macvlan's name and MAC, and
what keepalived 2.2.7 says about the words it ignores.

Pure, in the config layer, so the loader (``hafast -t``) and
:mod:`hafast.vrrp.from_config` read the words one way.

>>> parse_use_vmac(("vmx1", "02:11:22:33:44"), 51)
('vmx1', b'\\x02\\x11"3D3', [])
>>> parse_use_vmac(("a/b", "03:11:22:33:44:55"), 51)[2]
["VMAC interface name 'a/b' too long or invalid characters - ignoring", \
'VMAC MAC address is multicast 03:11:22:33:44:55 - ignoring']
"""

from __future__ import annotations

from collections.abc import Sequence

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
    return (0 < len(name.encode()) < IFNAMSIZ and name not in (".", "..")
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
