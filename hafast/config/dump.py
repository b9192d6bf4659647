"""The normalised model as text (``hafast -d``) or JSON (``hafast -d --json``).

Both show every setting with defaults and inheritance applied, so two configs that mean
the same thing dump the same.  Timers stay in integer microseconds (``*_us``), as in the
model; the text form adds the value in seconds as a comment.

>>> from hafast.config.loader import load_text
>>> cfg = load_text("global_defs {\\n router_id r1\\n}\\n").config
>>> to_dict(cfg)["global_defs"]["router_id"]
'r1'
"""

from __future__ import annotations

import json
from dataclasses import fields, is_dataclass
from typing import Any

from hafast.config.model import (
    Checker,
    Config,
    Script,
    TrackRef,
    UnicastPeer,
    VirtualAddress,
    VsgMember,
)


def to_dict(obj: Any) -> Any:
    """Model -> plain dicts/lists/scalars (``where`` left out; checkers carry ``kind``)."""
    if is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        if isinstance(obj, Checker):
            out["kind"] = obj.kind
        for f in fields(obj):
            if f.name == "where":
                continue
            out[f.name] = to_dict(getattr(obj, f.name))
        return out
    if isinstance(obj, tuple | list):
        return [to_dict(x) for x in obj]
    return obj


def dump_json(config: Config) -> str:
    return json.dumps(to_dict(config), indent=2, sort_keys=False) + "\n"


# Sections of Config and the word that opens each of their blocks in the text dump.
_SECTION_WORD = {
    "vrrp_scripts": "vrrp_script",
    "track_files": "track_file",
    "track_processes": "vrrp_track_process",
    "vrrp_instances": "vrrp_instance",
    "sync_groups": "vrrp_sync_group",
    "virtual_server_groups": "virtual_server_group",
    "virtual_servers": "virtual_server",
    "real_servers": "real_server",
    "checkers": "",
    "urls": "url",
    "hosts": "host",
}


def _scalar(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, tuple):
        return " ".join(_scalar(x) for x in v) if v else "-"
    s = str(v)
    return s if s and not any(c in s for c in ' \t{}#!"') else json.dumps(s)


def _title(word: str, obj: Any) -> str:
    if isinstance(obj, Checker):
        return obj.kind
    name = getattr(obj, "name", None)
    if word in ("virtual_server", "real_server"):
        key = getattr(obj, "key", ())
        return f"{word} " + " ".join(str(k) for k in key if k is not None)
    return f"{word} {name}" if name is not None else word


def _script_line(sc: Script) -> str:
    """As keepalived reads it back: the command line quoted, then user and group."""
    cmd = " ".join(sc.argv)
    words = [json.dumps(cmd) if len(sc.argv) > 1 or " " in cmd else cmd]
    words += [w for w in (sc.user, sc.group) if w is not None]
    return " ".join(words)


# Small items shown one a line, as they are written in keepalived.conf.
_ONE_LINE = {VirtualAddress, TrackRef, UnicastPeer, VsgMember}


def _one_line(item: Any) -> str:
    """``10.0.0.1/24 dev eth0``, ``chk weight -20``: the first field, then what is set."""
    if isinstance(item, VsgMember):
        if item.fwmark is not None:
            return f"fwmark {item.fwmark}"
        rng = f"{item.address}-{item.last}" if item.last else str(item.address)
        return rng if item.port is None else f"{rng} {item.port}"
    fs = list(fields(item))
    head = str(getattr(item, fs[0].name))
    if isinstance(item, VirtualAddress):
        head = f"{item.address}/{item.prefix}"
        fs = [f for f in fs if f.name not in ("prefix", "family")]
    words = [head]
    for f in fs[1:]:
        v = getattr(item, f.name)
        if (
            v is None
            or v is False
            or v == ()
            or (f.name in ("min_ttl",) and v == 0)
            or (f.name == "max_ttl" and v == 255)
        ):
            continue
        words.append(f.name if v is True else f"{f.name} {_scalar(v)}")
    return " ".join(words)


def _render(obj: Any, indent: int, out: list[str]) -> None:
    pad = "  " * indent
    for f in fields(obj):
        if f.name == "where":
            continue
        v = getattr(obj, f.name)
        if isinstance(v, Script):
            out.append(f"{pad}{f.name} {_script_line(v)}")
        elif is_dataclass(v):
            out.append(f"{pad}{f.name} {{")
            _render(v, indent + 1, out)
            out.append(f"{pad}}}")
        elif isinstance(v, tuple) and v and type(v[0]) in _ONE_LINE:
            out.append(f"{pad}{f.name} {{")
            out.extend(f"{pad}  {_one_line(item)}" for item in v)
            out.append(f"{pad}}}")
        elif isinstance(v, tuple) and v and is_dataclass(v[0]):
            word = _SECTION_WORD.get(f.name, f.name)
            for item in v:
                out.append(f"{pad}{_title(word, item)} {{")
                _render(item, indent + 1, out)
                out.append(f"{pad}}}")
        elif isinstance(v, tuple) and v and isinstance(v[0], tuple):
            out.append(f"{pad}{f.name} {{")
            out.extend(f"{pad}  {_scalar(x)}" for x in v)
            out.append(f"{pad}}}")
        else:
            note = f"  # {v / 1e6:g} s" if f.name.endswith("_us") and isinstance(v, int) else ""
            out.append(f"{pad}{f.name} {_scalar(v)}{note}")


def dump_text(config: Config) -> str:
    """keepalived.conf-shaped text of the normalised model, one setting a line."""
    out: list[str] = []
    _render(config, 0, out)
    return "\n".join(out) + "\n"
