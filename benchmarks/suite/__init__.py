"""The hafast benchmark suite: hafast against keepalived, HAProxy and the machine's
limit, side by side in one run, written up as a report with tables and plots.

Run it as root from the repository::

    .venv/bin/python -m benchmarks.suite --quick            # < 10 min on 2 cores
    .venv/bin/python -m benchmarks.suite --full --yes       # prints its estimate first
    .venv/bin/python -m benchmarks.suite --section checks --sizes 4096 --rounds 5
    .venv/bin/python -m benchmarks.suite --full --plan      # the plan and estimate only

The report lands in ``benchmarks/out/report/`` (``--out``): ``report.md``, PNG plots
and ``results.json`` (every round's raw figures; :func:`report.load_results`
rebuilds a report from it).

Modules: ``checks`` (throughput and cost, failure detection), ``jitter`` (VRRP
advert timing under a check load), ``pysections`` (the benchmarks/test_bench_*.py
files run as they are: VRRP takeover, a silent fleet director against a silent VRRP
master, config, hot paths), ``anchors`` (running
and parsing the peers), ``daemon_run`` (the shipped daemon, parent + workers, as
the checks and detection sections measure it), ``hafast_run`` (the check engine
alone in one process: the named micro row), ``stats``,
``model``, ``report``, ``progress``, ``collect`` (the pytest plugin handing figures
over), ``c/paced_loop.c`` (the C anchor, built with gcc at run time).
"""
