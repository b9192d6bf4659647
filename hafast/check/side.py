"""A check worker's side: the engine rebuilt on reload and seeded from the
parent, its loop-lag meter.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from hafast._core.checkq import Latency
from hafast.check.rounds import RoundWatch
from hafast.check.view import Source
from hafast.lib import gcfreeze

log = logging.getLogger("hafast")


class LagMeter:
    """How late the loop runs a timer, or ``late()`` says the checks start (the timer
    queue's own lateness, ``TimerQueue.take_late``: a queue that falls behind yields
    to the loop every few milliseconds, so the loop's timers alone stay on time): the
    check engine's lag, reported as a metric."""

    def __init__(self, loop: asyncio.AbstractEventLoop, period: float = 0.25,
                 late: Callable[[], float] | None = None) -> None:
        self.loop, self.period = loop, period
        self.late = late
        self.last = 0.0
        self.max = 0.0
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._due = self.loop.time() + self.period
        self._handle = self.loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        now = self.loop.time()
        self.last = max(0.0, now - self._due, self.late() if self.late is not None else 0.0)
        self.max = max(self.max, self.last)
        self._due = now + self.period
        self._handle = self.loop.call_at(self._due, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def take(self) -> dict[str, float]:
        out = {"last": round(self.last, 6), "max": round(self.max, 6)}
        self.max = self.last
        return out


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def seed_engine(engine: Any, seed: dict[tuple[Any, Any], tuple[bool, int]],
                keep: frozenset[int] = frozenset()) -> int:
    """Start each check from the parent's last known health instead of alpha.

    A check feeding several healths (the engine dedupes) is up only when all of them
    were.  Checks whose ``id`` is in ``keep`` (adopted by a reload, their state the
    freshest there is) keep their state, and still count in the healths they feed.
    Returns how many healths were seeded.
    """
    # How many checks that are down feed each health: counted for the down ones only
    # (a list of checks per health was a transient ~0.1 KiB per real server that the
    # worker's heap kept, issue 16).
    down: dict[int, int] = {}
    for check in engine.runner.checks:
        known = [seed[k] for h in check.healths
                 if (k := (h.virtual_server, h.real_server)) in seed]
        if known and id(check) not in keep:
            check.state.up = all(up for up, _w in known)
        if not check.state.up:
            for h in check.healths:
                down[id(h)] = down.get(id(h), 0) + 1
    n = 0
    for key, h in engine.healths.items():
        if key not in seed:
            continue
        h.failing = down.get(id(h), 0)
        h.up = not h.failing
        n += 1
    return n


class CheckSide:
    """A check worker's engine, rebuilt on reload, seeded from the parent."""

    def __init__(self, loop: asyncio.AbstractEventLoop, shard: int, shards: int,
                 publish: Callable[[list[Any]], None],
                 publish_rounds: Callable[[list[Any]], None] | None = None) -> None:
        self.loop, self.shard, self.shards = loop, shard, shards
        self.publish = publish
        # fleet mode: the announced virtual servers whose first round is done here
        self.rounds = RoundWatch(loop, publish_rounds) if publish_rounds else None
        self.engine: Any = None
        self.pending: list[Any] = []
        self.latency = Latency(LATENCY_BUCKETS)
        self.lag = LagMeter(loop, late=self._checks_late)
        self.events = 0
        self.counters: Counter[str] = Counter()
        self.alerts: Any = None  # keepalived's checker mails (check/alerts.py), on build

    def _checks_late(self) -> float:
        return float(self.engine.runner.timers.take_late()) if self.engine is not None else 0.0

    def _on_event(self, ev: Any) -> None:
        self.events += 1
        if not self.pending:
            self.loop.call_soon(self._flush)
        self.pending.append(ev)

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        if batch:
            self.publish(batch)

    def build(self, config: Source, seed: dict[Any, Any]) -> None:
        from hafast.check.alerts import AlertingRunner, CheckAlerts
        from hafast.check.engine import Engine

        if self.alerts is None:
            self.alerts = CheckAlerts(self.loop, config)
        else:
            self.alerts.configure(config)
        # Every attempt is timed into the worker's latency histogram.
        runner = AlertingRunner(self.loop, None, latency=self.latency,
                                log_all_failures=config.global_defs.checker_log_all_failures)
        runner.alerts = self.alerts
        engine = Engine(config, self.loop, self._on_event, shard_index=self.shard,
                        shard_count=self.shards, runner=runner)
        seeded = seed_engine(engine, seed)
        old, self.engine = self.engine, engine
        if old is not None:
            self.counters.update(old.runner.counters)
            old.stop()
        engine.start()
        if self.rounds is not None:
            self.rounds.begin(engine.runner.checks, [vs.key for vs in config.virtual_servers
                                                     if vs.announce is not None])
        # the old engine's cycles freed, the new one out of the collector's walks
        took = gcfreeze.settle()
        log.info("shard %d/%d: %d checks for %d real servers (%d seeded; gc %.0f ms)",
                 self.shard, self.shards, engine.checks, len(engine.healths), seeded,
                 took * 1000)

    def start(self, config: Source, seed: dict[Any, Any]) -> None:
        """Build and run; ``seed`` is read once and emptied: it is the parent's init
        message's, which the worker keeps for its life, and it held a key and a pair
        per real server of the shard (~0.2 KiB each, issue 16)."""
        self.build(config, seed)
        seed.clear()
        self.lag.start()

    def reload(self, config: Source, seed: dict[Any, Any]) -> dict[str, int]:
        """A reload as a diff (keepalived's migrate_checkers): a check whose target,
        spec and extras did not change keeps its state, retry count and timer
        (:meth:`hafast.check.engine.Engine.reload`); only the new ones start, from the
        parent's last known health of their real servers.  Rebuilding the engine
        instead restarted every check of a 37,000-server farm for one changed weight
        and held two engines at once (docs/benchmarks.md, issue 16)."""
        engine = self.engine
        known = set(engine.healths)
        before = {id(c) for c in engine.runner.checks}
        self._flush()
        self.alerts.configure(config)
        counts = engine.reload(config)
        adopted = frozenset(id(c) for c in engine.runner.checks if id(c) in before)
        fresh = {k: v for k, v in seed.items() if k not in known}
        seeded = seed_engine(engine, fresh, adopted) if fresh else 0
        if self.rounds is not None:
            self.rounds.begin(engine.runner.checks, [vs.key for vs in config.virtual_servers
                                                     if vs.announce is not None])
        # the removed checks' cycles freed (they were frozen), the new ones frozen
        took = gcfreeze.settle()
        log.info("shard %d/%d reloaded: %d checks kept, %d added, %d removed; %d real "
                 "servers (%d new seeded; gc %.0f ms)", self.shard, self.shards,
                 counts["kept"], counts["added"], counts["removed"], len(engine.healths),
                 seeded, took * 1000)
        return counts

    def stop(self) -> None:
        self.lag.stop()
        if self.rounds is not None:
            self.rounds.stop()
        if self.engine is not None:
            self.engine.stop()
        if self.alerts is not None:
            self.alerts.close()
        self._flush()

    def status(self) -> dict[str, Any]:
        e = self.engine
        counters = Counter(self.counters)
        counters.update(e.runner.counters)
        up = sum(1 for h in e.healths.values() if h.up)
        return {"shard": self.shard, "shards": self.shards, "checks": e.checks,
                "real_servers": len(e.healths), "up": up, "down": len(e.healths) - up,
                "counters": dict(counters), "events": self.events,
                "latency": self.latency.as_dict(), "lag": self.lag.take(),
                "skipped": len(e.skipped),
                "alerts": dict(self.alerts.mailer.counters) if self.alerts else {}}
