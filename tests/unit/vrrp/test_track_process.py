"""vrrp_track_process decisions (hafast.vrrp.track_process): matching as keepalived
2.2.7's check_params(), quorum crossings and their fork/terminate debounce, and the
scan bookkeeping (pid reuse, zombies, exec after fork, the read budget)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from hafast.config.model import TrackProcess
from hafast.vrrp.track_process import (
    RECHECK_MAX_SCANS,
    Pattern,
    ProcessTable,
    ProcInfo,
    Quorum,
    parse_stat,
)
from hafast.vrrp.tracking import contribution

S = 1_000_000


def info(comm: str, *argv: str, ppid: int = 1, start: int = 1, state: str = "S") -> ProcInfo:
    return ProcInfo(comm, state, ppid, start, b"".join(a.encode() + b"\0" for a in argv))


# --------------------------------------------------------------------------- matching


def test_name_match_is_exact_on_comm() -> None:
    p = Pattern.of(TrackProcess("t", process=("ssh",)))
    assert p.matches(info("ssh"))
    assert not p.matches(info("sshd"))  # keepalived: pgrep '^ssh$', not pgrep ssh
    assert not p.matches(info("ssh", state="Z"))  # zombies do not run


def test_full_command_matches_argv0_not_comm() -> None:
    p = Pattern.of(TrackProcess("t", process=("/usr/sbin/haproxy",), full_command=True))
    assert p.matches(info("haproxy", "/usr/sbin/haproxy", "-f", "/etc/haproxy.cfg"))
    assert not p.matches(info("/usr/sbin/haproxy"))  # empty cmdline: a kernel thread


def test_parameters_imply_an_exact_full_command_match() -> None:
    p = Pattern.of(TrackProcess("t", process=("sleep", "60")))
    assert (p.param_match, p.full_command) == ("exact", True)
    assert p.matches(info("sleep", "sleep", "60"))
    assert not p.matches(info("sleep", "sleep", "60", "x"))
    assert not p.matches(info("sleep", "sleep", "600"))


def test_param_match_without_parameters() -> None:
    # 'initial'/'partial' with no parameters: any parameters do
    p = Pattern.of(TrackProcess("t", process=("nginx",), param_match="partial"))
    assert p.full_command
    assert p.matches(info("nginx", "nginx")) and p.matches(info("nginx", "nginx", "-g"))


def _reference(kind: str, want: list[str], got: list[str]) -> bool:
    """keepalived's check_params() said with argv lists instead of NUL-joined bytes."""
    if kind == "exact":
        return got == want
    if not want:
        return True
    if kind == "partial":
        return got[: len(want)] == want
    n = len(want)
    return got[: n - 1] == want[: n - 1] and len(got) >= n and got[n - 1].startswith(want[-1])


_word = st.text(alphabet="ab-", min_size=0, max_size=3)


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(["exact", "partial", "initial"]),
       want=st.lists(_word.filter(bool), min_size=1, max_size=3),
       got=st.lists(_word.filter(bool), max_size=4))
def test_params_match_as_keepalived(kind: str, want: list[str], got: list[str]) -> None:
    p = Pattern.of(TrackProcess("t", process=("cmd", *want), param_match=(
        None if kind == "exact" else kind)))
    assert p.matches(info("cmd", "cmd", *got)) == _reference(kind, want, got)


def test_parse_stat_takes_fields_after_the_last_paren() -> None:
    got = parse_stat("7 (a) b) Z 3 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0")
    assert got is not None
    assert (got.comm, got.state, got.ppid, got.start, got.running) == ("a) b", "Z", 3, 99, False)
    assert parse_stat("7 (x) S 1") is None


# --------------------------------------------------------------------------- quorum


def q(**kw: int) -> Quorum:
    spec = TrackProcess("t", process=("p",), **kw)  # type: ignore[arg-type]
    out = Quorum.of(spec)
    out.up = out.in_range
    return out


def test_crossings_without_delay_act_at_once() -> None:
    t = q(quorum=2, quorum_max=3)
    assert t.added(0, False) is None  # 1 < quorum
    assert t.added(0, False) == ("t", True)  # 2
    assert t.added(0, False) is None  # 3 still in range
    assert t.added(0, False) == ("t", False)  # 4 > quorum_max
    assert t.removed(0, True) == ("t", True)
    assert t.removed(0, True) is None
    assert t.removed(0, True) == ("t", False)


def test_quorum_max_zero_means_down_while_any_runs() -> None:
    t = q(quorum_max=0)
    assert (t.quorum, t.up) == (0, True)
    assert t.added(0, False) == ("t", False)
    assert t.removed(0, True) == ("t", True)


