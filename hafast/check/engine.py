"""The check engine: a Config -> checker kinds on one :class:`~hafast.check.runner.Runner`.

One check per (real server address, port, checker spec), DEDUPLICATED: a real
server with the same address, port and check under several virtual servers is
checked once and the result feeds every (virtual server, real server) health that
uses it (keepalived issue #2358 asks for exactly that).  Each health publishes its
own :class:`~hafast.lib.events.ServerEvent`, because the same real server may
have other checkers under another virtual server.

Sharding: a worker takes the real servers whose address and port hash (CRC-32, so
every process agrees) to its shard index; all checks of one real server land in
the same shard, so its health is whole in one worker.

Reload is a diff (:meth:`Engine.reload`): unchanged checks keep their state, retry
count and timer.

Example::

    cfg = load_text(text).config
    engine = Engine(cfg, loop, events.append)
    engine.start()            # ... engine.reload(new_cfg) ... engine.stop()
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from hafast.check.api import REGISTRY, ProbeKind, Target
from hafast.check.runner import Check, Healths, Runner, ServerHealth
from hafast.check.view import Source, pairs, shard_of, slim
from hafast.config import model as m
from hafast.config.kinds import KINDS
from hafast.lib.events import DOWN, UP, WEIGHT, ServerEvent

log = logging.getLogger("hafast.check")


def default_port(spec: m.Checker) -> int | None:
    """keepalived's port for a kind when neither connect_port nor the real server gives
    one (SMTP_CHECK 25, DNS_CHECK 53): the kind's descriptor says."""
    kind = KINDS.get(spec.kind)
    return kind.port if kind is not None else None


def target_for(rs: m.RealServer, spec: m.Checker) -> Target:
    """The checker's connect_* and bind* options over the real server's address."""
    port = getattr(spec, "connect_port", None) or rs.port or default_port(spec)
    return Target(
        getattr(spec, "connect_ip", None) or rs.address,
        port,
        getattr(spec, "bindto", None),
        getattr(spec, "bind_port", None),
        getattr(spec, "bind_if", None),
        getattr(spec, "fwmark", None),
    )


def targets_for(rs: m.RealServer, spec: m.Checker) -> list[Target]:
    """Usually one target; SMTP_CHECK's legacy ``host {}`` blocks make one each
    (keepalived turns each into its own checker, all of which must pass)."""
    hosts = getattr(spec, "hosts", ())
    if not hosts:
        return [target_for(rs, spec)]
    base = target_for(rs, spec)
    return [
        Target(
            h.connect_ip or base.address,
            h.connect_port or base.port,
            h.bindto or base.bindto,
            h.bind_port or base.bind_port,
            h.bind_if or base.bind_if,
            h.fwmark if h.fwmark is not None else base.fwmark,
        )
        for h in hosts
    ]


def probes_for(rs: m.RealServer, spec: m.Checker) -> list[tuple[Target, m.Checker]]:
    """:func:`targets_for`, each with the spec its probe runs: a ``host {}`` with its own
    ``connect_timeout`` gets the SMTP_CHECK's spec with that timeout (keepalived 2.2.7
    keeps connect_timeout in the host's conn_opts; every other timer is the checker's)."""
    targets = targets_for(rs, spec)
    hosts = getattr(spec, "hosts", ())
    if not hosts:
        return [(t, spec) for t in targets]
    own = [
        spec if h.connect_timeout_us is None
        else dataclasses.replace(spec, connect_timeout_us=h.connect_timeout_us)
        for h in hosts
    ]
    return list(zip(targets, own, strict=True))


def _plain_at(target: Target, rs_key: tuple[str, int | None]) -> bool:
    """``target`` is the real server's own address and port, with no option.

    >>> _plain_at(Target("10.0.0.1", 80), ("10.0.0.1", 80))
    True
    >>> _plain_at(Target("10.0.0.1", 80, bindto="10.0.0.9"), ("10.0.0.1", 80))
    False
    """
    return target.plain and target.address == rs_key[0] and target.port == rs_key[1]


def _extras(config: m.Config, rs: m.RealServer, spec: m.Checker) -> dict[str, Any]:
    """Keyword arguments some kinds need beyond (spec, target, loop): the descriptor's."""
    kind = KINDS.get(spec.kind)
    if kind is None or kind.extras is None:
        return {}
    return kind.extras(config, rs, spec)


