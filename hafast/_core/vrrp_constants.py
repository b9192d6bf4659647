"""VRRP wire constants, reject reasons and field limits shared by both codec twins.

Pure Python and import-light: ``vrrp_codec_py``, ``vrrp_codec_c`` and the VRRP
layers above them take their names from here, so a reason string is spelt once.
Reasons use keepalived's statistics names where keepalived has one (they become
the per-instance counters) and a clear ``*_err`` name otherwise.
"""

from __future__ import annotations

# --- IP layer ---------------------------------------------------------------
IPPROTO_VRRP = 112  # RFC 5798 §5.1.1.4 / RFC 3768 §5.2.4: IPv4 protocol, IPv6 next header
IPPROTO_AH = 51  # RFC 4302 §2: keepalived's auth_type AH wraps VRRP in an AH header
VRRP_TTL = 255  # RFC 3768 §5.2.3, RFC 5798 §5.1.1.3 / §5.1.2.3: TTL / hop limit
VRRP_TOS = 0xC0  # keepalived sends TOS / traffic class "internetwork control"
VRRP_GROUP4 = bytes((224, 0, 0, 18))  # RFC 5798 §5.1.1.2: IPv4 multicast group
VRRP_GROUP6 = bytes.fromhex("ff020000000000000000000000000012")  # RFC 5798 §5.1.2.2
IPV4_HEADER_LEN = 20  # what encode_ipv4 builds: no options
AH_HEADER_LEN = 24  # keepalived's AH: 12 fixed bytes + 96-bit HMAC-MD5 ICV (RFC 2404)

# --- VRRP header ------------------------------------------------------------
VRRP_TYPE_ADVERTISEMENT = 1  # RFC 3768 §5.3.2, RFC 5798 §5.2.2: the only type
VRRP_HEADER_LEN = 8  # version/type, vrid, priority, count, auth/rsvd+maxadv, checksum
VRRP_AUTH_DATA_LEN = 8  # RFC 3768 §5.3.10: two 32-bit words of authentication data (v2)
VRRP_VERSIONS = (2, 3)
PRIORITY_STOP = 0  # RFC 5798 §5.2.4: the master is giving up (shutdown)
PRIORITY_OWNER = 255  # RFC 5798 §5.2.4: the address owner
MAX_ADDRESS_COUNT = 255  # Count IP Addrs is one octet
MAX_ADVER_INT_V2 = 255  # RFC 3768 §5.3.7: seconds, one octet
MAX_ADVER_INT_V3 = 0x0FFF  # RFC 5798 §5.2.7: 12 bits of centiseconds

# RFC 3768 §5.3.6 (and RFC 2338 before it): v2 Auth Type values keepalived still speaks.
AUTH_NONE = 0
AUTH_PASS = 1  # "simple text password", 8 bytes, zero padded
AUTH_AH = 2  # IP Authentication Header (IPsec AH, HMAC-MD5-96)
AUTH_TYPES = {AUTH_NONE: "none", AUTH_PASS: "pass", AUTH_AH: "ah"}

# Address families as plain numbers: cores never import socket.
FAMILY_IPV4 = 4
FAMILY_IPV6 = 6
ADDRESS_LEN = {FAMILY_IPV4: 4, FAMILY_IPV6: 16}

# VRRPv3 checksum conventions.  v3 over IPv6 always uses the RFC 8200 §8.1
# pseudo-header; over IPv4 keepalived and FRR add an IPv4 pseudo-header by
# default while RFC 9568 (and keepalived's v3_checksum_as_v2) sums the message
# alone, like v2.  Decode accepts CHECKSUM_ANY and reports which one matched.
CHECKSUM_ANY = "any"
CHECKSUM_PSEUDO = "pseudo_header"
CHECKSUM_MESSAGE = "message"
CHECKSUM_MODES = (CHECKSUM_ANY, CHECKSUM_PSEUDO, CHECKSUM_MESSAGE)

# --- reject reasons (stable: they name the counters) ------------------------
OK = "ok"
BUFFER_ERR = "buffer_err"  # the object passed has no byte buffer
PARAM_ERR = "param_err"  # family/src/dst/expectations passed to decode are unusable
PACKET_LEN_ERR = "packet_len_err"  # keepalived: shorter than the headers or Count IP Addrs says
IP_HEADER_ERR = "ip_header_err"  # not IPv4, or IHL below 5
PROTOCOL_ERR = "protocol_err"  # IP protocol neither 112 nor AH carrying 112
IP_TTL_ERR = "ip_ttl_err"  # keepalived: TTL / hop limit not 255 (RFC 5798 §7.1)
VERSION_ERR = "version_err"  # VRRP version not 2/3, or not the one configured
V2_IPV6_ERR = "v2_ipv6_err"  # VRRPv2 is IPv4 only (RFC 3768 §1; RFC 5798 §1)
INVALID_TYPE_RCVD = "invalid_type_rcvd"  # keepalived: type is not ADVERTISEMENT
# keepalived: the advert's addresses are not the configured VIPs (count or list); the
# instance checks it (check_adv_addr), the codec never says it: Count IP Addrs that
# disagrees with the length is packet_len_err, as in keepalived 2.2.7.
ADDR_LIST_ERR = "addr_list_err"
CHECKSUM_ERR = "checksum_err"  # RFC 5798 §7.1: checksum does not verify
INVALID_AUTHTYPE = "invalid_authtype"  # keepalived: v2 Auth Type not 0, 1 or 2
AUTHTYPE_MISMATCH = "authtype_mismatch"  # keepalived: Auth Type is not the configured one
AUTH_FAILURE = "auth_failure"  # keepalived: wrong PASS password
ADVERT_INTERVAL_ERR = "advert_interval_err"  # keepalived: v2 Adver Int not the configured one

REASONS = (
    OK,
    BUFFER_ERR,
    PARAM_ERR,
    PACKET_LEN_ERR,
    IP_HEADER_ERR,
    PROTOCOL_ERR,
    IP_TTL_ERR,
    VERSION_ERR,
    V2_IPV6_ERR,
    INVALID_TYPE_RCVD,
    ADDR_LIST_ERR,
    CHECKSUM_ERR,
    INVALID_AUTHTYPE,
    AUTHTYPE_MISMATCH,
    AUTH_FAILURE,
    ADVERT_INTERVAL_ERR,
)

# The attributes of a decode result, in a fixed order (tests compare twins with it).
ADVERT_FIELDS = (
    "reason",
    "family",
    "src",
    "dst",
    "ttl",
    "ah",
    "ah_spi",
    "ah_seq",
    "version",
    "type",
    "vrid",
    "priority",
    "count",
    "auth_type",
    "adver_int",
    "checksum",
    "checksum_mode",
    "addresses",
    "auth_data",
)


def auth_data_from_pass(password: str | bytes) -> bytes:
    """The 8-byte v2 Authentication Data for a keepalived ``auth_pass``.

    keepalived keeps the first 8 characters and pads with zero bytes.

    >>> auth_data_from_pass("1111")
    b'1111\\x00\\x00\\x00\\x00'
    >>> auth_data_from_pass("123456789")
    b'12345678'
    """
    raw = password.encode() if isinstance(password, str) else bytes(password)
    return raw[:VRRP_AUTH_DATA_LEN].ljust(VRRP_AUTH_DATA_LEN, b"\x00")
