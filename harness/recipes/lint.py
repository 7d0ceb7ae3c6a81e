"""Lint a rendered plan for the pitfalls the seed documents (seed 002, seed-facts.md).

Each rule has an id, a severity and the seed's reason. A recipe kept to reproduce a failure
lists the rule ids it expects in ``expect_lint``; :func:`unexpected` filters those out.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from harness.recipes.plan import Plan, PlanStep

DEVICE_TMP = "/data/local/tmp"
MNN_FUSE_DIR = "/data/local/tmp/MNN_fuse"
SDXL_1024_MIN_RAM_GB = 16  # seed: "SDXL 1024 needs 16 GB of RAM even without pre-init"
SDXL_1024_SIDE_PX = 1024
# Binaries that write ``output/`` relative to their working directory, and where that must be.
CWD_RELATIVE_BINARIES = {"sdxl_vae_decoder_run": DEVICE_TMP}

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str
    reason: str


RULES: dict[str, Rule] = {r.id: r for r in (
    Rule("CLML_NO_REUSE_TNN", ERROR,
         "seed: always run with CLML_NO_REUSE_TNN=1; reusing TNN causes numeric drift or "
         "instability, seen as colour blocks / garbage in the output"),
    Rule("LD_LIBRARY_PATH_ORDER", ERROR,
         "seed: never put /data/local/tmp before /data/local/tmp/MNN_fuse in LD_LIBRARY_PATH: "
         "an older MNN without the Attention op is loaded instead"),
    Rule("MNN_FUSE", ERROR,
         "seed: the SDXL VAE uses an MNN Attention host op, so MNN_fuse must be loaded "
         "(LD_LIBRARY_PATH=/data/local/tmp/MNN_fuse:..., "
         "MNN_CL_LIB=/data/local/tmp/MNN_fuse/libMNN_CL.so)"),
    Rule("VAE_CWD", ERROR,
         "seed: the SDXL VAE decoder must run with the working directory /data/local/tmp "
         "because it writes output/ relative to it"),
    Rule("SDXL_RAM", ERROR,
         "seed: SDXL 1024 needs a 16 GB phone even without pre-initialisation"),
    Rule("EARLY_DECODE_X0", WARNING,
         "seed: with SDXL_EARLY_DECODE_K=0 the final step's x0 is only exported with "
         "SDXL_EXPORT_X0=1; decoding the last steps' latent gives colour blocks at the end"),
    Rule("EARLY_DECODE_NO_X0", WARNING,
         "seed: early decode (k > 0) should export x0 = x_t - sigma * eps "
         "(SDXL_EARLY_DECODE_X0=1) as the decoder input"),
    Rule("SDXL_SINGLE_PROCESS", ERROR,
         "seed: CLIP + UNet + VAE in one SDXL process runs out of memory (the UNet is not "
         "fully released; CLIP and UNet pre-initialised together OOM): run the UNet with "
         "SDXL_UNET_ONLY=1 and the VAE in a separate process"),
    Rule("SDXL_PREINIT", ERROR,
         "seed: with pre-initialisation, CLIP and the UNet are resident together and SDXL "
         "1024 runs out of memory (SDXL_PREINIT=1 is the simulation's switch for it)"),
    Rule("STEP_MEMORY", WARNING,
         "a step declares a memory footprint larger than the recipe's minimum phone RAM"),
)}


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    step: str | None
    message: str
    reason: str


def _finding(rule: str, step: PlanStep | None, message: str) -> Finding:
    spec = RULES[rule]
    return Finding(rule, spec.severity, step.name if step else None, message, spec.reason)


def _lib_path(step: PlanStep) -> list[str]:
    value = step.env.get("LD_LIBRARY_PATH", "")
    return [posixpath.normpath(p) for p in value.split(":") if p]


def _runs_unet(step: PlanStep) -> bool:
    return "unet" in step.stages


def _check_tnn(plan: Plan, step: PlanStep) -> Iterable[Finding]:
    value = step.env.get("CLML_NO_REUSE_TNN")
    if value != "1":
        shown = "unset" if value is None else f"={value}"
        yield _finding("CLML_NO_REUSE_TNN", step, f"CLML_NO_REUSE_TNN is {shown}, not 1")


def _check_lib_order(plan: Plan, step: PlanStep) -> Iterable[Finding]:
    paths = _lib_path(step)
    if DEVICE_TMP not in paths:
        return
    fuse = paths.index(MNN_FUSE_DIR) if MNN_FUSE_DIR in paths else len(paths)
    if paths.index(DEVICE_TMP) < fuse:
        yield _finding("LD_LIBRARY_PATH_ORDER", step,
                       f"LD_LIBRARY_PATH={step.env['LD_LIBRARY_PATH']} puts {DEVICE_TMP} "
                       f"before {MNN_FUSE_DIR}")


def _check_mnn_fuse(plan: Plan, step: PlanStep) -> Iterable[Finding]:
    if plan.family != "sdxl" or "vae" not in step.stages:
        return
    cl_lib = step.env.get("MNN_CL_LIB", "")
    if MNN_FUSE_DIR not in _lib_path(step) or posixpath.dirname(cl_lib) != MNN_FUSE_DIR:
        yield _finding("MNN_FUSE", step, "the VAE does not load MNN_fuse (LD_LIBRARY_PATH="
                       f"{step.env.get('LD_LIBRARY_PATH', '')!r}, MNN_CL_LIB={cl_lib!r})")


def _check_cwd(plan: Plan, step: PlanStep) -> Iterable[Finding]:
    need = CWD_RELATIVE_BINARIES.get(posixpath.basename(step.binary))
    if need is None:
        return
    cwd = posixpath.normpath(step.cwd) if step.cwd else None
    if cwd != need:
        yield _finding("VAE_CWD", step, f"{posixpath.basename(step.binary)} runs from "
                       f"{cwd or 'the default directory'}, not {need}")


def _check_early_decode(plan: Plan, step: PlanStep) -> Iterable[Finding]:
    if plan.family != "sdxl" or not _runs_unet(step):
        return
    raw_k = step.env.get("SDXL_EARLY_DECODE_K", "0")
    try:
        k = int(raw_k)
    except ValueError:
        k = 0
    if k == 0 and step.env.get("SDXL_EXPORT_X0") != "1":
        yield _finding("EARLY_DECODE_X0", step, f"SDXL_EARLY_DECODE_K={raw_k} without "
                       "SDXL_EXPORT_X0=1: the latent is the last step's, not x0")
    elif k > 0 and step.env.get("SDXL_EARLY_DECODE_X0") != "1":
        yield _finding("EARLY_DECODE_NO_X0", step, f"SDXL_EARLY_DECODE_K={k} without "
                       "SDXL_EARLY_DECODE_X0=1: the decoder gets a noisy x_t")


def _check_single_process(plan: Plan, step: PlanStep) -> Iterable[Finding]:
    if plan.family != "sdxl" or not _runs_unet(step):
        return
    if step.env.get("SDXL_UNET_ONLY") != "1" or "vae" in step.stages:
        yield _finding("SDXL_SINGLE_PROCESS", step, "the UNet process also runs "
                       f"{'+'.join(step.stages)} (SDXL_UNET_ONLY is "
                       f"{step.env.get('SDXL_UNET_ONLY', 'unset')})")


def _check_preinit(plan: Plan, step: PlanStep) -> Iterable[Finding]:
    if plan.family != "sdxl" or step.env.get("SDXL_PREINIT") != "1":
        return
    if "clip" in step.stages and not step.env.get("SDXL_TEXT_EMBEDS"):
        yield _finding("SDXL_PREINIT", step, "SDXL_PREINIT=1 keeps the UNet resident while "
                       "CLIP runs")


def _check_memory(plan: Plan, step: PlanStep) -> Iterable[Finding]:
    ram = plan.requirements.min_ram_gb
    if step.memory_gb is not None and ram is not None and step.memory_gb > ram:
        yield _finding("STEP_MEMORY", step, f"declares {step.memory_gb:g} GB on a "
                       f"{ram:g} GB minimum phone")


_STEP_CHECKS: tuple[Callable[[Plan, PlanStep], Iterable[Finding]], ...] = (
    _check_tnn, _check_lib_order, _check_mnn_fuse, _check_cwd, _check_early_decode,
    _check_single_process, _check_preinit, _check_memory,
)


def _check_ram(plan: Plan) -> Iterable[Finding]:
    if plan.family != "sdxl":
        return
    sides = [v for k, v in plan.params.items() if k in ("height", "width")
             and isinstance(v, int) and not isinstance(v, bool)]
    if not sides or max(sides) < SDXL_1024_SIDE_PX:
        return
    ram = plan.requirements.min_ram_gb
    if ram is None or ram < SDXL_1024_MIN_RAM_GB:
        shown = "no min_ram_gb" if ram is None else f"min_ram_gb {ram:g}"
        yield _finding("SDXL_RAM", None, f"SDXL at {max(sides)} px with {shown} "
                       f"(needs {SDXL_1024_MIN_RAM_GB})")


def lint(plan: Plan) -> list[Finding]:
    """Every finding for the plan, in step order (plan-wide findings first)."""
    findings = list(_check_ram(plan))
    for step in plan.steps:
        for check in _STEP_CHECKS:
            findings.extend(check(plan, step))
    return findings


def unexpected(findings: Iterable[Finding], expected: Iterable[str]) -> list[Finding]:
    """The findings whose rule the recipe does not expect."""
    allowed = set(expected)
    return [f for f in findings if f.rule not in allowed]
