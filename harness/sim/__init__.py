"""Virtual Snapdragon phones: a device-side ADB daemon, a per-phone sandbox, simulated
pipeline binaries and the farm that runs them behind a private adb server."""