class Engine:
    """Builds and runs every check of a shard; publishes real-server transitions
    (and an alpha checker's first result: :meth:`Runner._first_down`).

    ``kinds`` overrides the probes of the registry (tests plug fakes in); ``skipped`` lists the
    checkers no kind handles yet, as ``(where, keyword)``.
    """

    def __init__(
        self,
        config: Source,
        loop: Any,
        on_event: Callable[[ServerEvent], object] | None = None,
        *,
        shard_index: int = 0,
        shard_count: int = 1,
        kinds: Mapping[str, type[ProbeKind]] | None = None,
        runner: Runner | None = None,
    ) -> None:
        # Without real servers: each check holds its own spec and target (view.py)
        self.config = slim(config)
        self.loop = loop
        self.runner = runner or Runner(
            loop, on_event, log_all_failures=config.global_defs.checker_log_all_failures
        )
        if runner is not None and on_event is not None:
            runner.on_event = on_event
        self.kinds = REGISTRY if kinds is None else kinds
        self.shard_index, self.shard_count = shard_index, shard_count
        self.healths = Healths()
        # The reload diff keys a check by (target, spec, extras); target and spec are
        # its kind's, so only the extras are kept, and only where there are any (a
        # TCP_CHECK farm keeps none): a dict of every key was ~0.1 KiB a check (issue 16).
        self._extras_keys: dict[int, tuple[tuple[str, Any], ...]] = {}
        self.skipped: list[tuple[str, str]] = []
        self.deduplicated = 0
        self._build(config, {})

    def reload(self, config: Source) -> dict[str, int]:
        """Adopt a new configuration as a diff (DESIGN.md: reload is a diff).

        A check whose target, spec and extras are unchanged keeps its state, its
        retry count and its timer; checks no longer configured are stopped; new ones
        start after their warmup.  A real server whose health as a whole differs
        after the change (a failing checker removed, ...) gets an event.
        Returns ``{"kept": .., "added": .., "removed": ..}``.
        """
        old_checks = {self._key_of(c): c for c in self.runner.checks}
        old_healths = self.healths
        before = len(self.runner.checks)
        self.config = slim(config)
        self.runner.log_all_failures = config.global_defs.checker_log_all_failures
        kept = self._build(config, old_checks)
        gone = set(map(id, old_checks.values()))
        for check in old_checks.values():
            check.stop()
            check.kind.close()
        if gone:
            self.runner.checks = [c for c in self.runner.checks if id(c) not in gone]
        at = self.loop.time()
        for key, health in self.healths.items():
            previous = old_healths.get(key)
            if previous is None or (previous.up, previous.weight) == (health.up, health.weight):
                continue
            state = (UP if health.up else DOWN) if previous.up != health.up else WEIGHT
            self.runner.publish(ServerEvent(health.virtual_server, health.real_server, state,
                                            health.weight, "" if health.up else "reload", at))
        added = len(self.runner.checks) - before + len(old_checks)
        return {"kept": kept, "added": added, "removed": len(old_checks)}

    def _build(self, source: Source, old: dict[tuple[object, ...], Check]) -> int:
        """(Re)build healths and checks from ``source``'s real servers; checks found
        in ``old`` are adopted (popped from it).  Returns how many were adopted."""
        # While building, the deduplication: (spec, extras) -> where -> its check.  A
        # plain target at its real server's own address and port is found by the real
        # server's key, the tuple its health keeps; a (target, spec, extras) tuple and
        # the Target held per check to the end of the build were ~150 B a check that
        # the worker's allocator kept once they were freed (issue 16).
        by_key: dict[tuple[object, ...], dict[object, Check]] = {}
        extras_keys: dict[int, tuple[tuple[str, Any], ...]] = {}
        self.healths = Healths()
        self.skipped = []
        self.deduplicated = 0
        adopted = 0
        for vs_key, rs in self._real_servers(source):
            if shard_of(rs, self.shard_count) != self.shard_index:
                continue
            rs_key = rs.key
            health = ServerHealth(vs_key, rs_key, rs.weight)
            self.healths.add(health)
            for rs_spec in rs.checkers:
                cls = self.kinds.get(rs_spec.kind)
                if cls is None:
                    self.skipped.append((rs.where, rs_spec.kind))
                    continue
                # The whole spec is in the key (timers too): two checks that differ
                # only in delay_loop are different schedules, not one.
                extras = _extras(self.config, rs, rs_spec)
                extras_key = tuple(sorted(extras.items()))
                for target, spec in probes_for(rs, rs_spec):
                    group = by_key.get((spec, extras_key))
                    if group is None:
                        group = by_key[(spec, extras_key)] = {}
                    found_by: object = rs_key if _plain_at(target, rs_key) else target
                    check = group.get(found_by)
                    if check is not None:
                        check.feed(health)
                        self.deduplicated += 1
                        continue
                    check = old.pop((target, spec, extras_key), None) if old else None
                    if check is not None:
                        check.healths = ()
                        check.feed(health)
                        check.log_all = self.runner.log_all_failures or spec.log_all_failures
                        adopted += 1
                    else:
                        kind = cls(spec, target, self.loop, **extras)
                        check = self.runner.add(kind, [health])
                    group[found_by] = check
                    if extras_key:
                        extras_keys[id(check)] = extras_key
        self._extras_keys = extras_keys
        for where, keyword in self.skipped:
            log.warning("%s: %s has no checker in this build; its real server is not checked",
                        where, keyword)
        return adopted

    def _key_of(self, check: Check) -> tuple[object, ...]:
        """The key :meth:`_build` made ``check`` under."""
        kind = check.kind
        return (kind.target, kind.spec, self._extras_keys.get(id(check), ()))

    @staticmethod
    def _real_servers(source: Source) -> Iterator[tuple[tuple[object, ...], m.RealServer]]:
        keys: dict[int, tuple[object, ...]] = {}  # vs.key makes a new tuple: once each
        for vs, rs in pairs(source):
            vs_key = keys.get(id(vs))
            if vs_key is None:
                vs_key = keys[id(vs)] = vs.key
            yield vs_key, rs

    @property
    def checks(self) -> int:
        return len(self.runner.checks)

    def start(self) -> None:
        self.runner.start()

    def stop(self) -> None:
        self.runner.stop()

    def snapshot(self) -> dict[tuple[tuple[object, ...], tuple[str, int | None]], tuple[bool, int]]:
        """``{(vs key, rs key): (up, weight)}`` now (initial states before any event)."""
        return {k: (h.up, h.weight) for k, h in self.healths.items()}

