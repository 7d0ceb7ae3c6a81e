"""CLIP token ids for the pipelines: prompt + negative prompt -> 2 x 77 int32, rows [uncond, cond].

The seed made its ids with ComfyUI's SDXL tokenizer; this module reproduces that without
ComfyUI, torch or a download:

- The BPE is CLIP's own (OpenAI CLIP, MIT licence; ``harness/recipes/data/NOTICE``): the merges ship
  as ``harness/recipes/data/clip_bpe_merges.txt.gz`` and the 49,408-entry vocabulary is rebuilt from
  them at load time (256 byte symbols, the same with ``</w>``, every merge, then
  ``<|startoftext|>`` = 49406 and ``<|endoftext|>`` = 49407), exactly as CLIP's
  ``SimpleTokenizer`` does. Hugging Face ``tokenizers`` runs the BPE.
- Text is normalised as ``transformers.CLIPTokenizer`` does when ``ftfy`` is absent (ComfyUI
  does not require ftfy): control characters dropped, whitespace collapsed, spaces put around
  CJK ideographs, NFC, lower case; then CLIP's regex and byte-level symbols with ``</w>``.
- Prompt syntax is ComfyUI's: ``(words:1.2)`` / ``(words)`` weights are parsed away (ids carry
  no weights, so a warning says they are ignored), ``\\(`` and ``\\)`` are literal brackets,
  and each weighted segment is tokenised on its own (split before `` embedding:`` words as
  ComfyUI does; the seed's script loads no embedding folder, so such words stay plain text).
- Rows are ComfyUI's first 77-token chunk: start token, tokens, end token, padding (clip_l
  and SD1.5 pad with the end token 49407, clip_g pads with 0). A segment of fewer than 8
  tokens that does not fit is not split (ComfyUI moves it to the next chunk), a longer one is
  cut; either way the dropped tokens are reported in ``warnings``.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from harness.clip import CLIP_CONTEXT_TOKENS
from harness.errors import UsageError

CLIP_G_PAD_TOKEN = 0  # ComfyUI's SDXL "g" tokenizer pads with 0, not the end token
# transformers' CLIPTokenizer reads merges.txt lines [1 : 49152 - 256 - 2 + 1]: the header
# line is skipped and exactly this many merges are used, whatever the file holds.
CLIP_MERGE_COUNT = 49152 - 256 - 2
# ComfyUI keeps a word of fewer tokens than this whole in one chunk (max_word_length).
COMFY_MAX_WORD_TOKENS = 8
ROWS = 2  # [uncond, cond]

CLIP_L_IDS_NAME = "clip_l_ids.i32"
CLIP_G_IDS_NAME = "clip_g_ids.i32"
SD15_IDS_NAME = "clip_ids.i32"

MERGES_RESOURCE = "clip_bpe_merges.txt.gz"
_START_TEXT = "<|startoftext|>"
_END_TEXT = "<|endoftext|>"
_CLIP_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
_EMBEDDING_PREFIX = "embedding:"

if TYPE_CHECKING:  # numpy is imported where arrays are made: a cached prompt needs none
    import numpy as np
    import numpy.typing as npt

    Int32Rows = npt.NDArray[np.int32]


@dataclass(frozen=True)
class ClipIds:
    """SDXL token ids: ``l`` and ``g`` are ``(2, 77)`` int32, rows ``[uncond, cond]``."""

    l: Int32Rows  # noqa: E741 - the seed's and ComfyUI's name for the CLIP-L tokenizer
    g: Int32Rows
    warnings: list[str]


@dataclass(frozen=True)
class TokenRows:
    """One ``(2, 77)`` int32 array, rows ``[uncond, cond]`` (the SD1.5 convention)."""

    ids: Int32Rows
    warnings: list[str]


@dataclass(frozen=True)
class _Chunk:
    tokens: list[int]  # without start/end
    truncated: bool


# ---- the BPE ------------------------------------------------------------------------------


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's (and GPT-2's) reversible byte -> printable character table."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


def embedded_merges() -> list[tuple[str, str]]:
    """CLIP's merges, from the package data."""
    raw = resources.files("harness.recipes").joinpath("data", MERGES_RESOURCE).read_bytes()
    return _parse_merges(gzip.decompress(raw).decode("utf-8"))


