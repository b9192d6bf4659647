"""Network shells: VIPs and link watching via pyroute2."""
