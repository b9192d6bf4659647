"""What an instance says when a reload removes it (keepalived clear_diff_vrrp), and the
``notify_deleted`` keyword as the loader reads it.  The side-by-side test is
tests/netns/test_vrrp_reload_notify.py."""

from __future__ import annotations

from dataclasses import replace

from hafast.config.loader import load_text
from hafast.config.model import Script
from hafast.lib.notify import notify_scripts
from hafast.vrrp.build import spec_for
from hafast.vrrp.fsm import State
from hafast.vrrp.instance import ManualTimers
from tests.unit.vrrp.test_start_pending import Said, _inst

CONF = """vrrp_instance A {
  interface eth0
  virtual_router_id 1
  priority 100
  notify_deleted
}
vrrp_instance B {
  interface eth0
  virtual_router_id 2
  priority 100
  notify_deleted "/bin/echo gone" root
}
vrrp_instance C {
  interface eth0
  virtual_router_id 3
  priority 100
}
"""


def test_notify_deleted_alone_or_with_a_script() -> None:
    cfg = load_text(CONF).config
    a, b, c = cfg.vrrp_instances
    assert a.notify_deleted == Script(()) and c.notify_deleted is None
    assert b.notify_deleted == Script(("/bin/echo", "gone"), "root")
    scripts = notify_scripts(b)
    assert scripts.for_state("DELETED") == ("/bin/echo", "gone")
    assert scripts.run_as("deleted") == ("root", None)
    assert notify_scripts(a).deleted is None
    flags = [spec_for(i, cfg.global_defs).notify_deleted for i in (a, b, c)]
    assert flags == [True, True, False]


def test_removed_by_a_reload_says_fault_or_deleted() -> None:
    """keepalived clear_diff_vrrp: FAULT by default, DELETED with notify_deleted,
    nothing for one in FAULT already unless notify_deleted."""
    for deleted, fault, expect in ((False, False, "FAULT"), (True, False, "DELETED"),
                                   (False, True, None), (True, True, "DELETED")):
        said = Said()
        inst = _inst("VI_2", ManualTimers(), said)
        inst.spec = replace(inst.spec, notify_deleted=deleted)
        if fault:
            inst.raise_fault("interface:eth0")
        inst.start()
        said.lines.clear()
        inst.delete()
        assert inst.state is State.INITIALIZE
        assert said.lines == ([("INSTANCE", "VI_2", expect)] if expect else [])
