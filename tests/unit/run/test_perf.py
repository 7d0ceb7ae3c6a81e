"""[Perf] line parsing: every format the seed shows, CRLF, prefixes, malformed lines."""

from __future__ import annotations

import math

import pytest

from harness.run.perf import (
    PerfCollector,
    PerfIssue,
    PerfRecord,
    expect_metrics,
    parse_perf,
    parse_perf_line,
    unit_factor,
)

SEED_LOG = (
    "[SD15] loading weights\n"
    "[Perf] steps=20 total_s=9.19277 s/step=0.459639\n"
)
SDXL_LOG = (
    "[SDXL] CLIP on CPU\r\n"
    "[Perf] CLIP ms=812.3\r\n"
    "[Perf] init_s=65.6627\r\n"
    "[SDXL] UNet step 20/20 3.2 s\r\n"
    "[Perf] UNet loop_s=64.3368 s/step=3.21684\r\n"
)


def test_sd15_line() -> None:
    report = parse_perf(SEED_LOG)
    assert report.metrics == {"steps": 20.0, "total_s": 9.19277, "s/step": 0.459639}
    assert report.issues == []
    record = report.records[0]
    assert record.line_no == 2
    assert record.label == ""
    assert record.values["steps"] == 20 and isinstance(record.values["steps"], int)


def test_sdxl_lines_with_crlf_and_labels() -> None:
    report = parse_perf(SDXL_LOG)
    assert report.metrics == {"clip.ms": 812.3, "init_s": 65.6627, "unet.loop_s": 64.3368,
                              "unet.s/step": 3.21684}
    assert [r.line_no for r in report.records] == [2, 3, 5]
    assert all("\r" not in r.line for r in report.records)


def test_labelled_init_and_vae_line() -> None:
    assert parse_perf("[Perf] UNet init_s=65.6627").metrics == {"unet.init_s": 65.6627}
    vae = parse_perf("[Perf] iters=1 warmup=0 s/it=1.61393")
    assert vae.metrics == {"iters": 1.0, "warmup": 0.0, "s/it": 1.61393}
    assert vae.records[0].values == {"iters": 1, "warmup": 0, "s/it": 1.61393}


def test_prefix_before_tag_and_unknown_keys() -> None:
    line = "01-02 03:04:05.678  1234  1234 I sdxl: [Perf] VAE Decode peak_mb=1536 note_x=2e-3"
    record = parse_perf_line(line, 7)
    assert isinstance(record, PerfRecord)
    assert record.label == "vae.decode"
    assert record.metrics == {"vae.decode.peak_mb": 1536.0, "vae.decode.note_x": 0.002}


def test_not_a_perf_line() -> None:
    assert parse_perf_line("[SDXL] UNet step 1/20 3.2 s") is None
    assert parse_perf_line("") is None


@pytest.mark.parametrize(("line", "reason"), [
    ("[Perf]", "no key=value"),
    ("[Perf] UNet", "no key=value"),
    ("[Perf] CLIP ms=", "has no value"),
    ("[Perf] CLIP ms=fast", "not a number"),
    ("[Perf] steps=20 done", "after the figures"),
    ("[Perf] a=1 a=2", "twice"),
    ("[Perf] (x) a=1", "label word"),
    ("[Perf] =3", "bad key"),
])
def test_malformed_lines_are_reported(line: str, reason: str) -> None:
    parsed = parse_perf_line(line, 3)
    assert isinstance(parsed, PerfIssue)
    assert reason in parsed.reason
    assert parsed.line_no == 3 and parsed.line == line


def test_malformed_lines_are_skipped_in_a_report() -> None:
    report = parse_perf("[Perf] steps=20\n[Perf] oops\n[Perf] total_s=1.5\n")
    assert report.metrics == {"steps": 20.0, "total_s": 1.5}
    assert [(i.line_no, i.line) for i in report.issues] == [(2, "[Perf] oops")]


def test_last_value_wins_and_records_keep_all() -> None:
    report = parse_perf("[Perf] s/it=1.5\n[Perf] s/it=1.7\n")
    assert report.metrics == {"s/it": 1.7}
    assert len(report.records) == 2


