"""Many phones: the farm file and inventory (servers, nicknames, tags, selection by
requirements), leases, and ``doctor``'s health checks.

May import: ``harness.device``, ``harness.sim`` (only to find the virtual farm) and shared
ground. Later: farm agents.
"""
