"""Prometheus ``/metrics`` for the running daemon (off unless asked for).

Turned on by ``--metrics ADDR:PORT`` or the hafast global_defs extension
``metrics_listen ADDR:PORT``.  Each scrape asks the parent for its status (which
asks every worker over its pipe), so the numbers are current; nothing is cached.

VRRP series use keepalived_exporter's names (mehdy/keepalived-exporter, anchors §3)
so existing dashboards and alerts keep working; everything else is ``hafast_``:

=====================================================  =================================
``keepalived_up``                                      1 while the parent answers
``keepalived_vrrp_state{iname,intf,vrid,ip_address}``  0 INIT 1 BACKUP 2 MASTER 3 FAULT
``keepalived_advertisements_received_total`` ...       keepalived's per-instance counters
``hafast_vrrp_priority{iname,...}``                    effective priority (base as well)
``hafast_vrrp_dropped_packets_total{intf,family,       received VRRP packets dropped, per
reason}``                                              socket and reason (every reason,
                                                       zeros too)
``hafast_vrrp_kernel_dropped_packets_total{intf,       dropped by the kernel before we
family}``                                              read them (a full receive buffer)
``hafast_vrrp_received_packets_total`` /               per socket
``hafast_vrrp_send_failures_total{intf,family}``
``hafast_vrrp_receive_buffer_bytes{intf,family}``      SO_RCVBUF as the kernel granted it
``hafast_real_server_up{virtual_server,real_server}``   health as the pool policy sees it
``hafast_real_server_weight{...}``                     weight in the pool (0: not in it)
``hafast_virtual_server_quorum_up{virtual_server}``    quorum state
``hafast_check_latency_seconds{shard}``                histogram of attempt durations
``hafast_check_attempts_total`` / ``_failures_total``  per shard (failures per reason)
``hafast_check_engine_lag_seconds{shard}``             worst lateness since the previous
                                                       scrape of a check's start or of
                                                       the loop's timers
``hafast_worker_restarts_total{worker}``               restarts (and heartbeat kills)
``hafast_pool_changes_total{op}``                      backend operations by kind
``hafast_announce_state{prefix,state}``                fleet mode: 1 for the VIP's state
                                                       (STARTUP, ANNOUNCED, WITHDRAWN,
                                                       DRAINING), 0 for the others
``hafast_announce_quorum_up{prefix}``                  the quorum the announcer acts on
``hafast_announce_transitions_total{prefix,state}``    times the VIP entered each state
``hafast_announce_held_seconds{prefix}``              an announcement the flap control
                                                       still holds back (0: none)
``hafast_announce_own_check_up{prefix,object}``       the director's own checks (announce
                                                       track_script/file/interface)
``hafast_announce_latency_seconds{prefix,direction}``  summary (``_count``, ``_sum``): a
                                                       route change -> bgpd's Adj-RIB-Out
                                                       (direction announce or withdraw)
``hafast_announce_latency_last_seconds{...}``          the latest of those
``hafast_announce_latency_unseen_total{prefix}``       changes bgpd had not put out in
                                                       10 s
``hafast_bgp_session_established{neighbor}``           1 while FRR's session with the
                                                       neighbor is Established
``hafast_bfd_session_up{neighbor}``                    1 while its BFD session is up (a
                                                       neighbor with ``bfd`` only)
``hafast_bgp_session_drops_total{neighbor}``           times the session left Established
``hafast_bgp_sessions_read_age_seconds``               age of the last good read from FRR
                                                       (absent while reads fail)
=====================================================  =================================

Example::

    server = MetricsServer("127.0.0.1:9650", supervisor_snapshot)
    server.start()   # ... server.stop()
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector, CollectorRegistry

from hafast.status.view import vrrp_sockets

# hafast.fleet.announce's states, written out: status sits below the fleet package
ANNOUNCE_STATES = ("STARTUP", "ANNOUNCED", "WITHDRAWN", "DRAINING")

log = logging.getLogger("hafast.metrics")

# keepalived's counter -> keepalived_exporter's metric name (without _total).
VRRP_COUNTERS: dict[str, str] = {
    "advert_rcvd": "keepalived_advertisements_received",
    "advert_sent": "keepalived_advertisements_sent",
    "become_master": "keepalived_become_master",
    "release_master": "keepalived_release_master",
    "packet_len_err": "keepalived_packet_length_errors",
    "advert_interval_err": "keepalived_advertisements_interval_errors",
    "ip_ttl_err": "keepalived_ip_ttl_errors",
    "invalid_type_rcvd": "keepalived_invalid_type_received",
    "addr_list_err": "keepalived_address_list_errors",
    "invalid_authtype": "keepalived_authentication_invalid",
    "authtype_mismatch": "keepalived_authentication_mismatch",
    "auth_failure": "keepalived_authentication_failure",
    "pri_zero_rcvd": "keepalived_priority_zero_received",
    "pri_zero_sent": "keepalived_priority_zero_sent",
}
VRRP_LABELS = ["iname", "intf", "vrid"]
SOCKET_LABELS = ["intf", "family"]


def parse_listen(text: str) -> tuple[str, int]:
    """``ADDR:PORT``, ``[v6]:PORT`` or ``:PORT`` (all addresses); port 0 picks a free one.

    >>> parse_listen("127.0.0.1:9650"), parse_listen("[::1]:9650"), parse_listen(":9650")
    (('127.0.0.1', 9650), ('::1', 9650), ('0.0.0.0', 9650))
    """
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"metrics address {text!r}: expected ADDR:PORT")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


class StatusCollector(Collector):
    """Turns one status dict into metric families at each scrape."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("keepalived_up", "1 when the daemon answered this scrape")
        try:
            st = self.snapshot()
        except Exception as exc:
            log.warning("metrics: status unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from vrrp_families(st)
        yield from vrrp_socket_families(st)
        yield from check_families(st)
        yield from daemon_families(st)
        yield from fleet_families(st)
        yield from session_families(st)


def vrrp_families(st: dict[str, Any]) -> Iterator[Metric]:
    state = GaugeMetricFamily("keepalived_vrrp_state",
                              "VRRP state: 0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT",
                              labels=[*VRRP_LABELS, "ip_address"])
    prio = GaugeMetricFamily("hafast_vrrp_priority", "effective VRRP priority",
                             labels=VRRP_LABELS)
    base = GaugeMetricFamily("hafast_vrrp_base_priority", "configured VRRP priority",
                             labels=VRRP_LABELS)
    counters = {k: CounterMetricFamily(name, f"keepalived {k}", labels=VRRP_LABELS)
                for k, name in VRRP_COUNTERS.items()}
    for inst in st.get("vrrp", ()):
        d = inst["data"]
        labels = [d["iname"], d["ifp_ifname"], str(d["vrid"])]
        for vip in d.get("vips") or [""]:
            state.add_metric([*labels, vip], d["state"])
        prio.add_metric(labels, d["effective_priority"])
        base.add_metric(labels, d["base_priority"])
        for k, fam in counters.items():
            fam.add_metric(labels, inst["stats"].get(k, 0))
    yield state
    yield prio
    yield base
    yield from counters.values()


def vrrp_socket_families(st: dict[str, Any]) -> Iterator[Metric]:
    """Per VRRP socket: drops by reason (keepalived_exporter has no such series; the
    per-instance errors it names are in :func:`vrrp_families`) and the kernel's."""
    dropped = CounterMetricFamily("hafast_vrrp_dropped_packets",
                                  "received VRRP packets dropped, by reason",
                                  labels=[*SOCKET_LABELS, "reason"])
    kernel = CounterMetricFamily("hafast_vrrp_kernel_dropped_packets",
                                 "VRRP packets the kernel dropped before they were read "
                                 "(receive buffer full)", labels=SOCKET_LABELS)
    received = CounterMetricFamily("hafast_vrrp_received_packets",
                                   "VRRP packets read from the socket", labels=SOCKET_LABELS)
    tx_failed = CounterMetricFamily("hafast_vrrp_send_failures",
                                    "adverts the socket could not send", labels=SOCKET_LABELS)
    rcvbuf = GaugeMetricFamily("hafast_vrrp_receive_buffer_bytes",
                               "SO_RCVBUF as the kernel granted it", labels=SOCKET_LABELS)
    for sock in vrrp_sockets(st):
        labels = [sock["ifname"], str(sock["family"])]
        for reason, n in sock["drops"].items():
            dropped.add_metric([*labels, reason], n)
        kernel.add_metric(labels, sock["kernel_drops"])
        received.add_metric(labels, sock["rx_packets"])
        tx_failed.add_metric(labels, sock["tx_dropped"])
        rcvbuf.add_metric(labels, sock["rcvbuf"])
    yield from (dropped, kernel, received, tx_failed, rcvbuf)


def check_families(st: dict[str, Any]) -> Iterator[Metric]:
    rs_up = GaugeMetricFamily("hafast_real_server_up", "1 while the real server is healthy",
                              labels=["virtual_server", "real_server"])
    rs_w = GaugeMetricFamily("hafast_real_server_weight",
                             "the real server's weight in the pool (0: not in the pool)",
                             labels=["virtual_server", "real_server"])
    quorum = GaugeMetricFamily("hafast_virtual_server_quorum_up", "1 while quorum holds",
                               labels=["virtual_server"])
    pools = st.get("pools") or {}
    for vs in pools.get("virtual_servers", ()):
        quorum.add_metric([vs["name"]], int(vs["quorum_up"]))
        for rs in vs["real_servers"]:
            labels = [vs["name"], f"{rs['address']}:{rs['port']}"]
            rs_up.add_metric(labels, int(rs["alive"]))
            rs_w.add_metric(labels, rs["pool_weight"] or 0)
    changes = CounterMetricFamily("hafast_pool_changes", "pool backend operations",
                                  labels=["op"])
    for op, n in sorted((pools.get("changes") or {}).items()):
        changes.add_metric([op], n)
    attempts = CounterMetricFamily("hafast_check_attempts", "check attempts",
                                   labels=["shard"])
    failures = CounterMetricFamily("hafast_check_failures", "failed check attempts",
                                   labels=["shard", "reason"])
    lag = GaugeMetricFamily("hafast_check_engine_lag_seconds",
                            "worst timer lateness of the check loop since the last scrape",
                            labels=["shard"])
    latency = HistogramMetricFamily("hafast_check_latency_seconds",
                                    "duration of check attempts", labels=["shard"])
    for chk in st.get("checkers", ()):
        shard = str(chk["shard"])
        c = chk.get("counters", {})
        attempts.add_metric([shard], c.get("attempts", 0))
        for name, n in c.items():
            if name.startswith("fail:"):
                failures.add_metric([shard, name[5:]], n)
        lag.add_metric([shard], chk["lag"]["max"])
        lat = chk["latency"]
        buckets = [(repr(float(le)), n) for le, n in lat["buckets"]]
        buckets.append(("+Inf", lat["count"]))
        latency.add_metric([shard], buckets, lat["sum"])
    yield from (rs_up, rs_w, quorum, changes, attempts, failures, lag, latency)


def daemon_families(st: dict[str, Any]) -> Iterator[Metric]:
    restarts = CounterMetricFamily("hafast_worker_restarts", "worker restarts",
                                   labels=["worker"])
    kills = CounterMetricFamily("hafast_worker_heartbeat_kills",
                                "workers killed for not answering the heartbeat",
                                labels=["worker"])
    deadline = CounterMetricFamily("hafast_worker_deadline_kills",
                                   "VRRP workers killed for not advertising by their "
                                   "predecessor's release deadline", labels=["worker"])
    for w in st.get("workers", ()):
        restarts.add_metric([w["name"]], w["restarts"])
        kills.add_metric([w["name"]], w["heartbeat_kills"])
        deadline.add_metric([w["name"]], w.get("deadline_kills", 0))
    reloads = CounterMetricFamily("hafast_reloads", "configuration reloads applied")
    reloads.add_metric([], st.get("reloads", 0))
    rejected = CounterMetricFamily("hafast_reload_errors", "reloads rejected (bad config)")
    rejected.add_metric([], st.get("reload_errors", 0))
    yield from (restarts, kills, deadline, reloads, rejected)


def fleet_families(st: dict[str, Any]) -> Iterator[Metric]:
    """Fleet mode (docs/fleet.md): each announced VIP; nothing without announce blocks."""
    fleet = st.get("fleet")
    if not fleet:
        return
    state = GaugeMetricFamily("hafast_announce_state",
                              "1 for the VIP's announcement state, 0 for the others",
                              labels=["prefix", "state"])
    quorum = GaugeMetricFamily("hafast_announce_quorum_up",
                               "1 while the virtual server behind the VIP has quorum",
                               labels=["prefix"])
    moved = CounterMetricFamily("hafast_announce_transitions",
                                "times the VIP entered each announcement state",
                                labels=["prefix", "state"])
    held = GaugeMetricFamily("hafast_announce_held_seconds",
                             "seconds an announcement the quorum wants is still held back "
                             "by the flap control (0: none is)", labels=["prefix"])
    own = GaugeMetricFamily("hafast_announce_own_check_up", "1 while the director's own "
                            "check (announce track_*) is up", labels=["prefix", "object"])
    for vip in fleet:
        for obj, up in (vip.get("own") or {}).items():
            own.add_metric([vip["prefix"], obj], int(up))
        for phase in ANNOUNCE_STATES:
            state.add_metric([vip["prefix"], phase], int(vip["state"] == phase))
            moved.add_metric([vip["prefix"], phase], vip.get("transitions", {}).get(phase, 0))
        quorum.add_metric([vip["prefix"]], int(bool(vip["quorum"])))
        held.add_metric([vip["prefix"]], vip.get("held_s") or 0.0)
    yield from (state, quorum, moved, held, own)
    yield from _latency_families(fleet)


def _latency_families(fleet: list[dict[str, Any]]) -> Iterator[Metric]:
    """The VIPs' announce/withdraw latency (hafast.fleet.latency): nothing without a
    bgp_speaker."""
    if all(vip.get("latency") is None for vip in fleet):
        return
    took = SummaryMetricFamily("hafast_announce_latency_seconds", "seconds from a route "
                               "change to bgpd's Adj-RIB-Out agreeing",
                               labels=["prefix", "direction"])
    last = GaugeMetricFamily("hafast_announce_latency_last_seconds", "the latest of "
                             "hafast_announce_latency_seconds", labels=["prefix", "direction"])
    unseen = CounterMetricFamily("hafast_announce_latency_unseen", "route changes bgpd had "
                                 "not put out in 10 s", labels=["prefix"])
    for vip in fleet:
        latency, prefix = vip.get("latency") or {}, vip["prefix"]
        for direction in ("announce", "withdraw"):
            tally = latency.get(direction)
            if tally is not None:
                took.add_metric([prefix, direction], tally["count"], tally["sum_s"])
                last.add_metric([prefix, direction], tally["last_s"])
        unseen.add_metric([prefix], latency.get("unseen", 0))
    yield from (took, last, unseen)


def session_families(st: dict[str, Any]) -> Iterator[Metric]:
    """Fleet mode: the BGP and BFD sessions as FRR reports them; a neighbor FRR does
    not list (or a failed read) counts as down, so an alert on 0 catches both."""
    rows = st.get("fleet_sessions")
    if not rows:
        return
    bgp = GaugeMetricFamily("hafast_bgp_session_established",
                            "1 while the BGP session with the neighbor is Established",
                            labels=["neighbor"])
    bfd = GaugeMetricFamily("hafast_bfd_session_up", "1 while the neighbor's BFD session "
                            "is up (neighbors with bfd only)", labels=["neighbor"])
    drops = CounterMetricFamily("hafast_bgp_session_drops",
                                "times the BGP session left Established (FRR's count)",
                                labels=["neighbor"])
    age = GaugeMetricFamily("hafast_bgp_sessions_read_age_seconds",
                            "seconds since the sessions were last read from FRR")
    for r in rows:
        bgp.add_metric([r["neighbor"]], int(r["bgp"] == "Established"))
        if r["bfd_on"]:
            bfd.add_metric([r["neighbor"]], int(r["bfd"] == "up"))
        if r["drops"] is not None:
            drops.add_metric([r["neighbor"]], r["drops"])
    ages = [r["read_age_s"] for r in rows if r["read_age_s"] is not None]
    if ages:
        age.add_metric([], ages[0])
    yield from (bgp, bfd, drops, age)


class MetricsServer:
    """prometheus_client's HTTP server on its own thread, over :class:`StatusCollector`."""

    def __init__(self, listen: str, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.host, self.port = parse_listen(listen)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StatusCollector(snapshot))
        self._server: Any = None

    def start(self) -> None:
        from prometheus_client import start_http_server

        self._server, _thread = start_http_server(self.port, self.host, self.registry)

    @property
    def bound_port(self) -> int:
        """The port really listened on (``port`` may have been 0)."""
        return int(self._server.server_address[1]) if self._server is not None else 0

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
