"""The director's FRR: hafast runs it, or keeps an operator-run one's config (issue 18).

``bgp_speaker { frr_control none | reload | run }``:

- ``none`` (the default): the operator runs FRR with the files that ``python -m
  hafast.fleet.runner --render DIR`` writes; hafast only reads the sessions.
- ``reload``: FRR is the operator's (systemd's ``frr.service``) and hafast owns its
  configuration.
- ``run``: hafast runs zebra, bfdd and bgpd itself.

In both of the last two, FRR runs what hafast renders from its own config
(:mod:`hafast.fleet.frrconf`).  At start, and after each reload of hafast whose
rendering differs, the new ``frr.conf`` goes to ``frr_dir``.  FRR checks it first
(``vtysh --dryrun``), then FRR's own ``frr-reload.py --reload`` (Debian package
frr-pythontools) applies the difference to the running daemons.  So the sessions stay
up across a reload, where a restart of bgpd would drop every announcement.  A rendering
FRR refuses is logged as an error, and FRR keeps what it runs: nothing is lost.  With
``reload``, an apply that fails because FRR is not running is tried again every
:data:`RETRY_S` seconds.

With ``run``, each daemon is started with ``-d -N PATHSPACE -f FRR_DIR/DAEMON.conf``
and so in a session of its own (it is not hafast's child).  A crash of hafast leaves
FRR up, as it leaves the announce routes (fail-static).  A restarted hafast adopts the
daemons it finds by their pid files (``/var/run/frr[/PATHSPACE]/DAEMON.pid``, the
process named as the daemon) and starts only the missing ones.  A daemon that dies is
started again within :data:`WATCH_S` seconds (at most once every :data:`RESTART_GAP_S`
seconds each); bgpd restarted reads the kernel's announce routes from zebra and
announces them again.  A clean stop (SIGTERM) stops the daemons after the VIPs are
withdrawn.

The netns test (tests/netns/test_fleet_frr_life.py) runs both modes against a router
running FRR: it checks the start, a reload that adds a VIP, a killed bgpd, and a
hafast crash and restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import signal
import socket
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from hafast.config import model as m
from hafast.fleet.frrconf import FrrConf, check_argv, render_config
from hafast.fleet.tools import run_tool, start_detached
from hafast.net.vmac import Sysctl

log = logging.getLogger("hafast.fleet")

DAEMONS = ("zebra", "bfdd", "bgpd")  # in start order: the others connect to zebra
FRR_BIN = "/usr/lib/frr"
FRR_RELOAD = "/usr/lib/frr/frr-reload.py"
RUN_ROOT = "/var/run/frr"
CONF_ROOT = "/etc/frr"
WATCH_S = 1.0
RESTART_GAP_S = 5.0
RETRY_S = 5.0
CHECK_TIMEOUT_S = 30.0
APPLY_TIMEOUT_S = 60.0
START_TIMEOUT_S = 10.0


def conf_dir(speaker: m.BgpSpeaker) -> str:
    """``frr_dir``, or FRR's own place for the pathspace (``/etc/frr[/NAME]``)."""
    if speaker.frr_dir:
        return speaker.frr_dir
    return os.path.join(CONF_ROOT, speaker.frr_pathspace or "")


def run_dir(speaker: m.BgpSpeaker) -> str:
    """Where FRR puts its pid files and vty sockets for the pathspace."""
    return os.path.join(RUN_ROOT, speaker.frr_pathspace or "")


def daemon_argv(speaker: m.BgpSpeaker, daemon: str) -> list[str]:
    ps = ["-N", speaker.frr_pathspace] if speaker.frr_pathspace else []
    return [os.path.join(FRR_BIN, daemon), "-d", *ps,
            "-f", os.path.join(conf_dir(speaker), f"{daemon}.conf")]


def reload_argv(speaker: m.BgpSpeaker, path: str) -> list[str]:
    ps = ["--pathspace", speaker.frr_pathspace] if speaker.frr_pathspace else []
    return [FRR_RELOAD, "--reload", "--stdout", *ps,
            "--confdir", conf_dir(speaker), "--rundir", run_dir(speaker), path]


def missing_tools(speaker: m.BgpSpeaker) -> list[str]:
    """What ``frr_control`` needs that this machine lacks (``hafast -t``)."""
    need = [FRR_RELOAD] + ([os.path.join(FRR_BIN, d) for d in DAEMONS]
                           if speaker.frr_control == "run" else [])
    lacking = [p for p in need if not os.access(p, os.X_OK)]
    if not lacking:
        return []
    return [f"bgp_speaker frr_control {speaker.frr_control}: {', '.join(lacking)} not found "
            "(Debian packages frr and frr-pythontools); FRR would not be "
            + ("started" if speaker.frr_control == "run" else "given hafast's config")]


