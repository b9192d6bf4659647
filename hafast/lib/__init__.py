"""The library layer: notify scripts and FIFOs, and the one way a script is started
and reaped (:mod:`~hafast.lib.notify`), who a
script runs as (:mod:`~hafast.lib.scriptuser`: keepalived's ``script_user`` rule,
one lookup), netlink framing (:mod:`~hafast.lib.netlink`: headers, attributes,
dumps and acked requests on a plain socket), time units (:mod:`~hafast.lib.units`:
microseconds per second, once), the event loop, logging, typed events.
It imports nothing above it (checked by import-linter, see ``.importlinter``)."""
