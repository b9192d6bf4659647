"""Trackers: vrrp_script, track_interface, track_file, track_process -> instance
weight or FAULT.

* ``vrrp_script``: the script runs without a shell (argv) in its own session
  every ``interval``; one that outlives ``timeout`` has its whole process group
  killed and counts as a failure.  ``rise`` successes in a row make it good,
  ``fall`` failures make it bad; ``init_fail`` starts it bad.  A script already
  running when the next interval comes is not started twice.  Until its first
  result a script is neither good nor bad (keepalived's "init" state): it adds no
  weight, an instance it can fault waits in a silent FAULT (``Instance.hold``),
  and that first result decides, whatever ``rise``/``fall`` say.  A script new at
  a reload starts good (keepalived's SCRIPT_INIT_STATE_INIT_RELOAD).  ``init_fail``
  changes nothing: keepalived 2.2.7's parser sets the script's failed initial
  state, and each ``track_script`` naming the script (which must come after it)
  sets it back to "init" (vrrp_track.c alloc_track_script); measured side by side,
  keepalived starts such an instance in BACKUP after a first success.
* ``track_interface``: link state from :class:`hafast.net.linkwatch.LinkWatch`
  (sysfs polling, first version).  The VRRP interface itself is tracked too,
  as keepalived does unless ``dont_track_primary``.
* ``track_file``: the file's integer value × weight, *polled* every 0.5 s
  (first version; keepalived uses inotify).
* ``track_process``: whether the count of matching processes is within quorum
  (:mod:`hafast.vrrp.track_process`), watched by :class:`hafast.vrrp.procwatch.ProcessWatch`
  (pidfds for deaths, a scan of /proc each second for starts), one for all instances.

keepalived's weight rules (keepalived.conf(5)): weight 0 means the instance goes
FAULT while the object is down; a positive weight is added while the object is
up, a negative one while it is down; ``reverse`` swaps up and down and negates
the weight.  A track_file contribution below -253 means FAULT.

Example::

    t = Tracking(loop, config, linkwatch)
    t.bind(instance, plan)     # before instance.start(), so it may start in FAULT
    t.start()
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from hafast.config.model import Config, TrackFile, TrackProcess, TrackRef, VrrpScript
from hafast.lib.notify import as_argv, run_as, spawn_reaped
from hafast.net.linkwatch import LinkWatch
from hafast.vrrp.build import InstancePlan
from hafast.vrrp.instance import Instance
from hafast.vrrp.procwatch import ProcessWatch

log = logging.getLogger("hafast.vrrp.track")

FILE_POLL_S = 0.5
FILE_FAULT_BELOW = -253  # keepalived: a track_file contribution < -253 -> FAULT


def contribution(up: bool, weight: int, reverse: bool = False) -> tuple[bool, int]:
    """(fault, weight to add) for a boolean tracked object.

    >>> contribution(False, 0)
    (True, 0)
    >>> contribution(True, 10), contribution(False, -20), contribution(True, -20)
    ((False, 10), (False, -20), (False, 0))
    >>> contribution(True, 10, reverse=True)
    (False, -10)
    """
    if reverse:
        up, weight = not up, -weight
    if weight == 0:
        return (not up, 0)
    if weight > 0:
        return (False, weight if up else 0)
    return (False, 0 if up else weight)


def file_contribution(value: int, weight: int, reverse: bool = False) -> tuple[bool, int]:
    """(fault, weight to add) for a track_file value.

    >>> file_contribution(0, 0), file_contribution(3, 0), file_contribution(-2, 10)
    ((False, 0), (True, 0), (False, -20))
    >>> file_contribution(-300, 1)
    (True, 0)
    """
    if weight == 0:
        return (value != 0, 0)
    total = value * (-weight if reverse else weight)
    if total < FILE_FAULT_BELOW:
        return (True, 0)
    return (False, total)


class ScriptTracker:
    """One vrrp_script run periodically; ``on_change(good)`` when its state flips
    (or, the first time, when it is known).  ``good`` is None until the first result
    unless ``assume_good``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, script: VrrpScript,
                 assume_good: bool = False) -> None:
        self.loop = loop
        self.script = script
        self.good: bool | None = True if assume_good else None
        # keepalived vrrp_init_script: result = rise - 1 for a script in init (or
        # init-at-reload), so its first exit decides.
        self._first = True
        if script.init_fail:
            log.info("vrrp_script %s: init_fail has no effect on a tracked script, as "
                     "in keepalived 2.2.7: the first result decides", script.name)
        self.listeners: list[Callable[[bool], None]] = []
        self.runs = 0
        self._streak = 0  # >0 successes in a row, <0 failures in a row
        self._proc: subprocess.Popen[bytes] | None = None
        self._next: asyncio.TimerHandle | None = None
        self._kill: asyncio.TimerHandle | None = None
        self._closed = False

    def start(self) -> None:
        self._run()

    def _run(self) -> None:
        if self._closed:
            return
        self._next = self.loop.call_later(self.script.interval_us / 1e6, self._run)
        argv = as_argv(self.script.script)
        if self._proc is not None or not argv:
            return
        self.runs += 1
        user, group = run_as(self.script.script, self.script.user)
        self._proc = spawn_reaped(self.loop, argv, self._done, user=user, group=group)
        if self._proc is not None:
            self._kill = self.loop.call_later(self.script.timeout_us / 1e6, self._timeout,
                                              self._proc)

    def _timeout(self, proc: subprocess.Popen[bytes]) -> None:
        if proc is self._proc and proc.poll() is None:
            log.warning("vrrp_script %s timed out; killing it", self.script.name)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _done(self, code: int) -> None:
        self._proc = None
        if self._kill is not None:
            self._kill.cancel()
            self._kill = None
        if self._closed:
            # close() killed this run: its exit says nothing of the script, and
            # whoever closed the tracker (a reload, the stop) hears no more from it.
            return
        ok = code == 0
        if ok:
            self._streak = self._streak + 1 if self._streak > 0 else 1
        else:
            self._streak = self._streak - 1 if self._streak < 0 else -1
        if self._first:
            self._first = False
            if self.good is not ok:
                self._set(ok)
        elif not self.good and ok and self._streak >= self.script.rise:
            self._set(True)
        elif self.good and not ok and -self._streak >= self.script.fall:
            self._set(False)

    def _set(self, good: bool) -> None:
        self.good = good
        log.info("vrrp_script %s now %s", self.script.name, "succeeding" if good else "failing")
        for cb in list(self.listeners):
            cb(good)

    def close(self) -> None:
        self._closed = True
        for h in (self._next, self._kill):
            if h is not None:
                h.cancel()
        if self._proc is not None and self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class FileTracker:
    """One track_file, polled; ``listeners`` get the new integer value."""

    def __init__(self, loop: asyncio.AbstractEventLoop, spec: TrackFile) -> None:
        self.loop = loop
        self.spec = spec
        self.listeners: list[Callable[[int], None]] = []
        path = Path(spec.file)
        if spec.init_file is not None and (not path.exists() or "overwrite" in spec.init_file):
            init = [w for w in spec.init_file if w != "overwrite"]
            try:
                path.write_text(f"{init[0] if init else 0}\n")
            except OSError as exc:
                log.warning("track_file %s: cannot initialise %s: %s", spec.name, path, exc)
        self.value = self._read()
        self._handle: asyncio.TimerHandle | None = None

    def _read(self) -> int:
        try:
            words = Path(self.spec.file).read_text().split()
            return int(words[0]) if words else 0
        except (OSError, ValueError):
            return 0

    def start(self) -> None:
        self._handle = self.loop.call_later(FILE_POLL_S, self._poll)

    def _poll(self) -> None:
        value = self._read()
        if value != self.value:
            self.value = value
            for cb in list(self.listeners):
                cb(value)
        self._handle = self.loop.call_later(FILE_POLL_S, self._poll)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


