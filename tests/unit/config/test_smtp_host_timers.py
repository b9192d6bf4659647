"""SMTP_CHECK's legacy ``host {}`` timers and the virtual server's ``weight``, as
keepalived 2.2.7 reads them.

check_api.c: ``connect_timeout`` writes ``CHECKER_GET_CO()``, which inside ``host {}``
is that host's conn_opts; ``retry``, ``delay_before_retry``, ``warmup``,
``delay_loop``, ``alpha`` and ``log_all_failures`` write ``CHECKER_GET_CURRENT()``,
the SMTP_CHECK itself, whose values every host's checker copies at the block's end
(check_smtp.c ``*new_checker = *checker``).  So only connect_timeout is per host;
the others apply to all hosts, the last write in file order winning.
"""

from __future__ import annotations

from hafast.check.engine import probes_for
from hafast.config import model as m
from hafast.config.loader import load_text

S = 1_000_000


def load(text: str) -> m.Config:
    res = load_text(text)
    assert not res.diagnostics, res.diagnostics
    return res.config


def smtp(body: str) -> tuple[m.RealServer, m.SmtpCheck]:
    cfg = load(f"""
virtual_server 10.0.0.1 25 {{
  lvs_sched rr
  lvs_method NAT
  protocol TCP
  delay_loop 6
  real_server 10.1.0.1 25 {{
    SMTP_CHECK {{
{body}
    }}
  }}
}}
""")
    rs = cfg.virtual_servers[0].real_servers[0]
    spec = rs.checkers[0]
    assert isinstance(spec, m.SmtpCheck)
    return rs, spec


def test_a_host_without_timers_inherits_the_smtp_checks() -> None:
    rs, spec = smtp("""
      connect_timeout 3
      retry 4
      delay_before_retry 2
      host {
        connect_ip 10.1.0.7
      }
""")
    [(target, own)] = probes_for(rs, spec)
    assert target.address == "10.1.0.7"
    assert own is spec
    assert (own.connect_timeout_us, own.retry, own.delay_before_retry_us) == (3 * S, 4, 2 * S)
    assert own.delay_loop_us == 6 * S  # from the virtual server, as before


def test_connect_timeout_is_per_host() -> None:
    rs, spec = smtp("""
      connect_timeout 3
      host {
        connect_ip 10.1.0.7
        connect_timeout 1
      }
      host {
        connect_ip 10.1.0.8
        connect_timeout 9
      }
      host {
        connect_ip 10.1.0.9
      }
""")
    got = [(t.address, s.connect_timeout_us) for t, s in probes_for(rs, spec)]
    assert got == [("10.1.0.7", 1 * S), ("10.1.0.8", 9 * S), ("10.1.0.9", 3 * S)]
    assert spec.connect_timeout_us == 3 * S


def test_other_timers_in_a_host_set_the_whole_check_last_write_wins() -> None:
    rs, spec = smtp("""
      retry 5
      warmup 1
      host {
        connect_ip 10.1.0.7
        retry 1
        delay_before_retry 2
        alpha
      }
      host {
        connect_ip 10.1.0.8
        retry 3
        delay_loop 4
        log_all_failures
      }
      warmup 7
""")
    # retry: 5, then host 1's 1, then host 2's 3; warmup 7 comes after both hosts
    assert (spec.retry, spec.delay_before_retry_us, spec.warmup_us) == (3, 2 * S, 7 * S)
    assert (spec.delay_loop_us, spec.alpha, spec.log_all_failures) == (4 * S, True, True)
    probes = probes_for(rs, spec)
    assert [s.retry for _, s in probes] == [3, 3]
    assert all(s is spec for _, s in probes)


def test_a_checker_level_write_after_the_host_wins() -> None:
    _, spec = smtp("""
      host {
        connect_ip 10.1.0.7
        retry 1
      }
      retry 6
""")
    assert spec.retry == 6


def test_virtual_server_weight_is_the_default_of_its_real_servers() -> None:
    # keepalived 2.2.7 check_data.c: rs->effective_weight = vs->weight when the real
    # server has none; its own weight (0 included) wins.
    cfg = load("""
virtual_server 10.0.0.1 80 {
  lvs_sched wrr
  lvs_method NAT
  protocol TCP
  weight 7
  real_server 10.1.0.1 80 {
  }
  real_server 10.1.0.2 80 {
    weight 0
  }
  real_server 10.1.0.3 80 {
    weight 2
  }
}
virtual_server 10.0.0.2 80 {
  lvs_sched wrr
  lvs_method NAT
  protocol TCP
  real_server 10.1.0.1 80 {
  }
}
""")
    a, b = cfg.virtual_servers
    assert [rs.weight for rs in a.real_servers] == [7, 0, 2]
    assert [rs.weight for rs in b.real_servers] == [1]


def test_virtual_server_weight_zero_is_refused_as_keepalived_does() -> None:
    # check_parser.c vs_weight_handler: "Virtual server weight %s is outside range 1-%d"
    res = load_text("""
virtual_server 10.0.0.1 80 {
  lvs_sched wrr
  lvs_method NAT
  protocol TCP
  weight 0
  real_server 10.1.0.1 80 {
  }
}
""")
    assert [d.line for d in res.errors] == [6]
