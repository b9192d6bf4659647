"""MISC_CHECK against the farm: a script that connects to the real server, run in
the director namespace; drop makes it hang until misc_timeout kills its group,
reject makes it exit 1; misc_dynamic weights; recovery."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hafast.config import model as m
from hafast.config.loader import load_text
from hafast.lab import Farm
from tests.conftest import require_tool
from tests.netns.check_fixtures import (
    DELAY_LOOP,
    SLACK,
    apply,
    farm_for,
    recover,
    scenario,
)

pytestmark = [pytest.mark.root, pytest.mark.netns]

MISC_TIMEOUT = 0.4


@pytest.fixture(scope="module")
def farm() -> Iterator[Farm]:
    require_tool("bash")
    with farm_for("m") as lab:
        yield lab


@pytest.fixture(autouse=True)
def _clean(farm: Farm) -> Iterator[None]:
    yield
    farm.faults.recover()


def misc_config(scripts: dict[str, str], retry: int = 1, dynamic: bool = False) -> m.Config:
    rss = "\n".join(
        f"""  real_server {a} 80 {{
    weight 10
    MISC_CHECK {{
      misc_path "{script}"
      misc_timeout {MISC_TIMEOUT}
      {'misc_dynamic' if dynamic else ''}
      retry {retry}
      delay_before_retry 0.2
      delay_loop {DELAY_LOOP}
      warmup 0
    }}
  }}"""
        for a, script in scripts.items()
    )
    res = load_text(f"virtual_server 10.250.0.1 80 {{\n{rss}\n}}\n")
    assert not res.errors, res.errors
    return res.config


def connect_script(addr: str) -> str:
    # bash's /dev/tcp: no shell for us (the argv is split by the loader), one for it
    return f"/bin/bash -c 'exec 3<>/dev/tcp/{addr}/80'"


def test_misc_script_follows_the_server(farm: Farm) -> None:
    ok, dropped, rejected = farm.addresses[:3]
    cfg = misc_config({a: connect_script(a) for a in (ok, dropped, rejected)})
    tl = scenario(farm, cfg, [
        (1.0, "fault", lambda: (apply(farm, [dropped], "drop")(),
                                apply(farm, [rejected], "reject")())),
        (3.5, "recover", recover(farm, [dropped, rejected])),
    ], duration=5.0)
    assert tl.states(ok) == []
    assert tl.states(dropped) == ["DOWN", "UP"]
    assert tl.states(rejected) == ["DOWN", "UP"]
    # retry 1: the hanging script is killed at misc_timeout twice, 0.2 s apart
    least = MISC_TIMEOUT + 0.2 + MISC_TIMEOUT
    assert least - 0.05 <= tl.first(dropped, "DOWN", after="fault") <= least + DELAY_LOOP + SLACK
    assert tl.first(rejected, "DOWN", after="fault") <= 0.2 + DELAY_LOOP + SLACK
    reasons = {e.real_server[0]: e.reason for _, e in tl.events if e.state == "DOWN"}
    assert reasons == {dropped: "MISC_CHECK timeout", rejected: "MISC_CHECK exit"}
    for addr in (dropped, rejected):
        assert tl.first(addr, "UP", after="recover") <= DELAY_LOOP + MISC_TIMEOUT + SLACK


def test_misc_dynamic_weight(farm: Farm) -> None:
    a = farm.addresses[3]
    cfg = misc_config({a: "/bin/sh -c 'exit 7'"}, dynamic=True)
    tl = scenario(farm, cfg, [], duration=1.0)
    assert [(e.state, e.weight) for _, e in tl.events] == [("WEIGHT", 5)]
