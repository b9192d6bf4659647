"""The suite's readers of tool output, fed canned outputs of the real tools."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.suite import anchors
from benchmarks.suite.anchors import ToolError

WRK = """\
Running 3s test @ http://10.201.0.1/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    10.21ms    2.10ms  31.02ms   88.12%
    Req/Sec     6.12k   401.33     6.80k    73.33%
  18234 requests in 3.00s, 2.71MB read
  Socket errors: connect 0, read 12, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:   6077.91
Transfer/sec:    925.13KB
"""

WRK_MS = """\
  412 requests in 500.00ms, 60.00KB read
Requests/sec:    824.00
"""

FPING = """\
10.201.0.1 : xmt/rcv/%loss = 3/3/0%, min/avg/max = 0.031/0.040/0.052
10.201.0.2 : xmt/rcv/%loss = 3/2/33%, min/avg/max = 0.030/0.035/0.041
10.201.0.3 : xmt/rcv/%loss = 3/0/100%
"""

HAPROXY_STAT = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,"
    "wretr,wredis,status,weight,act,bck,chkfail,chkdown\n"
) + """\
farm,s0,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,0,0
farm,s1,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,4,1
farm,s2,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP 1/2,1,1,0,1,0
farm,BACKEND,0,0,0,0,400,0,0,0,0,0,,0,0,0,0,UP,2,2,0,,1

