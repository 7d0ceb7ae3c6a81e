"""The demo asset tree: small stand-ins for the seed's binaries, weights and libraries.

:func:`build_demo_assets` lays the tree out as it goes under ``/data/local/tmp``::

    sd15_pipeline_run  sdxl_pipeline_run  sdxl_vae_decoder_run   (Python scripts, 0755)
    libMNN.so                       an OLD MNN without the Attention op (as real phones have)
    MNN_fuse/libMNN.so  libMNN_Express.so  libMNN_CL.so          (with Attention)
    MNN_clip/clip_int8.mnn  clip_2_int8.mnn  clip_2_int8.mnn.weight
    sd15_clml/sd15_clml_weights/weights.idx  text_encoder.bin  unet.bin  vae_decoder.bin
                                clip_ids.i32   (2x77 int32 [uncond, cond] of the demo prompt)
    sdxl_clml/sdxl_clml_weights/weights.idx  unet.bin  vae_decoder.bin
    sdxl_embeds/sdxl_text_embeds.f32    (2, 77, 2048) float32, for SDXL_TEXT_EMBEDS
    sdxl_embeds/sdxl_pooled_embeds.f32  (2, 1280) float32, for SDXL_POOLED_EMBEDS

Everything is deterministic and small (under 2 MB, most of it the real-sized embeddings).
The formats are this module's: weight files start with :data:`WEIGHT_MAGIC`, and
``weights.idx`` records each file's size, so a truncated file is caught; fake libraries carry
an ``MNN_OPS=`` line saying which ops they implement. The ``verify_*`` functions are what
the simulated binaries run at start-up; they raise :class:`AssetError` carrying the exact
message the binary prints.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from harness.clip import CLIP_CONTEXT_TOKENS, CLIP_END_TOKEN, CLIP_START_TOKEN
from harness.home import harness_home
from harness.sim import demostamp
from harness.sim.devtools import elf_standin

BINARIES = ("sd15_pipeline_run", "sdxl_pipeline_run", "sdxl_vae_decoder_run")
SD15_WEIGHTS = "sd15_clml/sd15_clml_weights"
SDXL_WEIGHTS = "sdxl_clml/sdxl_clml_weights"
MNN_CLIP = "MNN_clip"
MNN_FUSE = "MNN_fuse"
INDEX_NAME = "weights.idx"
CLIP_IDS_NAME = "clip_ids.i32"
WEIGHT_MAGIC = b"CLMLWGT1"
MNN_MAGIC = b"MNNSIM01"
HEADER_BYTES = 64
KIB = 1024

TOKENS_PER_ROW = CLIP_CONTEXT_TOKENS
ID_ROWS = 2  # [uncond, cond]
IDS_BYTES = ID_ROWS * TOKENS_PER_ROW * 4
DEMO_PROMPT = "a close-up portrait of a young woman, soft lighting, shallow depth of field"

SD15_FILES = {"text_encoder.bin": 32 * KIB, "unet.bin": 128 * KIB, "vae_decoder.bin": 32 * KIB}
SDXL_FILES = {"unet.bin": 160 * KIB, "vae_decoder.bin": 48 * KIB}
CLIP_MODEL = "clip_int8.mnn"
CLIP2_MODEL = "clip_2_int8.mnn"
CLIP2_WEIGHT = "clip_2_int8.mnn.weight"
CLIP_SIZES = {CLIP_MODEL: 32 * KIB, CLIP2_MODEL: 16 * KIB, CLIP2_WEIGHT: 96 * KIB}
SDXL_EMBEDS = "sdxl_embeds"
TEXT_EMBEDS_NAME = "sdxl_text_embeds.f32"
POOLED_EMBEDS_NAME = "sdxl_pooled_embeds.f32"
TEXT_EMBEDS_SHAPE = (2, 77, 2048)  # [uncond, cond] x tokens x (CLIP-L 768 + CLIP-G 1280)
POOLED_EMBEDS_SHAPE = (2, 1280)  # [uncond, cond] x CLIP-G pooled width

MNN_OPS_OLD = ("Convolution,ConvolutionDepthwise,Deconvolution,Pooling,ReLU,Softmax,"
               "LayerNorm,MatMul,BinaryOp,UnaryOp,Reshape,Permute,Concat,Slice,Raster")
MNN_OPS_FUSE = MNN_OPS_OLD + ",GroupNorm,Attention,FmhaV2,SplitGeLU"


class AssetError(Exception):
    """An asset is missing or damaged; the message is what the binary prints."""


@dataclass(frozen=True)
class WeightIndex:
    model: str
    height: int
    width: int
    files: dict[str, int] = field(default_factory=dict)


def _payload(label: str, size: int) -> bytes:
    return hashlib.shake_256(label.encode()).digest(size)


def weight_file(model: str, name: str, size: int) -> bytes:
    header = WEIGHT_MAGIC + f"{model}/{name}".encode()[:HEADER_BYTES - len(WEIGHT_MAGIC)]
    header = header.ljust(HEADER_BYTES, b"\x00")
    return header + _payload(f"{model}/{name}", size - HEADER_BYTES)


def index_text(model: str, height: int, width: int, files: dict[str, int]) -> str:
    lines = ["# harness.sim CLML weight index v1", f"model {model}",
             f"resolution {height} {width}"]
    lines += [f"file {name} {size}" for name, size in sorted(files.items())]
    return "\n".join(lines) + "\n"


def mnn_model(name: str, size: int, external_bytes: int = 0) -> bytes:
    header = MNN_MAGIC + f"\nmodel={name}\nexternal_weight_bytes={external_bytes}\n".encode()
    header = header.ljust(HEADER_BYTES, b"\x00")
    return header + _payload(f"mnn/{name}", size - HEADER_BYTES)


def mnn_library(soname: str, version: str, ops: str) -> bytes:
    return elf_standin(soname, f"MNN_VERSION={version}\nMNN_OPS={ops}\n", 12 * KIB)


def embeddings(label: str, shape: tuple[int, ...]) -> bytes:
    """Deterministic float32 values in [-1, 1] of ``shape`` (stand-in embeddings)."""
    count = int(np.prod(shape))
    raw = np.frombuffer(_payload(f"embeds/{label}", 2 * count), dtype=np.uint16)
    return (raw.astype(np.float32) / np.float32(32767.5) - np.float32(1.0)).tobytes()


def library_ops(data: bytes) -> set[str]:
    """The ops a fake MNN library implements (empty for anything else)."""
    for line in data[:HEADER_BYTES * 8].split(b"\n"):
        if line.startswith(b"MNN_OPS="):
            return set(line[len(b"MNN_OPS="):].decode(errors="replace").split(","))
    return set()


def demo_token_ids(prompt: str, pad_token: int = CLIP_END_TOKEN) -> npt.NDArray[np.int32]:
    """Stand-in CLIP token ids ``(2, 77)`` int32 rows ``[uncond "", cond prompt]``.

    Not the real BPE tokenizer: each word maps to a stable id by hash. Start 49406 and end
    49407 are CLIP's; ``pad_token`` is 49407 for CLIP-L and 0 for CLIP-G (ComfyUI's SDXL
    convention).
    """

    def row(text: str) -> list[int]:
        words = [w for w in text.lower().replace(",", " , ").split() if w]
        ids = [CLIP_START_TOKEN]
        for word in words[:TOKENS_PER_ROW - 2]:
            digest = hashlib.sha256(word.encode()).digest()
            ids.append(256 + int.from_bytes(digest[:4], "little") % (CLIP_START_TOKEN - 256))
        ids.append(CLIP_END_TOKEN)
        return ids + [pad_token] * (TOKENS_PER_ROW - len(ids))

    return np.array([row(""), row(prompt)], dtype=np.int32)


DEFAULT_BUILD: dict[str, object] = {"speed": 1.0, "tnn_reuse": False, "label": ""}


def wrapper_script(name: str, build: Mapping[str, object] | None = None) -> bytes:
    """The text of simulated binary ``name``; ``build`` (:class:`harness.sim.builds.Build`
    as a dict) is a literal in it, so another build is another file with another digest."""
    repo = str(Path(__file__).resolve().parents[2])
    comm = name[:15].encode()
    shown = dict(DEFAULT_BUILD, **(build or {}))
    return f'''#!{sys.executable}
"""{name}: a simulated Snapdragon CLML binary (harness.sim.pipeline)."""
import os
import sys

BUILD = {shown!r}  # this build's speed and numerics (harness.sim.builds)

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # many phones share a small host
try:
    import ctypes
    ctypes.CDLL(None).prctl(15, {comm!r}, 0, 0, 0)  # PR_SET_NAME: comm as on a phone
except (OSError, AttributeError):
    pass
sys.path.insert(0, {repo!r})
from harness.sim.pipeline import main

sys.exit(main({name!r}, sys.argv[1:], argv0=sys.argv[0], build=BUILD))
'''.encode()


def put_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` (atomically, only when it differs) with ``mode``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.stat().st_size != len(data) or path.read_bytes() != data:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    if path.stat().st_mode & 0o777 != mode:
        path.chmod(mode)


def demo_files() -> dict[str, tuple[bytes, int]]:
    """Every file of the demo tree: relative path -> (content, mode)."""
    files: dict[str, tuple[bytes, int]] = {}
    for name in BINARIES:
        files[name] = (wrapper_script(name), 0o755)
    for model, rel, sizes, (h, w) in (("sd15", SD15_WEIGHTS, SD15_FILES, (512, 512)),
                                      ("sdxl", SDXL_WEIGHTS, SDXL_FILES, (1024, 1024))):
        for name, size in sizes.items():
            files[f"{rel}/{name}"] = (weight_file(model, name, size), 0o644)
        files[f"{rel}/{INDEX_NAME}"] = (index_text(model, h, w, sizes).encode(), 0o644)
    files[f"{SD15_WEIGHTS}/{CLIP_IDS_NAME}"] = (demo_token_ids(DEMO_PROMPT).tobytes(), 0o644)
    files[f"{MNN_CLIP}/{CLIP_MODEL}"] = (mnn_model(CLIP_MODEL, CLIP_SIZES[CLIP_MODEL]), 0o644)
    files[f"{MNN_CLIP}/{CLIP2_MODEL}"] = (
        mnn_model(CLIP2_MODEL, CLIP_SIZES[CLIP2_MODEL], CLIP_SIZES[CLIP2_WEIGHT]), 0o644)
    files[f"{MNN_CLIP}/{CLIP2_WEIGHT}"] = (_payload("mnn/clip2.weight",
                                                    CLIP_SIZES[CLIP2_WEIGHT]), 0o644)
    for soname, ops in (("libMNN.so", MNN_OPS_FUSE), ("libMNN_Express.so", MNN_OPS_FUSE),
                        ("libMNN_CL.so", MNN_OPS_FUSE)):
        files[f"{MNN_FUSE}/{soname}"] = (mnn_library(soname, "2.9.3-fuse", ops), 0o644)
    files["libMNN.so"] = (mnn_library("libMNN.so", "2.4.0", MNN_OPS_OLD), 0o644)
    files[f"{SDXL_EMBEDS}/{TEXT_EMBEDS_NAME}"] = (embeddings("text", TEXT_EMBEDS_SHAPE), 0o644)
    files[f"{SDXL_EMBEDS}/{POOLED_EMBEDS_NAME}"] = (embeddings("pooled", POOLED_EMBEDS_SHAPE),
                                                    0o644)
    return files


def build_demo_assets(dest: Path) -> Path:
    """Write (or refresh, idempotently) the demo tree into ``dest``; return ``dest``. A stamp
    beside it (:mod:`harness.sim.demostamp`) lets the next caller skip this when nothing
    changed."""
    files = demo_files()
    for rel, (data, mode) in files.items():
        put_file(dest / rel, data, mode)
    demostamp.write_stamp(dest, files)
    return dest


def demo_assets_dir() -> Path:
    """``$HARNESS_HOME/sim/demo_assets``, built (or refreshed) on demand."""
    dest = harness_home() / "sim" / "demo_assets"
    return dest if demostamp.is_current(dest) else build_demo_assets(dest)


# ---- what the binaries check --------------------------------------------------------------

def _no_such_file(shown: str) -> AssetError:
    return AssetError(f"Failed to open {shown}: No such file or directory")


def read_index(directory: Path, shown: str) -> WeightIndex:
    path = directory / INDEX_NAME
    try:
        text = path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        raise _no_such_file(f"{shown}/{INDEX_NAME}") from None
    model, height, width, files = "", 0, 0, {}
    try:
        for line in text.splitlines():
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if parts[0] == "model":
                model = parts[1]
            elif parts[0] == "resolution":
                height, width = int(parts[1]), int(parts[2])
            elif parts[0] == "file":
                files[parts[1]] = int(parts[2])
    except (IndexError, ValueError):
        raise AssetError(f"{shown}/{INDEX_NAME}: corrupt weight index") from None
    return WeightIndex(model, height, width, files)


def verify_weights(directory: Path, shown: str, model: str, names: list[str]) -> WeightIndex:
    """Check the weight files ``names`` of ``model``: listed, present, full size, magic."""
    index = read_index(directory, shown)
    if index.model != model:
        raise AssetError(f"{shown}: these are {index.model or 'unknown'} weights, "
                         f"not {model}")
    for name in names:
        if name not in index.files:
            raise AssetError(f"{shown}/{INDEX_NAME} does not list {name}")
        path = directory / name
        try:
            with path.open("rb") as handle:
                magic = handle.read(len(WEIGHT_MAGIC))
                size = path.stat().st_size
        except FileNotFoundError:
            raise _no_such_file(f"{shown}/{name}") from None
        if size != index.files[name]:
            raise AssetError(f"Failed to read {shown}/{name}: expected {index.files[name]} "
                             f"bytes, got {size} (truncated weight file?)")
        if magic != WEIGHT_MAGIC:
            raise AssetError(f"{shown}/{name}: bad magic, not a CLML weight file")
    return index


def verify_clip(directory: Path, shown: str) -> None:
    """Check the MNN CLIP models (and CLIP-G's external weight file)."""
    for name in (CLIP_MODEL, CLIP2_MODEL):
        path = directory / name
        try:
            head = path.read_bytes()[:HEADER_BYTES]
        except (FileNotFoundError, NotADirectoryError):
            raise AssetError(f"[MNN] Create interpreter failed, open {shown}/{name} error: "
                             "No such file or directory") from None
        if not head.startswith(MNN_MAGIC):
            raise AssetError(f"[MNN] {shown}/{name}: invalid model file")
        external = 0
        for line in head.split(b"\n"):
            if line.startswith(b"external_weight_bytes="):
                external = int(line.split(b"=", 1)[1].rstrip(b"\x00"))
        if external:
            weight = directory / (name + ".weight")
            if not weight.is_file():
                raise AssetError(f"[MNN] Can't open external weight file {shown}/{name}.weight")
            got = weight.stat().st_size
            if got != external:
                raise AssetError(f"[MNN] {shown}/{name}.weight: expected {external} bytes, "
                                 f"got {got} (truncated?)")


def read_token_ids(path: Path, shown: str) -> npt.NDArray[np.int32]:
    """Read 2x77 int32 token ids ``[uncond, cond]`` (exactly 616 bytes)."""
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise _no_such_file(shown) from None
    if len(data) != IDS_BYTES:
        raise AssetError(f"{shown}: expected {IDS_BYTES} bytes (2x77 int32 token ids "
                         f"[uncond, cond]), got {len(data)}")
    return np.frombuffer(data, dtype=np.int32).reshape(ID_ROWS, TOKENS_PER_ROW).copy()
