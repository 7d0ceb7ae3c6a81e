"""Asset sets and their sync to phones: the set definitions (``sets``), the manifest-based
incremental atomic sync (``sync``: the push; ``state``: local scan, phone state and plan;
``space``: room on the phone), the pipelined sync-protocol client (``adbsync``) and the
local hash cache (``hashcache``).

May import: ``harness.device`` and shared ground.
"""
