"""Status surfaces of the running daemon: the signal dumps (:mod:`.dump`), the
Prometheus endpoint (:mod:`.metrics`) and the ``hafast status`` client (:mod:`.cli`).

All of them read one dict, the parent's :meth:`hafast.app.supervisor.Supervisor.status`.
"""
