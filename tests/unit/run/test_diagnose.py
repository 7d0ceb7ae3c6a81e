"""The diagnosis on text: each rule of diagnose_failure, diagnose_output and lmkd_kills with a
case it must fire on and a near miss it must not fire on."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from harness.recipes.lint import RULES, Finding
from harness.run.blocks import BlockReport
from harness.run.diagnose import diagnose_failure, diagnose_output, lmkd_kills

SDXL = "/data/local/tmp/sdxl_pipeline_run"
SD15 = "/data/local/tmp/sd15_pipeline_run"
# logcat -d (threadtime) lines as lmkd prints them (seed-facts: "lowmemorykiller: Kill ...")
LMKD_SDXL = ("12-02 00:01:02.345   612   612 I lowmemorykiller: Kill 'sdxl_pipeline_r' (8123), "
             "uid 2000, oom_score_adj 0 to free 9123456kB rss, 0kB swap; reason: critical")
LMKD_APP = ("12-02 00:01:01.000   612   612 I lowmemorykiller: Kill 'com.example.app' (7001), "
            "uid 10123, oom_score_adj 900 to free 183456kB rss, 0kB swap; reason: low")


def blocks(side: int, flagged_side: int) -> BlockReport:
    """An image report: one flat square of ``flagged_side`` px in a ``side`` px image."""
    boxes = ((0, 0, flagged_side, flagged_side),) if flagged_side else ()
    return BlockReport("image", side, side, boxes, flagged_side * flagged_side,
                       flagged_side or None)


def finding(rule: str, step: str | None = "unet") -> Finding:
    spec = RULES[rule]
    return Finding(rule, spec.severity, step, f"{rule} message", spec.reason)


def fail(binary: str = SD15, exit_code: int | None = 1, stderr: str = "", stdout: str = "",
         lmkd: Sequence[str] = (), findings: Sequence[Finding] = (), timed_out: bool = False,
         timeout_s: float | None = None) -> str:
    return diagnose_failure(binary, exit_code, stderr, stdout, lmkd, findings, timed_out,
                            timeout_s)


# ---- lmkd_kills ----------------------------------------------------------------------------

def test_lmkd_kills_names_the_binary_cut_to_15_chars() -> None:
    logcat = "\n".join([LMKD_APP, LMKD_SDXL, "  " + LMKD_SDXL.replace("lowmemorykiller", "lmkd")])
    assert lmkd_kills(logcat, SDXL) == [LMKD_SDXL, LMKD_SDXL.replace("lowmemorykiller", "lmkd")]


def test_lmkd_kills_ignores_other_processes_and_other_tags() -> None:
    assert lmkd_kills(LMKD_APP, SDXL) == []
    assert lmkd_kills(LMKD_SDXL, SD15) == []
    assert lmkd_kills(LMKD_SDXL.replace("lowmemorykiller", "ActivityManager"), SDXL) == []
    # a full 15-char prefix of a *different* name is not a match
    assert lmkd_kills(LMKD_SDXL.replace("sdxl_pipeline_r", "sdxl_vae_decode"), SDXL) == []
    assert lmkd_kills("", SDXL) == []


def test_lmkd_kills_short_names_match_exactly() -> None:
    line = "I lowmemorykiller: Kill 'vae' (99), uid 2000"
    assert lmkd_kills(line, "/data/local/tmp/vae") == [line]
    assert lmkd_kills(line, "/data/local/tmp/vae2") == []


# ---- diagnose_failure: one rule at a time ----------------------------------------------------

def test_timeout_rule() -> None:
    text = fail(exit_code=None, timed_out=True, timeout_s=90.0, lmkd=[LMKD_SDXL])
    assert text == "timed out after 90s and was killed on the phone"
    assert "timed out" not in fail(exit_code=None, timed_out=False, timeout_s=90.0)


def test_lmkd_rule_with_the_sdxl_hint() -> None:
    text = fail(SDXL, exit_code=137, lmkd=["first", LMKD_SDXL])
    assert text.startswith(f"killed by the low-memory killer ({LMKD_SDXL})")
    # no RAM or recipe evidence here: no advice (test_diagnose_evidence.py has the hints)
    assert "split sdxl-1024 recipe" not in text and "16 GB" not in text


def test_lmkd_rule_hint_from_findings_not_only_the_name() -> None:
    with_finding = fail("/data/local/tmp/other_run", exit_code=137, lmkd=["lmkd line"],
                        findings=[finding("SDXL_PREINIT")])
    assert "low-memory killer (lmkd line)" in with_finding and "SDXL_PREINIT" in with_finding
    plain = fail(SD15, exit_code=137, lmkd=["lmkd line"])
    assert plain == "killed by the low-memory killer (lmkd line)"


def test_lmkd_rule_needs_an_lmkd_line() -> None:
    assert "low-memory" not in fail(SDXL, exit_code=137, lmkd=[])


def test_no_exit_status_rule() -> None:
    assert fail(exit_code=None) == "ended without an exit status (killed, or the phone rebooted)"
    assert "without an exit status" not in fail(exit_code=0)


def test_sigkill_rule() -> None:
    assert fail(exit_code=137).startswith("killed by SIGKILL (exit 137; no lmkd line names it")
    assert "SIGKILL" not in fail(exit_code=139)


def test_mnn_without_attention_rule() -> None:
    err = "E MNN: Don't support type [Attention]\nSegmentation fault"
    text = fail(exit_code=139, stderr=err)
    assert "MNN library without the Attention op" in text and "MNN_fuse first" in text
    assert "Attention op" not in fail(exit_code=1, stderr="Attention: low battery")
    assert "Attention op" not in fail(exit_code=1, stderr="libMNN.so loaded")


def test_cannot_link_rule() -> None:
    err = ('CANNOT LINK EXECUTABLE "./sdxl_pipeline_run": library "libMNN_CL.so" not found\n')
    text = fail(exit_code=1, stderr=err)
    assert text == (f"a library could not be loaded: {err.strip()} (libMNN_CL.so is not on "
                    "the phone)")
    assert "could not be loaded" not in fail(exit_code=1, stderr="library loaded")


def test_vae_cwd_rule() -> None:
    text = fail(exit_code=1, stderr="cannot write output/decoded.qfp32",
                findings=[finding("VAE_CWD", "vae")])
    assert text.startswith("cannot write output/decoded.qfp32: the VAE must run with "
                           "/data/local/tmp as its working directory")
    assert fail(exit_code=2, findings=[finding("VAE_CWD", "vae")]).startswith(
        "exited with 2: the VAE must run")
    assert "working directory" not in fail(exit_code=1, stderr="cannot write output/x")


def test_missing_file_rule() -> None:
    for err in ("Failed to open /data/local/tmp/clip_l_ids.i32",
                "open weights: No such file or directory"):
        # which set provides the file is the Evidence's to say (test_diagnose_evidence.py)
        assert fail(exit_code=1, stdout=err) == f"a file is missing on the phone: {err}"
    assert "missing" not in fail(exit_code=1, stderr="Failed to allocate 4 GB")


def test_fallback_names_the_exit_status_and_last_line() -> None:
    assert fail(exit_code=3, stderr="\n  first  \n  last words  \n\n") == "exited with 3: last words"
    assert fail(exit_code=3, stdout="only stdout\n") == "exited with 3: only stdout"
    assert fail(exit_code=3) == "exited with 3"


def test_rules_are_tried_in_order() -> None:
    # A missing library is what CANNOT LINK says, even when its text also says "No such file".
    err = 'CANNOT LINK EXECUTABLE "./x": library "libMNN.so" No such file'
    assert fail(exit_code=1, stderr=err).startswith("a library could not be loaded")
    # lmkd beats the plain SIGKILL rule
    assert fail(exit_code=137, lmkd=["l"]).startswith("killed by the low-memory killer")


# ---- diagnose_output --------------------------------------------------------------------------

def test_clean_output_has_no_verdict() -> None:
    findings = [finding("CLML_NO_REUSE_TNN", "vae")]
    assert diagnose_output(blocks(1024, 0), 0, findings) is None
    assert diagnose_output(None, 0, findings) is None


def test_nan_and_blocks_are_reported_with_likely_causes() -> None:
    findings = [finding("CLML_NO_REUSE_TNN", "vae"), finding("EARLY_DECODE_X0", "unet"),
                finding("VAE_CWD", "vae")]
    text = diagnose_output(blocks(1024, 512), 7, findings)
    assert text is not None
    head, _, causes = text.partition("; likely cause: ")
    assert head == "7 NaN values, colour blocks over 25.0 % of the image (1 flat regions, tile 512 px)"
    assert "CLML_NO_REUSE_TNN message" in causes and "EARLY_DECODE_X0 message" in causes
    assert RULES["CLML_NO_REUSE_TNN"].reason in causes
    assert "VAE_CWD" not in causes  # not a cause of a bad picture


@pytest.mark.parametrize(("blocks", "nan", "want"), [
    (blocks(64, 32), 0, "colour blocks over 25.0 % of the image (1 flat regions, tile 32 px)"),
    (None, 5, "5 NaN values"),
    (blocks(64, 0), 1, "1 NaN values"),
])
def test_one_problem_without_a_known_cause(blocks: BlockReport | None, nan: int,
                                           want: str) -> None:
    assert diagnose_output(blocks, nan, [finding("SDXL_RAM")]) == want


def test_block_fraction() -> None:
    assert blocks(8, 4).fraction == 0.25
    assert BlockReport("image", 0, 0, (), 0, None).fraction == 0.0