def test_terminate_delay_absorbs_a_restart() -> None:
    t = q(terminate_delay_us=2 * S)
    t.added(0, False)
    assert t.up
    assert t.removed(0, True) is None and t.timer == "terminate"
    assert t.added(S, False) is None  # restarted within the delay: cancelled, no flap
    assert t.timer is None and t.up


def test_terminate_delay_then_loss() -> None:
    t = q(delay_us=2 * S)  # 'delay' sets both
    t.added(0, False)
    t.removed(0, True)
    assert t.expire(S) is None
    assert t.expire(2 * S) == ("t", False)


def test_fork_delay_applies_to_forks_only() -> None:
    t = q(quorum=2, fork_delay_us=S)
    assert t.added(0, False) is None
    assert t.added(0, True) is None and t.timer == "fork"  # a counted process forked
    assert t.expire(S) == ("t", True)
    u = q(quorum=2, fork_delay_us=S)
    u.added(0, False)
    assert u.added(0, False) == ("t", True)  # an exec: at once


def test_exec_away_is_not_debounced() -> None:
    t = q(terminate_delay_us=S)
    t.added(0, False)
    assert t.removed(0, False) == ("t", False)  # renamed, not ended


@settings(max_examples=300, deadline=None)
@given(quorum=st.integers(1, 3), extra=st.integers(0, 3),
       fork=st.sampled_from([0, S]), term=st.sampled_from([0, S]),
       steps=st.lists(st.tuples(st.sampled_from(["fork", "exec", "exit", "rename", "tick"]),
                                st.integers(0, 2 * S)), max_size=40))
def test_settled_tracker_agrees_with_the_count(quorum: int, extra: int, fork: int, term: int,
                                               steps: list[tuple[str, int]]) -> None:
    """Whatever happens, once no timer runs the tracker says what the count says, and a
    tracker without delays never disagrees with it."""
    t = q(quorum=quorum, quorum_max=quorum + extra, fork_delay_us=fork, terminate_delay_us=term)
    now = 0
    for what, dt in steps:
        now += dt
        if what in ("fork", "exec"):
            t.added(now, what == "fork")
        elif what in ("exit", "rename") and t.count:
            t.removed(now, what == "exit")
        else:
            t.expire(now)
        if t.timer is None:
            assert t.up == t.in_range
    t.expire(now + 2 * S)
    assert t.timer is None and t.up == t.in_range


def test_weight_and_reverse_follow_keepalived() -> None:
    # process_update_track_process_status(): weight 0 -> FAULT unless quorum; reverse
    # swaps; a weight moves the priority by its size in the quorum's direction
    assert contribution(False, 0) == (True, 0)
    assert contribution(True, 0, reverse=True) == (True, 0)
    assert contribution(True, 10) == (False, 10) and contribution(False, -10) == (False, -10)
    # reverse: held quorum costs the weight (vrrp_track.c: weight * multiplier -1)
    assert contribution(True, 10, reverse=True) == (False, -10)
    assert contribution(False, 10, reverse=True) == (False, 0)


# --------------------------------------------------------------------------- table


def table(**kw: object) -> ProcessTable:
    return ProcessTable([TrackProcess("t", process=("p",), **kw)])  # type: ignore[arg-type]


def test_initial_scan_then_pid_events() -> None:
    t = table(quorum=2)
    t.initial({10: info("p"), 11: info("p"), 12: info("bash")})
    assert t.quorums["t"].up and t.matched(10) and not t.matched(12)
    assert t.exited(10, 0) == [("t", False)]
    assert t.exited(10, 0) == []  # twice (pidfd, then the scan): counted once
    assert t.seen(13, info("p", start=5), 0) == [("t", True)]


def test_a_fork_is_matched_after_its_exec() -> None:
    """systemd's child is '(p)' until it execs: a pid read too early is read again."""
    t = table()
    t.initial({})
    plan = t.plan([20])
    assert plan.read == [20]
    assert t.seen(20, info("(p)"), 0) == []
    reads = []
    for _ in range(5):
        plan = t.plan([20])
        reads.append(20 in plan.read)
        if plan.read:
            ch = t.seen(20, info("p"), 0)
            assert ch == [("t", True)]
            break
    assert reads[0]  # the next scan already


def test_rechecks_back_off_to_a_bound() -> None:
    t = table()
    t.initial({})
    t.plan([30])
    t.seen(30, info("bash"), 0)
    read_at = []
    for n in range(200):
        plan = t.plan([30])
        if 30 in plan.read:
            read_at.append(n)
            t.seen(30, info("bash"), 0)
    gaps = [b - a for a, b in itertools.pairwise(read_at)]
    assert gaps[:4] == [2, 4, 8, 16] and max(gaps) == RECHECK_MAX_SCANS


