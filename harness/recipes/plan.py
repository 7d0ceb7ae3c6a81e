"""The rendered plan: what exactly runs, with every value resolved. Plain frozen data.

A :class:`Plan` comes out of :func:`harness.recipes.load.render` and goes into the runner, the
store (as JSON), bundles and bisection. It holds no templates and no references to files on
the host other than asset sources: ``Plan.from_dict(plan.to_dict()) == plan``.
"""

from __future__ import annotations

import math
import struct
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.device.facts import Requirements
from harness.errors import UsageError

PLAN_FORMAT = 1  # bump when a field changes meaning; from_dict refuses newer formats
FLOAT32_BYTES = 4

ParamValue = int | float | str | bool | None


@dataclass(frozen=True)
class OutputSpec:
    """A tensor file a step writes on the device."""

    name: str
    path: str  # device path
    kind: str  # "image" (NCHW in [-1, 1]) or "latent"
    dtype: str  # "float32"
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * FLOAT32_BYTES


@dataclass(frozen=True)
class PlanStep:
    """One process on the phone."""

    name: str
    binary: str
    argv: tuple[str, ...]  # argv[0] is the binary as written (may be relative to cwd)
    env: dict[str, str]  # in order; set before the binary on its command line
    cwd: str | None  # None: the shell's default directory
    timeout_s: float
    stages: tuple[str, ...]  # what the process does: clip, unet, vae
    outputs: tuple[OutputSpec, ...] = ()
    inputs: tuple[str, ...] = ()  # device files it reads (token ids, latents)
    perf: tuple[str, ...] = ()  # metric names it is expected to print
    memory_gb: float | None = None  # declared peak footprint

    def output(self, name: str) -> OutputSpec:
        for out in self.outputs:
            if out.name == name:
                return out
        raise KeyError(name)


@dataclass(frozen=True)
class TokenFile:
    """CLIP token ids to write on the device before the steps run: 2 x 77 int32."""

    kind: str  # "clip_l", "clip_g" or "sd15"
    dest: str  # device path
    ids: tuple[tuple[int, ...], ...]  # rows [uncond, cond]

    def data(self) -> bytes:
        """The file's bytes: raw little-endian int32, uncond row then cond row."""
        flat = [i for row in self.ids for i in row]
        return struct.pack(f"<{len(flat)}i", *flat)


@dataclass(frozen=True)
class PlanAsset:
    """One asset entry to have on the device (pushed by the sync layer)."""

    set: str
    src: str  # local path (file or directory)
    dest: str  # device path
    mode: int | None = None


@dataclass(frozen=True)
class Plan:
    """A recipe rendered with concrete parameters."""

    recipe: str
    description: str
    family: str  # "sdxl", "sd15", ...
    source: str  # the recipe file (the last of its extends chain)
    params: dict[str, ParamValue]
    requirements: Requirements
    asset_sets: tuple[str, ...]
    assets: tuple[PlanAsset, ...]
    token_files: tuple[TokenFile, ...]
    steps: tuple[PlanStep, ...]
    warnings: tuple[str, ...] = ()  # from rendering (e.g. a truncated prompt)
    expect_lint: tuple[str, ...] = ()  # lint rules this recipe reproduces on purpose
    device_tmp: str = "/data/local/tmp"
    format: int = field(default=PLAN_FORMAT)

    def step(self, name: str) -> PlanStep:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    @property
    def outputs(self) -> list[tuple[PlanStep, OutputSpec]]:
        return [(step, out) for step in self.steps for out in step.outputs]

    def provider(self, path: str) -> str | None:
        """What puts device file ``path`` on the phone, in words: an asset set (``asset set
        sdxl-weights``), the token ids harness writes, or an earlier step's output."""
        for token in self.token_files:
            if token.dest == path:
                return f"the {token.kind} token ids harness writes before the steps"
        for step in self.steps:
            for out in step.outputs:
                if out.path == path:
                    return f"the output {out.name!r} of step {step.name!r}"
        name = self.asset_set_of(path)
        return None if name is None else f"asset set {name}"

    def asset_set_of(self, path: str) -> str | None:
        """The asset set whose entry holds device ``path`` (or None)."""
        for asset in self.assets:
            if path == asset.dest or path.startswith(asset.dest.rstrip("/") + "/"):
                return asset.set
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        data: dict[str, Any] = asdict(self)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """Rebuild a plan from :meth:`to_dict` output (e.g. from the store or a bundle)."""
        try:
            return _plan_from_dict(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"not a harness plan: {exc!r}") from exc


def _step_from_dict(data: dict[str, Any]) -> PlanStep:
    return PlanStep(
        name=data["name"], binary=data["binary"], argv=tuple(data["argv"]),
        env=dict(data["env"]), cwd=data["cwd"], timeout_s=float(data["timeout_s"]),
        stages=tuple(data["stages"]),
        outputs=tuple(OutputSpec(o["name"], o["path"], o["kind"], o["dtype"],
                                 tuple(o["shape"])) for o in data["outputs"]),
        inputs=tuple(data["inputs"]), perf=tuple(data["perf"]),
        memory_gb=data["memory_gb"],
    )


def _plan_from_dict(data: dict[str, Any]) -> Plan:
    version = int(data.get("format", PLAN_FORMAT))
    if version > PLAN_FORMAT:
        raise ValueError(f"plan format {version} is newer than this harness ({PLAN_FORMAT})")
    req = data["requirements"]
    return Plan(
        recipe=data["recipe"], description=data["description"], family=data["family"],
        source=data["source"], params=dict(data["params"]),
        requirements=Requirements(req["min_ram_gb"], tuple(req["socs"])),
        asset_sets=tuple(data["asset_sets"]),
        assets=tuple(PlanAsset(a["set"], a["src"], a["dest"], a["mode"])
                     for a in data["assets"]),
        token_files=tuple(TokenFile(t["kind"], t["dest"], tuple(tuple(r) for r in t["ids"]))
                          for t in data["token_files"]),
        steps=tuple(_step_from_dict(s) for s in data["steps"]),
        warnings=tuple(data.get("warnings", ())),
        expect_lint=tuple(data.get("expect_lint", ())),
        device_tmp=data.get("device_tmp", "/data/local/tmp"),
        format=version,
    )
