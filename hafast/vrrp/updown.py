"""``interface_up_down_delays``: the delay before a link's change is acted on, per link.

:class:`hafast.net.linkwatch.LinkWatch` applies them (to every tracker of the link: an
instance's own interface, ``track_interface``, track_group interfaces, the static
entries restored when it comes up).  Here: the delays the config asks for, shortened as
keepalived 2.2.7's vrrp_complete_instance / check_debounce_timers shortens them, so that
a backup on the same link cannot time out and become master before this instance faults:
on an instance's own interface a delay must stay below ``down_timer_adverts - 1``
advert intervals (it becomes that, less 1/256 of an interval), and with
``down_timer_adverts 1`` there is no delay at all.  Instances are taken in config order,
each from what the previous one left, as keepalived does.

>>> from hafast.config.loader import load_text
>>> cfg = load_text("interface_up_down_delays {\\n eth0 5 1\\n eth1 3\\n}\\n"
...     "vrrp_instance V { interface eth0\\n virtual_router_id 7\\n"
...     " no_virtual_ipaddress\\n }\\n").config
>>> link_delays(cfg)
({'eth0': (1.996094, 1.0), 'eth1': (3.0, 0.0)}, ['V: interface eth0 debounce timer(s) \
not less that 2 * advert_int - resetting'])
"""

from __future__ import annotations

from hafast.config.model import Config
from hafast.lib.units import US_PER_S


def link_delays(config: Config) -> tuple[dict[str, tuple[float, float]], list[str]]:
    """``{ifname: (down, up)}`` in seconds, and keepalived's messages for the delays
    it shortened."""
    us = {d.ifname: [d.down_us, d.up_us] for d in config.interface_up_down_delays}
    said: list[str] = []
    if us:
        for inst in config.vrrp_instances:
            ifname = inst.interface or config.global_defs.default_interface
            delay = us.get(ifname)
            if delay is None or not any(delay):
                continue
            if inst.down_timer_adverts == 1:
                said.append(f"{inst.name}: cannot use debounce timers with "
                            "down_timer_adverts = 1 - resetting")
                delay[:] = [0, 0]
                continue
            most = (inst.down_timer_adverts - 1) * inst.advert_int_us
            if max(delay) >= most:
                # keepalived's wording, its typo included
                said.append(f"{inst.name}: interface {ifname} debounce timer(s) not less "
                            f"that {inst.down_timer_adverts - 1} * advert_int - resetting")
                delay[:] = [d if d < most else most - inst.advert_int_us // 256
                            for d in delay]
    return {k: (d / US_PER_S, u / US_PER_S) for k, (d, u) in us.items()}, said
