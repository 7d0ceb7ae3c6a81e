"""Why a step failed, or why its output looks wrong, in one sentence naming the seed's reason.

Pure functions over what the runner collected (exit status, output tails, lmkd lines from
logcat, the plan's lint findings, image statistics), so every rule is unit tested on text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from harness.recipes.lint import Finding

if TYPE_CHECKING:  # blocks imports numpy and PIL: only the outputs' checks need them
    from harness.run.blocks import BlockReport

LMKD_RE = re.compile(r"(lowmemorykiller|lmkd).*Kill '([^']+)'")


def lmkd_kills(logcat: str, binary: str) -> list[str]:
    """lowmemorykiller/lmkd lines that name ``binary`` (kernel names are cut at 15 chars)."""
    name = binary.rsplit("/", 1)[-1]
    names = {name, name[:15]}
    return [line.strip() for line in logcat.splitlines()
            if (m := LMKD_RE.search(line)) and m.group(2) in names]


@dataclass(frozen=True)
class Evidence:
    """Facts the runner gathered on the phone after a failure, so that hints are true.

    A hint to push an asset set is given only when the file is really absent; a hint about
    RAM names the phone's size and the phones that would fit.
    """

    lib_path: tuple[str, ...] = ()  # the step's LD_LIBRARY_PATH folders, in order
    # library file name -> device paths where it exists (search folders first, then others)
    libraries: dict[str, tuple[str, ...]] = field(default_factory=dict)
    providers: dict[str, str] = field(default_factory=dict)  # device path or name -> provider
    ram_gb: int | None = None  # the phone's marketed RAM
    needs_ram_gb: float | None = None  # what the plan's model needs (SDXL 1024: 16)
    fitting: tuple[str, ...] | None = None  # phones in the farm with that much RAM


LINK_MISSING_RE = re.compile(r'library "([^"]+)" not found')
LINK_BAD_RE = re.compile(r'"([^"]+)" (?:is too small to be an ELF executable|has bad ELF magic)')
OPEN_FAILED_RE = re.compile(r"(?:Failed to open|cannot open|No such file[^:]*:)\s*'?([/.][^\s':]+)")


def diagnose_failure(binary: str, exit_code: int | None, stderr: str, stdout: str,
                     lmkd: Sequence[str], findings: Sequence[Finding], timed_out: bool,
                     timeout_s: float | None, evidence: Evidence | None = None) -> str:
    """One sentence on why a step failed."""
    ev = evidence or Evidence()
    text = f"{stderr}\n{stdout}"
    last = _last_line(stderr) or _last_line(stdout)
    rules = {f.rule for f in findings}
    if timed_out:
        return f"timed out after {timeout_s:g}s and was killed on the phone"
    if lmkd:
        return f"killed by the low-memory killer ({lmkd[-1]}){_memory_hint(rules, ev)}"
    if exit_code is None:
        return "ended without an exit status (killed, or the phone rebooted)"
    if exit_code == 137:
        return ("killed by SIGKILL (exit 137; no lmkd line names it: on a phone the kernel's "
                "OOM killer ends a native binary this way, or something else killed it)"
                + _memory_hint(rules, ev))
    if "Attention" in text and ("libMNN" in text or "MNN" in text):
        return ("the MNN library without the Attention op was loaded: put "
                "/data/local/tmp/MNN_fuse first in LD_LIBRARY_PATH (the seed: never put "
                "/data/local/tmp first)")
    if "CANNOT LINK EXECUTABLE" in text:
        hint = _link_hint(text, ev)
        if not hint and "LD_LIBRARY_PATH_ORDER" in rules:
            hint = (" (LD_LIBRARY_PATH puts /data/local/tmp before /data/local/tmp/MNN_fuse, "
                    "so another copy of an MNN library was found first)")
        return f"a library could not be loaded: {last}{hint}"
    if "VAE_CWD" in rules:
        return (f"{last or f'exited with {exit_code}'}: the VAE must run with /data/local/tmp "
                "as its working directory (the seed: it is started as ./sdxl_vae_decoder_run "
                "and writes output/ relative to it)")
    if "Failed to open" in text or "No such file" in text:
        match = OPEN_FAILED_RE.search(text)
        where = ev.providers.get(match.group(1)) if match else None
        hint = f" (it comes from {where})" if where else ""
        return f"a file is missing on the phone: {last}{hint}"
    return f"exited with {exit_code}" + (f": {last}" if last else "")


def _memory_hint(rules: set[str], ev: Evidence) -> str:
    if "SDXL_SINGLE_PROCESS" in rules:
        return ("; the seed: CLIP+UNet+VAE in one SDXL process run out of memory (the UNet is "
                "not fully released): use the split sdxl-1024 recipe")
    if "SDXL_PREINIT" in rules:
        return ("; the seed: with pre-initialisation CLIP and the UNet are resident together "
                "and run out of memory: drop SDXL_PREINIT")
    if ev.needs_ram_gb is None:
        return ""
    if ev.ram_gb is None:
        return f"; the phone's RAM is unknown and this model needs {ev.needs_ram_gb:g} GB"
    if ev.ram_gb >= ev.needs_ram_gb:
        return (f"; the phone has {ev.ram_gb} GB, the {ev.needs_ram_gb:g} GB the seed asks "
                "for: other processes held memory (close apps, or reboot the phone)")
    fits = ("" if ev.fitting is None else
            f"; phones in the farm that would fit: {', '.join(ev.fitting)}" if ev.fitting
            else "; no phone in the farm has that much")
    return (f"; the phone has {ev.ram_gb} GB of RAM, too little: this model needs "
            f"{ev.needs_ram_gb:g} GB (the seed: SDXL 1024 needs 16 GB){fits}")


def _link_hint(text: str, ev: Evidence) -> str:
    bad = LINK_BAD_RE.search(text)
    if bad:
        path = bad.group(1)
        name = path.rsplit("/", 1)[-1]
        others = [p for p in ev.libraries.get(name, ()) if p != path]
        better = f"; the phone also has {', '.join(others)}" if others else ""
        return (f" (the linker took {path}, the first {name} on LD_LIBRARY_PATH="
                f"{':'.join(ev.lib_path) or '(unset)'}, and it is not a valid library{better}:"
                " check the order of LD_LIBRARY_PATH)")
    missing = LINK_MISSING_RE.search(text)
    if not missing:
        if "cannot locate symbol" in text:
            return (" (a library found on LD_LIBRARY_PATH="
                    f"{':'.join(ev.lib_path) or '(unset)'} lacks a symbol the binary needs: "
                    "another copy of it is found first)")
        return ""
    name = missing.group(1)
    found = ev.libraries.get(name, ())
    if found:
        return (f" ({name} is on the phone at {', '.join(found)}, but not in a folder of "
                f"LD_LIBRARY_PATH={':'.join(ev.lib_path) or '(unset)'}: add its folder there)")
    if name in ev.providers:
        return f" ({name} is not on the phone: push {ev.providers[name]})"
    return f" ({name} is not on the phone)"


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