def running_pid(speaker: m.BgpSpeaker, daemon: str) -> int | None:
    """The daemon's pid from its pid file, if that process is alive and is the daemon."""
    try:
        with open(os.path.join(run_dir(speaker), f"{daemon}.pid")) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/comm") as f:
            return pid if f.read().strip() == daemon else None
    except (OSError, ValueError):
        return None


def forwarding_lines(sysctl: Sysctl | None = None) -> str:
    """zebra's forwarding lines as it shows them for this namespace now.  zebra writes
    ``no ip forwarding`` when forwarding is off; a rendering without it would make
    frr-reload.py turn forwarding on, and one with it would turn off a NAT director's.
    So the rendering says what the kernel has, and the sysctls stay the operator's."""
    sysctl = sysctl or Sysctl()
    out = ""
    if sysctl.get("net/ipv4/ip_forward") == 0:
        out += "no ip forwarding\n"
    if sysctl.get("net/ipv6/conf/all/forwarding") == 0:
        out += "no ipv6 forwarding\n"
    return out


def _write(path: str, text: str, owner: tuple[int, int] | None) -> None:
    """Write atomically (a daemon restarted meanwhile reads the old or the new file)."""
    tmp = f"{path}.hafast-new"
    with open(tmp, "w") as f:
        f.write(text)
    if owner is not None:
        os.chown(tmp, *owner)
    os.replace(tmp, path)


def _frr_user() -> tuple[int, int] | None:
    try:
        pw = pwd.getpwnam("frr")
    except KeyError:
        return None
    return pw.pw_uid, pw.pw_gid


@dataclass
class FrrStatus:
    applied: int = 0  # renderings FRR now runs
    refused: int = 0  # renderings FRR's check refused
    failed: int = 0  # applies that failed otherwise (FRR down, frr-reload's error)
    last_error: str | None = None
    restarts: Counter[str] = field(default_factory=Counter)


