"""Token ids of prompts already tokenized, so a run does not load the BPE for them (issue 12).

Loading CLIP's embedded BPE (49k merges) costs ~0.15 s of every ``harness run``; a nightly
repeats the same prompts. An entry is keyed by everything the ids depend on: the kind
(``sd15`` or ``sdxl``), prompt and negative prompt, the bytes of the tokenizer's code
(``tokens.py``) and of the merges it reads (the embedded ones, or the ``vocab.json`` and
``merges.txt`` of ``--tokenizer-dir``, whichever files :func:`tokens.load_bpe` would pick).
Change any of them and the key changes: an entry can never be stale. Entries are small JSON
files under ``$HARNESS_HOME/cache/tokens/``; an unreadable one is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from harness.home import harness_home
from harness.logs import get_logger
from harness.recipes import tokens
from harness.recipes.tokens import ClipIds, TokenRows

log = get_logger(__name__)


def _tokenizer_bytes(tokenizer_dir: Path | None) -> list[bytes] | None:
    """What the ids depend on besides the prompts; None when the folder has no tokenizer."""
    parts = [Path(tokens.__file__).read_bytes()]
    if tokenizer_dir is None:
        data = resources.files("harness.recipes").joinpath("data", tokens.MERGES_RESOURCE)
        return [*parts, data.read_bytes()]
    for which, sub in (("l", "tokenizer"), ("g", "tokenizer_2")):
        for candidate in (tokenizer_dir / sub, tokenizer_dir / "tokenizer", tokenizer_dir):
            if (candidate / "vocab.json").is_file() and (candidate / "merges.txt").is_file():
                parts += [which.encode(), (candidate / "vocab.json").read_bytes(),
                          (candidate / "merges.txt").read_bytes()]
                break
        else:
            return None
    return parts


def _key(kind: str, prompt: str, negative: str, tokenizer_dir: Path | None) -> str | None:
    parts = _tokenizer_bytes(tokenizer_dir)
    if parts is None:
        return None
    digest = hashlib.sha256()
    # surrogatepass: a prompt that is not UTF-8 gets a key, and tokens' own one-line refusal
    texts = [t.encode("utf-8", "surrogatepass") for t in (kind, prompt, negative)]
    for part in [*texts, *parts]:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()


def _cached(kind: str, prompt: str, negative: str, tokenizer_dir: Path | None,
            compute: Any) -> dict[str, Any]:
    key = _key(kind, prompt, negative, tokenizer_dir)
    path = harness_home() / "cache" / "tokens" / f"{key}.json" if key else None
    if path is not None:
        try:
            entry: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return entry
        except (OSError, ValueError):
            pass
    entry = compute()
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(entry), encoding="utf-8")
            tmp.replace(path)
        except OSError as exc:  # a cache: a failure to write it costs only time
            log.debug("token cache: %s", exc)
    return entry


Rows = list[list[int]]  # (2, 77): [uncond, cond]


def _sd15_entry(prompt: str, negative: str, tokenizer_dir: Path | None) -> dict[str, Any]:
    def compute() -> dict[str, Any]:
        rows = tokens.sd15_ids(prompt, negative, tokenizer_dir)
        return {"ids": rows.ids.tolist(), "warnings": rows.warnings}

    return _cached("sd15", prompt, negative, tokenizer_dir, compute)


def _sdxl_entry(prompt: str, negative: str, tokenizer_dir: Path | None) -> dict[str, Any]:
    def compute() -> dict[str, Any]:
        ids = tokens.tokenize_prompt(prompt, negative, tokenizer_dir)
        return {"l": ids.l.tolist(), "g": ids.g.tolist(), "warnings": ids.warnings}

    return _cached("sdxl", prompt, negative, tokenizer_dir, compute)


def sd15_rows(prompt: str, negative: str = "",
              tokenizer_dir: Path | None = None) -> tuple[Rows, list[str]]:
    """:func:`sd15_ids` as plain lists (and its warnings): a cached prompt imports neither
    numpy nor the BPE."""
    entry = _sd15_entry(prompt, negative, tokenizer_dir)
    return [list(map(int, r)) for r in entry["ids"]], list(entry["warnings"])


def sdxl_rows(prompt: str, negative: str = "",
              tokenizer_dir: Path | None = None) -> tuple[Rows, Rows, list[str]]:
    """:func:`tokenize_prompt` as plain lists: (CLIP-L rows, CLIP-G rows, warnings)."""
    entry = _sdxl_entry(prompt, negative, tokenizer_dir)
    return ([list(map(int, r)) for r in entry["l"]], [list(map(int, r)) for r in entry["g"]],
            list(entry["warnings"]))


def sd15_ids(prompt: str, negative: str = "", tokenizer_dir: Path | None = None) -> TokenRows:
    """:func:`tokens.sd15_ids`, from the cache when these prompts were tokenized before."""
    import numpy as np

    entry = _sd15_entry(prompt, negative, tokenizer_dir)
    return TokenRows(np.array(entry["ids"], dtype=np.int32), list(entry["warnings"]))


def tokenize_prompt(prompt: str, negative: str = "",
                    tokenizer_dir: Path | None = None) -> ClipIds:
    """:func:`tokens.tokenize_prompt`, from the cache when these prompts were seen before."""
    import numpy as np

    entry = _sdxl_entry(prompt, negative, tokenizer_dir)
    return ClipIds(np.array(entry["l"], dtype=np.int32), np.array(entry["g"], dtype=np.int32),
                   list(entry["warnings"]))
