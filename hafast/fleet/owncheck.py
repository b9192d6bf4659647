"""The director's own checks before it announces a VIP (issue 18).

A virtual server's quorum says its real servers are fine.  It does not say this
director is fit to take flows: an operator taking it out for maintenance, an up-link
that is down, a local check of its own (conntrack full, a kernel module missing).  So
an ``announce`` block may track what a ``vrrp_instance`` tracks, and the VIP is
announced only while every tracked object is up *and* the quorum holds:

    announce {
      prefix 192.0.2.100/32
      track_script { chk_director }      # a vrrp_script: its last verdict (rise/fall)
      track_file { maintenance }         # a track_file: 0 is up, anything else down
      track_interface { eth0 }           # the link is up
      track_process { haproxy }          # a vrrp_track_process: its quorum holds
    }

It is the rule of a VRRP instance's tracked object at weight 0 (keepalived.conf(5):
the instance goes FAULT while the object is down), so ``reverse`` works as there and
a weight has no effect (``hafast -t`` says so).  A script that has not run yet counts
as down: a director that has not checked itself does not attract flows.  A
withdrawal for a tracked object is immediate, as for a lost quorum; announcing again
waits for the flap control (``announce_hold_down``) like any other.

The trackers are the VRRP worker's (:mod:`hafast.vrrp.tracking`,
:mod:`hafast.vrrp.procwatch`): the same script runs, the same file read, the same link
and process watches, here in the process that announces.
One tracker serves every VIP that names the object.  A reload keeps a tracker whose
definition did not change, with its state; a script new at a reload starts up, as
keepalived starts a script new at a reload (SCRIPT_INIT_STATE_INIT_RELOAD).  The
process watch is made again when a reload changes the processes tracked (it reads
/proc once then, and the counts start from what runs; a fork or terminate delay in
progress starts over).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from hafast.config import model as m
from hafast.net.linkwatch import LinkWatch
from hafast.vrrp.procwatch import ProcessWatch
from hafast.vrrp.tracking import FileTracker, ScriptTracker

log = logging.getLogger("hafast.fleet")


class OwnChecks:
    """Every tracked object of a config's ``announce`` blocks; ``on_change()`` after
    any of them changes."""

    def __init__(self, loop: Any, on_change: Callable[[], None]) -> None:
        self.loop = loop
        self.on_change = on_change
        self.scripts: dict[str, ScriptTracker] = {}
        self.files: dict[str, FileTracker] = {}
        self.links: dict[str, bool] = {}
        self._linkwatch: LinkWatch | None = None
        self._procs: ProcessWatch | None = None
        self._proc_specs: tuple[m.TrackProcess, ...] = ()

    def configure(self, config: m.Config, reload: bool = False) -> None:
        """Start the trackers ``config``'s announce blocks name, stop the others."""
        announces = [vs.announce for vs in config.virtual_servers if vs.announce]
        scripts = {s.name: s for s in config.vrrp_scripts}
        files = {f.name: f for f in config.track_files}
        want_scripts = {r.name for a in announces for r in a.track_script if r.name in scripts}
        want_files = {r.name for a in announces for r in a.track_file if r.name in files}
        for name in list(self.scripts):
            if name not in want_scripts or self.scripts[name].script != scripts[name]:
                self.scripts.pop(name).close()
        for name in list(self.files):
            if name not in want_files or self.files[name].spec != files[name]:
                self.files.pop(name).close()
        for name in sorted(want_scripts - set(self.scripts)):
            tracker = self.scripts[name] = ScriptTracker(self.loop, scripts[name],
                                                         assume_good=reload)
            tracker.listeners.append(lambda good: self.on_change())
            tracker.start()
        for name in sorted(want_files - set(self.files)):
            ft = self.files[name] = FileTracker(self.loop, files[name])
            ft.listeners.append(lambda value: self.on_change())
            ft.start()
        for ifname in sorted({r.name for a in announces for r in a.track_interface}):
            if ifname not in self.links:
                self.links[ifname] = self._links().watch(ifname, self._link_of(ifname))
        wanted = {r.name for a in announces for r in a.track_process}
        self._follow_processes(tuple(p for p in config.track_processes if p.name in wanted))

    def _follow_processes(self, specs: tuple[m.TrackProcess, ...]) -> None:
        if specs == self._proc_specs:
            return
        if self._procs is not None:
            self._procs.close()
            self._procs = None
        self._proc_specs = specs
        if specs:
            self._procs = ProcessWatch(self.loop, specs)
            for spec in specs:
                self._procs.subscribe(spec.name, lambda up: self.on_change())
            self._procs.start()

    def _links(self) -> LinkWatch:
        if self._linkwatch is None:
            self._linkwatch = LinkWatch(self.loop)
        return self._linkwatch

    def _link_of(self, ifname: str) -> Callable[[bool], None]:
        def changed(up: bool) -> None:
            self.links[ifname] = up
            self.on_change()
        return changed

    def states(self, a: m.Announce) -> dict[str, bool]:
        """Each object ``a`` tracks -> up (after ``reverse``); empty when none."""
        out = {}
        for r in a.track_script:
            t = self.scripts.get(r.name)
            out[f"script:{r.name}"] = (t is not None and t.good is not None
                                       and t.good != (r.reverse or t.script.weight_reverse))
        for r in a.track_file:
            ft = self.files.get(r.name)
            zero = ft is not None and ft.value == 0
            out[f"file:{r.name}"] = zero != (r.reverse or (ft is not None
                                                           and ft.spec.weight_reverse))
        for r in a.track_interface:
            out[f"interface:{r.name}"] = self.links.get(r.name, False) != r.reverse
        reverse = {p.name: p.weight_reverse for p in self._proc_specs}
        for r in a.track_process:
            held = self._procs is not None and r.name in reverse and self._procs.up(r.name)
            out[f"process:{r.name}"] = held != (r.reverse or reverse.get(r.name, False))
        return out

    def ok(self, a: m.Announce) -> bool:
        return all(self.states(a).values())

    def close(self) -> None:
        for t in self.scripts.values():
            t.close()
        for ft in self.files.values():
            ft.close()
        if self._linkwatch is not None:
            self._linkwatch.close()
        self.scripts, self.files, self.links, self._linkwatch = {}, {}, {}, None
        self._follow_processes(())
