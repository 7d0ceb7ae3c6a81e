"""harness: a reproducible lab for on-device Stable Diffusion on Snapdragon phones."""

__version__ = "0.1.0"
