"""The part of the status an operator asked for: ``hafast status --down``, ``--vs``,
``--instance``, ``--limit`` (issue 16).

The parent applies these to its status dict before it encodes the reply, so a
question about one virtual server at 10,000 real servers sends that virtual server,
not 1 MB.  Without a filter (and without ``limit``) the status is returned as it is:
``hafast status --json``'s shape does not change.

What each filter keeps (every other key of the status, the header, the workers and
the check shards' summaries, stays as it is):

- ``down``: the real servers that are not alive, under the virtual servers that have
  one or whose quorum is down; the VRRP instances in neither MASTER nor BACKUP
  (FAULT, or STOP while they start or stop): what needs a person.
- ``vs``: the virtual servers named (``ADDR:PORT``, ``[V6ADDR]:PORT``,
  ``fwmark N``, a ``virtual_server_group`` name, or keepalived's own label such as
  ``[10.0.0.1]:tcp:80``); the VRRP instances are left out unless ``instance`` also
  names some.
- ``instance``: the VRRP instances named; the virtual servers are left out unless
  ``vs`` also names some.
- ``limit``: at most that many real servers per virtual server, then up to as many
  of the remaining that are down (what the table shows).

A filtered virtual server carries ``counts`` (``real_servers``, ``alive``: of the
whole virtual server, not of the rows sent), and the reply a ``selected`` number (the
virtual servers and instances kept): 0 is "nothing matched", exit status 3 of
``hafast status``.

Example::

    select(st, down=True)                      # what is broken
    select(st, vs=["10.0.0.1:80"], limit=50)   # one virtual server, as the table shows it
"""

from __future__ import annotations

import ipaddress
import operator
from collections.abc import Callable, Sequence
from typing import Any

from hafast.lvs.rows import cut

_ALIVE = operator.itemgetter("alive")


def _SAME(row: dict[str, Any]) -> dict[str, Any]:
    return row

# states an instance settles in; anything else is worth a look under --down
SETTLED = frozenset({"MASTER", "BACKUP"})


def _address(text: str) -> str:
    """``text`` in one spelling (``2001:DB8::1`` and ``2001:db8:0::1`` are one)."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def _parse_label(label: str) -> tuple[str, str, str]:
    """keepalived's FMT_VS back into (kind, name, port): ``("addr", ADDR, PORT)``,
    ``("fwmark", N, "")`` or ``("group", NAME, PORT)``.

    >>> _parse_label("[10.0.0.1]:tcp:80"), _parse_label("FWM 7"), _parse_label("[web]:0")
    (('addr', '10.0.0.1', '80'), ('fwmark', '7', ''), ('group', 'web', '0'))
    """
    if label.startswith("FWM "):
        return "fwmark", label[4:], ""
    name, _, rest = label[1:].rpartition("]:")
    port = rest.rpartition(":")[2]
    return ("addr" if ":" in rest else "group"), name, port


def vs_matcher(spec: str) -> Callable[[str], bool]:
    """A predicate over virtual server labels for one ``--vs`` argument.

    >>> m = vs_matcher("10.0.0.1:80")
    >>> m("[10.0.0.1]:tcp:80"), m("[10.0.0.1]:udp:80"), m("[10.0.0.1]:tcp:443")
    (True, True, False)
    >>> vs_matcher("[2001:DB8::1]:80")("[2001:db8::1]:tcp:80")
    True
    >>> vs_matcher("fwmark 7")("FWM 7"), vs_matcher("fwmark:7")("FWM 7")
    (True, True)
    >>> vs_matcher("web")("[web]:0"), vs_matcher("web:80")("[web]:80")
    (True, True)
    >>> vs_matcher("10.0.0.1")("[10.0.0.1]:tcp:80")
    True
    """
    spec = spec.strip()
    low = spec.lower()
    for head in ("fwmark", "fwm"):
        if low.startswith(head) and low[len(head):len(head) + 1] in (" ", ":", "="):
            mark = spec[len(head) + 1:].strip()
            return lambda label: _parse_label(label) == ("fwmark", mark, "")
    if spec.startswith("[") and spec.count("]:") == 1 and spec.count(":", spec.index("]:") + 2):
        return lambda label: label == spec  # keepalived's label itself, protocol and all
    if spec.startswith("["):
        name, _, port = spec[1:].partition("]")
        port = port.lstrip(":")
    elif spec.count(":") == 1:
        name, _, port = spec.partition(":")
    else:
        name, port = spec, ""  # an address alone (IPv6 without brackets) or a group
    name = _address(name)

    def match(label: str) -> bool:
        kind, lname, lport = _parse_label(label)
        if kind == "fwmark" or (port and lport != port):
            return False
        return (_address(lname) if kind == "addr" else lname) == name

    return match


def select(st: dict[str, Any], *, down: bool = False, vs: Sequence[str] = (),
           instance: Sequence[str] = (), limit: int | None = None) -> dict[str, Any]:
    """The part of the status ``st`` the filters ask for (see the module's docstring).

    >>> st = {"vrrp": [{"data": {"iname": "VI_1", "state_name": "FAULT"}}],
    ...       "pools": {"virtual_servers": [{"name": "[10.0.0.1]:tcp:80", "quorum_up": True,
    ...           "real_servers": [{"address": "10.1.0.1", "alive": True},
    ...                            {"address": "10.1.0.2", "alive": False}]}]}}
    >>> out = select(st, down=True)
    >>> out["selected"], [r["address"] for r in out["pools"]["virtual_servers"][0]["real_servers"]]
    (2, ['10.1.0.2'])
    >>> out["pools"]["virtual_servers"][0]["counts"]
    {'real_servers': 2, 'alive': 1}
    >>> select(st, instance=["VI_2"])["selected"]
    0
    """
    if not (down or vs or instance or limit is not None):
        return st
    out = dict(st)
    selected = 0
    vrrp = st.get("vrrp") or []
    if vs and not instance:
        vrrp = []
    if instance:
        names = set(instance)
        vrrp = [i for i in vrrp if i.get("data", {}).get("iname") in names]
    if down:
        vrrp = [i for i in vrrp if i.get("data", {}).get("state_name") not in SETTLED]
    out["vrrp"] = vrrp
    selected += len(vrrp)
    pools = st.get("pools")
    if pools is not None:
        vss = pools["virtual_servers"]
        if instance and not vs:
            vss = []
        if vs:
            matchers = [vs_matcher(s) for s in vs]
            vss = [v for v in vss if any(m(v["name"]) for m in matchers)]
        kept = []
        for v in vss:
            if "counts" in v:  # cut where it was made (PoolKeeper.status)
                rss, counts = v["real_servers"], v["counts"]
            else:
                rss, counts = cut(v["real_servers"], _ALIVE, _SAME, down=down, limit=limit)
            if down and counts["alive"] == counts["real_servers"] and v.get("quorum_up", True):
                continue
            kept.append({**v, "real_servers": rss, "counts": counts})
        out["pools"] = {**pools, "virtual_servers": kept}
        selected += len(kept)
    out["selected"] = selected
    return out
