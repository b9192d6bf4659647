"""JSON for the ``hafast status`` client without importing :mod:`json`.

``json`` imports ``json.decoder``, which imports ``re`` (and ``re`` ``enum``,
``functools``, ``collections``): ~11 ms of CPU on a quiet box, a quarter of the
client's whole run, and two to three times that in wall time on a director busy
with 10,000 checks a second (issue 16: ``hafast status`` must answer in < 100 ms).
The work itself needs none of it: CPython's C accelerator ``_json`` scans a document
(the scanner ``json.decoder`` wraps, fed the settings ``json.loads`` would give it)
and escapes a string.  Where ``_json`` is missing, or on an error (whose message
``json`` words), :mod:`json` itself is used.

:func:`dumps` writes what ``json.dumps(obj, separators=(",", ":"))`` writes, and
:func:`loads` reads what ``json.loads`` reads; ``tests/unit/core/test_ctljson.py``
holds both to it.

>>> loads(b' {"a": [1, 2.5, true, null, "\\\\u00e9"]} ')
{'a': [1, 2.5, True, None, 'é']}
>>> dumps({"cmd": "status", "vs": ["10.0.0.1:80"], "limit": 50, "down": True})
'{"cmd":"status","vs":["10.0.0.1:80"],"limit":50,"down":true}'
"""

from __future__ import annotations

TYPE_CHECKING = False  # (the client's start: see hafast.app.ctlproto)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["dumps", "loads"]

_INF = float("inf")
_CONSTANTS = {"NaN": float("nan"), "Infinity": _INF, "-Infinity": -_INF}
_WHITESPACE = " \t\n\r"  # JSON's whitespace (RFC 8259 section 2)


class _Settings:
    """What ``_json.make_scanner`` reads of its context: ``json.loads``'s defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_CONSTANTS.__getitem__)


_scan: Callable[[str, int], tuple[Any, int]] | None
_escape: Callable[[str], str] | None
try:
    import _json

    _scan = _json.make_scanner(_Settings())  # type: ignore[arg-type]  # (duck-typed)
    _escape = _json.encode_basestring_ascii
except (ImportError, AttributeError, TypeError):  # pragma: no cover - not CPython
    _scan = _escape = None


def loads(raw: bytes | str) -> Any:
    """``json.loads(raw)``."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    start = len(text) - len(text.lstrip(_WHITESPACE))
    if _scan is not None and start < len(text):
        try:
            obj, end = _scan(text, start)
        except StopIteration:
            pass  # not a document: json says where
        else:
            if not text[end:].strip(_WHITESPACE):
                return obj
    import json

    return json.loads(text)


def dumps(obj: Any) -> str:
    """``json.dumps(obj, separators=(",", ":"))`` for what JSON holds (dicts with
    string keys, lists, strings, numbers, booleans, None)."""
    if _escape is None:  # pragma: no cover - not CPython
        import json

        return json.dumps(obj, separators=(",", ":"))
    return "".join(_parts(obj, _escape))


def _parts(obj: Any, escape: Callable[[str], str]) -> list[str]:
    if isinstance(obj, str):
        return [escape(obj)]
    if obj is None:
        return ["null"]
    if obj is True:
        return ["true"]
    if obj is False:
        return ["false"]
    if isinstance(obj, int):
        return [int.__repr__(obj)]
    if isinstance(obj, float):
        if obj != obj:
            return ["NaN"]
        if obj in (_INF, -_INF):
            return ["Infinity" if obj > 0 else "-Infinity"]
        return [float.__repr__(obj)]
    if isinstance(obj, dict):
        out = ["{"]
        for i, (key, value) in enumerate(obj.items()):
            if not isinstance(key, str):
                import json

                return [json.dumps(obj, separators=(",", ":"))]  # json's own key rules
            out += [",", escape(key), ":"] if i else [escape(key), ":"]
            out += _parts(value, escape)
        return [*out, "}"]
    if isinstance(obj, (list, tuple)):
        out = ["["]
        for i, value in enumerate(obj):
            if i:
                out.append(",")
            out += _parts(value, escape)
        return [*out, "]"]
    import json  # anything else: json's error

    return [json.dumps(obj, separators=(",", ":"))]
