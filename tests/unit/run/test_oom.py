"""The OOM evidence combiner on text in the sources' own formats (AOSP lmkd, the kernel's
mm/oom_kill.c across versions, toybox dmesg), with pieces missing in turn."""

from __future__ import annotations

import pytest

from harness.run import oom
from harness.run.oom import OomEvidence, PhoneClock, judge, parse_kernel, parse_lmkd

SDXL = "/data/local/tmp/sdxl_pipeline_run"
START = PhoneClock("12-02 10:00:00", 5000.0)
END = PhoneClock("12-02 10:02:00", 5120.0)

# lmkd.cpp (Android 12+) kill_one_process, in `logcat -v threadtime`
LMKD_APP = ("12-02 10:01:10.123   587   587 I lowmemorykiller: Kill 'com.android.chrome' "
            "(9313), uid 10145, oom_score_adj 935 to free 368412kB rss, 41220kB swap; reason: "
            "low watermark is breached and swap is low (2012kB < 419428kB)")
LMKD_APP_NO_REASON = ("12-02 10:01:11.000   587   587 I lowmemorykiller: Kill "
                      "'com.google.android.youtube' (9410), uid 10168, oom_score_adj 925 to "
                      "free 254880kB rss, 28764kB kb swap")
# lmkd.c (Android 9) prints two lines: "Killing '%s' (%d), uid %d, adj %d\n   to free ..."
LMKD_OLD = ("12-02 10:01:12.000   612   612 I lowmemorykiller: Killing 'com.whatsapp' (8811), "
            "uid 10087, adj 906\n12-02 10:01:12.000   612   612 I lowmemorykiller:    to free "
            "98304kB because system is under critical memory pressure oom_adj 0")
LMKD_BINARY = ("12-02 10:01:30.000   587   587 I lowmemorykiller: Kill 'sdxl_pipeline_r' "
               "(12001), uid 2000, oom_score_adj 0 to free 11859652kB rss, 0kB swap; reason: "
               "min watermark is breached")
# mm/oom_kill.c: 5.x+ (UID:, pgtables, oom_score_adj), 4.19 (no UID), 5.4 memcg
KERNEL_NEW = ("[ 5061.412318] Out of memory: Killed process 12001 (sdxl_pipeline_r) "
              "total-vm:13051652kB, anon-rss:11504062kB, file-rss:355790kB, shmem-rss:0kB, "
              "UID:2000 pgtables:23719kB oom_score_adj:0")
KERNEL_419 = ("<3>[ 5061.400000] Out of memory: Kill process 12001 (sdxl_pipeline_r) score 741 "
              "or sacrifice child\n<3>[ 5061.400100] Killed process 12001 (sdxl_pipeline_r) "
              "total-vm:13051652kB, anon-rss:11504062kB, file-rss:355790kB, shmem-rss:4kB")
KERNEL_MEMCG = ("[ 5061.5] Memory cgroup out of memory: Killed process 12001 (sdxl_pipeline_r) "
                "total-vm:100kB, anon-rss:50kB, file-rss:10kB, shmem-rss:0kB, UID:2000 "
                "pgtables:8kB oom_score_adj:0")
REAPER = ("[ 5061.500000] oom_reaper: reaped process 12001 (sdxl_pipeline_r), now "
          "anon-rss:0kB, file-rss:0kB, shmem-rss:0kB")
UNET_LINES = ((0.1, "[SDXL] pid 12001 on SM-S9280 (SM8650)"),
              (0.4, "[Perf] CLIP ms=1850.2"), (0.5, "[SDXL] CLIP released"),
              (0.9, "[SDXL] loading /data/local/tmp/sdxl_clml/sdxl_clml_weights/unet.bin, "
                    "building CLML kernels"),
              (66.0, "[Perf] init_s=65.6627"), (69.2, "[SDXL] UNet step 1/18 3.2168 s"))


def ev(**kw: object) -> OomEvidence:
    base: dict[str, object] = dict(binary=SDXL, exit_code=137, start=START, end=END,
                                   mem_total_kb=15_601_452, available_before_kb=11_700_000,
                                   ram_gb=16)
    base.update(kw)
    return OomEvidence(**base)  # type: ignore[arg-type]


