"""The library layer: notify scripts and FIFOs, the event loop, logging, typed
events. It imports nothing above it (checked by import-linter, see setup.cfg)."""
