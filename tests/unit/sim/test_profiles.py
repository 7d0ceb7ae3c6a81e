"""Phone profiles: built-ins, user files with ``extends``, strict validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.sim import profiles

GIB_KB = 1024 * 1024


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    directory = profiles.user_profile_dir()
    directory.mkdir(parents=True)
    return directory


def test_builtins_load_and_look_like_real_phones(user_dir: Path) -> None:
    names = profiles.list_profiles()
    for required in ("sm8650-16g", "sm8550-12g", "sm8475-8g", "sm8650-24g", "tiny-disk"):
        assert required in names
    p16 = profiles.load_profile("sm8650-16g")
    assert (p16.soc_model, p16.board_platform, p16.sdk, p16.ram_gb) == ("SM8650", "pineapple",
                                                                         34, 16)
    assert 14.5 <= p16.memtotal_kb / GIB_KB <= 15.3
    assert profiles.load_profile("sm8550-12g").board_platform == "kalama"
    p8 = profiles.load_profile("sm8475-8g")
    assert (p8.board_platform, p8.android_release, p8.sdk) == ("cape", "13", 33)
    assert profiles.load_profile("sm8650-24g").ram_gb == 24
    tiny = profiles.load_profile("tiny-disk")
    assert tiny.data_size_mb == 64 and tiny.model == p16.model and tiny.name == "tiny-disk"
    for name in names:
        prof = profiles.load_profile(name)
        assert prof.memtotal_kb < prof.ram_gb * GIB_KB
        assert prof.cpu_count == 8


def test_props_have_the_keys_real_phones_show(user_dir: Path) -> None:
    props = profiles.load_profile("sm8650-16g").props("R5CX1234")
    assert props["ro.soc.model"] == "SM8650"
    assert props["ro.soc.manufacturer"] == "QTI"
    assert props["ro.board.platform"] == "pineapple"
    assert props["ro.hardware"] == "qcom"
    assert props["ro.product.cpu.abi"] == "arm64-v8a"
    assert props["ro.serialno"] == "R5CX1234"
    assert props["ro.build.version.release"] == "14"
    assert props["ro.build.version.sdk"] == "34"
    assert props["ro.build.type"] == "user"
    assert props["ro.debuggable"] == "0"
    assert props["ro.build.fingerprint"].startswith("samsung/e3qzcx/e3q:14/")
    assert list(props) == sorted(props)


def test_user_profile_extends_a_builtin(user_dir: Path) -> None:
    (user_dir / "hot-s24.yaml").write_text(
        "extends: sm8650-16g\nspeed_factor: 1.1\nthermal:\n  throttle_c: 45\n")
    assert "hot-s24" in profiles.list_profiles()
    prof = profiles.load_profile("hot-s24")
    base = profiles.load_profile("sm8650-16g")
    assert prof.name == "hot-s24" and prof.speed_factor == 1.1
    assert prof.thermal.throttle_c == 45
    assert prof.thermal.max_c == base.thermal.max_c  # thermal merged key by key
    assert prof.model == base.model


def test_oom_killer_defaults_to_the_kernel_and_a_vendor_lmkd_is_an_option(
        user_dir: Path) -> None:
    assert all(profiles.load_profile(n).oom_killer == "kernel" for n in profiles.list_profiles())
    (user_dir / "vendor.yaml").write_text("extends: sm8650-16g\noom_killer: lmkd\n")
    assert profiles.load_profile("vendor").oom_killer == "lmkd"


def test_unknown_key_names_file_line_and_suggests(user_dir: Path) -> None:
    path = user_dir / "bad.yaml"
    path.write_text("extends: sm8650-16g\nspeed_factr: 1.2\n")
    with pytest.raises(ConfigError) as exc:
        profiles.load_profile("bad")
    assert str(exc.value) == (f"{path}:2: unknown key 'speed_factr'; "
                              "did you mean 'speed_factor'?")


def test_unknown_nested_key(user_dir: Path) -> None:
    (user_dir / "bad.yaml").write_text("extends: sm8650-16g\nthermal:\n  throttle: 40\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:3: unknown key 'throttle'; did you mean "
                                          r"'throttle_c'\?"):
        profiles.load_profile("bad")


@pytest.mark.parametrize(("text", "pattern"), [
    ("extends: sm8650-16g\nram_gb: sixteen\n", r"bad.yaml:2: ram_gb must be int, not str"),
    ("extends: sm8650-16g\nandroid_release: 14\n",
     r'bad.yaml:2: android_release must be str, not int \(quote it: "14"\)'),
    ("extends: sm8650-16g\nrooted: 1\n", r"bad.yaml:2: rooted must be bool"),
    ("extends: sm8650-16g\noom_killer: vendor\n",
     r"bad.yaml:2: oom_killer must be one of kernel, lmkd, not 'vendor'"),
    ("extends: sm8650-16g\nreserved_kb: 99999999\n", r"bad.yaml:2: reserved_kb must be below"),
    ("extends: sm8650-16g\ncpu_clusters:\n  - {cpus: [0, 2], min_khz: 1, max_khz: 2}\n",
     r"bad.yaml:2: the clusters' cpus must number each CPU once"),
    ("model: X\n", r"bad.yaml: profile lacks"),
    ("extends: sm8650-16g\nmodel: [unclosed\n", r"bad.yaml:3: YAML syntax error"),
    ("extends: nosuch-phone\n", r"bad.yaml:1: unknown phone profile 'nosuch-phone'"),
])
def test_validation_errors(user_dir: Path, text: str, pattern: str) -> None:
    (user_dir / "bad.yaml").write_text(text)
    with pytest.raises(ConfigError, match=pattern):
        profiles.load_profile("bad")


def test_extends_cycle_and_unknown_name(user_dir: Path) -> None:
    (user_dir / "a.yaml").write_text("extends: b\n")
    (user_dir / "b.yaml").write_text("extends: a\n")
    with pytest.raises(ConfigError, match="cycle"):
        profiles.load_profile("a")
    with pytest.raises(ConfigError, match=r"unknown phone profile 'sm8650-16'; did you mean "
                                          r"'sm8650-16g'\?"):
        profiles.load_profile("sm8650-16")


def test_dict_round_trip_and_frequency_table(user_dir: Path) -> None:
    prof = profiles.load_profile("sm8550-12g")
    assert profiles.PhoneProfile.from_dict(prof.to_dict()) == prof
    table = prof.cpu_clusters[-1].frequencies_khz()
    assert table[0] == prof.cpu_clusters[-1].min_khz
    assert table[-1] == prof.cpu_clusters[-1].max_khz
    assert list(table) == sorted(set(table))