# ---- parsing ---------------------------------------------------------------------------------

def test_lmkd_lines_of_every_version() -> None:
    kills = parse_lmkd("\n".join([LMKD_APP, LMKD_APP_NO_REASON, LMKD_OLD, LMKD_BINARY]))
    assert [(k.name, k.pid, k.uid, k.adj) for k in kills] == [
        ("com.android.chrome", 9313, 10145, 935), ("com.google.android.youtube", 9410, 10168, 925),
        ("com.whatsapp", 8811, 10087, 906), ("sdxl_pipeline_r", 12001, 2000, 0)]
    assert kills[0].rss_kb == 368412 and kills[0].swap_kb == 41220
    assert kills[0].reason == "low watermark is breached and swap is low (2012kB < 419428kB)"
    assert kills[1].reason is None and kills[1].rss_kb == 254880
    assert kills[2].rss_kb is None  # on the next line in Android 9's format
    assert kills[0].stamp == "12-02 10:01:10.123"
    assert parse_lmkd("I ActivityManager: Killing 9313:com.android.chrome/u0a145 (adj 935)") == []


def test_kernel_lines_of_every_version() -> None:
    new, old, memcg = (parse_kernel(t)[0] for t in (KERNEL_NEW, KERNEL_419, KERNEL_MEMCG))
    assert (new.pid, new.comm, new.uid, new.adj, new.uptime_s) == (
        12001, "sdxl_pipeline_r", 2000, 0, 5061.412318)
    assert new.rss_kb == 11504062 + 355790
    assert (old.uid, old.adj, old.rss_kb, old.uptime_s) == (None, None,
                                                            11504062 + 355790 + 4, 5061.4001)
    assert len(parse_kernel(KERNEL_419)) == 1, "the 'Kill process ... score' line is not a kill"
    assert memcg.rss_kb == 60
    assert parse_kernel(REAPER) == []


def test_psi_and_probe_parsing() -> None:
    text = ("@oom-clock 12-02 10:02:00 5120.55 40000.00\nMemTotal:       15601452 kB\n"
            "MemAvailable:    9100000 kB\n@oom-psi\nsome avg10=12.50 avg60=3.10 avg300=0.80 "
            "total=123\nfull avg10=4.00 avg60=1.00 avg300=0.20 total=45\n@oom-dmesg\n"
            + KERNEL_NEW)
    read = oom.parse_probe(text)
    assert read.clock == PhoneClock("12-02 10:02:00", 5120.55)
    assert (read.mem_total_kb, read.available_kb) == (15_601_452, 9_100_000)
    assert read.psi == {"some": 12.5, "full": 4.0}
    assert read.kernel_log == KERNEL_NEW and read.kernel_unreadable is None
    denied = oom.parse_probe("@oom-dmesg\n@oom-dmesg-unreadable dmesg: klogctl: Permission "
                             "denied")
    assert denied.kernel_log is None
    assert denied.kernel_unreadable == "dmesg: klogctl: Permission denied"
    assert oom.parse_probe("").kernel_log is None  # not read at all
    assert oom.parse_probe("").clock == PhoneClock()


# ---- judging ---------------------------------------------------------------------------------

def test_the_kernel_line_is_certain_and_gives_the_peak() -> None:
    verdict = judge(ev(kernel_log=f"{KERNEL_NEW}\n{REAPER}", logcat=LMKD_APP, lines=UNET_LINES))
    assert verdict is not None
    assert (verdict.confidence, verdict.killer, verdict.pid) == (
        "certain", "kernel's OOM killer", 12001)
    assert (verdict.peak_rss_kb, verdict.peak_source) == (11504062 + 355790, "kernel log")
    assert verdict.kernel_line == KERNEL_NEW
    assert [k.name for k in verdict.apps_killed] == ["com.android.chrome"]
    assert verdict.phase is not None and verdict.phase.name == "UNet"
    assert not verdict.phase.finished and verdict.phase.at_s == 69.2
    text = verdict.sentence()
    assert text.startswith("out of memory: sdxl_pipeline_run (pid 12001) was killed by the "
                           "kernel's OOM killer, during UNet (last line at 69.2 s: ")
    assert "peak RSS 11.3 GB (kernel log) on a 16 GB (MemTotal 14.9 GB) phone" in text


