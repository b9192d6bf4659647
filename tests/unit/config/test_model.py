"""Model: frozen, slotted, equality ignores source positions; the dumps."""

from __future__ import annotations

import dataclasses
import json

import pytest

from hafast.config import model as m
from hafast.config.dump import dump_json, dump_text, to_dict
from hafast.config.loader import load_text
from hafast.lib.units import US_PER_S

TEXT = """
vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 9
  virtual_ipaddress {
    10.0.0.1/24 dev eth0
  }
}
virtual_server 10.0.0.1 80 {
  protocol TCP
  real_server 10.0.1.1 80 {
    HTTP_GET {
      url {
        path /h
        digest 640205B7B0FC66C1EA91C463FAC6334D
      }
    }
  }
}
"""


def test_frozen_and_slotted() -> None:
    vi = m.VrrpInstance(name="x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        vi.priority = 5  # type: ignore[misc]
    assert not hasattr(vi, "__dict__")


def test_equality_ignores_where() -> None:
    a = load_text(TEXT, file="a.conf").config
    b = load_text("\n\n" + TEXT, file="b.conf").config
    assert a.vrrp_instances[0].where != b.vrrp_instances[0].where
    assert a == b


def test_timers_are_integer_microseconds() -> None:
    cfg = load_text(TEXT, file="a.conf").config
    chk = cfg.virtual_servers[0].real_servers[0].checkers[0]
    assert isinstance(chk.delay_loop_us, int) and chk.delay_loop_us == 60 * US_PER_S
    assert chk.urls[0].digest == "640205b7b0fc66c1ea91c463fac6334d"  # type: ignore[attr-defined]


def test_json_dump_round_trips_through_json() -> None:
    cfg = load_text(TEXT, file="a.conf").config
    data = json.loads(dump_json(cfg))
    assert data == json.loads(json.dumps(to_dict(cfg)))
    rs = data["virtual_servers"][0]["real_servers"][0]
    assert rs["checkers"][0]["kind"] == "HTTP_GET"
    assert "where" not in rs


def test_text_dump_is_stable_and_names_blocks() -> None:
    cfg = load_text(TEXT, file="a.conf").config
    text = dump_text(cfg)
    assert text == dump_text(load_text("\n" + TEXT, file="b.conf").config)
    assert "vrrp_instance VI_1 {" in text
    assert "HTTP_GET {" in text
    assert "delay_loop_us 60000000  # 60 s" in text


def test_virtual_server_keys() -> None:
    assert m.VirtualServer(address="1.2.3.4", port=80).key == ("addr", "1.2.3.4", 80, "TCP")
    assert m.VirtualServer(fwmark=3).key[:2] == ("fwmark", 3)
    assert m.VirtualServer(group="G").key[:2] == ("group", "G")


@pytest.mark.parametrize(
    "modname",
    ["grammar", "model", "loader", "tree", "walk", "build_vrrp", "build_lvs", "diff", "dump",
     "cli_config"],
)
def test_docstring_examples(modname: str) -> None:
    import doctest
    import importlib

    mod = importlib.import_module(f"hafast.config.{modname}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
