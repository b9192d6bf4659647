"""A checker kind is one descriptor (DESIGN.md: one registry per extension point).

ECHO_CHECK below exists in this file only: a spec, a trivial probe, and one
:class:`~hafast.config.kinds.CheckerKind` naming both.  Registered, it is parsed and
validated like a built-in kind (file:line:col messages, the kind's defaults, its
required field, its fix-up, its default port), dumped as ``hafast -d --json`` dumps
checkers, and run by the engine with no other source file touched.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from hafast.check.api import NO_ATTEMPT, REGISTRY, Attempt, Done, ProbeKind, ProbeResult
from hafast.check.engine import Engine, target_for
from hafast.check.runner import Runner
from hafast.config import kinds
from hafast.config import model as m
from hafast.config.dump import dump_json
from hafast.config.grammar import TABLE
from hafast.config.kinds import CONN, TIMERS, CheckerKind
from hafast.config.loader import load_text
from hafast.lib.events import DOWN, ServerEvent
from hafast.lib.units import US_PER_S
from tests.unit.check.fakeloop import FakeLoop

# ------------------------------------------------------------------ the new kind


@dataclass(frozen=True, slots=True)
class EchoCheck(m.ConnectChecker):
    word: str = ""
    expect: str | None = None  # None: the word itself (the fix-up fills it in)
    repeat: int = 1


class EchoKind(ProbeKind):
    """Passes when the word is the expected one; no I/O."""

    made: ClassVar[list[EchoKind]] = []

    def __init__(self, spec: Any, target: Any, loop: Any, *, banner: str) -> None:
        super().__init__(spec, target, loop)
        self.banner = banner
        self.attempts = 0
        EchoKind.made.append(self)

    def start(self, done: Done) -> Attempt:
        self.attempts += 1
        ok = self.spec.word == self.spec.expect
        done(ProbeResult(ok, "" if ok else "mismatch", f"{self.spec.word}!={self.spec.expect}"))
        return NO_ATTEMPT


def _fix_echo(f: dict[str, Any], given: Mapping[str, Any]) -> None:
    if "expect" not in given:
        f["expect"] = f.get("word")


ECHO = CheckerKind(
    "ECHO_CHECK",
    EchoCheck,
    TIMERS
    + CONN
    + """
word                v  1    str           word
expect              v  1    str           expect
repeat              v  1    int:1,10      repeat
""",
    EchoKind,
    defaults={"retry": 0},
    port=7,
    required=(("word", "word (expected: word TEXT)"),),
    fixup=_fix_echo,
    extras=lambda config, rs, spec: {"banner": f"weight {rs.weight}"},
)


@pytest.fixture
def echo() -> Iterator[CheckerKind]:
    EchoKind.made = []
    kinds.register(ECHO)
    try:
        yield ECHO
    finally:
        kinds.unregister("ECHO_CHECK")


# ------------------------------------------------------------------ loading

CONF = """\
virtual_server fwmark 7 {
  delay_loop 2
  real_server 10.1.0.1 {
    weight 3
    ECHO_CHECK {
      word hello
      connect_timeout 0.5
    }
  }
  real_server 10.1.0.2 {
    ECHO_CHECK {
      word hello
      expect bye
      connect_port 7007
    }
  }
}
"""


def test_a_registered_kind_loads_with_its_defaults_fixup_and_port(echo: CheckerKind) -> None:
    res = load_text(CONF, file="k.conf")
    assert res.ok, [d.format() for d in res.diagnostics]
    (vs,) = res.config.virtual_servers
    one, two = (rs.checkers[0] for rs in vs.real_servers)
    assert isinstance(one, EchoCheck) and isinstance(two, EchoCheck)
    assert one.kind == "ECHO_CHECK"
    assert (one.word, one.expect, one.repeat) == ("hello", "hello", 1)  # fix-up
    assert one.retry == 0 and one.delay_loop_us == 2 * US_PER_S  # kind default, inherited
    assert one.connect_timeout_us == 500_000
    assert two.expect == "bye" and two.connect_port == 7007
    # no port anywhere (fwmark service, no real server port): the kind's own
    assert target_for(vs.real_servers[0], one).port == 7
    assert target_for(vs.real_servers[1], two).port == 7007


def test_a_registered_kind_validates_its_fields(echo: CheckerKind) -> None:
    text = """\
