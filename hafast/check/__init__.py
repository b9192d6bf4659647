"""Health checks: the runner and every checker kind."""
