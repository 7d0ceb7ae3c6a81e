"""One phone: the adb binary and servers, the Device class (commands, pushes, pulls, errors
that name the serial), shell quoting, background runs, facts and process helpers.

May import: shared ground only (errors, home, config, yamlpos, console). Never ``harness.sim``.
Later: ssh.py / http.py transports beside adb.
"""
