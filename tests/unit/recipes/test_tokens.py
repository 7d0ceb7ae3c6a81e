"""CLIP token ids: known ids, padding, ComfyUI chunking, files, --tokenizer-dir."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.clip import CLIP_CONTEXT_TOKENS, CLIP_END_TOKEN, CLIP_START_TOKEN, CLIP_VOCAB_SIZE
from harness.errors import UsageError
from harness.recipes.tokens import (
    embedded_merges,
    embedded_vocab,
    export_tokenizer_files,
    ids_bytes,
    load_bpe,
    read_ids,
    sd15_ids,
    tokenize_prompt,
    write_ids,
    write_sd15_ids,
)
from tests.handrun import A_PHOTO_OF_A_CAT

# Reference ids from transformers' CLIPTokenizer (no ftfy, as in ComfyUI) + ComfyUI's
# SDTokenizer chunking, computed once with those libraries.
KNOWN = {
    "a close-up portrait of a young woman, soft lighting, shallow depth of field":
        [320, 2660, 268, 705, 5352, 539, 320, 1888, 2308, 267, 3773, 5799, 267, 23730, 10350,
         539, 1570],
    "A Photo, of a CAT!!": [320, 1125, 267, 539, 320, 2368, 748],
    "it's 3.14 o'clock": [585, 568, 274, 269, 272, 275, 334, 262, 6716],
    "(masterpiece:1.2), \\(escaped\\) cat": [12066, 267, 263, 18707, 264, 2368],
    "一只猫 café": [19759, 478, 34517, 359, 163, 234, 360, 15304],
    "photorealistic ": [1153, 16157],
    "a\x00b\tc\nd": [3937, 322, 323],
}


def _cond(row: np.ndarray) -> list[int]:
    values = [int(v) for v in row]
    return values[1: values.index(CLIP_END_TOKEN)]


def test_a_photo_of_a_cat() -> None:
    ids = tokenize_prompt("a photo of a cat")
    assert tuple(ids.l[1][:7]) == A_PHOTO_OF_A_CAT
    assert tuple(ids.g[1][:7]) == A_PHOTO_OF_A_CAT
    assert ids.warnings == []


def test_shapes_dtype_and_padding() -> None:
    ids = tokenize_prompt("a photo of a cat")
    for arr in (ids.l, ids.g):
        assert arr.shape == (2, CLIP_CONTEXT_TOKENS)
        assert arr.dtype == np.int32
    assert (ids.l[1][7:] == CLIP_END_TOKEN).all()  # clip_l pads with the end token
    assert (ids.g[1][7:] == 0).all()  # clip_g pads with 0


def test_empty_prompt_is_the_uncond_row() -> None:
    ids = tokenize_prompt("")
    assert list(ids.l[0]) == [CLIP_START_TOKEN] + [CLIP_END_TOKEN] * 76
    assert list(ids.g[0]) == [CLIP_START_TOKEN, CLIP_END_TOKEN] + [0] * 75
    assert (ids.l[0] == ids.l[1]).all()


def test_negative_prompt_goes_to_row_zero() -> None:
    ids = tokenize_prompt("a photo of a cat", negative="a photo")
    assert _cond(ids.l[0]) == [320, 1125]
    assert _cond(ids.l[1]) == list(A_PHOTO_OF_A_CAT[1:-1])


@pytest.mark.parametrize(("prompt", "expected"), list(KNOWN.items()))
def test_known_ids(prompt: str, expected: list[int]) -> None:
    ids = tokenize_prompt(prompt)
    assert _cond(ids.l[1]) == expected
    assert _cond(ids.g[1]) == expected


def test_uppercase_and_punctuation() -> None:
    upper = tokenize_prompt("A PHOTO OF A CAT")
    assert tuple(upper.l[1][:7]) == A_PHOTO_OF_A_CAT
    punct = tokenize_prompt("cat, dog!")
    assert _cond(punct.l[1]) == [2368, 267, 1929, 256]


def test_weights_are_parsed_away_with_a_warning() -> None:
    ids = tokenize_prompt("a (photo:1.3) of a ((cat))")
    assert tuple(ids.l[1][:7]) == A_PHOTO_OF_A_CAT
    assert any("weights" in w for w in ids.warnings)


def test_long_prompt_is_truncated_keeping_the_end_token() -> None:
    prompt = " ".join(["cat"] * 100)
    ids = tokenize_prompt(prompt)
    row = list(ids.l[1])
    assert row[0] == CLIP_START_TOKEN and row[-1] == CLIP_END_TOKEN
    assert row[1:-1] == [2368] * 75
    assert list(ids.g[1])[-1] == CLIP_END_TOKEN
    assert len(ids.warnings) == 1  # one message, though both tokenizers truncate
    assert "100 tokens" in ids.warnings[0] and "75" in ids.warnings[0]


def test_short_segment_that_does_not_fit_moves_whole() -> None:
    # ComfyUI keeps a segment of < 8 tokens whole: it goes to the next chunk and this one is
    # padded early.
    ids = tokenize_prompt("cat " * 74 + "(red dog:1.2)")
    row = list(ids.l[1])
    assert row[:76] == [CLIP_START_TOKEN] + [2368] * 74 + [CLIP_END_TOKEN]
    assert row[76] == CLIP_END_TOKEN  # padding
    assert any("dropped" in w for w in ids.warnings)


def test_exactly_75_tokens_fit_without_warning() -> None:
    ids = tokenize_prompt(" ".join(["cat"] * 75))
    assert ids.warnings == []
    assert list(ids.l[1]) == [CLIP_START_TOKEN] + [2368] * 75 + [CLIP_END_TOKEN]


def test_embedded_vocab_is_clips() -> None:
    merges = embedded_merges()
    vocab = embedded_vocab(merges)
    assert len(vocab) == CLIP_VOCAB_SIZE
    assert vocab["<|startoftext|>"] == CLIP_START_TOKEN
    assert vocab["<|endoftext|>"] == CLIP_END_TOKEN
    assert vocab["cat</w>"] == 2368
    assert load_bpe().vocab_size == CLIP_VOCAB_SIZE


def test_write_and_read_ids(tmp_path: Path) -> None:
    ids = tokenize_prompt("a photo of a cat")
    path_l, path_g = write_ids(ids, tmp_path / "out")
    assert path_l.name == "clip_l_ids.i32" and path_g.name == "clip_g_ids.i32"
    assert path_l.stat().st_size == 2 * 77 * 4
    raw = np.frombuffer(path_l.read_bytes(), dtype="<i4")
    assert list(raw[77:84]) == list(A_PHOTO_OF_A_CAT)  # uncond row first, then cond
    assert (read_ids(path_g) == ids.g).all()


def test_sd15_ids_and_file(tmp_path: Path) -> None:
    rows = sd15_ids("a photo of a cat")
    assert (rows.ids == tokenize_prompt("a photo of a cat").l).all()
    path = write_sd15_ids(rows, tmp_path)
    assert path.name == "clip_ids.i32"
    assert path.read_bytes() == ids_bytes(rows.ids)


def test_ids_bytes_checks_the_shape() -> None:
    with pytest.raises(UsageError, match="2 x 77"):
        ids_bytes(np.zeros((1, 77), dtype=np.int32))


def test_tokenizer_dir_round_trip(tmp_path: Path) -> None:
    model = tmp_path / "model"
    export_tokenizer_files(model / "tokenizer")
    shutil.copytree(model / "tokenizer", model / "tokenizer_2")
    prompt = "a close-up portrait of a young woman, soft lighting"
    from_dir = tokenize_prompt(prompt, "blurry", tokenizer_dir=model)
    embedded = tokenize_prompt(prompt, "blurry")
    assert (from_dir.l == embedded.l).all() and (from_dir.g == embedded.g).all()
    flat = tokenize_prompt(prompt, tokenizer_dir=model / "tokenizer")  # the files directly
    assert (flat.l[1] == embedded.l[1]).all()
    vocab = json.loads((model / "tokenizer" / "vocab.json").read_text())
    assert len(vocab) == CLIP_VOCAB_SIZE


def test_tokenizer_dir_without_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no vocab.json"):
        tokenize_prompt("cat", tokenizer_dir=tmp_path)
