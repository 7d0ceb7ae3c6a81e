"""harness: a reproducible lab for on-device Stable Diffusion on Snapdragon phones.

Layers, each a package, importing downwards only (``tests/unit/test_layers.py`` keeps it so):
``cli`` -> ``run`` -> ``results`` -> ``recipes`` -> ``assets``, ``farm`` -> ``device`` ->
shared ground (``errors``, ``home``, ``config``, ``yamlpos`` with ``yamlparse`` and
``yamlcache``, ``statkey``, ``console``, ``clip``, ``holder``, ``logs``); ``sim`` is the
virtual phone, used by ``cli``, ``farm`` and tests. The README's "Code map" has one line each.
"""

__version__ = "0.1.0"

# The core logs through harness.logs.get_logger(__name__) (which gives the ``harness`` logger
# its NullHandler) and never prints.