def test_nan_is_kept_and_trailing_comma_tolerated() -> None:
    report = parse_perf("[Perf] UNet loop_s=nan, s/step=3.2;")
    assert math.isnan(report.metrics["unet.loop_s"])
    assert report.metrics["unet.s/step"] == 3.2


def test_streaming_collector() -> None:
    collector = PerfCollector()
    for line in SDXL_LOG.splitlines(keepends=True):
        collector.feed_line(line)
    assert collector.report().metrics == parse_perf(SDXL_LOG).metrics
    assert collector.lines_seen == 5


# ---- naming: the same figure under another label, case or unit ----------------------------

def test_label_words_case_and_colons_are_normalised() -> None:
    assert parse_perf("[Perf] UNet: Loop_S=2.5").metrics == {"unet.loop_s": 2.5}
    assert parse_perf("[Perf] a=1 A=2").issues  # the same key twice, whatever its case


@pytest.mark.parametrize(("printed", "declared", "value"), [
    ("[Perf] UNet init_s=65.5", "init_s", 65.5),       # a label word added
    ("[Perf] init_s=65.5", "unet.init_s", 65.5),       # a label word dropped
    ("[Perf] loop_s=64 s/step=3.2", "unet.s/step", 3.2),
    ("[Perf] SDXL UNet loop_s=64", "unet.loop_s", 64.0),  # more label words
    ("[Perf] UNet init_ms=65500", "init_s", 65.5),     # another time unit
    ("[Perf] CLIP s=0.8123", "clip.ms", 812.3),
    ("[Perf] VAE ms/it=1613.93", "s/it", 1.61393),
    ("[Perf] STEPS=20", "steps", 20.0),
])
def test_declared_names_are_stable_across_spellings(printed: str, declared: str,
                                                    value: float) -> None:
    check = expect_metrics(parse_perf(printed).metrics, [declared])
    assert check.missing == []
    assert check.metrics[declared] == pytest.approx(value)
    assert len(check.metrics) == len(parse_perf(printed).metrics)  # renamed, not copied


def test_both_spellings_of_the_seed_give_one_name() -> None:
    declared = ["clip.ms", "init_s", "unet.loop_s", "unet.s/step"]
    ours = expect_metrics(parse_perf(SDXL_LOG).metrics, declared)
    theirs = expect_metrics(parse_perf(SDXL_LOG.replace("[Perf] init_s", "[Perf] UNet init_s"))
                            .metrics, declared)
    assert ours.metrics == theirs.metrics
    assert set(ours.metrics) == set(declared)
    assert ours.renamed == {} and theirs.renamed == {"init_s": "unet.init_s"}


def test_missing_ambiguous_and_different_figures() -> None:
    metrics = parse_perf("[Perf] CLIP init_s=1\n[Perf] UNet init_s=2\n[Perf] steps=3").metrics
    check = expect_metrics(metrics, ["init_s", "total_s", "vae.steps"])
    assert check.missing == ["init_s", "total_s"]
    assert check.ambiguous == {"init_s": ["clip.init_s", "unet.init_s"]}
    assert check.metrics["vae.steps"] == 3.0
    # other labels are other figures; "steps" is not a time unit; exact names are never taken
    assert expect_metrics({"vae.s/it": 1.0}, ["unet.s/it"]).missing == ["unet.s/it"]
    assert expect_metrics({"step": 1.0}, ["steps"]).missing == ["steps"]
    both = expect_metrics({"init_s": 1.0, "unet.init_s": 2.0}, ["init_s", "unet.init_s"])
    assert both.metrics == {"init_s": 1.0, "unet.init_s": 2.0} and both.missing == []


def test_unit_factor() -> None:
    assert unit_factor("loop_s", "loop_s") == 1.0
    assert unit_factor("loop_ms", "loop_s") == pytest.approx(1e-3)
    assert unit_factor("us", "ms") == pytest.approx(1e-3)
    assert unit_factor("loop_s", "init_s") is None
    assert unit_factor("s/step", "s/it") is None