def test_pid_reuse_and_zombies() -> None:
    t = table()
    t.initial({40: info("p", start=1)})
    assert t.seen(40, info("p", start=1, state="Z"), 0) == [("t", False)]  # unreaped
    assert t.seen(40, info("p", start=2), 0) == [("t", True)]  # a new process, same pid
    assert t.plan([]).gone == [40]
    assert t.exited(40, 0) == [("t", False)]


def test_unwatched_counted_pids_are_read_every_scan() -> None:
    t = table()
    t.initial({50: info("p")})
    for _ in range(3):
        assert t.plan([50], watched=()).read == [50]
        t.seen(50, info("p"), 0)
    assert t.plan([50], watched={50}).read == []


def test_fork_of_a_counted_process_waits_fork_delay() -> None:
    t = table(quorum=2, fork_delay_us=S)
    t.initial({60: info("p")})
    t.plan([60, 61])
    assert t.seen(61, info("p", ppid=60), 0) == []
    assert t.deadline_us() == S
    assert t.expire(S) == [("t", True)]


def test_a_thousand_children_cost_a_bounded_read_each_scan() -> None:
    t = table(quorum_max=1)
    t.initial({1: info("p")})
    pids = list(range(2, 1002))
    plan = t.plan([1, *pids], watched={1}, budget=100)
    assert len(plan.read) == 100 and plan.deferred == 900
    for pid in plan.read:
        t.seen(pid, info("p", ppid=1), 0)
    assert t.quorums["t"].count == 101 and not t.quorums["t"].up
    plan = t.plan([1, *pids], budget=100)
    assert len(plan.read) == 100 and 2 not in plan.read  # the next hundred


def test_reload_adds_trackers_without_touching_the_old() -> None:
    t = table()
    t.initial({70: info("p")})
    t.quorums["t"].count = 1
    fresh = t.add([TrackProcess("t", process=("other",)), TrackProcess("u", process=("q",))])
    assert fresh == ["u"]
    t.initial({70: info("p"), 71: info("q")}, fresh)
    assert t.quorums["u"].up and t.quorums["t"].count == 1
    assert t.exited(71, 0) == [("u", False)]


def test_quorum_max_zero_loads_as_keepalived() -> None:
    """keepalived -t accepts 'quorum_max 0' (quorum then 0) and rejects it with a quorum
    above 1 ('quorum_max is less than quorum')."""
    from hafast.config.loader import load_text

    def load(body: str) -> tuple[list[str], tuple[TrackProcess, ...]]:
        r = load_text(f"vrrp_track_process P {{ process p\n {body} }}\n")
        return [d.message for d in r.diagnostics if d.severity == "error"], r.config.track_processes

    errors, (spec,) = load("quorum_max 0")
    assert errors == []
    t = Quorum.of(spec)
    assert (t.quorum, t.quorum_max, t.in_range) == (0, 0, True)
    errors, _ = load("quorum 2\n quorum_max 0")
    assert errors == ["quorum_max 0 is below quorum 2"]


def test_param_match_alone_is_an_exact_match_with_no_parameters() -> None:
    """keepalived 2.2.7's vrrp_tprocess_match_handler: 'param_match' with no word sets
    PARAM_MATCH_EXACT and full_command, so without parameters on the process line only a
    process with no parameters matches (check_params); with them, exactly those."""
    from hafast.config.loader import load_text

    r = load_text("vrrp_track_process A { process sleep\n param_match }\n"
                  "vrrp_track_process B { param_match\n process sleep 60 }\n")
    assert r.diagnostics == []
    a, b = (Pattern.of(spec) for spec in r.config.track_processes)
    assert (a.param_match, a.full_command, a.params) == ("exact", True, None)
    assert a.matches(info("sleep", "sleep"))
    assert not a.matches(info("sleep", "sleep", "60"))
    assert not a.matches(info("sleep"))  # no cmdline: a kernel thread
    assert (b.param_match, b.params) == ("exact", b"60\0")
    assert b.matches(info("sleep", "sleep", "60"))
    assert not b.matches(info("sleep", "sleep"))
    # a word keepalived does not take stays an error
    bad = load_text("vrrp_track_process C { process sleep\n param_match exact }\n")
    assert [d.message for d in bad.errors] == [
        "'exact' is not one of initial|partial (expected: param_match <[initial|partial]>)"]
