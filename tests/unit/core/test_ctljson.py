"""hafast.app.ctljson, the status client's JSON without the json package's import:
it must write what ``json.dumps(..., separators=(",", ":"))`` writes and read what
``json.loads`` reads, errors included."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hafast.app import ctljson

documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(documents)
def test_dumps_writes_what_json_writes(doc: Any) -> None:
    assert ctljson.dumps(doc) == json.dumps(doc, separators=(",", ":"))


@settings(max_examples=400, deadline=None)
@given(documents, st.sampled_from(["", " ", "\n", " \t\r\n"]), st.booleans())
def test_loads_reads_what_json_reads(doc: Any, pad: str, as_bytes: bool) -> None:
    text = pad + json.dumps(doc, indent=None if pad == "" else 1) + pad
    got = ctljson.loads(text.encode() if as_bytes else text)
    assert got == json.loads(text)
    assert type(got) is type(json.loads(text))


def test_constants_and_nan() -> None:
    got = ctljson.loads('[NaN, Infinity, -Infinity]')
    assert math.isnan(got[0]) and got[1:] == [math.inf, -math.inf]
    assert ctljson.dumps([math.nan, math.inf, -math.inf]) == "[NaN,Infinity,-Infinity]"


@pytest.mark.parametrize("bad", ["", "   ", "{", '{"a":1} x', "[1,]", "nul", '"\x01"', "{'a':1}"])
def test_bad_documents_raise_jsons_error(bad: str) -> None:
    with pytest.raises(json.JSONDecodeError) as got:
        ctljson.loads(bad)
    with pytest.raises(json.JSONDecodeError) as want:
        json.loads(bad)
    assert str(got.value) == str(want.value)


def test_unencodable_raises_jsons_error() -> None:
    for obj in ({1: "a"}, {"a": object()}, {(1,): 2}):
        try:
            want: Any = json.dumps(obj, separators=(",", ":"))
        except TypeError as exc:
            want = exc
        if isinstance(want, str):
            assert ctljson.dumps(obj) == want
        else:
            with pytest.raises(TypeError):
                ctljson.dumps(obj)


def test_the_client_path_imports_neither_json_nor_re() -> None:
    """What the change is for: ``hafast status`` reads its reply without ``re``."""
    code = ("import sys, hafast.app.status_cli, hafast.app.ctljson as c; "
            "c.loads(c.dumps({'a': [1, 'x']})); "
            "print('json' in sys.modules, 're' in sys.modules, 'argparse' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False", "False"]
