"""What ``hafast -t`` says about this machine for a config that is valid in itself:
things the daemon would run differently here, or not at all (code ``"host"`` in the
diagnostics, :func:`hafast.config.cli_config.run_config`).

- the pool backend the daemon would take here (``--pool-backend``, else
  ``lvs_backend``, else auto: IPVS, else nftables), and for nftables each thing the
  config asks that nftables does not do as IPVS would (the lines the daemon logs at
  start, :func:`hafast.lvs.nft.limits`, one per limit naming its virtual servers);
  with no backend at all, the line the daemon would stop with;
- a Maglev fleet on a kernel with ``sloppy_tcp=0`` (:func:`hafast.fleet.runner.maglev_warnings`);
- an announced VIP that is already an interface address here
  (:func:`hafast.fleet.runner.address_warnings`);
- ``frr_control reload`` or ``run`` on a machine without FRR's daemons or its
  frr-reload.py (:func:`hafast.fleet.frrlife.missing_tools`).

The modules behind each are imported only when the config has what they judge:
``hafast -t`` at 37,000 real servers is timed against ``keepalived -t``.

Example::

    >>> from hafast.config.loader import load_text
    >>> cfg = load_text('''global_defs {
    ...   lvs_backend nft
    ... }
    ... virtual_server 192.0.2.1 80 {
    ...   persistence_timeout 60
    ...   lvs_sched rr
    ...   protocol TCP
    ...   real_server 10.1.0.1 80 { }
    ... }''').config
    >>> for line in host_checks(cfg):
    ...     print(line[:94])
    pool backend nft (lvs_backend nft): virtual_server 192.0.2.1 80: persistence_timeout 60 counts
"""

from __future__ import annotations

from hafast.config import model as m
from hafast.config import pool_backends as pb


def chosen_backend(kind: str) -> tuple[str | None, str]:
    """The backend ``kind`` ("auto" or a name) gives on this machine, and why; None
    when auto finds none that reaches the kernel."""
    if kind != pb.AUTO:
        return kind, ""
    row = next(pb.candidates(pb.AUTO), None)
    return (row.name if row is not None else None), "auto"


def pool_notes(config: m.Config, option: str = pb.AUTO) -> list[str]:
    """What the pool backend chosen here will not do for ``config`` (``option``:
    ``--pool-backend``, which overrides ``lvs_backend`` unless it is auto)."""
    if not config.virtual_servers:
        return []
    kind = option if option != pb.AUTO else (config.global_defs.lvs_backend or pb.AUTO)
    name, why = chosen_backend(kind)
    if name is None:
        from hafast.lvs.manager import no_kernel_backend

        return [f"the daemon would not start here: {no_kernel_backend()}"]
    said = why or (f"lvs_backend {kind}" if option == pb.AUTO else f"--pool-backend {kind}")
    if name == "memory":
        return [f"pool backend memory ({said}): no packet follows the virtual servers; "
                "the checks run and report only"]
    if name == "nft":
        from hafast.lvs.nft import limits

        return [f"pool backend nft ({said}): {line}" for line in grouped(limits(config))]
    return []


def grouped(lines: list[str], most: int = 3) -> list[str]:
    """One line per limit, naming at most ``most`` virtual servers and how many more
    (the daemon's log says each virtual server's own; a farm's -t would print
    thousands of the same line).

    >>> for line in grouped([f"virtual_server 10.0.0.{i} 80: ops is IPVS-only"
    ...                      for i in range(5)] + ["lvs_timeouts is IPVS-only"]):
    ...     print(line)
    virtual_server 10.0.0.0 80, 10.0.0.1 80, 10.0.0.2 80 and 2 more: ops is IPVS-only
    lvs_timeouts is IPVS-only
    """
    names: dict[str, list[str]] = {}
    for line in lines:
        head, sep, what = line.partition(": ")
        if not (sep and head.startswith("virtual_server ")):
            names.setdefault(line, [])
            continue
        names.setdefault(what, []).append(head.removeprefix("virtual_server "))
    out = []
    for what, vss in names.items():
        if not vss:
            out.append(what)
            continue
        more = f" and {len(vss) - most:,} more" if len(vss) > most else ""
        out.append(f"virtual_server {', '.join(vss[:most])}{more}: {what}")
    return out


def host_checks(config: m.Config, option: str = pb.AUTO) -> list[str]:
    """Every host note for ``config``, pool backend first."""
    out = pool_notes(config, option)
    if any(vs.announce for vs in config.virtual_servers):
        from hafast.fleet.runner import address_warnings, maglev_warnings

        out += maglev_warnings(config) + address_warnings(config)
    if config.bgp_speaker is not None and config.bgp_speaker.frr_control != "none":
        from hafast.fleet.frrlife import missing_tools

        out += missing_tools(config.bgp_speaker)
    return out