def _parse_merges(text: str) -> list[tuple[str, str]]:
    lines = text.strip().split("\n")[1 : CLIP_MERGE_COUNT + 1]
    merges: list[tuple[str, str]] = []
    for line in lines:
        left, _, right = line.partition(" ")
        merges.append((left, right))
    return merges


def embedded_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    """CLIP's vocabulary, rebuilt from the merges as ``SimpleTokenizer`` does."""
    symbols = list(_bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += [_START_TEXT, _END_TEXT]
    return {token: index for index, token in enumerate(tokens)}


def export_tokenizer_files(dest: Path) -> tuple[Path, Path]:
    """Write the embedded tokenizer as ``vocab.json`` + ``merges.txt`` (Hugging Face layout)."""
    merges = embedded_merges()
    dest.mkdir(parents=True, exist_ok=True)
    vocab_path, merges_path = dest / "vocab.json", dest / "merges.txt"
    vocab_path.write_text(json.dumps(embedded_vocab(merges), ensure_ascii=False),
                          encoding="utf-8")
    merges_path.write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges),
                           encoding="utf-8")
    return vocab_path, merges_path


@dataclass(frozen=True)
class ClipBpe:
    """A loaded CLIP BPE: ``encode`` maps normalised text to ids (no start/end tokens)."""

    encode: Callable[[str], list[int]]
    start: int
    end: int
    vocab_size: int


def _build_bpe(vocab: dict[str, int], merges: list[tuple[str, str]]) -> ClipBpe:
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    model = models.BPE(vocab=vocab, merges=merges, unk_token=_END_TEXT,
                       continuing_subword_prefix="", end_of_word_suffix="</w>")
    tokenizer = Tokenizer(model)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_CLIP_PATTERN), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.add_special_tokens([_START_TEXT, _END_TEXT])
    try:
        start, end = vocab[_START_TEXT], vocab[_END_TEXT]
    except KeyError as exc:
        raise UsageError(f"tokenizer vocabulary has no {exc.args[0]} token") from exc

    def encode(text: str) -> list[int]:
        return list(tokenizer.encode(text, add_special_tokens=False).ids)

    return ClipBpe(encode, start, end, len(vocab))


@functools.cache
def _embedded_bpe() -> ClipBpe:
    merges = embedded_merges()
    return _build_bpe(embedded_vocab(merges), merges)


