"""Asset sets and their sync to phones: the set definitions, the manifest-based incremental
atomic sync, the pipelined sync-protocol client and the local hash cache.

May import: ``harness.device`` and shared ground.
"""
