"""interface_up_down_delays (issue 14): keepalived 2.2.7's per-link debounce.

The lines as keepalived's alloc_if_up_down_delay reads them, the shortening on an
instance's own interface (vrrp_complete_instance / check_debounce_timers), and
LinkWatch reporting a change only after its delay, or not at all when the link is
back before it ends.  The netns side-by-side test is tests/netns/test_updown_delays.py.
"""

from __future__ import annotations

import asyncio

from hafast.config.loader import load_text
from hafast.config.model import UpDownDelay
from hafast.net.linkwatch import LinkWatch
from hafast.vrrp.updown import link_delays

INSTANCE = """vrrp_instance V {{
  interface eth0
  virtual_router_id 7
  advert_int {adv}
  no_virtual_ipaddress
  {extra}
}}
"""


def load(delays: str, adv: str = "1", extra: str = "") -> tuple[object, list[str]]:
    res = load_text(f"interface_up_down_delays {{\n{delays}\n}}\n"
                    + INSTANCE.format(adv=adv, extra=extra), file="k.conf")
    assert res.errors == []
    return res.config, [f"{d.line}: {d.message}" for d in res.warnings]


def test_lines_as_keepalived_reads_them() -> None:
    cfg, said = load(" eth1 1.5 0.25\n eth2 2\n eth3\n eth4 300\n eth5 1 2 3\n eth1 0.5 1")
    assert cfg.interface_up_down_delays == (  # type: ignore[attr-defined]
        UpDownDelay("eth1", 500_000, 1_000_000),  # the later line wins
        UpDownDelay("eth2", 2_000_000, 0),  # no up delay: 0 (the man page says = down)
        UpDownDelay("eth5", 1_000_000, 2_000_000))
    assert said == [
        "4: No timeouts specified for eth3 up/down delays; line ignored, as keepalived does",
        "5: Invalid down delay 300 for eth4 (expected seconds, 0 to 255); line ignored, "
        "as keepalived does",
        "6: Too many parameters for eth5 up/down delays (keepalived reads IF DOWN_DELAY "
        "[UP_DELAY]; '3' ignored)"]


def test_shortened_below_the_backups_timeout_on_the_instance_interface() -> None:
    cfg, _ = load(" eth0 5 1\n eth1 5 5")
    delays, said = link_delays(cfg)  # type: ignore[arg-type]
    # (down_timer_adverts 3 - 1) * 1 s, less 1/256 s; a tracked link keeps its own
    assert delays == {"eth0": (1.996094, 1.0), "eth1": (5.0, 5.0)}
    assert said == ["V: interface eth0 debounce timer(s) not less that 2 * advert_int - "
                    "resetting"]
    cfg, _ = load(" eth0 0.5 0.5", extra="down_timer_adverts 1")
    delays, said = link_delays(cfg)  # type: ignore[arg-type]
    assert delays == {"eth0": (0.0, 0.0)}
    assert said == ["V: cannot use debounce timers with down_timer_adverts = 1 - resetting"]


def test_linkwatch_reports_after_the_delay_or_not_at_all() -> None:
    async def run() -> list[tuple[bool, float]]:
        loop = asyncio.get_running_loop()
        watch = LinkWatch(loop, interval=3600)
        seen: list[tuple[bool, float]] = []
        t0 = loop.time()
        assert watch.watch("lo", lambda up: seen.append((up, loop.time() - t0))) is True
        watch.close()  # no events, no poll: the test drives the changes
        watch.set_delays({"lo": (0.6, 0.4)})
        watch._consider("lo", False)  # down: reported 0.6 s later
        await asyncio.sleep(0.1)
        assert seen == [] and watch.is_up("lo")
        await asyncio.sleep(1.0)
        t_up = loop.time() - t0
        watch._consider("lo", True)  # up: 0.4 s
        watch._consider("lo", True)  # the same change again: still one timer
        await asyncio.sleep(1.0)
        watch._consider("lo", False)  # down and back up within the delay: nothing
        await asyncio.sleep(0.05)
        watch._consider("lo", True)
        await asyncio.sleep(1.0)
        watch.set_delays({})
        watch._consider("lo", False)  # no delay: at once
        return [*seen, (True, t_up)]

    *seen, (_, t_up) = asyncio.run(run())
    assert [up for up, _t in seen] == [False, True, False]
    # the delays are lower bounds; each report came before the next step (timers
    # fire in deadline order), so no upper bound depends on the machine's load
    assert 0.6 <= seen[0][1] < t_up
    assert seen[1][1] - t_up >= 0.4
