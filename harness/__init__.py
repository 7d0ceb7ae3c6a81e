"""harness: a reproducible lab for on-device Stable Diffusion on Snapdragon phones.

Layers, each a package, importing downwards only (``tests/unit/test_layers.py`` keeps it so):
``cli`` -> ``run`` -> ``results`` -> ``recipes`` -> ``assets``, ``farm`` -> ``device`` ->
shared ground (``errors``, ``home``, ``config``, ``yamlpos``, ``console``, ``clip``,
``holder``); ``sim`` is the virtual phone, used by ``cli``, ``farm`` and tests. The README's
"Code map" has one line each.
"""

import logging

__version__ = "0.1.0"

# The core logs through logging.getLogger(__name__) and never prints; without a handler of
# the application's (the CLI adds one), nothing reaches stderr (not even Python's last resort).
logging.getLogger(__name__).addHandler(logging.NullHandler())
