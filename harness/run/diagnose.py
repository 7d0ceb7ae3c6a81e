"""Why a step failed, or why its output looks wrong, in one sentence naming the seed's reason.

Pure functions over what the runner collected (exit status, output tails, lmkd lines from
logcat, the plan's lint findings, image statistics), so every rule is unit tested on text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from harness.recipes.lint import Finding
from harness.run.blocks import BlockReport

LMKD_RE = re.compile(r"(lowmemorykiller|lmkd).*Kill '([^']+)'")


def lmkd_kills(logcat: str, binary: str) -> list[str]:
    """lowmemorykiller/lmkd lines that name ``binary`` (kernel names are cut at 15 chars)."""
    name = binary.rsplit("/", 1)[-1]
    names = {name, name[:15]}
    return [line.strip() for line in logcat.splitlines()
            if (m := LMKD_RE.search(line)) and m.group(2) in names]


def diagnose_failure(binary: str, exit_code: int | None, stderr: str, stdout: str,
                     lmkd: Sequence[str], findings: Sequence[Finding], timed_out: bool,
                     timeout_s: float | None) -> str:
    """One sentence on why a step failed."""
    text = f"{stderr}\n{stdout}"
    last = _last_line(stderr) or _last_line(stdout)
    rules = {f.rule for f in findings}
    if timed_out:
        return f"timed out after {timeout_s:g}s and was killed on the phone"
    if lmkd:
        hint = ("; the seed: SDXL 1024 needs 16 GB, and CLIP+UNet resident together (or "
                "CLIP+UNet+VAE in one process) run out of memory: use the split sdxl-1024 recipe"
                if rules & {"SDXL_SINGLE_PROCESS", "SDXL_PREINIT", "SDXL_RAM"} or "sdxl" in binary
                else "")
        return f"killed by the low-memory killer ({lmkd[-1]}){hint}"
    if exit_code is None:
        return "ended without an exit status (killed, or the phone rebooted)"
    if exit_code == 137:
        return "killed by SIGKILL (no lmkd line in logcat: killed from outside?)"
    if "Attention" in text and ("libMNN" in text or "MNN" in text):
        return ("the MNN library without the Attention op was loaded: put "
                "/data/local/tmp/MNN_fuse first in LD_LIBRARY_PATH (the seed: never put "
                "/data/local/tmp first)")
    if "CANNOT LINK EXECUTABLE" in text:
        return f"a library could not be loaded: {last} (push the mnn-fuse asset set?)"
    if "VAE_CWD" in rules:
        return (f"{last or f'exited with {exit_code}'}: the VAE must run with /data/local/tmp "
                "as its working directory (the seed: it is started as ./sdxl_vae_decoder_run "
                "and writes output/ relative to it)")
    if "Failed to open" in text or "No such file" in text:
        return f"a file is missing on the phone: {last} (harness push the recipe's asset sets)"
    return f"exited with {exit_code}" + (f": {last}" if last else "")


def diagnose_output(blocks: BlockReport | None, nan_count: int,
                    findings: Sequence[Finding]) -> str | None:
    """A verdict on an image output, or None when it looks clean."""
    problems = []
    if nan_count:
        problems.append(f"{nan_count} NaN values")
    if blocks is not None and blocks.found:
        problems.append(blocks.describe())
    if not problems:
        return None
    causes = [f"{f.message} ({f.reason})" for f in findings
              if f.rule in ("CLML_NO_REUSE_TNN", "EARLY_DECODE_X0")]
    cause = "; likely cause: " + "; ".join(causes) if causes else ""
    return ", ".join(problems) + cause


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""
