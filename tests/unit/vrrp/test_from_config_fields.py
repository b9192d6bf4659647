"""Config fields the VRRP side reads straight from the model (no getattr fallbacks)."""

from __future__ import annotations

from hafast.config.loader import load_text
from hafast.vrrp.build import spec_for
from hafast.vrrp.from_config import channel_for

CONF = """global_defs {
  vrrp_notify_priority_changes
  v3_checksum_as_v2
}
vrrp_instance A {
  interface lo
  version 3
  virtual_router_id 51
  notify_master_rx_lower_pri "/bin/true lower"
  virtual_ipaddress {
    10.9.9.9
  }
}
vrrp_instance B {
  interface lo
  version 3
  virtual_router_id 52
  v3_checksum_as_v2 false
  virtual_ipaddress {
    10.9.9.10
  }
}
"""


def test_global_defaults_and_instance_overrides_reach_the_runtime() -> None:
    result = load_text(CONF)
    assert result.ok, [d.format() for d in result.diagnostics]
    cfg = result.config
    gd = cfg.global_defs
    a, b = cfg.vrrp_instances
    assert spec_for(a, gd).notify_priority_changes
    assert a.notify_master_rx_lower_pri is not None
    assert a.notify_master_rx_lower_pri.argv == ("/bin/true", "lower")
    assert channel_for(a, gd).v3_checksum != channel_for(b, gd).v3_checksum
