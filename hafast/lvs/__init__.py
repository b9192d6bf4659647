"""IPVS pools: pure policy and the pool backends."""
