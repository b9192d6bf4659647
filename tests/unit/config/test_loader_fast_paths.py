"""The loader's shortcuts for large configs give exactly what the plain paths give:
the slot-filling RealServer constructor, the checker cache per block and inherited
settings, and the shared checker tuples."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import pytest

from hafast.config import model as m
from hafast.config.build_lvs import _new_real_server, _slot_filler
from hafast.config.grammar import TABLE
from hafast.config.loader import load_text


def _load(text: str) -> tuple[m.Config, list[str]]:
    res = load_text(text, file="t.conf")
    return res.config, [d.format() for d in res.diagnostics]


FARM = """
virtual_server 10.0.0.1 80 {
  protocol TCP
  lvs_method DR
  lvs_sched wrr
  delay_loop 7
  real_server 10.0.1.1 80 {
    weight 2
    TCP_CHECK {
      connect_timeout 3
    }
  }
  real_server 10.0.1.2 80 {
    weight 2
    TCP_CHECK {
      connect_timeout 3
    }
  }
  real_server 10.0.1.3 80 {
    weight 2
    delay_loop 9
    TCP_CHECK {
      connect_timeout 3
    }
  }
  real_server 10.0.1.4 80 {
    notify_up "/bin/echo up"
    inhibit_on_failure
    TCP_CHECK {
      connect_timeout 4
    }
  }
}
virtual_server 10.0.0.2 80 {
  protocol TCP
  lvs_method NAT
  lvs_sched rr
  real_server 10.0.1.1 80 {
    TCP_CHECK {
      connect_timeout 3
    }
  }
}
"""


def test_fast_constructor_equals_the_dataclass() -> None:
    cfg, _ = _load(FARM)
    rss = [rs for vs in cfg.virtual_servers for rs in vs.real_servers]
    assert len(rss) == 5
    for rs in rss:
        values = {f.name: getattr(rs, f.name) for f in fields(rs)}
        plain = m.RealServer(**values)
        assert rs == plain and repr(rs) == repr(plain) and rs.where == plain.where
        assert hash(rs) == hash(plain)
        with pytest.raises(AttributeError):  # still frozen
            rs.weight = 3  # type: ignore[misc]
    assert _new_real_server({"address": "10.0.0.9"}) == m.RealServer("10.0.0.9")


def test_fast_constructor_refuses_what_the_dataclass_refuses() -> None:
    with pytest.raises(TypeError, match="unknown field"):
        _new_real_server({"address": "10.0.0.9", "wieght": 1})
    with pytest.raises(TypeError, match="missing field"):
        _new_real_server({"weight": 1})

    @dataclass(frozen=True, slots=True)
    class WithFactory:
        items: list[int] = field(default_factory=list)

    with pytest.raises(TypeError, match="factory"):
        _slot_filler(WithFactory)


def test_real_server_rows_name_model_fields() -> None:
    """What the table can put in a real server's dict is a RealServer field, or a
    checker setting the loader hands down before building it."""
    names = {f.name for f in fields(m.RealServer)}
    handed_down = {
        "connect_timeout_us",
        "retry",
        "delay_before_retry_us",
        "warmup_us",
        "delay_loop_us",
    }
    for kw in TABLE["real_server"].values():
        if kw.field is not None:
            assert kw.field in names | handed_down, kw.name


def test_checker_cache_keeps_inheritance_apart() -> None:
    cfg, _ = _load(FARM)
    a, b = cfg.virtual_servers
    c1, c2, c3, c4 = (rs.checkers[0] for rs in a.real_servers)
    assert c1 is c2  # same block, same inherited settings: one object
    assert c1.delay_loop_us == 7_000_000
    assert c3.delay_loop_us == 9_000_000 and c3 is not c1
    assert c4.connect_timeout_us == 4_000_000
    other = b.real_servers[0].checkers[0]
    assert other.delay_loop_us == 60_000_000 and other is not c1  # another VS's default


def test_checker_tuples_shared_only_when_identical() -> None:
    cfg, _ = _load(FARM)
    r1, r2, r3, r4 = cfg.virtual_servers[0].real_servers
    assert r1.checkers is r2.checkers
    assert r3.checkers is not r1.checkers and r4.checkers is not r1.checkers
    assert r3.checkers == (r3.checkers[0],)


def test_checker_cache_does_not_swallow_repeated_errors() -> None:
    """Each faulty block is reported where it is, however many look the same."""
    block = (
        "  real_server 10.0.1.{n} 80 {{\n    HTTP_GET {{\n      connect_timeout 3\n    }}\n  }}\n"
    )
    _, diags = _load(
        "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  lvs_method NAT\n  lvs_sched rr\n"
        + block.format(n=1)
        + block.format(n=2)
        + "}\n"
    )
    errors = [d for d in diags if "has no url block" in d]
    assert [e.split(": ")[0] for e in errors] == ["t.conf:8:5", "t.conf:13:5"]
    misc = "  real_server 10.0.1.{n} 80 {{\n    MISC_CHECK {{\n      retry 2\n    }}\n  }}\n"
    _, diags = _load(
        "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  lvs_method NAT\n  lvs_sched rr\n"
        + misc.format(n=1)
        + misc.format(n=2)
        + "}\n"
    )
    assert len([d for d in diags if "MISC_CHECK has no misc_path" in d]) == 2


def test_http_checkers_with_urls_still_shared() -> None:
    block = (
        "  real_server 10.0.1.{n} 80 {{\n    HTTP_GET {{\n      url {{\n        path /\n"
        "        status_code 200\n      }}\n    }}\n  }}\n"
    )
    cfg, diags = _load(
        "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  lvs_method NAT\n  lvs_sched rr\n"
        + block.format(n=1)
        + block.format(n=2)
        + "}\n"
    )
    assert [d for d in diags if "error" in d] == []
    r1, r2 = cfg.virtual_servers[0].real_servers
    assert r1.checkers[0] is r2.checkers[0]
    assert r1.checkers[0].urls == (m.Url("/", status_code=((200, 200),)),)  # type: ignore[attr-defined]


def test_one_word_short_path_matches_the_general_path() -> None:
    """A repeated "keyword VALUE" line is answered from the conversion cache; a wrong
    value is never cached, so every occurrence is reported at its own place."""
    rs = "  real_server 10.0.1.{n} 80 {{\n    weight {w}\n  }}\n"
    head = "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  lvs_method NAT\n  lvs_sched rr\n"
    cfg, diags = _load(head + "".join(rs.format(n=n, w=3) for n in (1, 2, 3)) + "}\n")
    assert [r.weight for r in cfg.virtual_servers[0].real_servers] == [3, 3, 3]
    _, diags = _load(head + "".join(rs.format(n=n, w="x") for n in (1, 2)) + "}\n")
    assert [d.split(": ")[0] for d in diags if "is not an integer" in d] == [
        "t.conf:6:12",
        "t.conf:9:12",
    ]
    assert TABLE["real_server"]["weight"].one_word
    assert not TABLE["virtual_server"]["sh-port"].one_word  # repeatable: the general path
    assert not TABLE["virtual_server"]["real_server"].one_word  # a block
    assert not TABLE["global_defs"]["use_symlink_paths"].one_word  # accepted, not modelled
