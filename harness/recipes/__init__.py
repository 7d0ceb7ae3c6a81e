"""Recipes: load YAML (with ``extends``), check the schema, render templates into a ``Plan``,
lint for the seed's pitfalls, render plans as shell scripts, and tokenize prompts into CLIP
ids. The built-in recipes and ``assets.yaml`` live in ``builtin/``, tokenizer data in ``data/``.

May import: ``harness.assets``, ``harness.device`` (facts, requirements, quoting) and shared
ground.
"""