class Tracking:
    """All trackers of one worker, shared between the instances that track them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, config: Config,
                 linkwatch: LinkWatch) -> None:
        self.loop = loop
        self.linkwatch = linkwatch
        self.scripts = {s.name: ScriptTracker(loop, s) for s in config.vrrp_scripts}
        self._file_specs = {f.name: f for f in config.track_files}
        self.files: dict[str, FileTracker] = {}
        self._process_specs: dict[str, TrackProcess] = {}
        self.processes: ProcessWatch | None = None
        self._started = False
        self._add_process_specs(config)

    def _add_process_specs(self, config: Config) -> None:
        # Only what an instance or a sync group tracks is watched: the scan's reads
        # (and cmdline reads for full_command) are paid for tracked processes only.
        named = {r.name for i in config.vrrp_instances for r in i.track_process}
        named |= {r.name for g in config.sync_groups for r in g.track_process}
        self._process_specs.update({p.name: p for p in config.track_processes
                                    if p.name in named})
        if self.processes is not None:
            self.processes.add(self._process_specs.values())

    def _process_watch(self) -> ProcessWatch:
        if self.processes is None:
            # One scan of /proc for every tracked process, when the first instance binds.
            self.processes = ProcessWatch(self.loop, self._process_specs.values())
            if self._started:
                self.processes.start()
        return self.processes

    def _apply(self, inst: Instance, source: str, fault: bool, weight: int) -> None:
        if fault:
            inst.raise_fault(source)
        else:
            inst.clear_fault(source)
        inst.set_weight(source, weight)

    def bind(self, inst: Instance, plan: InstancePlan) -> None:
        """Wire ``plan``'s trackers to ``inst`` and apply their current state."""
        refs = list(plan.track_interface)
        if plan.track_primary and plan.spec.ifname not in {r.name for r in refs}:
            refs.append(TrackRef(plan.spec.ifname, 0))
        for ref in refs:

            def watch(cb: Callable[[bool], None], name: str = ref.name) -> bool:
                return self.linkwatch.watch(name, cb)

            self._bind_bool(inst, f"interface:{ref.name}", ref, 0, watch)
        for ref in plan.track_script:
            tracker = self.scripts.get(ref.name)
            if tracker is None:
                log.warning("%s: track_script %s is not defined", inst.name, ref.name)
                continue
            default = tracker.script.weight
            rev = tracker.script.weight_reverse

            def subscribe(cb: Callable[[bool], None],
                          t: ScriptTracker = tracker) -> bool | None:
                t.listeners.append(cb)
                return t.good

            self._bind_bool(inst, f"script:{ref.name}", ref, default, subscribe, rev)
        for ref in plan.track_file:
            spec = self._file_specs.get(ref.name)
            if spec is None:
                log.warning("%s: track_file %s is not defined", inst.name, ref.name)
                continue
            ft = self.files.get(ref.name)
            if ft is None:
                ft = self.files[ref.name] = FileTracker(self.loop, spec)
            weight = spec.weight if ref.weight is None else ref.weight
            reverse = ref.reverse or spec.weight_reverse
            source = f"file:{ref.name}"

            def on_value(value: int, w: int = weight, r: bool = reverse, s: str = source) -> None:
                self._apply(inst, s, *file_contribution(value, w, r))

            ft.listeners.append(on_value)
            on_value(ft.value)
        for ref in plan.track_process:
            pspec = self._process_specs.get(ref.name)
            if pspec is None:
                log.warning("%s: track_process %s is not defined", inst.name, ref.name)
                continue
            pwatch = self._process_watch()

            def follow(cb: Callable[[bool], None], name: str = ref.name,
                       w: ProcessWatch = pwatch) -> bool:
                return w.subscribe(name, cb)

            self._bind_bool(inst, f"process:{ref.name}", ref, pspec.weight, follow,
                            pspec.weight_reverse)

    def _bind_bool(self, inst: Instance, source: str, ref: TrackRef, default_weight: int,
                   subscribe: Callable[[Callable[[bool], None]], bool | None],
                   reverse_default: bool = False) -> None:
        weight = default_weight if ref.weight is None else ref.weight
        reverse = ref.reverse or reverse_default

        def on_change(up: bool) -> None:
            self._apply(inst, source, *contribution(up, weight, reverse))

        up = subscribe(on_change)
        if up is None:
            # Not known yet: no weight; one that can fault the instance holds it.
            if weight == 0:
                inst.hold(source)
            return
        on_change(up)

    def add_scripts(self, config: Config) -> None:
        """After a reload: start trackers for ``vrrp_script``s that are new by name
        (the running ones keep their state and schedule)."""
        for spec in config.vrrp_scripts:
            if spec.name not in self.scripts:
                tracker = self.scripts[spec.name] = ScriptTracker(self.loop, spec,
                                                                  assume_good=True)
                tracker.start()
        self._file_specs.update({f.name: f for f in config.track_files})
        self._add_process_specs(config)

    def start(self) -> None:
        self._started = True
        for s in self.scripts.values():
            s.start()
        for f in self.files.values():
            f.start()
        if self.processes is not None:
            self.processes.start()

    def close(self) -> None:
        for s in self.scripts.values():
            s.close()
        for f in self.files.values():
            f.close()
        if self.processes is not None:
            self.processes.close()
