"""The token-id cache: a hit skips the BPE, and every input of the ids is in the key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.errors import UsageError
from harness.recipes import tokencache, tokens


@pytest.fixture
def computed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The prompts really tokenized (a miss each), in a private HARNESS_HOME."""
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    calls: list[str] = []
    real_sd15, real_sdxl = tokens.sd15_ids, tokens.tokenize_prompt

    def sd15(prompt: str, negative: str = "", tokenizer_dir: Path | None = None
             ) -> tokens.TokenRows:
        calls.append(prompt)
        return real_sd15(prompt, negative, tokenizer_dir)

    def sdxl(prompt: str, negative: str = "", tokenizer_dir: Path | None = None
             ) -> tokens.ClipIds:
        calls.append(prompt)
        return real_sdxl(prompt, negative, tokenizer_dir)

    monkeypatch.setattr(tokens, "sd15_ids", sd15)
    monkeypatch.setattr(tokens, "tokenize_prompt", sdxl)
    return calls


def test_a_second_tokenization_is_a_hit_that_skips_the_bpe(computed: list[str]) -> None:
    first = tokencache.sd15_ids("a photo of a cat", "blurry")
    assert computed == ["a photo of a cat"]
    tokens._embedded_bpe.cache_clear()
    again = tokencache.sd15_ids("a photo of a cat", "blurry")
    assert computed == ["a photo of a cat"]
    assert tokens._embedded_bpe.cache_info().currsize == 0  # the BPE was not loaded
    assert np.array_equal(again.ids, first.ids) and again.ids.dtype == np.int32
    assert again.warnings == first.warnings
    want = tokens.TokenRows  # the same as tokenizing afresh
    assert isinstance(again, want)
    tokencache.sd15_ids("a photo of a cat", "")  # another negative: another key
    tokencache.sd15_ids("a photo of a dog", "blurry")
    assert computed[1:] == ["a photo of a cat", "a photo of a dog"]


def test_sdxl_ids_and_warnings_round_trip(computed: list[str]) -> None:
    long = "word " * 100  # truncated: a warning
    first = tokencache.tokenize_prompt(long)
    again = tokencache.tokenize_prompt(long)
    assert len(computed) == 1
    assert np.array_equal(first.l, again.l) and np.array_equal(first.g, again.g)
    assert again.warnings == first.warnings and again.warnings


def test_a_changed_tokenizer_folder_is_a_miss(computed: list[str], tmp_path: Path) -> None:
    folder = tmp_path / "tok"
    vocab, merges = tokens.export_tokenizer_files(folder)
    tokencache.sd15_ids("a cat", "", folder)
    tokencache.sd15_ids("a cat", "", folder)
    assert len(computed) == 1
    merges.write_text(merges.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    tokencache.sd15_ids("a cat", "", folder)
    assert len(computed) == 2
    tokencache.sd15_ids("a cat")  # the embedded tokenizer: its own key
    assert len(computed) == 3
    assert vocab.exists()


def test_a_corrupt_entry_is_recomputed(computed: list[str], tmp_path: Path) -> None:
    tokencache.sd15_ids("a cat")
    for entry in (tmp_path / "home" / "cache" / "tokens").iterdir():
        entry.write_text("{not json")
    assert tokencache.sd15_ids("a cat").ids.shape == (2, 77)
    assert len(computed) == 2


def test_a_folder_without_a_tokenizer_is_refused_as_before(computed: list[str],
                                                           tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no vocab.json"):
        tokencache.sd15_ids("a cat", "", tmp_path)


def test_a_prompt_that_is_not_utf8_is_refused_by_the_tokenizer(computed: list[str]) -> None:
    with pytest.raises(UsageError):
        tokencache.sd15_ids("a \udcff cat")
    with pytest.raises(UsageError):
        tokencache.sd15_ids("a \udcff cat")  # refused again: nothing was cached
    assert len(computed) == 2
