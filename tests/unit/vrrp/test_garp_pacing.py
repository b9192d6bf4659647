"""garp_group / vrrp_garp_interval pacing (keepalived 2.2.7 garp_delay), on a manual clock.

The expected sequences are what keepalived 2.2.7 sent in a namespace
(tests/netns/test_garp_pacing.py compares the two daemons on the wire): a message
offered before the link is free marks its VIP pending (once), so the rounds of a
burst collapse, and the first pending VIP in instance, then address, order goes at
each free time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hafast.config.loader import load_text
from hafast.config.model import Config, GarpGroup, GlobalDefs, VirtualAddress, VrrpInstance
from hafast.net.vip import MemoryVips
from hafast.vrrp.announce import GarpPacer
from hafast.vrrp.build import plan_instances
from hafast.vrrp.fsm import State
from hafast.vrrp.instance import Instance, ManualTimers
from hafast.vrrp.pacing import GarpPacing

MS = 1000
SEC = 1_000_000


def _pacing(config: Config, base_of: Callable[[str], str] | None = None
            ) -> tuple[ManualTimers, GarpPacing, list[tuple[int, str]]]:
    clock = ManualTimers()
    pacing = (GarpPacing(clock, config) if base_of is None
              else GarpPacing(clock, config, base_of))
    return clock, pacing, []


def _burst(pacing: GarpPacing, clock: ManualTimers, sent: list[tuple[int, str]],
           vips: list[tuple[str, int, str]], repeat: int, owner: str = "VI_1") -> None:
    """One vrrp_send_link_update: ``repeat`` rounds over (ifname, family, label)."""
    def sender(label: str) -> Callable[[], None]:
        return lambda: sent.append((clock.now_us() // MS, label))

    for _ in range(repeat):
        for index, (ifname, family, label) in enumerate(vips):
            pacing.send(ifname, family, owner, index, sender(label))


def group(garp_ms: int | None = None, gna_ms: int | None = None,
          *ifnames: str) -> GarpGroup:
    return GarpGroup(None if garp_ms is None else garp_ms * MS,
                     None if gna_ms is None else gna_ms * MS, ifnames)


def test_a_burst_collapses_to_what_keepalived_sends() -> None:
    clock, pacing, sent = _pacing(Config(garp_groups=(group(500, None, "eth0"),)))
    _burst(pacing, clock, sent, [("eth0", 4, "a"), ("eth0", 4, "b")], 5)
    clock.advance(3000 * MS)
    assert sent == [(0, "a"), (500, "a"), (1000, "b")]


def test_one_round_each_vip_once_interval_apart() -> None:
    clock, pacing, sent = _pacing(Config(garp_groups=(group(500, None, "eth0"),)))
    _burst(pacing, clock, sent, [("eth0", 4, "a"), ("eth0", 4, "b")], 1)
    clock.advance(3000 * MS)
    assert sent == [(0, "a"), (500, "b")]


def test_a_second_burst_after_the_first_drained_starts_afresh() -> None:
    clock, pacing, sent = _pacing(Config(garp_groups=(group(500, None, "eth0"),)))
    vips = [("eth0", 4, "a"), ("eth0", 4, "b")]
    _burst(pacing, clock, sent, vips, 5)
    clock.advance(3000 * MS)
    _burst(pacing, clock, sent, vips, 5)
    clock.advance(3000 * MS)
    assert sent == [(0, "a"), (500, "a"), (1000, "b"), (3000, "a"), (3500, "a"), (4000, "b")]


def test_a_burst_meets_the_vips_still_waiting() -> None:
    """A burst while b still waits from the last: a (first in order, offered again)
    goes ahead of it; b keeps its single pending place."""
    clock, pacing, sent = _pacing(Config(garp_groups=(group(500, None, "eth0"),)))
    vips = [("eth0", 4, "a"), ("eth0", 4, "b")]
    _burst(pacing, clock, sent, vips, 5)
    clock.advance(700 * MS)  # a went at 500; b waits for 1000
    _burst(pacing, clock, sent, vips, 5)
    clock.advance(3000 * MS)
    assert sent == [(0, "a"), (500, "a"), (1000, "a"), (1500, "b")]


def test_arps_and_nas_keep_their_own_times() -> None:
    clock, pacing, sent = _pacing(Config(garp_groups=(group(300, 700, "eth0"),)))
    _burst(pacing, clock, sent, [("eth0", 4, "a4"), ("eth0", 6, "a6"),
                                 ("eth0", 4, "b4"), ("eth0", 6, "b6")], 1)
    clock.advance(2000 * MS)
    assert sent == [(0, "a4"), (0, "a6"), (300, "b4"), (700, "b6")]


def test_a_family_without_interval_is_not_paced() -> None:
    """A group with only garp_interval: its NAs go at once, even with a global
    vrrp_gna_interval (the group is the interface's only garp_delay)."""
    config = Config(global_defs=GlobalDefs(vrrp_gna_interval_us=400 * MS),
                    garp_groups=(group(300, None, "eth0"),))
    clock, pacing, sent = _pacing(config)
    _burst(pacing, clock, sent, [("eth0", 6, "a6"), ("eth0", 6, "b6")], 2)
    assert sent == [(0, "a6"), (0, "b6"), (0, "a6"), (0, "b6")]


def test_a_groups_interfaces_share_one_pacer() -> None:
    clock, pacing, sent = _pacing(Config(garp_groups=(group(500, None, "eth1", "eth2"),)))
    _burst(pacing, clock, sent, [("eth1", 4, "x"), ("eth2", 4, "y"), ("eth3", 4, "z")], 1)
    clock.advance(2000 * MS)
    assert sent == [(0, "x"), (0, "z"), (500, "y")]


def test_the_global_interval_paces_each_interface_on_its_own() -> None:
    config = Config(global_defs=GlobalDefs(vrrp_garp_interval_us=500 * MS))
    clock, pacing, sent = _pacing(config)
    _burst(pacing, clock, sent, [("eth1", 4, "x"), ("eth2", 4, "y"), ("eth1", 4, "w")], 1)
    clock.advance(2000 * MS)
    assert sent == [(0, "x"), (0, "y"), (500, "w")]


def test_nothing_set_nothing_paced() -> None:
    clock, pacing, sent = _pacing(Config())
    _burst(pacing, clock, sent, [("eth0", 4, "a"), ("eth0", 4, "b")], 3)
    assert sent == [(0, "a"), (0, "b")] * 3
    assert pacing.pacer("eth0") is None


def test_the_first_group_naming_an_interface_wins() -> None:
    config = Config(garp_groups=(group(500, None, "eth0"), group(100, None, "eth0")))
    _clock, pacing, _sent = _pacing(config)
    pacer = pacing.pacer("eth0")
    assert pacer is not None and pacer.garp_interval_us == 500 * MS


def test_a_vmac_is_paced_as_its_parent() -> None:
    """IF_BASE_IFP: the group names eth0; the macvlan's GARPs share its pacer."""
    clock, pacing, sent = _pacing(Config(garp_groups=(group(500, None, "eth0"),)),
                                  lambda n: {"vrrp.51": "eth0"}.get(n, n))
    _burst(pacing, clock, sent, [("eth0", 4, "parent")], 1, owner="VI_1")
    _burst(pacing, clock, sent, [("vrrp.51", 4, "vmac")], 1, owner="VI_2")
    clock.advance(1000 * MS)
    assert sent == [(0, "parent"), (500, "vmac")]


def test_instances_take_turns_in_config_order() -> None:
    insts = (VrrpInstance("VI_A", 1), VrrpInstance("VI_B", 2))
    clock, pacing, sent = _pacing(Config(vrrp_instances=insts,
                                         garp_groups=(group(500, None, "eth0"),)))
    _burst(pacing, clock, sent, [("eth0", 4, "first")], 1, owner="VI_B")
    _burst(pacing, clock, sent, [("eth0", 4, "b1")], 1, owner="VI_B")
    _burst(pacing, clock, sent, [("eth0", 4, "a0")], 1, owner="VI_A")
    clock.advance(2000 * MS)
    assert sent == [(0, "first"), (500, "a0"), (1000, "b1")]


def test_withdrawn_messages_never_leave() -> None:
    clock, pacing, sent = _pacing(Config(garp_groups=(group(500, None, "eth0"),)))
    _burst(pacing, clock, sent, [("eth0", 4, "a"), ("eth0", 4, "b")], 1)
    pacing.withdraw("VI_1")
    clock.advance(2000 * MS)
    assert sent == [(0, "a")]


def test_a_reload_reads_the_groups_and_intervals_again() -> None:
    clock, pacing, sent = _pacing(Config(garp_groups=(group(500, None, "eth0"),)))
    _burst(pacing, clock, sent, [("eth0", 4, "a"), ("eth0", 4, "b")], 1)
    pacing.configure(Config(global_defs=GlobalDefs(vrrp_garp_interval_us=200 * MS)))
    clock.advance(2000 * MS)
    # what waited in the old group's pacer still goes at its time
    assert sent == [(0, "a"), (500, "b")]
    pacer = pacing.pacer("eth0")
    assert pacer is not None and pacer.garp_interval_us == 200 * MS
    pacing.configure(Config())
    assert pacing.pacer("eth0") is None


def test_the_pacer_alone() -> None:
    p: GarpPacer[str, str] = GarpPacer(garp_interval_us=0)
    assert [p.offer(0, 4, k, k) for k in "ab"] == [True, True]  # 0: no spacing
    p = GarpPacer(gna_interval_us=10)
    assert p.offer(0, 4, "x", "x") and p.offer(0, 4, "x", "x")  # ARPs not paced
    assert p.offer(0, 6, "y", "y") and not p.offer(5, 6, "z", "z")
    assert p.wake_us() == 10 and p.due(9) == [] and p.due(10) == ["z"]


# ------------------------------------------------------------------ the config side


def _gd(text: str) -> GlobalDefs:
    res = load_text(text, file="k.conf")
    assert res.ok, [d.format() for d in res.diagnostics]
    return res.config.global_defs


def _garp(gd: GlobalDefs) -> tuple[int, int, int, int]:
    return (gd.vrrp_garp_master_repeat, gd.vrrp_garp_master_delay_us,
            gd.vrrp_garp_master_refresh_us, gd.vrrp_garp_master_refresh_repeat)


def test_min_garp_sets_what_is_still_default() -> None:
    assert _garp(_gd("global_defs {\n vrrp_min_garp\n}\n")) == (1, 0, 0, 0)
    assert _garp(_gd("global_defs {\n vrrp_min_garp off\n}\n")) == (5, 5_000_000, 0, 1)


def test_min_garp_keeps_what_was_set_before_unless_default() -> None:
    gd = _gd("global_defs {\n vrrp_garp_master_repeat 3\n vrrp_garp_master_delay 5\n"
             " vrrp_min_garp\n}\n")
    assert _garp(gd) == (3, 0, 0, 0)  # 5 s is the default: keepalived zeroes it too


def test_min_garp_yields_to_what_comes_after() -> None:
    gd = _gd("global_defs {\n vrrp_min_garp\n vrrp_garp_master_repeat 5\n"
             " vrrp_garp_master_refresh 10\n}\n")
    assert _garp(gd) == (5, 0, 10_000_000, 0)  # refresh_repeat stays 0, as keepalived's


def test_min_garp_reaches_the_instances() -> None:
    res = load_text("global_defs {\n vrrp_min_garp\n}\nvrrp_instance V {\n interface eth0\n"
                    " virtual_router_id 1\n virtual_ipaddress {\n  10.0.0.1\n }\n}\n")
    (inst,) = res.config.vrrp_instances
    assert (inst.garp_master_repeat, inst.garp_master_delay_us,
            inst.garp_lower_prio_repeat, inst.garp_lower_prio_delay_us) == (1, 0, 1, 0)


def test_garp_group_is_loaded() -> None:
    res = load_text("garp_group {\n garp_interval 0.25\n gna_interval 2\n interface eth0\n"
                    " interfaces {\n  eth1 eth2\n }\n}\n", file="k.conf")
    assert res.ok and not res.warnings, [d.format() for d in res.diagnostics]
    (g,) = res.config.garp_groups
    assert (g.garp_interval_us, g.gna_interval_us, g.interfaces) == (
        250_000, 2_000_000, ("eth0", "eth1", "eth2"))


def test_garp_group_without_interval_is_dropped_with_a_warning() -> None:
    res = load_text("garp_group {\n interface eth0\n}\n", file="k.conf")
    assert res.config.garp_groups == ()
    assert [(d.severity, d.line) for d in res.diagnostics] == [("warning", 1)]


# ------------------------------------------------------------------ garp_extra_if

_EXTRA = ("vrrp_instance V {\n interface eth0\n virtual_router_id 1\n{extra}"
          " virtual_ipaddress {\n  10.0.0.1/24\n  10.1.0.1/24 dev eth1\n"
          "  10.1.0.2/24 dev eth1\n  10.2.0.1/24 dev eth2\n }\n}\n")


def _extra(global_line: str = "", inst_line: str = "") -> tuple[int, tuple[str, ...]]:
    text = ("global_defs {\n" + global_line + "\n}\n" if global_line else "") + \
        _EXTRA.replace("{extra}", inst_line + "\n" if inst_line else "")
    res = load_text(text, file="k.conf")
    assert res.ok, [d.format() for d in res.errors]
    (plan,) = plan_instances(res.config)
    return plan.spec.extra_if_garp_us, tuple(v.address for v in plan.spec.extra_if_vips)


def test_extra_if_sends_for_one_vip_of_each_other_interface() -> None:
    assert _extra(inst_line=" garp_extra_if 10 all") == (10 * SEC, ("10.1.0.1", "10.2.0.1"))
    assert _extra(inst_line=" garp_extra_if all 10") == (10 * SEC, ("10.1.0.1", "10.2.0.1"))


def test_extra_if_needs_all_without_a_vmac_of_the_vips_own() -> None:
    # keepalived vrrp_complete_instance: no VIP on a VMAC of its own (use_vmac_addr)
    # and no 'all': turned off
    assert _extra(inst_line=" garp_extra_if 10") == (0, ())
    assert _extra(inst_line=" garp_extra_if 0 all") == (0, ())


def test_extra_if_with_vmac_xmit_base_announces_the_macvlans_vips_too() -> None:
    """keepalived skips the instance's own interface "unless xmit_base"; without an
    other interface it stays off all the same."""
    vmac = " use_vmac\n garp_extra_if 10 all\n"
    assert _extra(inst_line=vmac) == (10 * SEC, ("10.1.0.1", "10.2.0.1"))
    assert _extra(inst_line=vmac + " vmac_xmit_base\n") == (
        10 * SEC, ("10.0.0.1", "10.1.0.1", "10.2.0.1"))
    res = load_text("vrrp_instance V {\n interface eth0\n virtual_router_id 1\n" + vmac
                    + " vmac_xmit_base\n virtual_ipaddress {\n  10.0.0.1/24\n }\n}\n")
    assert plan_instances(res.config)[0].spec.extra_if_garp_us == 0


def test_extra_if_global_is_the_default_and_the_instance_overrides_it() -> None:
    assert _extra("vrrp_garp_extra_if 7 all") == (7 * SEC, ("10.1.0.1", "10.2.0.1"))
    assert _extra("vrrp_garp_extra_if 7 all", " garp_extra_if 3") == (0, ())
    assert _extra("vrrp_garp_extra_if 7", " garp_extra_if 3 all")[0] == 3 * SEC


def test_extra_if_global_change_reaches_a_running_instance_on_reload() -> None:
    from hafast.config.diff import diff

    text = "global_defs {\n vrrp_garp_extra_if %s all\n}\n" + _EXTRA.replace("{extra}", "")
    old, new = (load_text(text % n).config for n in (5, 9))
    plan = diff(old, new).vrrp_instances
    assert [o.name for o, _n in plan.adopt] == ["V"]
    assert new.vrrp_instances[0].garp_extra_if == (9, True)


def test_extra_if_old_names_still_work_with_a_warning() -> None:
    res = load_text("global_defs {\n vrrp_vmac_garp_intvl 4 all\n}\n"
                    + _EXTRA.replace("{extra}", " vmac_garp_intvl 5 all\n"), file="k.conf")
    assert [d.message for d in res.warnings] == [
        "vrrp_vmac_garp_intvl is deprecated - please use 'vrrp_garp_extra_if'",
        "vmac_garp_intvl is deprecated - please use 'garp_extra_if'"]
    assert res.config.global_defs.vrrp_garp_extra_if == (4, True)
    assert res.config.vrrp_instances[0].garp_extra_if == (5, True)


def test_extra_if_words_are_checked() -> None:
    for line, word in ((" vrrp_garp_extra_if 0 all", "0"), (" vrrp_garp_extra_if all", "all"),
                       (" vrrp_garp_extra_if 5 sometimes", "sometimes")):
        res = load_text("global_defs {\n" + line + "\n}\n", file="k.conf")
        assert [(d.line, d.col) for d in res.errors] == [(2, line.index(word) + 1)], line


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, tuple[str, ...], int]] = []
        self.clock: ManualTimers | None = None

    def announce(self, vips: Sequence[VirtualAddress], repeat: int, owner: str = "") -> None:
        assert self.clock is not None
        self.calls.append((self.clock.now_us() // MS, tuple(v.address for v in vips), repeat))

    def withdraw(self, owner: str) -> None:
        pass

    def close(self) -> None:
        pass


def test_extra_if_goes_out_with_the_first_advert_after_each_period() -> None:
    """keepalived looks at the timer as a master's advert goes out; the advert at the
    period's end counts (keepalived's own adverts run late of its timer)."""
    res = load_text("global_defs {\n vrrp_garp_master_delay 0\n}\n"
                    + _EXTRA.replace("{extra}", " garp_extra_if 2 all\n priority 200\n"
                                     " advert_int 1\n state MASTER\n"))
    (plan,) = plan_instances(res.config)
    clock, rec = ManualTimers(), _Recorder()
    rec.clock = clock
    inst = Instance(plan.spec, timers=clock, vips=MemoryVips(), announcer=rec, notifier=None,
                    sender=_NoWire())
    inst.start()
    clock.advance(10 * SEC)
    assert inst.state is State.MASTER
    start = rec.calls[0][0]
    periodic = [(t - start, vips, n) for t, vips, n in rec.calls[1:]]
    extra = ("10.1.0.1", "10.2.0.1")
    assert periodic[:3] == [(2000, extra, 1), (4000, extra, 1), (6000, extra, 1)]
    inst.stop()
    n = len(rec.calls)
    clock.advance(10 * SEC)
    assert len(rec.calls) == n  # not while backup/stopped


class _NoWire:
    def send(self, priority: int) -> bool:
        return True