def test_on_a_stock_phone_apps_killed_and_137_make_it_likely() -> None:
    verdict = judge(ev(kernel_unreadable="dmesg: klogctl: Permission denied",
                       logcat=f"{LMKD_APP}\n{LMKD_APP_NO_REASON}", lines=UNET_LINES))
    assert verdict is not None and verdict.confidence == "likely"
    assert verdict.killer.startswith("kernel's OOM killer (SIGKILL 137; its own log line is "
                                     "not readable")
    assert verdict.peak_rss_kb is None
    assert verdict.needed_over_kb == 11_700_000 + 368412 + 254880
    text = verdict.sentence()
    assert text.startswith("out of memory (likely): ")
    assert "peak RSS unknown, above 11.8 GB" in text
    assert "kernel log unreadable (dmesg: klogctl: Permission denied)" in text
    assert "lmkd killed 2 app(s) during the step (com.android.chrome (adj 935), " in text


def test_lmkd_naming_the_binary_is_certain() -> None:
    verdict = judge(ev(logcat=f"{LMKD_APP}\n{LMKD_BINARY}"))
    assert verdict is not None and verdict.confidence == "certain"
    assert verdict.killer == "low-memory killer (lmkd names it)"
    assert (verdict.peak_rss_kb, verdict.peak_source) == (11859652, "lmkd")
    assert verdict.lmkd_line == LMKD_BINARY


def test_telemetry_alone_makes_it_likely() -> None:
    samples = {"mem_available_kb": [(0.0, 11_000_000.0), (5.0, 610_000.0)],
               "hwm_kb": [(0.0, 300_000.0), (5.0, 11_100_000.0)],
               "psi_some_avg10": [(5.0, 35.0)], "psi_full_avg10": [(5.0, 18.0)]}
    verdict = judge(ev(samples=samples))
    assert verdict is not None and verdict.confidence == "likely"
    assert (verdict.peak_rss_kb, verdict.peak_source) == (11_100_000, "telemetry")
    assert verdict.min_available_kb == 610_000
    text = verdict.sentence()
    assert "MemAvailable fell to 0.6 GB of 14.9 GB" in text
    assert "memory pressure (PSI some avg10 35%, full 18%)" in text
    both = judge(ev(samples=samples, kernel_log=KERNEL_NEW))
    assert both is not None and both.peak_source == "kernel log", "the killer's figure first"
    high = {"mem_available_kb": [(0.0, 9_000_000.0), (5.0, 6_000_000.0)]}
    assert judge(ev(samples=high)) is None, "MemAvailable far from its floor is no clue"


def test_missing_pieces() -> None:
    assert judge(ev()) is None, "a bare SIGKILL with nothing about memory: not a verdict"
    assert judge(ev(exit_code=1, logcat=LMKD_APP)) is None, "it exited: apps dying is no cause"
    assert judge(ev(timed_out=True, exit_code=None, logcat=LMKD_APP)) is None
    possible = judge(ev(ram_gb=12, needs_ram_gb=16.0))
    assert possible is not None and possible.confidence == "possible"
    assert possible.sentence().startswith("possibly out of memory: ")
    lost = judge(ev(exit_code=None, kernel_log=KERNEL_NEW))
    assert lost is not None and lost.confidence == "certain"
    assert "no exit status" in lost.sentence()
    bare = judge(ev(mem_total_kb=None, ram_gb=None, available_before_kb=None, logcat=LMKD_APP))
    assert bare is not None and "peak RSS unknown (no telemetry, no kernel line)" in \
        bare.sentence()


def test_lines_outside_the_step_or_about_others_do_not_count() -> None:
    earlier = LMKD_APP.replace("10:01:10", "09:59:59")
    assert judge(ev(logcat=earlier)) is None
    old_kernel = KERNEL_NEW.replace("5061.412318", "4000.000000")
    readable = judge(ev(kernel_log=old_kernel, logcat=LMKD_APP))
    assert readable is not None and readable.kernel_line is None
    assert "the kernel log has no OOM line for it" in readable.sentence()
    other = KERNEL_NEW.replace("sdxl_pipeline_r", "sdxl_vae_decode")
    verdict = judge(ev(kernel_log=other, logcat=LMKD_APP))
    assert verdict is not None and verdict.confidence == "likely"


