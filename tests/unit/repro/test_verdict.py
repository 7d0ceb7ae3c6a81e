"""A run as one word, from the runner's summary (its detectors' verdict lines and exits)."""

from __future__ import annotations

from pathlib import Path

from harness.repro.verdict import classify, summarize
from harness.run.runner import RunSummary, StepSummary


def summary(steps: list[StepSummary], verdicts: list[str] = (),  # type: ignore[assignment]
            status: str = "ok", diagnosis: str | None = None) -> RunSummary:
    return RunSummary("R1", "sdxl-1024", "S", status, Path("."), steps, diagnosis,
                      list(verdicts), 1.0, {}, {})


def test_kinds() -> None:
    ok = StepSummary("vae", 0, 2.0, {"s/it": 1.0}, None, {"image": "/x.png"})
    assert classify(summary([ok])).kind == "clean"
    blocks = classify(summary([ok], ["vae/image: colour blocks over 9.9 % of the image (63 "
                                     "flat regions, tile 40 px)",
                                     "lint CLML_NO_REUSE_TNN (run with --force): ..."]))
    assert (blocks.kind, blocks.blocks_pct, blocks.image) == ("blocks", 9.9, "/x.png")
    assert classify(summary([ok], ["vae/image: 12 NaN values"])).kind == "nan"
    oom = StepSummary("unet", 137, 1.0, {}, "killed by SIGKILL (exit 137; ...)")
    assert classify(summary([oom], status="failed")).kind == "oom"
    lmkd = StepSummary("unet", None, 1.0, {}, "killed by the low-memory killer (...)")
    assert classify(summary([lmkd], status="failed")).kind == "oom"
    gone = StepSummary("unet", None, 1.0, {}, "S went offline during the step and did not "
                                               "come back within 30 s")
    assert classify(summary([gone], status="failed")).kind == "lost"
    link = StepSummary("unet", 1, 0.1, {}, "a library could not be loaded")
    assert classify(summary([link], status="failed")).kind == "failed"


def test_summaries_of_repeats() -> None:
    ok = StepSummary("vae", 0, 2.0, {}, None)
    clean = classify(summary([ok]))
    gone = classify(summary([StepSummary("vae", None, 0, {}, "went offline")], status="failed"))
    assert summarize([clean, clean, gone]).label() == "clean 2/2"
    assert summarize([gone]).kind == "lost"
    blocks = classify(summary([ok], ["vae/image: colour blocks over 1.0 % of the image"]))
    assert summarize([clean, blocks]).kind == "mixed"
    assert summarize([clean, clean]).seconds_median == 2.0
