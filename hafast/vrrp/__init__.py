"""VRRP: pure FSM and timers, transport, announcements, tracking."""
