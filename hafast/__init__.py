"""hafast: a keepalived-compatible high-availability and health-checking daemon."""

__version__ = "0.1.0.dev0"