"""

OPENSSL = """\
Doing md5 for 1s on 16384 size blocks: 51658 md5's in 1.00s
version: 3.0.17
built on: Mon Sep 30 00:00:00 2026 UTC
options: bn(64,64)
compiler: gcc -fPIC -pthread -m64 -Wa,--noexecstack -Wall
CPUINFO: OPENSSL_ia32cap=0xfffa3203078bffff:0x405fc6f1bf07ab
The 'numbers' are in 1000s of bytes per second processed.
type          16384 bytes
md5             846365.08k
"""

OPENSSL_MULTI = """\
type             16 bytes     64 bytes    256 bytes   1024 bytes   8192 bytes  16384 bytes
md5              96221.36k   256412.61k   517020.56k   720142.68k   826785.15k   836612.91k
sha1            100000.00k   200000.00k   300000.00k   400000.00k   500000.00k   600000.00k
"""

# /proc/PID/stat of nginx, with a comm holding a space and a parenthesis
PROC_STAT = ("3151 (ngi nx) x) S 3150 3150 3150 0 -1 4194624 200 0 0 0 "
             "150 50 3 1 20 0 1 0 12345 11112222 900 18446744073709551615 1 1 0 0 0 0 0 "
             "4096 0 0 0 0 17 1 0 0 0 0 0")


def test_wrk_summary() -> None:
    got = anchors.parse_wrk(WRK)
    assert got == {"rate": 6077.91, "requests": 18234.0, "seconds": 3.0, "errors": 15.0,
                   "non2xx": 7.0}


def test_wrk_milliseconds_and_no_errors() -> None:
    got = anchors.parse_wrk(WRK_MS)
    assert got["seconds"] == 0.5
    assert got["errors"] == 0.0 and got["non2xx"] == 0.0


def test_wrk_unreadable() -> None:
    with pytest.raises(ToolError):
        anchors.parse_wrk("unable to connect to 10.201.0.1:80 Connection refused\n")


def test_fping_summary_counts_lost_targets() -> None:
    assert anchors.parse_fping_summary(FPING) == {"targets": 3, "sent": 9, "received": 5}


def test_fping_ignores_other_lines() -> None:
    text = "ICMP Host Unreachable from 10.200.0.1\n" + FPING.splitlines()[0]
    assert anchors.parse_fping_summary(text)["targets"] == 1


def test_haproxy_stat_rows_and_servers() -> None:
    rows = anchors.parse_haproxy_stat(HAPROXY_STAT)
    assert [r["svname"] for r in rows] == ["s0", "s1", "s2", "BACKEND"]
    # "UP 1/2" (going down) still counts as up; the BACKEND row is not a server
    assert anchors.haproxy_servers(rows, "farm") == {"servers": 3, "up": 2, "down": 1,
                                                     "chkfail": 5}
    assert anchors.haproxy_servers(rows, "other")["servers"] == 0


def test_haproxy_stat_rejects_non_csv() -> None:
    with pytest.raises(ToolError):
        anchors.parse_haproxy_stat("Unknown command. Please enter one of the following\n")


@pytest.mark.parametrize(("line", "want"), [
    ("[WARNING]  (4242) : Server farm/s17 is DOWN, reason: Layer4 connection problem, "
     "info: \"Connection refused\", check duration: 0ms. 999 active and 0 backup servers left.",
     ("farm", "s17", "DOWN")),
    ("Server farm/s3 is UP, reason: Layer7 check passed, code: 200, check duration: 1ms.",
     ("farm", "s3", "UP")),
    ("[NOTICE]   (4242) : haproxy version is 2.6.12", None),
])
def test_haproxy_state_lines(line: str, want: tuple[str, str, str] | None) -> None:
    assert anchors.parse_haproxy_state_line(line) == want


def test_openssl_speed_single_size() -> None:
    assert anchors.parse_openssl_speed(OPENSSL) == {16384: pytest.approx(846365080.0)}


def test_openssl_speed_table_picks_the_algorithm() -> None:
    got = anchors.parse_openssl_speed(OPENSSL_MULTI)
    assert sorted(got) == [16, 64, 256, 1024, 8192, 16384]
    assert got[16] == pytest.approx(96221360.0)
    assert anchors.parse_openssl_speed(OPENSSL_MULTI, "sha1")[16384] == pytest.approx(6e8)


def test_openssl_speed_missing() -> None:
    with pytest.raises(ToolError):
        anchors.parse_openssl_speed("type 16 bytes\nsha1 1.00k\n")


def test_proc_stat_fields_after_the_last_parenthesis() -> None:
    got = anchors.parse_proc_stat(PROC_STAT)
    assert got["cpu"] == pytest.approx(200 / anchors.CLK_TCK)  # utime 150 + stime 50
    assert got["rss_kib"] == 900 * anchors.PAGE_KIB


def test_proc_stat_of_this_process() -> None:
    with open("/proc/self/stat") as f:
        got = anchors.parse_proc_stat(f.read())
    assert got["rss_kib"] > 1000 and got["cpu"] >= 0


def test_paced_loop_line() -> None:
    got = anchors.parse_paced("sent=3000 ok=2990 fail=10 elapsed_ns=3000500000 cpu_ns=90000000\n")
    assert got == {"sent": 3000.0, "ok": 2990.0, "fail": 10.0, "seconds": 3.0005, "cpu": 0.09}
    with pytest.raises(ToolError):
        anchors.parse_paced("raw socket (needs root): Operation not permitted")


def test_nft_counters() -> None:
    doc = {"nftables": [
        {"metainfo": {"version": "1.0.6"}},
        {"table": {"family": "inet", "name": "hbsuite"}},
        {"chain": {"name": "count_in"}},
        {"rule": {"comment": "syn", "expr": [{"match": {}}, {"counter": {"packets": 1234,
                                                                          "bytes": 74040}}]}},
        {"rule": {"comment": "echo", "expr": [{"counter": {"packets": 5, "bytes": 420}}]}},
        {"rule": {"expr": [{"counter": {"packets": 9, "bytes": 1}}]}},
    ]}
    assert anchors.parse_nft_counters(json.dumps(doc)) == {"syn": 1234, "echo": 5}


def test_haproxy_config_shape(tmp_path: object) -> None:
    from pathlib import Path

    text = anchors.haproxy_config(Path("/x"), ["10.201.0.1", "10.201.0.2"], "http")
    assert "server s0 10.201.0.1:80" in text and "server s1 10.201.0.2:80" in text
    assert "option httpchk" in text and "mode http" in text
    assert "default-server check inter 1000 fall 1 rise 1" in text
    tcp = anchors.haproxy_config(Path("/x"), ["10.201.0.1"], "tcp")
    assert "httpchk" not in tcp and "mode tcp" in tcp


def test_vm_guest_lines() -> None:
    from benchmarks.suite.vm_checkers import parse_guest_output

    text = ("[    3.1] random: crng init done\n"
            'HBSUITE {"ready": true, "n": 100}\n'
            'HBSUITE {"who": "keepalived", "rate": 99.5, "cpu1k": 1.2, "round": 0}\n'
            "HBSUITE {not json\n"
            'HBSUITE {"who": "hafast", "round": 0, "error": "hafast_run overran its time"}\n')
    got = parse_guest_output(text)
    assert [g.get("who") for g in got] == [None, "keepalived", "hafast"]
    assert got[1]["rate"] == 99.5 and "error" in got[2]


def test_vm_detection_lines_make_rows_samples_and_notes() -> None:
    from benchmarks.suite.model import Section
    from benchmarks.suite.vm_checkers import record_guest_lines

    lines = [
        {"ready": True, "n": 100},
        {"who": "keepalived", "rate": 100.0, "cpu1k": 0.001, "round": 0},
        {"who": "keepalived", "round": 0, "fault": "reject", "detect": [100.0, 300.0, 500.0],
         "missing": 1, "dump_ms": 4.0, "recovered": True},
        {"who": "hafast", "round": 0, "fault": "reject", "detect": [200.0, 400.0, 600.0, 800.0],
         "missing": 0, "dump_ms": 6.0, "recovered": False},
        {"who": "hafast", "round": 1, "detect_error": "hafast did not fill the IPVS table"},
    ]
    sec = Section("keepalived", "VM")
    record_guest_lines(sec, 100, lines)
    case = "reject (4 of 100, VM, fault -> IPVS removal)"
    p50 = next(r for r in sec.rows if r.case == case and r.metric == "p50 latency")
    # both peers faulted the same 4 victims (keepalived: 3 removed + 1 missing)
    assert p50.hafast == [500.0] and p50.anchors == {"keepalived": [300.0]}
    seen = next(r for r in sec.rows if r.metric == "servers removed")
    assert seen.hafast == [4.0] and seen.anchors == {"keepalived": [3.0]}
    ka = next(r for r in sec.rows if r.metric == "p99 latency")
    assert ka.anchors["keepalived"][0] is not None and ka.anchors["keepalived"][0] > 400.0
    assert sorted(sec.samples["fault reject (IPVS VM)"]["hafast"]) == [200.0, 400.0, 600.0,
                                                                        800.0]
    assert any("did not fill" in n for n in sec.notes)
    assert any("not every victim came back" in n for n in sec.notes)
    assert any("hafast 6.0 ms" in n and "keepalived 4.0 ms" in n for n in sec.notes)
    assert any("pooled: hafast p50 500 ms" in n and "(n=3)" in n for n in sec.notes)
    assert any(r.metric == "CPU per 1000 checks" for r in sec.rows)


def test_fping_chunks_respect_the_sequence_limit() -> None:
    from benchmarks.suite.anchors import fping_chunks

    chunks = fping_chunks([f"10.0.{i // 256}.{i % 256}" for i in range(16384)])
    assert len(chunks) == 3 and all(len(c) <= 6000 for c in chunks)
    assert sorted(a for c in chunks for a in c) == sorted(
        f"10.0.{i // 256}.{i % 256}" for i in range(16384))
    assert fping_chunks(["a"] * 6000) == [["a"] * 6000]


def test_run_fping_sums_its_chunks_on_loopback(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.suite import anchors
    from tests.conftest import require_tool

    require_tool("fping")
    monkeypatch.setattr(anchors, "FPING_MAX_TARGETS", 2)
    targets = tmp_path / "t.txt"
    targets.write_text("".join(f"127.0.0.{i}\n" for i in range(1, 6)))
    got = anchors.run_fping(None, targets, 1, period_ms=200.0)
    assert got["sent"] == 5.0 and got["ok"] == 5.0