class FrrLife:
    """Keeps the director's FRR running (``run``) and running hafast's rendering."""

    def __init__(self, loop: Any, config: m.Config) -> None:
        assert config.bgp_speaker is not None
        self.loop = loop
        self.config = config
        self.speaker = config.bgp_speaker
        self.st = FrrStatus()
        self.pids: dict[str, int | None] = dict.fromkeys(DAEMONS)
        self._running_text: str | None = None  # the frr.conf FRR runs, as far as we know
        self._refused_text: str | None = None  # the last rendering FRR's check refused
        self._want = asyncio.Event()  # a rendering to apply
        self._task: asyncio.Task[None] | None = None
        self._started_at: dict[str, float] = {}
        self._gone: set[str] = set()  # died, said once, not started again yet

    @property
    def mode(self) -> str:
        return self.speaker.frr_control

    def start(self) -> None:
        self._want.set()
        self._task = self.loop.create_task(self._run())

    def reconfigure(self, config: m.Config) -> None:
        """A reload of hafast: apply its rendering when it differs (latest wins)."""
        assert config.bgp_speaker is not None
        self.config, self.speaker = config, config.bgp_speaker
        self._want.set()

    def stop(self) -> None:
        """Stop watching; FRR stays up (a crash leaves it up too)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def shutdown(self) -> None:
        """A clean stop after the VIPs are withdrawn: stop the daemons hafast runs."""
        self.stop()
        if self.mode != "run":
            return
        for daemon in reversed(DAEMONS):
            pid = running_pid(self.speaker, daemon)
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
                log.info("FRR %s (pid %d): stopped", daemon, pid)

    def status(self) -> dict[str, Any]:
        return {"control": self.mode, "dir": conf_dir(self.speaker),
                "applied": self.st.applied, "refused": self.st.refused,
                "failed": self.st.failed, "last_error": self.st.last_error,
                "daemons": dict(self.pids) if self.mode == "run" else None,
                "restarts": dict(self.st.restarts) if self.mode == "run" else None}

    async def _run(self) -> None:
        while True:
            if self.mode == "run":
                await self._keep_running()
            if self._want.is_set():
                self._want.clear()
                if not await self._apply() and self.mode == "reload":
                    self._want.set()  # FRR not there yet: again after RETRY_S
                    await asyncio.sleep(RETRY_S)
                    continue
            try:
                await asyncio.wait_for(self._want.wait(), WATCH_S)
            except TimeoutError:
                pass

    async def _apply(self, cold: bool = False) -> bool:
        """Render, check, write, and reload FRR if it runs something else (``cold``:
        no daemon runs, the ones about to start read the files); True when FRR runs
        (or will run) the rendering."""
        conf = render_config(self.config, hostname=socket.gethostname())
        assert conf is not None
        conf = replace(conf, zebra=forwarding_lines() + conf.zebra)
        text = conf.integrated
        if text == self._running_text:
            return True
        if text == self._refused_text:
            return False  # said already; a reload of hafast brings another rendering
        folder = conf_dir(self.speaker)
        path = os.path.join(folder, "frr.conf")
        owner = _frr_user()
        try:
            os.makedirs(folder, exist_ok=True)
            _write(f"{path}.check", text, owner)
            code, out, err = await run_tool(check_argv(f"{path}.check"), CHECK_TIMEOUT_S)
            os.unlink(f"{path}.check")
        except OSError as exc:
            return self._failed(f"cannot check {path}: {exc}")
        if code != 0:
            self.st.refused += 1
            self._refused_text = text
            return self._failed("FRR refuses the rendered config, which is not applied: "
                                f"{(out + err).strip()}", refused=True)
        try:
            self._write_all(folder, conf, owner)
        except OSError as exc:
            return self._failed(f"cannot write {folder}: {exc}")
        if not cold:
            try:
                code, out, err = await run_tool(reload_argv(self.speaker, path),
                                                APPLY_TIMEOUT_S)
            except OSError as exc:
                return self._failed(f"frr-reload: {exc}")
            if code != 0:
                return self._failed(f"frr-reload.py exit code {code}: "
                                    f"{(err or out).strip()[-500:]}")
        self._running_text = text
        self.st.applied += 1
        self.st.last_error = None
        log.info("FRR: %s the rendered config (%s)", "starting with" if cold else "running",
                 path)
        return True

    def _write_all(self, folder: str, conf: FrrConf, owner: tuple[int, int] | None) -> None:
        _write(os.path.join(folder, "frr.conf"), conf.integrated, owner)
        if self.mode == "run":  # each daemon's own file, for -f (and for a restart)
            for daemon in DAEMONS:
                _write(os.path.join(folder, f"{daemon}.conf"), getattr(conf, daemon), owner)

    def _failed(self, why: str, refused: bool = False) -> bool:
        if not refused:
            self.st.failed += 1
        if why != self.st.last_error:
            log.error("FRR: %s", why)
        self.st.last_error = why
        return False

    async def _keep_running(self) -> None:
        """``run``: adopt what runs, start what does not (zebra first).  With nothing
        running, the files are written first and the daemons read them; a daemon that
        died alone reads the files of the last apply."""
        missing = []
        for daemon in DAEMONS:
            pid, known = running_pid(self.speaker, daemon), self.pids[daemon]
            if pid is not None and known is None and daemon not in self._started_at:
                log.info("FRR %s: running (pid %d), adopted", daemon, pid)
            elif pid is None and known is not None and daemon not in self._gone:
                log.warning("FRR %s (pid %d) is gone; starting it again", daemon, known)
                self._gone.add(daemon)
            if pid is None:
                missing.append(daemon)
            else:
                self.pids[daemon] = pid
        if not missing:
            return
        if len(missing) == len(DAEMONS):
            if not await self._prepare():
                return
        now = self.loop.time()
        for daemon in missing:
            last = self._started_at.get(daemon)
            if last is not None and now - last < RESTART_GAP_S:
                continue
            self._started_at[daemon] = now
            await self._start_daemon(daemon, again=self.pids[daemon] is not None)

    async def _prepare(self) -> bool:
        """A cold start: the folders FRR needs, and hafast's rendering checked and
        written for the daemons to read."""
        folder, owner = conf_dir(self.speaker), _frr_user()
        try:
            for d in (folder, run_dir(self.speaker)):
                os.makedirs(d, exist_ok=True)
                if owner is not None:
                    os.chown(d, *owner)
        except OSError as exc:
            return self._failed(f"cannot make FRR's folders: {exc}")
        self._running_text = None
        if not await self._apply(cold=True):
            return False
        self._want.clear()  # the files are this config's
        return True

    async def _start_daemon(self, daemon: str, again: bool) -> None:
        try:
            code, said = await start_detached(daemon_argv(self.speaker, daemon),
                                              START_TIMEOUT_S)
        except OSError as exc:
            self._failed(f"cannot start {daemon}: {exc}")
            return
        if code != 0:
            self._failed(f"{daemon} did not start (exit code {code}): {said.strip()}")
            return
        if again:
            self.st.restarts[daemon] += 1
        self._gone.discard(daemon)
        self.pids[daemon] = running_pid(self.speaker, daemon)
        log.info("FRR %s: started (pid %s)", daemon, self.pids[daemon])
        if daemon == "zebra":  # the others connect to its zserv socket
            sock = os.path.join(run_dir(self.speaker), "zserv.api")
            for _ in range(int(START_TIMEOUT_S / 0.05)):
                if os.path.exists(sock):
                    break
                await asyncio.sleep(0.05)
