"""Script security at load time: ``enable_script_security``, ``script_user`` and the
``keepalived_script`` default user, applied to the model as keepalived 2.2.7 applies
them (``check_vrrp_script_security`` in ``vrrp/vrrp.c``, ``check_check_script_security``
in ``check/check_data.c``, ``get_default_script_user`` in ``lib/notify.c``).

The permission rules themselves are :func:`hafast.lib.scriptsecurity.check_script`;
this pass decides who each script runs as, what a verdict does to the model, and what
``hafast -t`` says.  It runs on every load, so the daemon (at start and on each reload)
and ``hafast -t`` see the same result, and a disabled script is simply absent from the
model: nothing at run time can start it.

What keepalived does, and so what this does:

- who: the script's own ``user [group]``; else global ``script_user``; else
  ``keepalived_script`` if that user exists; else root.  With
  ``enable_script_security`` and neither ``script_user`` nor a ``keepalived_script``
  user, or with a ``script_user`` that does not exist, no default can be set and every
  script that needs it is removed ("Unable to set default user ... - removing");
- a script run as root whose path a non-root user or group can write: with
  ``enable_script_security`` it is disabled ("Unsafe permissions found for script
  '...' - disabling."); without it it runs and is reported the same way without
  "- disabling";
- a program that is missing or not executable by the user it runs as is disabled too,
  with or without ``enable_script_security`` (``check_track_script_secure``,
  ``check_misc_script_security``, ``check_notify_script_secure``): a missing
  ``vrrp_script`` gives "Disabling track script NAME since not found/accessible" (a
  config error in keepalived, so ``keepalived -t`` shows it: a warning here); the
  rest keepalived only logs ("Script P cannot be accessed - ...", "WARNING - script
  'P' is not executable ...", "Disabling misc script ... since not found/accessible"),
  and ``keepalived -t`` shows none of it, so these are logged (info) at load, not
  ``hafast -t`` diagnostics;
- a disabled ``vrrp_script`` is taken out of every ``track_script`` that names it (the
  instance goes on without it, it is not put in FAULT); a disabled ``MISC_CHECK`` is
  taken off its real server (which, with no checker left, stays up); a disabled notify,
  quorum or FIFO script is not run;
- without ``enable_script_security``, each side (VRRP, checkers) that has a script on
  disk gets keepalived's "SECURITY VIOLATION - scripts are being executed but
  script_security not enabled." warning.

Left as before: a script whose own ``user`` does not exist is kept (reported when run).
Stricter than keepalived: ``*notify_fifo_script`` is judged as run by root, because
hafast's notifier starts it as itself whatever its user or ``script_user`` says.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from hafast.config import model as m
from hafast.config.tokens import Token
from hafast.lib.scriptsecurity import Sc, ScriptCheck, check_script
from hafast.lib.scriptuser import (
    DEFAULT_USER,
    ScriptIdentity,
    default_script_user,
    own_identity,
    script_identity,
)

log = logging.getLogger("hafast.config")

_NOWHERE = Token("", "<config>", 0, 0)
# keepalived's order of checks (check_vrrp_script_security), so messages come out in it
_INSTANCE_NOTIFY = ("notify_backup", "notify_master", "notify_fault", "notify_stop",
                    "notify", "notify_master_rx_lower_pri")
_GROUP_NOTIFY = ("notify_backup", "notify_master", "notify_fault", "notify_stop", "notify")
_IGNORING: dict[str, str] = {}  # kind -> keepalived's words for an ignored script


def _user(words: Sequence[str] | None) -> tuple[str, str | None] | None:
    if not words:
        return None
    return words[0], words[1] if len(words) > 1 else None


def cmd_str(script: m.Script) -> str:
    """keepalived's ``cmd_str``: each word in single quotes.

    >>> cmd_str(m.Script(("/bin/x", "a b")))
    "'/bin/x' 'a b'"
    """
    return " ".join("'" + a.replace("'", "'\\''") + "'" for a in script.argv)


class ScriptSecurity:
    """One load's pass; :meth:`apply` returns the model with disabled scripts removed."""

    def __init__(
        self,
        gd: m.GlobalDefs,
        scripts: Sequence[tuple[Token, m.Script]],
        warn: Callable[[Token, str], None],
        global_pos: dict[str, Token] | None = None,
    ) -> None:
        self.gd = gd
        self.security = gd.enable_script_security
        self._warn = warn
        self._said: set[tuple[str, int, int, str]] = set()
        self._tokens = {id(script): tok for tok, script in scripts}
        self._pos = global_pos or {}
        self._checks: dict[tuple[str, int, int], tuple[ScriptCheck, bool, str | None]] = {}
        self._side_keys: set[tuple[str, int, int]] = set()
        self.default = default_script_user(gd.script_user)
        self.default_id: ScriptIdentity | None = None
        self._no_default_user = self.default is None and not self.security
        self._default_error = ""
        if self.default is None and self.security:
            self._default_error = (
                f"Unable to set default user {DEFAULT_USER} for script (there is no "
                f"user {DEFAULT_USER}, and with script security on, a script without "
                "its own user must run as it: create the user, or set script_user in "
                "global_defs)"
            )
        else:
            who = _user(self.default)
            try:
                self.default_id = script_identity(*who) if who else own_identity()
            except KeyError as exc:
                self._default_error = f"Error setting global script uid/gid ({exc.args[0]})"
        self._side_flags = Sc(0)
        self._side_first: Token | None = None

    # ------------------------------------------------------------------ reporting
    def warn(self, tok: Token, msg: str) -> None:
        key = (tok.file, tok.line, tok.col, msg)
        if key not in self._said:  # notify_fifo_script is checked by both sides
            self._said.add(key)
            self._warn(tok, msg)

    def _tok(self, script: object) -> Token:
        return self._tokens.get(id(script), _NOWHERE)

    # ------------------------------------------------------------------ verdicts
    def keep(self, script: m.Script | None, own: Sequence[str] | None, removing: str) -> bool:
        """Check one script; False when keepalived would not run it.  ``own`` is the
        script's own user [group] (None: the default); ``removing`` keepalived's words
        for dropping it when the default user cannot be set, a ``str.format`` template
        with ``{argv0}`` and ``{cmd}`` (formatted only then: this runs per script)."""
        return self.verdict(script, own, removing) is None

    def verdict(self, script: m.Script | None, own: Sequence[str] | None,
                removing: str, runs_as: ScriptIdentity | None = None) -> str | None:
        """None: it runs; ``"user"``: no default user for it; ``"insecure"``: refused
        for its permissions (or the file type on its path); ``"missing"``: missing or
        not accessible; ``"noexec"``: not executable by the user it runs as.
        ``runs_as``: who hafast really runs it as, when that is not who keepalived
        would."""
        if script is None or not script.argv:
            return None
        who = _user(own)
        if who is None and script.user:
            who = (script.user, script.group)
        if who is None:
            if self.default_id is None:
                tok = self._tok(script)
                if self._default_error:  # once, as keepalived caches the failure
                    self.warn(self._pos.get("script_user", tok), self._default_error)
                    self._default_error = ""
                self.warn(tok, removing.format(argv0=script.argv[0], cmd=cmd_str(script)))
                return "user"
            if self._no_default_user:
                # keepalived logs it (not a config error) and runs the script as root
                log.info("Script user '%s' does not exist", DEFAULT_USER)
                self._no_default_user = False
            ident = runs_as or self.default_id
        elif runs_as is not None:
            ident = runs_as
        else:
            try:
                ident = script_identity(*who)
            except KeyError:
                return None  # unchanged: reported when it is run
        key = (script.argv[0], ident.uid, ident.gid)
        # 37,000 real servers share a handful of programs: one check each, and the
        # common case (seen on this side, clean) costs two dict lookups
        seen = self._checks.get(key)
        if seen is None:
            check = check_script(*key, security=self.security)
            seen = self._checks[key] = (check, bool(check.log), _refusal(check))
        check, noisy, refused = seen
        if key not in self._side_keys:
            self._side_keys.add(key)
            self._side_flags |= check.flags
            if check.found and self._side_first is None:
                self._side_first = self._tok(script)
        if noisy:
            tok = self._tok(script)
            for line in check.log:
                if line.startswith(("Unsafe permissions", "Wrong file type")):
                    self.warn(tok, self._explain(line, check))
                else:
                    # keepalived logs the rest, each time it checks a script; its -t
                    # does not show them
                    log.info("%s", line)
        return refused

    def _explain(self, line: str, check: ScriptCheck) -> str:
        if not check.insecure:
            return f"{line} ({check.culprit} is {check.why})"
        fix = (f"{check.culprit} is {check.why}: make the script and every directory "
               "above it owned by root and writable by root only, or run it as another "
               "user")
        if self.security:
            return f"{line} ({fix}; hafast does not run it, as keepalived does not)"
        return (f"{line} ({fix}; it still runs because enable_script_security is not "
                "set)")

    def _end_side(self, what: str) -> None:
        flags, first = self._side_flags, self._side_first
        self._side_flags, self._side_first = Sc(0), None
        self._side_keys = set()
        if self.security or not flags & Sc.ISSCRIPT or first is None:
            return
        insecure = " There are insecure scripts." if flags & Sc.INSECURE else ""
        self.warn(first, f"SECURITY VIOLATION - {what} are being executed but "
                         f"script_security not enabled.{insecure} (add "
                         "enable_script_security to global_defs, and keep the scripts "
                         "and their directories writable by root only)")

    def _notify(self, obj: object, fields: Sequence[str], kind: str) -> dict[str, Any]:
        """The notify fields of ``obj`` to clear."""
        out: dict[str, Any] = {}
        removing = _IGNORING.get(kind) or _IGNORING.setdefault(
            kind, f"Failed to set default user for {kind} script {{argv0}} - ignoring")
        for f in fields:
            script = getattr(obj, f, None)
            if script is not None and self.verdict(script, None, removing) is not None:
                out[f] = None
        return out

    def _fifos(self, names: Sequence[str]) -> dict[str, Any]:
        """``*notify_fifo`` and their scripts: a FIFO without its own user needs the
        default user too (keepalived ignores it when that cannot be set)."""
        out: dict[str, Any] = {}
        for name in names:
            fifo = getattr(self.gd, name)
            script = getattr(self.gd, f"{name}_script")
            if fifo and len(fifo) == 1 and self.default_id is None:
                self.warn(self._pos.get(name, _NOWHERE),
                          f"Failed to set default user for {name[:-len('notify_fifo')]}"
                          f" fifo {fifo[0]} - ignoring")
                out[name] = out[f"{name}_script"] = None
            # hafast's Notifier starts FIFO scripts as itself (root), whatever their
            # user or script_user says: judge them as run by root, not as keepalived
            # would run them, so no unsafe script runs as root
            elif script is not None and self.verdict(
                    script, None,
                    f"Failed to set default user for {name}_script {{argv0}} - ignoring",
                    runs_as=own_identity()) is not None:
                out[f"{name}_script"] = None
        return out

    # ------------------------------------------------------------------ the model
    def apply(self, config: m.Config) -> m.Config:
        gd_changes: dict[str, Any] = {}
        vrrp: dict[str, Any] = {}
        if config.vrrp_instances:
            vrrp = self._vrrp(config)
            gd_changes.update(self._fifos(("notify_fifo", "vrrp_notify_fifo")))
            self._end_side("scripts")
        lvs: dict[str, Any] = {}
        if config.virtual_servers:
            lvs = self._lvs(config)
            gd_changes.update(self._fifos(("notify_fifo", "lvs_notify_fifo")))
            self._end_side("check scripts")
        if self.default and not self.gd.script_user:
            # keepalived_script exists: every run-time caller takes the default from here
            gd_changes["script_user"] = self.default
        if not (gd_changes or vrrp or lvs):
            return config
        return replace(config, global_defs=replace(self.gd, **gd_changes), **vrrp, **lvs)

    def _vrrp(self, config: m.Config) -> dict[str, Any]:
        dropped: set[str] = set()
        scripts = []
        changed = False
        for vs in config.vrrp_scripts:
            # the tracker's order: the script line's own user, then the block's user
            own = ((vs.script.user, *((vs.script.group,) if vs.script.group else ()))
                   if vs.script is not None and vs.script.user else vs.user)
            why = self.verdict(vs.script, own,
                               f"Unable to set default user for vrrp script {vs.name} - removing")
            if why is not None:
                if why == "insecure":
                    self.warn(self._tok(vs.script),
                              f"Disabling track script {vs.name} due to insecure")
                elif why == "missing":
                    self.warn(self._tok(vs.script),
                              f"Disabling track script {vs.name} since not found/accessible "
                              f"({vs.script.argv[0] if vs.script else ''} cannot be run: "
                              "install it or correct the path; until then no instance "
                              "tracks it, as in keepalived, so none goes to FAULT for it)")
                dropped.add(vs.name)
                changed = True
                continue
            if vs.user is None and (vs.script is None or vs.script.user is None) \
                    and self.default:
                # the tracker runs it as its own user: give it the default explicitly
                vs = replace(vs, user=self.default)
                changed = True
            scripts.append(vs)
        insts = []
        for inst in config.vrrp_instances:
            f = self._notify(inst, _INSTANCE_NOTIFY, "notify")
            if dropped and any(r.name in dropped for r in inst.track_script):
                f["track_script"] = tuple(r for r in inst.track_script
                                          if r.name not in dropped)
            insts.append(replace(inst, **f) if f else inst)
            changed |= bool(f)
        groups = []
        for sg in config.sync_groups:
            f = self._notify(sg, _GROUP_NOTIFY, "notify")
            if dropped and any(r.name in dropped for r in sg.track_script):
                f["track_script"] = tuple(r for r in sg.track_script if r.name not in dropped)
            groups.append(replace(sg, **f) if f else sg)
            changed |= bool(f)
        if not changed:
            return {}
        return {"vrrp_scripts": tuple(scripts), "vrrp_instances": tuple(insts),
                "sync_groups": tuple(groups)}

    def _lvs(self, config: m.Config) -> dict[str, Any]:
        out = []
        changed = False
        # id(checker tuple) -> it has no MISC_CHECK.  Real servers checked alike share
        # one tuple (hafast.config.build_lvs): each is looked at once.  ``config`` keeps
        # every tuple alive meanwhile, so no id is reused.
        plain: dict[int, bool] = {}
        for vs in config.virtual_servers:
            f = self._notify(vs, ("quorum_up", "quorum_down"), "quorum")
            rss = []
            rs_changed = False
            for rs in vs.real_servers:
                no_misc = plain.get(id(rs.checkers))
                if no_misc is None:
                    no_misc = plain[id(rs.checkers)] = not any(
                        type(c) is m.MiscCheck for c in rs.checkers)
                if no_misc and rs.notify_up is None and rs.notify_down is None:
                    rss.append(rs)  # most of a farm: nothing here to check
                    continue
                g = self._notify(rs, ("notify_up", "notify_down"), "real server notify")
                if not no_misc:
                    checkers = tuple(c for c in rs.checkers if self._keep_checker(c))
                    if len(checkers) != len(rs.checkers):
                        g["checkers"] = checkers
                if g:
                    rs, rs_changed = replace(rs, **g), True
                rss.append(rs)
            if rs_changed:
                f["real_servers"] = tuple(rss)
            if f:
                vs, changed = replace(vs, **f), True
            out.append(vs)
        return {"virtual_servers": tuple(out)} if changed else {}

    def _keep_checker(self, checker: m.Checker) -> bool:
        if not isinstance(checker, m.MiscCheck) or checker.misc_path is None:
            return True
        script = checker.misc_path
        why = self.verdict(script, checker.user,
                           "Unable to set default user for misc script {cmd} - removing")
        if why is None:
            return True
        if why == "insecure":
            self.warn(self._tok(script),
                      f"Disabling misc script {cmd_str(script)} due to insecure")
        elif why == "missing":
            log.info("Disabling misc script %s since not found/accessible", cmd_str(script))
        return False


def _refusal(check: ScriptCheck) -> str | None:
    """The verdict on a checked program, in keepalived's order of tests."""
    if check.inhibited:
        return "insecure"
    if check.missing:
        return "missing"
    if check.disabled:
        return "noexec"
    return None


def secure_scripts(
    config: m.Config,
    scripts: Sequence[tuple[Token, m.Script]],
    warn: Callable[[Token, str], None],
    global_pos: dict[str, Token] | None = None,
) -> m.Config:
    """``config`` as keepalived would run it: scripts that must not run removed, the
    default script user made explicit; problems go to ``warn(token, message)``.

    >>> said = []
    >>> cfg = m.Config(global_defs=m.GlobalDefs(script_user=("root",)))
    >>> secure_scripts(cfg, [], lambda t, msg: said.append(msg)) == cfg, said
    (True, [])
    """
    return ScriptSecurity(config.global_defs, scripts, warn, global_pos).apply(config)
