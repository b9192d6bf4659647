"""The farm lab: real servers in namespaces behind one nginx, faults, teardown.

Needs root, nginx and nft. Every farm here is named after this test process's PID
so concurrent runs never collide, and every fixture tears down even on failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hafast.lab import (
    BIG_PATH,
    FIXED_BODY,
    FIXED_PATH,
    KINDS,
    Farm,
    FaultError,
    Faults,
    Registry,
    big_body,
    body_for,
    changed_body_for,
    http_get,
    list_netns,
    md5_hex,
)
from hafast.lab import farm as farm_mod
from hafast.lab.__main__ import parse_addresses
from hafast.lab.netns import NetnsError, inside, netns_pids, pid_alive, run_in
from tests.conftest import KEEPALIVED_GENHASH, REPO, require_root, require_tool

pytestmark = [pytest.mark.root, pytest.mark.netns]

PREFIX = f"hlt{os.getpid()}"


def _prerequisites() -> None:
    require_root()
    require_tool("nginx")
    require_tool("nft")
    require_tool("nsenter")


def _gone(farm: Farm, pids: list[int]) -> None:
    """Nothing of ``farm`` is left: namespaces, processes, folder."""
    names = set(list_netns())
    assert farm.server_ns not in names
    assert not any(d.ns in names for d in farm.directors if d.owned)
    assert not [p for p in pids if pid_alive(p)], "nginx processes survived teardown"
    assert not farm.lab_dir.exists()
    # The nft table lived only in the server namespace; none leaked to the host.
    assert farm.faults.table not in run_in(None, ["nft", "list", "tables"]).stdout


@pytest.fixture(scope="module")
def farm() -> Iterator[Farm]:
    _prerequisites()
    lab = Farm(1000, name=f"{PREFIX}a")
    try:
        lab.build()
        yield lab
    finally:
        lab.close()


@pytest.fixture
def clean_faults(farm: Farm) -> Iterator[Farm]:
    yield farm
    farm.faults.recover()


def _sample(addrs: list[str], n: int = 40) -> list[str]:
    step = max(1, len(addrs) // n)
    return sorted({*addrs[::step], addrs[0], addrs[-1]}, key=addrs.index)


# -- the farm answers ------------------------------------------------------------


def test_each_body_names_its_address(farm: Farm) -> None:
    sample = _sample(farm.addresses)
    replies = farm.fetch_many(sample)
    assert [(r.status, r.body) for r in replies] == [(200, body_for(a)) for a in sample]
    assert len({md5_hex(r.body) for r in replies}) == len(sample)


def test_fixed_and_big_paths(farm: Farm) -> None:
    fixed = farm.fetch_many(farm.addresses[:3], FIXED_PATH)
    assert {(r.status, r.body) for r in fixed} == {(200, FIXED_BODY)}
    big = farm.fetch(farm.addresses[7], BIG_PATH)
    assert big.status == 200
    assert md5_hex(big.body) == md5_hex(big_body())


def test_range_is_exact(farm: Farm) -> None:
    # The address after the last server is not served (the routes cover the range).
    last = farm.addresses[-1]
    after = ".".join([*last.split(".")[:3], str(int(last.split(".")[3]) + 1)])
    assert farm.fetch(after, timeout=1.0).error is not None
    assert farm.fetch(str(farm.addresses[0]).rsplit(".", 1)[0] + ".0", timeout=1.0).error


def test_nginx_is_ours(farm: Farm) -> None:
    cmdline = Path(f"/proc/{farm.nginx_pid}/cmdline").read_bytes()
    assert str(farm.lab_dir / "nginx.conf").encode() in cmdline
    assert farm.nginx_pid in netns_pids(farm.server_ns)
    assert len(farm.nginx_pids()) == 1 + farm.workers
    assert farm.nginx_rss_kib() > 0


# -- faults ----------------------------------------------------------------------


def _expect(kind: str | None, addr: str, reply: farm_mod.HttpReply) -> None:
    if kind is None:
        assert (reply.status, reply.body) == (200, body_for(addr)), reply
    elif kind == "drop":
        assert reply.error == "timeout", reply
    elif kind == "reject":
        assert reply.error in ("refused", "reset"), reply
    elif kind == "http500":
        assert reply.status == 500, reply
    elif kind == "body":
        assert (reply.status, reply.body) == (200, changed_body_for(addr)), reply
        assert md5_hex(reply.body) != md5_hex(body_for(addr))
    elif kind == "slow":
        # Within a checker-like timeout nothing complete arrives.
        assert reply.error == "timeout", reply
    else:  # pragma: no cover - a new kind needs its expectation here
        raise AssertionError(kind)


@pytest.mark.parametrize("kind", KINDS)
def test_fault_hits_exactly_the_given_addresses(clean_faults: Farm, kind: str) -> None:
    farm = clean_faults
    a = farm.addresses
    targets = [a[100], a[102], a[999]]
    neighbours = [a[99], a[101], a[103], a[998]]
    seconds = farm.faults.apply(targets, kind)
    assert seconds > 0
    assert farm.faults.kernel_sets()[kind] == sorted(targets)
    timeout = 0.6
    for addr, reply in zip(targets, farm.fetch_many(targets, timeout=timeout), strict=True):
        _expect(kind, addr, reply)
    for addr, reply in zip(neighbours, farm.fetch_many(neighbours, timeout=timeout), strict=True):
        _expect(None, addr, reply)

    farm.faults.recover(targets)
    assert farm.faults.kernel_sets()[kind] == []
    for addr, reply in zip(targets, farm.fetch_many(targets, timeout=2.0), strict=True):
        _expect(None, addr, reply)


def test_fault_applies_to_the_fixed_path_too(clean_faults: Farm) -> None:
    farm = clean_faults
    addr = farm.addresses[200]
    farm.faults.apply([addr], "body")
    changed = farm.fetch(addr, FIXED_PATH)
    assert changed.status == 200 and changed.body != FIXED_BODY
    assert farm.fetch(farm.addresses[201], FIXED_PATH).body == FIXED_BODY


def test_a_new_kind_replaces_the_old(clean_faults: Farm) -> None:
    farm = clean_faults
    addr = farm.addresses[300]
    farm.faults.apply([addr], "drop")
    farm.faults.apply([addr], "http500")
    sets = farm.faults.kernel_sets()
    assert sets["drop"] == [] and sets["http500"] == [addr]
    assert farm.fetch(addr).status == 500
    assert farm.faults.active == {addr: "http500"}


def test_many_addresses_in_one_step(clean_faults: Farm) -> None:
    farm = clean_faults
    targets = farm.addresses[400:900]
    farm.faults.apply(targets, "reject")
    assert len(farm.faults.kernel_sets()["reject"]) == 500
    sample = _sample(targets, 10)
    assert all(r.error for r in farm.fetch_many(sample, timeout=1.0))
    assert farm.fetch(farm.addresses[399]).status == 200
    farm.faults.recover()
    assert all(r.status == 200 for r in farm.fetch_many(sample))


def test_unknown_fault_kind(farm: Farm) -> None:
    with pytest.raises(FaultError, match="unknown fault kind"):
        farm.faults.apply([farm.addresses[0]], "melt")
    with pytest.raises(FaultError, match="not an IPv4 address"):
        farm.faults.apply(["10.201.0.x"], "drop")


# -- topology --------------------------------------------------------------------


def test_bridge_serves_several_directors() -> None:
    _prerequisites()
    lab = Farm(64, name=f"{PREFIX}b", bridge=True, workers=1)
    with Registry() as mine:
        lent = mine.add_netns(f"{PREFIX}b-mine")
        with lab:
            second = lab.add_director(f"{PREFIX}b-dir2")
            client = lab.add_director(lent, create=False, dev="farm0")
            assert len({d.address for d in lab.directors}) == 3
            assert farm_mod.load_state(lab.name)["namespaces"] == [  # type: ignore[index]
                lab.server_ns, lab.director_ns, second.ns,
            ]
            for d in lab.directors:
                reply = lab.fetch(lab.addresses[5], ns=d.ns)
                assert reply.body == body_for(lab.addresses[5])
            lab.faults.apply([lab.addresses[5]], "http500")
            assert lab.fetch(lab.addresses[5], ns=client.ns).status == 500
            pids = lab.nginx_pids()
        _gone(lab, pids)
        # The lent namespace survives the farm, without what the farm put in it.
        assert lent in list_netns()
        assert "farm0" not in run_in(lent, ["ip", "-o", "link"]).stdout
    assert lent not in list_netns()


def test_second_director_needs_a_bridge(farm: Farm) -> None:
    with pytest.raises(NetnsError, match="bridge"):
        farm.add_director(f"{PREFIX}nope")
    assert f"{PREFIX}nope" not in list_netns()


def test_16384_servers() -> None:
    _prerequisites()
    lab = Farm(16384, name=f"{PREFIX}c")
    with lab:
        sample = _sample(lab.addresses, 30)
        replies = lab.fetch_many(sample)
        assert [r.body for r in replies] == [body_for(a) for a in sample]
        lab.faults.apply([lab.addresses[16383]], "drop")
        assert lab.fetch(lab.addresses[16383], timeout=0.5).error == "timeout"
        assert lab.fetch(lab.addresses[16382]).status == 200
        print(f"\nfarm of 16384 built in {lab.build_seconds:.3f} s")
        pids = lab.nginx_pids()
    _gone(lab, pids)


# -- teardown --------------------------------------------------------------------


def test_teardown_leaves_nothing_and_is_idempotent() -> None:
    _prerequisites()
    lab = Farm(10, name=f"{PREFIX}d", workers=1).build()
    pids = lab.nginx_pids()
    assert all(pid_alive(p) for p in pids)
    lab.faults.apply([lab.addresses[1]], "slow")
    lab.close()
    _gone(lab, pids)
    lab.close()
    _gone(lab, pids)


def test_a_crashed_lab_is_cleaned_up_by_the_next() -> None:
    _prerequisites()
    name = f"{PREFIX}e"
    old = Farm(10, name=name, workers=1).build()
    old_pids = old.nginx_pids()
    old.detach()  # as if the process had died: nothing torn down
    assert all(pid_alive(p) for p in old_pids)
    new = Farm(20, name=name, workers=1)
    with new:
        assert not [p for p in old_pids if pid_alive(p)]
        assert new.fetch(new.addresses[15]).body == body_for(new.addresses[15])
        new_pids = new.nginx_pids()
    _gone(new, new_pids)


def test_a_failed_build_undoes_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    _prerequisites()
    monkeypatch.setattr(farm_mod, "NGINX", "/bin/false")
    lab = Farm(10, name=f"{PREFIX}f")
    with pytest.raises(NetnsError, match="nginx exited"):
        lab.build()
    _gone(lab, [])


def test_registry_undoes_in_reverse_and_reports_failures() -> None:
    done: list[str] = []
    reg = Registry()
    reg.defer("one", lambda: done.append("one"))
    reg.defer("broken", lambda: 1 / 0)
    reg.defer("two", lambda: done.append("two"))
    with pytest.raises(NetnsError, match="broken"):
        reg.close()
    assert done == ["two", "one"]
    reg.close()  # nothing left to undo
    assert done == ["two", "one"]


# -- command line ----------------------------------------------------------------


def test_parse_addresses() -> None:
    assert parse_addresses("10.0.0.1,10.0.0.5-10.0.0.7") == [
        "10.0.0.1", "10.0.0.5", "10.0.0.6", "10.0.0.7",
    ]
    with pytest.raises(FaultError):
        parse_addresses("10.0.0.9-10.0.0.1")


def test_command_line_up_fault_down() -> None:
    _prerequisites()
    name = f"{PREFIX}g"

    def lab(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hafast.lab", "--name", name, *args],
            cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
        )

    try:
        up = lab("up", "100")
        assert up.returncode == 0, up.stderr
        state = farm_mod.load_state(name)
        assert state is not None
        pid = int(state["nginx_pid"])
        assert lab("get", "10.201.0.9").stdout == "200 rs 10.201.0.9\n"
        assert lab("fault", "10.201.0.9-10.201.0.10", "http500").returncode == 0
        assert lab("get", "10.201.0.10").stdout.startswith("500 ")
        assert lab("get", "10.201.0.11").stdout.startswith("200 ")
        assert lab("recover", "all").returncode == 0
        assert lab("get", "10.201.0.10").stdout.startswith("200 ")
    finally:
        down = lab("down")
    assert down.returncode == 0, down.stderr
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid)
    assert not [n for n in list_netns() if n.startswith(name)]
    assert farm_mod.load_state(name) is None


def test_inside_moves_this_thread_and_back(farm: Farm) -> None:
    home = os.readlink("/proc/thread-self/ns/net")
    with inside(farm.director_ns):
        assert os.readlink("/proc/thread-self/ns/net") != home
        reply = http_get(farm.addresses[3])
    assert os.readlink("/proc/thread-self/ns/net") == home
    assert reply.body == body_for(farm.addresses[3])


@pytest.mark.parametrize("backend", ["library", "program"])
def test_both_nft_backends(clean_faults: Farm, backend: str) -> None:
    farm = clean_faults
    addr = farm.addresses[500]
    faults = Faults(farm.server_ns, backend=backend, active=farm.faults.active)
    faults.apply([addr], "http500")
    assert farm.fetch(addr).status == 500
    assert farm.fetch(farm.addresses[501]).status == 200
    faults.recover([addr])
    assert farm.fetch(addr).status == 200
    with pytest.raises(NetnsError, match="nft"):
        faults._nft("add element inet hafast_lab f_nothing { 10.0.0.1 }\n")


def test_genhash_agrees_with_the_farm(farm: Farm) -> None:
    # keepalived's own genhash, run from the director namespace, is the reference
    # digest a real keepalived.conf would carry.
    genhash = require_tool(KEEPALIVED_GENHASH)
    addr = farm.addresses[42]
    for path, body in [("/", body_for(addr)), (FIXED_PATH, FIXED_BODY), (BIG_PATH, big_body())]:
        out = run_in(farm.director_ns, [genhash, "-s", addr, "-p", "80", "-u", path]).stdout
        assert out.split()[-1] == md5_hex(body), (path, out)


def test_tls_farm_and_its_faults() -> None:
    _prerequisites()
    require_tool("openssl")
    lab = Farm(32, name=f"{PREFIX}t", tls=True, workers=1)
    with lab:
        a = lab.addresses
        replies = lab.fetch_many(a[:4], tls=True)
        assert [(r.status, r.body) for r in replies] == [(200, body_for(x)) for x in a[:4]]
        lab.faults.apply([a[1]], "http500")
        lab.faults.apply([a[2]], "body")
        replies = lab.fetch_many(a[:4], tls=True)
        assert [r.status for r in replies] == [200, 500, 200, 200]
        assert replies[2].body == changed_body_for(a[2])
        assert lab.fetch(a[1]).status == 500  # plain HTTP too
        lab.faults.recover()
        assert lab.fetch(a[1], tls=True).status == 200
        pids = lab.nginx_pids()
    _gone(lab, pids)


def test_an_orphan_of_a_killed_owner_is_reaped() -> None:
    _prerequisites()
    name = f"{PREFIX}o"
    # The owner is a child process killed before it could tear anything down.
    code = (
        "import os, sys; from hafast.lab import Farm; "
        f"f = Farm(8, name={name!r}, workers=1).build(); "
        "print(f.nginx_pid, flush=True); os.kill(os.getpid(), 9)"
    )
    child = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                           text=True, timeout=60, check=False)
    pid = int(child.stdout.split()[0])
    try:
        assert pid_alive(pid) and f"{name}-srv" in list_netns()
        assert name in farm_mod.cleanup_orphans()
        assert not pid_alive(pid) and f"{name}-srv" not in list_netns()
    finally:
        farm_mod.cleanup_stale(name)


def test_ping_follows_drop(clean_faults: Farm) -> None:
    farm = clean_faults
    addr = farm.addresses[600]
    fping = require_tool("fping")
    argv = [fping, "-c1", "-t500", addr]
    assert run_in(farm.director_ns, argv, check=False).returncode == 0
    farm.faults.apply([addr], "drop")
    assert run_in(farm.director_ns, argv, check=False).returncode != 0


def test_command_line_measure() -> None:
    _prerequisites()
    out = subprocess.run(
        [sys.executable, "-m", "hafast.lab", "--name", f"{PREFIX}m", "measure", "50",
         "--repeat", "2", "--burst", "10", "--workers", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout.splitlines()[-1])
    assert row["servers"] == 50 and row["fault_seen"] is True
    assert (row["sweep_all_ok"], row["sweep_all_failed"]) == (50, 0)
    assert set(row["apply_one_median_ms"]) == set(KINDS)
    assert f"{PREFIX}m-srv" not in list_netns()
