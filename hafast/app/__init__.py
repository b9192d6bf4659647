"""The application: the parent (supervisor), the worker entry, keepalived's command
line, the control socket and `hafast status`. Nothing below imports it."""
