"""VipGuard's arithmetic: when the parent must have released a silent master's VIPs,
and how often it must hear from the VRRP worker to know (issue 12, items 1 and 2)."""

from __future__ import annotations

import pytest

from hafast.app.vipguard import VipGuard, guarded
from hafast.config.loader import load_text

TWO = """
global_defs {
  default_interface eth9
  vrrp_version 3
}
vrrp_instance SLOW {
  virtual_router_id 1
  priority 100
  advert_int 2
  virtual_ipaddress {
    192.0.2.1/24
  }
  virtual_ipaddress_excluded {
    192.0.2.2/24
  }
}
vrrp_instance FAST {
  interface eth1
  virtual_router_id 2
  priority 100
  advert_int 0.5
  virtual_ipaddress {
    198.51.100.1/24
  }
}
"""


def guard(text: str = TWO) -> VipGuard:
    res = load_text(text)
    assert not res.errors, [d.format() for d in res.errors]
    return VipGuard(res.config)


def guard_of(*masters: str) -> tuple[VipGuard, list[list[str]]]:
    """A guard whose ``masters`` are MASTER at priority 100, and the list its releases
    (sorted instance names, one list each) go to instead of the kernel."""
    g = guard()
    g.states.update({name: ("MASTER", 100) for name in masters})
    released: list[list[str]] = []

    async def fake_release(names: list[str]) -> list[str]:
        released.append(sorted(names))
        return []

    g.release = fake_release  # type: ignore[method-assign]
    return g, released


def test_the_fastest_instance_sets_the_bound() -> None:
    g = guard()
    assert g.advert_s == 0.5
    # A peer cannot declare us dead before 2 intervals after our last sign of life
    # (our last advert was at most one interval before it, and it waits three).
    assert g.release_deadline(100.0) == pytest.approx(100.875)
    period, timeout = g.heartbeat()
    assert (period, timeout) == (0.125, 0.5)
    assert timeout + period < 2 * g.advert_s  # detected before any takeover


def test_what_each_instance_would_hold() -> None:
    inst = guarded(load_text(TWO).config)
    assert inst["SLOW"].ifname == "eth9"  # default_interface
    assert [v.address for v in inst["SLOW"].vips] == ["192.0.2.1", "192.0.2.2"]
    assert inst["FAST"].ifname == "eth1" and inst["FAST"].advert_s == 0.5


@pytest.mark.parametrize(("delay", "startup", "resume"), [
    (0.0, 0.5, True),     # an immediate respawn comes back in time
    (0.2, 0.5, True),
    (0.5, 0.5, False),    # 0 + 0.5 + 0.5 = 1.0 > 0.875: release first
    (5.0, 0.1, False),    # the 5 s backoff that left the VIP on two directors
])
def test_resume_only_when_the_successor_is_advertising_in_time(
        delay: float, startup: float, resume: bool) -> None:
    g = guard()
    assert g.can_resume(now=0.0, t_alive=0.0, delay=delay, startup=startup) is resume


def test_sub_100ms_adverts_are_floored() -> None:
    g = guard(TWO.replace("advert_int 0.5", "advert_int 0.05"))
    assert g.heartbeat() == (0.025, 0.1)


def test_no_instance_means_nothing_to_guard() -> None:
    g = guard("virtual_server 192.0.2.9 80 {\n real_server 192.0.2.10 80 {\n"
              "  TCP_CHECK {\n  }\n }\n}\n")
    assert g.instances == {} and g.advert_s == 1.0


def test_each_master_is_judged_by_its_own_advert_interval() -> None:
    """A master on a slow interval resumes while one on a fast interval is released
    (the fast one's peer would take over before the successor is up)."""
    import asyncio

    g, released = guard_of("SLOW", "FAST")
    moved: list[dict[str, tuple[str, int]]] = []
    # start-up 0.5 s (x1.5 = 0.75): SLOW's bound is 3.5 s, FAST's 0.875 s
    deadline = asyncio.run(g.on_death(0.0, 0.2, 0.0, 0.5, moved.append))
    assert released == [["FAST"]] and moved == [{"FAST": ("BACKUP", 100)}]
    assert deadline == pytest.approx(3.5)
    assert g.masters() == ["SLOW"]


def test_a_first_start_time_is_taken_without_the_margin() -> None:
    """The supervisor passes margin 1.0 for a start-up measured at the first start
    (it raced the check workers' starts): the same 0.5 s that releases FAST with the
    default margin (0.2 + 0.75 > 0.875) now fits (0.2 + 0.5 < 0.875)."""
    import asyncio

    g, released = guard_of("FAST")
    deadline = asyncio.run(g.on_death(0.0, 0.2, 0.0, 0.5, lambda m: None, margin=1.0))
    assert released == [] and deadline == pytest.approx(0.875)
    assert g.masters() == ["FAST"]


def test_the_last_advert_times_the_release_when_the_worker_said() -> None:
    """FAST (advert 0.5 s) last advertised 0.4 s before the worker's last pong: a peer
    cannot take over before that advert + 1.5 s, so the deadline is the advert +
    1.375 s; the pong alone allows only 0.875 s after the pong.  SLOW did not say:
    the pong's bound."""
    g = guard()
    assert g.release_deadline(10.0, "FAST", t_advert=9.6) == pytest.approx(10.975)
    assert g.release_deadline(10.0, "FAST") == pytest.approx(10.875)
    # a worker whose adverts fell behind gets the tighter, true bound
    assert g.release_deadline(10.0, "FAST", t_advert=9.0) == pytest.approx(10.375)
    assert g.release_deadline(10.0, "SLOW", t_advert=None) == pytest.approx(13.5)


def test_a_known_advert_lets_a_master_resume_that_the_pong_alone_would_release() -> None:
    """Start-up 0.6 s, died 0.2 s after its last pong: 0.2 + 0.6 = 0.8 s is within the
    pong's 0.875 s, but with margin 1.5 (0.9 s) only the advert (just before the
    pong: deadline 1.375 s) keeps FAST; an advert 0.6 s old releases it."""
    import asyncio

    def run(last_adverts: dict[str, float]) -> tuple[list[list[str]], float | None]:
        g, released = guard_of("FAST")
        deadline = asyncio.run(g.on_death(0.0, 0.2, 0.0, 0.6, lambda m: None,
                                          last_adverts=last_adverts))
        return released, deadline

    assert run({}) == ([["FAST"]], None)
    released, deadline = run({"FAST": 0.0})
    assert released == [] and deadline == pytest.approx(1.375)
    assert run({"FAST": -0.6}) == ([["FAST"]], None)
