"""Facts of CLIP's vocabulary that both sides of the cable need: the host's tokenizer
(:mod:`harness.recipes.tokens`) and the virtual phone's demo assets (:mod:`harness.sim.assets`).

From the vocabulary of ``openai/clip-vit-large-patch14`` (``vocab.json``), which SD1.5 and
both SDXL text encoders share.
"""

from __future__ import annotations

CLIP_START_TOKEN = 49406  # <|startoftext|>
CLIP_END_TOKEN = 49407  # <|endoftext|>, also clip_l's and SD1.5's padding
CLIP_VOCAB_SIZE = 49408
CLIP_CONTEXT_TOKENS = 77  # ids per row of a .i32 file (the text encoders' context length)

__all__ = ["CLIP_CONTEXT_TOKENS", "CLIP_END_TOKEN", "CLIP_START_TOKEN", "CLIP_VOCAB_SIZE"]
