"""Failure diagnoses: each hint must be true of the phone, not a guess."""

from __future__ import annotations

from harness.recipes.lint import Finding
from harness.run.diagnose import Evidence, diagnose_failure

VAE = "./sdxl_vae_decoder_run"
LIB_PATH = ("/data/local/tmp", "/data/local/tmp/MNN_fuse", "/system/lib64")


def _diag(stderr: str, code: int | None = 1, lmkd: tuple[str, ...] = (),
          findings: tuple[Finding, ...] = (), ev: Evidence | None = None) -> str:
    return diagnose_failure(VAE, code, stderr, "", list(lmkd), list(findings), False, None, ev)


def _finding(rule: str) -> Finding:
    return Finding(rule, "error", "unet", "message", "reason")


def test_a_library_that_is_absent_names_the_set_to_push() -> None:
    text = 'CANNOT LINK EXECUTABLE "./x": library "libMNN_Express.so" not found'
    ev = Evidence(LIB_PATH, {"libMNN_Express.so": ()}, {"libMNN_Express.so": "asset set mnn-fuse"})
    assert "not on the phone: push asset set mnn-fuse" in _diag(text, ev=ev)


def test_a_library_on_the_phone_but_off_the_path_is_not_a_push_hint() -> None:
    text = 'CANNOT LINK EXECUTABLE "./x": library "libMNN_Express.so" not found'
    ev = Evidence(("/system/lib64",),
                  {"libMNN_Express.so": ("/data/local/tmp/MNN_fuse/libMNN_Express.so",)},
                  {"libMNN_Express.so": "asset set mnn-fuse"})
    text = _diag(text, ev=ev)
    assert "push" not in text
    assert "is on the phone at /data/local/tmp/MNN_fuse/libMNN_Express.so" in text
    assert "LD_LIBRARY_PATH=/system/lib64" in text


def test_a_bad_library_first_on_the_path_blames_the_order() -> None:
    text = ('CANNOT LINK EXECUTABLE "./x": "/data/local/tmp/libMNN.so" has bad ELF magic: '
            "00000000")
    ev = Evidence(LIB_PATH, {"libMNN.so": ("/data/local/tmp/libMNN.so",
                                           "/data/local/tmp/MNN_fuse/libMNN.so")},
                  {"libMNN.so": "asset set mnn-fuse"})
    text = _diag(text, ev=ev)
    assert "push" not in text
    assert "the linker took /data/local/tmp/libMNN.so" in text
    assert "/data/local/tmp/MNN_fuse/libMNN.so" in text and "order" in text


def test_oom_on_a_small_phone_says_so_and_names_phones_that_fit() -> None:
    lmkd = ("lowmemorykiller: Kill 'sdxl_pipeline_run' (1), uid 2000",)
    ev = Evidence(ram_gb=12, needs_ram_gb=16, fitting=("flagship (16 GB)", "big (24 GB)"))
    text = _diag("", 137, lmkd, (_finding("SDXL_RAM"),), ev)
    assert "use the split" not in text
    assert "the phone has 12 GB of RAM, too little" in text
    assert "flagship (16 GB), big (24 GB)" in text
    assert "no phone in the farm" in _diag("", 137, lmkd, (), Evidence(ram_gb=12,
                                                                        needs_ram_gb=16,
                                                                        fitting=()))


def test_oom_hints_follow_the_cause() -> None:
    lmkd = ("lowmemorykiller: Kill 'sdxl_pipeline_run' (1), uid 2000",)
    single = _diag("", 137, lmkd, (_finding("SDXL_SINGLE_PROCESS"),),
                   Evidence(ram_gb=16, needs_ram_gb=16))
    assert "use the split sdxl-1024 recipe" in single
    preinit = _diag("", 137, lmkd, (_finding("SDXL_PREINIT"),), Evidence(ram_gb=16,
                                                                          needs_ram_gb=16))
    assert "SDXL_PREINIT" in preinit and "split" not in preinit
    enough = _diag("", 137, lmkd, (), Evidence(ram_gb=16, needs_ram_gb=16))
    assert "split" not in enough and "other processes held memory" in enough
    sigkill = _diag("", 137, (), (), Evidence(ram_gb=12, needs_ram_gb=16, fitting=()))
    assert "OOM killer" in sigkill and "too little" in sigkill


def test_a_missing_file_names_its_provider_only_when_known() -> None:
    ev = Evidence(providers={"/data/local/tmp/lat.qfp32": "the output 'latent' of step 'unet'"})
    known = _diag("Failed to open /data/local/tmp/lat.qfp32: No such file or directory", ev=ev)
    assert "it comes from the output 'latent' of step 'unet'" in known
    unknown = _diag("Failed to open /data/local/tmp/other: No such file or directory", ev=ev)
    assert "comes from" not in unknown and "push" not in unknown


def test_a_missing_symbol_points_at_the_copy_found_first() -> None:
    text = ('CANNOT LINK EXECUTABLE "./sdxl_vae_decoder_run": cannot locate symbol '
            '"_ZN3MNN7Express8Variable6createEv" referenced by "./sdxl_vae_decoder_run"...')
    shown = _diag(text, ev=Evidence(LIB_PATH))
    assert "push" not in shown and "another copy of it is found first" in shown
    assert "/data/local/tmp:/data/local/tmp/MNN_fuse" in shown