# ---- the phase -------------------------------------------------------------------------------

@pytest.mark.parametrize(("lines", "phase", "finished"), [
    (UNET_LINES, "UNet", False),
    (UNET_LINES[:5], "UNet", True),  # UNet init done, CLIP (pre-initialised case) next
    (UNET_LINES[:3], "CLIP", True),
    (((0.1, "[SDXL] pre-initialising the UNet before CLIP (SDXL_PREINIT=1)"),), "UNet", False),
    (((1.0, "[SDXL] single process: decoding with the VAE (UNet buffers partly retained)"),),
     "VAE", False),
    (((1.0, "[SD15] text encoder 85.0 ms"), (2.0, "[SD15] step 3/20 0.4596 s")), "UNet", False),
    (((1.0, "Running text encoder..."),), "CLIP", False),
    (((1.0, "Denoising 7/20"), (2.0, "Decoding latents with VAE")), "VAE", False),
    (((1.0, "[SDXL] UNet step 18/18 3.2 s"), (2.0, "[Perf] loop_s=57.9 s/step=3.2")),
     "UNet", True),  # SIM_PERF_LABELS=bare: no label words on the [Perf] line
    (((1.0, "[SDXL] using precomputed embeddings: CLIP skipped"),
      (2.0, "[Perf] UNet init_s=65.2")), "UNet", True),
])
def test_phase_from_the_binary_s_own_lines(lines: tuple[tuple[float, str], ...], phase: str,
                                          finished: bool) -> None:
    found = oom.running_phase(SDXL, lines)
    assert found is not None and (found.name, found.finished) == (phase, finished), found


def test_phase_of_a_silent_binary() -> None:
    assert oom.running_phase(SDXL, ()) is None
    vae = oom.running_phase("/data/local/tmp/sdxl_vae_decoder_run", ((0.1, "[MNN] config"),))
    assert vae is not None and vae.name == "VAE"


# ---- the remedy ------------------------------------------------------------------------------

def test_remedies_true_for_the_run() -> None:
    def remedy(**kw: object) -> str:
        verdict = judge(ev(logcat=LMKD_APP, **kw))
        assert verdict is not None
        return verdict.remedy

    assert remedy(rules=frozenset({"SDXL_PREINIT"})).startswith("drop SDXL_PREINIT")
    assert remedy(rules=frozenset({"SDXL_SINGLE_PROCESS"})).startswith(
        "split SDXL into a UNet-only process (SDXL_UNET_ONLY=1) and a VAE process")
    small = remedy(ram_gb=12, needs_ram_gb=16.0, fitting=("s24 (16 GB)",))
    assert small == ("a phone with at least 16 GB: the phone has 12 GB of RAM, too little "
                     "(the seed: SDXL 1024 needs 16 GB); phones in the farm that would fit: "
                     "s24 (16 GB)")
    assert remedy(ram_gb=12, needs_ram_gb=16.0, fitting=()).endswith(
        "no phone in the farm has that much")
    assert "something else held memory (fewer concurrent apps" in remedy(needs_ram_gb=16.0)
    estimate = judge(ev(kernel_log=KERNEL_NEW, ram_gb=12, mem_total_kb=11_300_000,
                        available_before_kb=8_000_000))
    assert estimate is not None and estimate.remedy == (
        "a phone with at least 16 GB of RAM, or fewer concurrent apps")


def test_metrics_and_dict() -> None:
    verdict = judge(ev(kernel_log=KERNEL_NEW, logcat=LMKD_APP))
    assert verdict is not None
    assert verdict.metrics() == {"oom.confidence": 1.0, "oom.apps_killed": 1.0,
                                 "oom.peak_rss_kb": 11859852.0, "oom.mem_total_kb": 15601452.0,
                                 "oom.ram_gb": 16.0}
    assert verdict.to_dict()["apps_killed"][0]["name"] == "com.android.chrome"
