"""Comparing hafast's dump files with keepalived 2.2.7's: what is normalised (and
nothing else), and the data file cut into its sections.  Used by
tests/netns/test_dump_compat.py (both daemons live) and
tests/unit/core/test_dump_golden.py (keepalived's files kept in tests/data).

Example::

    >>> normalise("   fd_in 13, fd_out 14\\n")
    '   fd_in <fd>, fd_out <fd>\\n'
    >>> sorted(sections("------< A >------\\n x\\n------< B >------\\n"))
    ['A', 'B']
"""

from __future__ import annotations

import re

# One config for both daemons: VI_M (multicast, alone: MASTER), VI_B (unicast to a
# peer at priority 250: BACKUP), sync group G1 of VI_F (a vrrp_script that always
# fails: FAULT) and VI_F2 (FAULT through its group).  The script's timeout is set:
# keepalived 2.2.7 writes an unset one as "Timeout = 0 sec", hafast's config keeps
# only the resolved value (the interval).
CONF = """global_defs {
  router_id r1
}
vrrp_script chk_fail {
  script "/usr/bin/false"
  interval 1
  timeout 2
  fall 1
  rise 1
}
vrrp_sync_group G1 {
  group {
    VI_F
    VI_F2
  }
}
vrrp_instance VI_M {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority 200
  advert_int 1
  virtual_ipaddress {
    10.77.0.100/24
  }
}
vrrp_instance VI_B {
  state BACKUP
  interface eth0
  virtual_router_id 52
  priority 100
  advert_int 1
  unicast_src_ip 10.77.0.1
  unicast_peer {
    10.77.0.2
  }
  virtual_ipaddress {
    10.77.0.101/24
  }
}
vrrp_instance VI_F {
  state BACKUP
  interface eth1
  virtual_router_id 53
  priority 100
  advert_int 1
  track_script {
    chk_fail
  }
  virtual_ipaddress {
    10.78.0.100/24
  }
}
vrrp_instance VI_F2 {
  state BACKUP
  interface eth1
  virtual_router_id 54
  priority 100
  advert_int 1
  virtual_ipaddress {
    10.78.0.101/24
  }
}
"""

# ... and the states it settles in.
EXPECTED = {"VI_M": "MASTER", "VI_B": "BACKUP", "VI_F": "FAULT", "VI_F2": "FAULT"}

# More of what an instance can say: native IPv6 (VRRPv3), PASS authentication,
# nopreempt with a preempt_delay (which keepalived then clears), smtp_alert, a
# tracked interface, a notify script, a label, a host address, an excluded
# address, VRRPv3 at 0.5 s; all MASTER.
OPTIONS_CONF = """global_defs {
  router_id r1
}
vrrp_instance VI_6 {
  state BACKUP
  interface eth0
  virtual_router_id 61
  priority 150
  advert_int 1
  version 3
  virtual_ipaddress {
    fd77::100/64
  }
}
vrrp_instance VI_A {
  state BACKUP
  interface eth1
  virtual_router_id 62
  priority 120
  advert_int 2
  nopreempt
  preempt_delay 5
  smtp_alert
  authentication {
    auth_type PASS
    auth_pass secret12
  }
  track_interface {
    eth0 weight -10
  }
  notify_master "/usr/bin/true"
  virtual_ipaddress {
    10.78.0.100/24 label eth1:1
    10.78.0.102
  }
  virtual_ipaddress_excluded {
    10.78.0.200/24
  }
}
vrrp_instance VI_3 {
  state BACKUP
  interface eth1
  virtual_router_id 63
  priority 110
  version 3
  advert_int 0.5
  accept
  virtual_ipaddress {
    10.78.0.103/24
  }
}
"""
OPTIONS_EXPECTED = {"VI_6": "MASTER", "VI_A": "MASTER", "VI_3": "MASTER"}

# A VRRPv3 BACKUP of the peer's VI_V3 (its "Master advert int" lines) and a
# weighted script that succeeds (GOOD, result rise+fall-1, priority + weight).
BACKUP3_CONF = """vrrp_script chk_ok {
  script "/usr/bin/true"
  interval 1
  timeout 2
  weight 10
  rise 2
  fall 3
}
vrrp_instance VI_V3 {
  state BACKUP
  interface eth0
  virtual_router_id 70
  priority 100
  version 3
  advert_int 1
  virtual_ipaddress {
    10.77.0.170/24
  }
}
vrrp_instance VI_W {
  state BACKUP
  interface eth1
  virtual_router_id 71
  priority 100
  advert_int 1
  track_script {
    chk_ok
  }
  virtual_ipaddress {
    10.78.0.171/24
  }
}
"""
BACKUP3_EXPECTED = {"VI_V3": "BACKUP", "VI_W": "MASTER"}