@functools.cache
def _bpe_from_files(vocab_path: Path, merges_path: Path) -> ClipBpe:
    try:
        vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
        merges = _parse_merges(merges_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read tokenizer files in {vocab_path.parent}: {exc}") from exc
    if not isinstance(vocab, dict):
        raise UsageError(f"{vocab_path}: not a JSON object of token -> id")
    return _build_bpe({str(k): int(v) for k, v in vocab.items()}, merges)


def _files_in(directory: Path) -> tuple[Path, Path] | None:
    vocab, merges = directory / "vocab.json", directory / "merges.txt"
    return (vocab, merges) if vocab.is_file() and merges.is_file() else None


def load_bpe(tokenizer_dir: Path | None = None, which: str = "l") -> ClipBpe:
    """The BPE for CLIP ``which`` ("l" or "g"); the embedded one when ``tokenizer_dir`` is None.

    ``tokenizer_dir`` is a diffusers model folder (``tokenizer/`` for l, ``tokenizer_2/`` for
    g; a missing ``tokenizer_2/`` falls back to ``tokenizer/``) or a folder holding
    ``vocab.json`` and ``merges.txt`` directly.
    """
    if tokenizer_dir is None:
        return _embedded_bpe()
    sub = "tokenizer_2" if which == "g" else "tokenizer"
    for candidate in (tokenizer_dir / sub, tokenizer_dir / "tokenizer", tokenizer_dir):
        found = _files_in(candidate)
        if found:
            return _bpe_from_files(found[0].resolve(), found[1].resolve())
    raise UsageError(f"{tokenizer_dir}: no vocab.json + merges.txt (looked in {sub}/, "
                     "tokenizer/ and the folder itself)")


# ---- text normalisation (transformers' BasicTokenizer path, without ftfy) -------------------


def _is_cjk(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F
            or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def _is_whitespace(char: str) -> bool:
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def _is_control(char: str) -> bool:
    return char not in "\t\n\r" and unicodedata.category(char).startswith("C")


def normalize_text(text: str) -> str:
    """Clean, CJK-space, NFC, lower-case and collapse whitespace, as CLIPTokenizer does."""
    out: list[str] = []
    for char in text:
        cp = ord(char)
        if cp in (0, 0xFFFD) or _is_control(char):
            continue
        if _is_whitespace(char):
            out.append(" ")
        elif _is_cjk(cp):
            out.extend((" ", char, " "))
        else:
            out.append(char)
    words = unicodedata.normalize("NFC", "".join(out)).split()
    return " ".join(word.lower() for word in words)


# ---- ComfyUI prompt syntax and chunking -----------------------------------------------------


def _parse_parentheses(text: str) -> list[str]:
    result: list[str] = []
    current = ""
    depth = 0
    for char in text:
        if char == "(":
            if depth == 0:
                if current:
                    result.append(current)
                current = "("
            else:
                current += char
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                result.append(current + ")")
                current = ""
            else:
                current += char
        else:
            current += char
    if current:
        result.append(current)
    return result


def _weighted_segments(text: str, weight: float = 1.0) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for part in _parse_parentheses(text):
        if len(part) >= 2 and part[0] == "(" and part[-1] == ")":
            inner = part[1:-1]
            new_weight = weight * 1.1
            colon = inner.rfind(":")
            if colon > 0:
                try:
                    new_weight = float(inner[colon + 1:])
                    inner = inner[:colon]
                except ValueError:
                    pass
            out += _weighted_segments(inner, new_weight)
        else:
            out.append((part, weight))
    return out


def _escape(text: str) -> str:
    return text.replace("\\)", "\0\1").replace("\\(", "\0\2")


def _unescape(text: str) -> str:
    return text.replace("\0\1", ")").replace("\0\2", "(")


def _segment_groups(prompt: str, bpe: ClipBpe, warnings: list[str]) -> list[list[int]]:
    """ComfyUI's token groups: one per weighted segment and ``embedding:`` piece."""
    segments = _weighted_segments(_escape(prompt))
    if any(weight != 1.0 for _, weight in segments):
        warnings.append("prompt weights such as (word:1.2) are ignored: token ids carry none")
    groups: list[list[int]] = []
    for segment, _weight in segments:
        pieces = re.split(f" {_EMBEDDING_PREFIX}|\n{_EMBEDDING_PREFIX}", _unescape(segment))
        texts = pieces[:1] + [_EMBEDDING_PREFIX + p for p in pieces[1:]]
        groups.extend(bpe.encode(normalize_text(text)) for text in texts if text)
    return groups


def _first_chunk(groups: list[list[int]]) -> _Chunk:
    """The tokens of ComfyUI's first 77-token batch (room for start and end tokens)."""
    room = CLIP_CONTEXT_TOKENS - 2
    tokens: list[int] = []
    for group in groups:
        if len(tokens) + len(group) <= room:
            tokens.extend(group)
            continue
        # The group does not fit: a long one is cut, a short one moves (whole) to the next
        # chunk. Either way some tokens are left out of the first chunk.
        if len(group) >= COMFY_MAX_WORD_TOKENS:
            tokens.extend(group[: room - len(tokens)])
        return _Chunk(tokens, truncated=True)
    return _Chunk(tokens, truncated=False)


def check_text(text: str, what: str) -> None:
    """Refuse text that is not valid Unicode: bytes that were not UTF-8 reach Python as lone
    surrogates (``surrogateescape``), and the tokenizer would silently drop them."""
    for index, char in enumerate(text):
        if "\ud800" <= char <= "\udfff":
            shown = f"0x{ord(char) - 0xDC00:02x}" if ord(char) >= 0xDC80 else hex(ord(char))
            raise UsageError(f"{what} is not valid UTF-8 (byte {shown} at character {index}); "
                             "the tokenizer would drop it")


def encode_row(prompt: str, pad: int, bpe: ClipBpe, what: str,
               warnings: list[str]) -> list[int]:
    """One 77-id row: start, the first chunk's tokens, end, padding."""
    check_text(prompt, what)
    groups = _segment_groups(prompt, bpe, warnings)
    chunk = _first_chunk(groups)
    if chunk.truncated:
        total = sum(len(g) for g in groups)
        warnings.append(f"{what} has {total} tokens; only the first {len(chunk.tokens)} fit in "
                        f"{CLIP_CONTEXT_TOKENS} (with start and end tokens): the rest is dropped")
    row = [bpe.start, *chunk.tokens, bpe.end]
    return row + [pad] * (CLIP_CONTEXT_TOKENS - len(row))


def _rows(prompt: str, negative: str, pad: int | None, bpe: ClipBpe,
          warnings: list[str]) -> Int32Rows:
    fill = bpe.end if pad is None else pad
    uncond = encode_row(negative, fill, bpe, "the negative prompt", warnings)
    cond = encode_row(prompt, fill, bpe, "the prompt", warnings)
    import numpy as np

    return np.array([uncond, cond], dtype=np.int32)


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def tokenize_prompt(prompt: str, negative: str = "",
                    tokenizer_dir: Path | None = None) -> ClipIds:
    """SDXL ids: clip_l padded with the end token, clip_g padded with 0."""
    warnings: list[str] = []
    ids_l = _rows(prompt, negative, None, load_bpe(tokenizer_dir, "l"), warnings)
    ids_g = _rows(prompt, negative, CLIP_G_PAD_TOKEN, load_bpe(tokenizer_dir, "g"), warnings)
    return ClipIds(ids_l, ids_g, _dedupe(warnings))


def sd15_ids(prompt: str, negative: str = "", tokenizer_dir: Path | None = None) -> TokenRows:
    """SD1.5 ids (the simulated binary reads ``<weights>/clip_ids.i32``): end-token padded."""
    warnings: list[str] = []
    rows = _rows(prompt, negative, None, load_bpe(tokenizer_dir, "l"), warnings)
    return TokenRows(rows, _dedupe(warnings))


def ids_bytes(rows: Int32Rows) -> bytes:
    """Raw little-endian int32, uncond row then cond row."""
    if rows.shape != (ROWS, CLIP_CONTEXT_TOKENS):
        raise UsageError(f"token ids must be {ROWS} x {CLIP_CONTEXT_TOKENS}, not {rows.shape}")
    return rows.astype("<i4").tobytes()


def read_ids(path: Path) -> Int32Rows:
    """Read a ``.i32`` file back as ``(2, 77)`` int32."""
    import numpy as np

    data = np.fromfile(path, dtype="<i4")
    if data.size != ROWS * CLIP_CONTEXT_TOKENS:
        raise UsageError(f"{path}: {data.size} int32 values, expected "
                         f"{ROWS * CLIP_CONTEXT_TOKENS}")
    return data.reshape(ROWS, CLIP_CONTEXT_TOKENS).astype(np.int32)


def write_ids(ids: ClipIds, directory: Path) -> tuple[Path, Path]:
    """Write ``clip_l_ids.i32`` and ``clip_g_ids.i32`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    path_l, path_g = directory / CLIP_L_IDS_NAME, directory / CLIP_G_IDS_NAME
    path_l.write_bytes(ids_bytes(ids.l))
    path_g.write_bytes(ids_bytes(ids.g))
    return path_l, path_g


def write_sd15_ids(rows: TokenRows, directory: Path) -> Path:
    """Write ``clip_ids.i32`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / SD15_IDS_NAME
    path.write_bytes(ids_bytes(rows.ids))
    return path