virtual_server 10.0.0.1 80 {
  real_server 10.1.0.1 80 {
    ECHO_CHECK {
      repeat 11
      wrod hello
      connect_ip nowhere
    }
  }
}
"""
    errors = [d.format() for d in load_text(text, file="k.conf").errors]
    assert errors == [
        "k.conf:4:14: error: number '11' outside range [1, 10] "
        "(expected: repeat <integer 1..10>)",
        "k.conf:5:7: error: unknown keyword 'wrod' in ECHO_CHECK; did you mean 'word'?",
        "k.conf:6:18: error: 'nowhere' is not an IPv4 or IPv6 address "
        "(expected: connect_ip <IP address>)",
        "k.conf:7:5: error: ECHO_CHECK has no word (expected: word TEXT)",
    ]


def test_a_registered_kind_dumps_like_the_others(echo: CheckerKind) -> None:
    dumped = json.loads(dump_json(load_text(CONF).config))
    spec = dumped["virtual_servers"][0]["real_servers"][0]["checkers"][0]
    assert spec["kind"] == "ECHO_CHECK" and spec["word"] == "hello"


# ------------------------------------------------------------------ running


def test_the_engine_runs_a_registered_kind(echo: CheckerKind) -> None:
    loop, events = FakeLoop(), list[ServerEvent]()
    cfg = load_text(CONF).config
    eng = Engine(cfg, loop, events.append, runner=Runner(loop, None, rng=random.Random(2)))
    assert eng.checks == 2 and not eng.skipped
    assert REGISTRY["ECHO_CHECK"] is EchoKind and EchoKind.keyword == "ECHO_CHECK"
    assert sorted(k.banner for k in EchoKind.made) == ["weight 1", "weight 3"]  # extras
    eng.start()
    loop.advance(5.0)
    assert all(k.attempts >= 2 for k in EchoKind.made)
    # 10.1.0.2 expects "bye": DOWN, with the kind's reason; 10.1.0.1 stays up
    assert [(e.real_server, e.state) for e in events] == [(("10.1.0.2", None), DOWN)]
    eng.stop()
    assert loop.pending() == 0


# ------------------------------------------------------------------ the registry


def test_unregistering_takes_the_keyword_out_of_the_grammar(echo: CheckerKind) -> None:
    assert "ECHO_CHECK" in TABLE and "ECHO_CHECK" in TABLE["real_server"]
    with pytest.raises(ValueError, match="already registered"):
        kinds.register(ECHO)
    kinds.unregister("ECHO_CHECK")
    try:
        assert "ECHO_CHECK" not in TABLE and "ECHO_CHECK" not in TABLE["real_server"]
        msgs = [d.format() for d in load_text(CONF, file="k.conf").diagnostics]
        assert msgs[0].startswith("k.conf:5:5: error: unknown keyword 'ECHO_CHECK' in real_server")
        assert "ECHO_CHECK" not in REGISTRY
    finally:
        kinds.register(ECHO)  # the fixture unregisters it


def test_every_built_in_kind_has_one_descriptor() -> None:
    """The grammar's checker blocks, the model's specs and the engine's probes are all
    read from the registry: nothing to keep in step by hand."""
    built_in = {"HTTP_GET", "SSL_GET", "TCP_CHECK", "SMTP_CHECK", "DNS_CHECK", "MISC_CHECK",
                "UDP_CHECK", "PING_CHECK", "FILE_CHECK", "BFD_CHECK"}
    assert built_in <= set(kinds.KINDS)
    blocks = {k for k, row in TABLE["real_server"].items() if row.field == "checkers"}
    assert blocks == set(kinds.KINDS)
    for keyword, kind in kinds.KINDS.items():
        assert kind.spec.kind == keyword and keyword in TABLE
    assert set(REGISTRY) == built_in - {"BFD_CHECK"}  # BFD_CHECK has no probe yet
