"""Fleet mode: every director active, each VIP announced by BGP through FRR while its
virtual server has quorum (issue 18, docs/fleet.md).

- :mod:`hafast.fleet.announce`: the pure per-VIP announcement state machine;
- :mod:`hafast.fleet.frrconf`: the director's ``frr.conf`` rendered from the config,
  and FRR's own dry-run check of it;
- :mod:`hafast.fleet.kernel`: the only netlink owner here: the VIP's ``local`` route
  and the announce route FRR's import-check follows;
- :mod:`hafast.fleet.runner`: the shell that feeds quorum changes into the machine and
  applies its actions.
"""