# FAULT by a link that is down (the test takes eth1's peer end down: no carrier),
# beside a MASTER on eth0.
LINKDOWN_CONF = """vrrp_instance VI_D {
  state BACKUP
  interface eth1
  virtual_router_id 72
  priority 100
  virtual_ipaddress {
    10.78.0.172/24
  }
}
vrrp_instance VI_U {
  state BACKUP
  interface eth0
  virtual_router_id 73
  priority 100
  virtual_ipaddress {
    10.77.0.173/24
  }
}
"""
LINKDOWN_EXPECTED = {"VI_D": "FAULT", "VI_U": "MASTER"}

# The per-instance switches keepalived writes a line or a flag for.
SWITCHES_CONF = """vrrp_instance VI_S {
  state BACKUP
  interface eth1
  virtual_router_id 74
  priority 100
  dont_track_primary
  skip_check_adv_addr
  promote_secondaries
  notify_priority_changes
  lower_prio_no_advert
  higher_prio_send_advert
  down_timer_adverts 5
  garp_master_refresh 30
  garp_master_refresh_repeat 3
  virtual_ipaddress {
    10.78.0.174/24
  }
}
"""
SWITCHES_EXPECTED = {"VI_S": "MASTER"}

# A finding: garp_master_delay and garp_master_repeat alone.  keepalived 2.2.7
# leaves the lower-priority GARP delay and repeat at the global ones
# (vrrp_garp_lower_prio_delay/_repeat, else vrrp_garp_master_delay/_repeat: 5 s, 5);
# hafast's config makes them the instance's 3 s and 2.
GARP_CONF = """vrrp_instance VI_G {
  state BACKUP
  interface eth1
  virtual_router_id 64
  priority 100
  garp_master_delay 3
  garp_master_repeat 2
  virtual_ipaddress {
    10.78.0.104/24
  }
}
"""
GARP_EXPECTED = {"VI_G": "MASTER"}

# name -> (config, the states to wait for)
SCENARIOS = {"mixed": (CONF, EXPECTED), "options": (OPTIONS_CONF, OPTIONS_EXPECTED),
             "backup3": (BACKUP3_CONF, BACKUP3_EXPECTED),
             "linkdown": (LINKDOWN_CONF, LINKDOWN_EXPECTED),
             "switches": (SWITCHES_CONF, SWITCHES_EXPECTED), "garp": (GARP_CONF, GARP_EXPECTED)}


# What must differ between two runs, and nothing else: wall-clock times, file
# descriptor numbers (keepalived opens two sockets per pool entry, hafast one per
# interface) and the advert counters (how many went by before the signal).
NORMALISE: list[tuple[str, str]] = [
    (r"(?m)^(   (?:Last transition|Read timeout) = )\d+\.\d{6} \(.*\)$", r"\1<time>"),
    (r"(?m)^(   fd_in )\d+, fd_out \d+$", r"\1<fd>, fd_out <fd>"),
    (r"(?m)^( fd_in )\d+ fd_out = \d+$", r"\1<fd> fd_out = <fd>"),
    (r"(?m)^(  Advertisements:\n    Received: )\d+(\n    Sent: )\d+$", r"\1<n>\2<n>"),
    (r'("last_transition":)[0-9.]+', r"\1<time>"),
    (r'("advert_(?:rcvd|sent)":)\d+', r"\1<n>"),
]
# The data file's sections hafast writes as keepalived does.
VRRP_SECTIONS = ("VRRP Topology", "VRRP Sockpool", "VRRP Sync groups", "VRRP Scripts")


def normalise(text: str) -> str:
    for pattern, repl in NORMALISE:
        text = re.sub(pattern, repl, text)
    return text


def sections(text: str) -> dict[str, str]:
    """The data file cut at its ``------< NAME >------`` headers."""
    out: dict[str, str] = {}
    name = ""
    for line in text.splitlines(keepends=True):
        m = re.fullmatch(r"------< (.*) >------\n", line)
        if m:
            name = m.group(1)
            out[name] = line
        elif name:
            out[name] += line
    return out
