"""Scheduler, supervisor, notify and events."""
