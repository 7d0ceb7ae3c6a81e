"""Virtual Snapdragon phones: a device-side ADB daemon, a per-phone sandbox, simulated
pipeline binaries and the farm that runs them behind a private adb server.

May import: ``harness.device`` (the adb binary, process helpers) and shared ground. Used only
by ``harness.cli``, ``harness.farm`` (to find the virtual farm) and the tests.
"""
