"""One phone: the adb binary and servers, the one seam to the adb server (``adbseam``: its
host and sync protocols over a socket), the Device class (commands, pushes, pulls), the
layer's errors (``errors``: they name the serial and keep command, exit code and output),
shell quoting, background runs, facts and process helpers.

May import: shared ground only (errors, home, config, yamlpos, console, clip). Never
``harness.sim``.
Later: ssh.py / http.py transports beside adb.
"""
