"""Asset sets: built-ins rooted in the demo tree, user overrides, destination confinement."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.assets.sets import confine_dest, demo_assets_dir, load_asset_sets
from harness.config import load_user_config
from harness.errors import ConfigError
from harness.recipes.load import render_recipe

BUILTIN_SETS = {"sd15-binary", "sd15-weights", "sdxl-binaries", "sdxl-weights", "mnn-clip",
                "mnn-fuse", "sdxl-embeds"}


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    return (tmp_path / "home").resolve()


def test_builtin_sets_use_the_demo_tree(home: Path) -> None:
    sets = load_asset_sets()
    assert set(sets) >= BUILTIN_SETS
    demo = demo_assets_dir()
    assert demo == home / "sim" / "demo_assets"
    weights = sets["sdxl-weights"].entries[0]
    assert weights.src == demo / "sdxl_clml" / "sdxl_clml_weights"
    assert weights.dest == "/data/local/tmp/sdxl_clml/sdxl_clml_weights"
    binaries = {e.dest: e.mode for e in sets["sdxl-binaries"].entries}
    assert binaries == {"/data/local/tmp/sdxl_pipeline_run": 0o755,
                        "/data/local/tmp/sdxl_vae_decoder_run": 0o755}
    assert sets["mnn-fuse"].entries[0].mode is None


def test_demo_tree_layout_matches_the_sim(home: Path) -> None:
    assets = pytest.importorskip("harness.sim.assets")
    tree = assets.build_demo_assets(demo_assets_dir())
    for name, aset in load_asset_sets().items():
        if name == "sdxl-embeds":
            continue  # not part of the demo tree (yet)
        for entry in aset.entries:
            assert entry.src.exists(), entry.src
            assert entry.src.relative_to(tree)


def test_config_moves_one_set_or_all(home: Path, tmp_path: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(textwrap.dedent("""\
        assets_root: ~/all-assets
        assets:
          sdxl-weights: {root: mine}
        """))
    sets = load_asset_sets()
    assert sets["sdxl-weights"].entries[0].src == home / "mine" / "sdxl_clml/sdxl_clml_weights"
    assert sets["mnn-clip"].entries[0].src == Path("~/all-assets").expanduser() / "MNN_clip"
    plan = render_recipe("sdxl-1024")
    assert str(home / "mine" / "sdxl_clml" / "sdxl_clml_weights") in {a.src for a in plan.assets}


def test_config_errors_name_the_line(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text("assets:\n  sdxl-weights: {rot: /x}\n")
    with pytest.raises(ConfigError, match=r"config.yaml:2: unknown key 'rot'.*did you mean 'root'"):
        load_user_config()


def test_user_assets_file_adds_and_replaces_sets(tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "assets.yaml").write_text(textwrap.dedent("""\
        sets:
          mnn-fuse:
            entries:
              - {src: /opt/mnn_fuse, dest: MNN_fuse}
          my-lora:
            root: "{{ home }}/loras"
            entries:
              - {src: portrait.bin, dest: /data/local/tmp/loras/portrait.bin, mode: 0644}
        """))
    sets = load_asset_sets([extra])
    assert sets["mnn-fuse"].entries[0].src == Path("/opt/mnn_fuse")
    assert sets["mnn-fuse"].entries[0].dest == "/data/local/tmp/MNN_fuse"  # relative dest
    lora = sets["my-lora"].entries[0]
    assert lora.src.name == "portrait.bin" and lora.src.parent.name == "loras"
    assert lora.mode == 0o644
    assert "sdxl-weights" in sets


@pytest.mark.parametrize("dest", ["/system/lib64/libMNN.so", "/data/local/tmp/../../etc",
                                  "../x", "/data/local/tmpfoo", ""])
def test_destinations_are_confined(dest: str) -> None:
    with pytest.raises(ConfigError):
        confine_dest(dest, "test")


def test_confinement_normalises() -> None:
    assert confine_dest("/data/local/tmp//a/./b/", "t") == "/data/local/tmp/a/b"
    assert confine_dest("a/b", "t") == "/data/local/tmp/a/b"
    assert confine_dest("/data/local/tmp", "t") == "/data/local/tmp"
    assert confine_dest("/sdcard/x", "t", ["/sdcard"]) == "/sdcard/x"


def test_bad_dest_in_a_file_names_the_line(tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "assets.yaml").write_text("sets:\n  bad:\n    entries:\n"
                                       "      - {src: x, dest: /vendor/lib64/x.so}\n")
    with pytest.raises(ConfigError, match=r"assets.yaml:4: device path '/vendor/lib64/x.so' is "
                                          "outside"):
        load_asset_sets([extra])


def test_bad_mode(tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "assets.yaml").write_text("sets:\n  bad:\n    entries:\n"
                                       "      - {src: x, dest: x, mode: rwx}\n")
    with pytest.raises(ConfigError, match="not an octal number"):
        load_asset_sets([extra])


@pytest.mark.parametrize("text", [
    "/plain/path", "{{ demo_assets }}/sd15_pipeline_run", "{{home}}/x/{{ demo_assets }}",
    "{{  home  }}", "ends with a newline\n", "two newlines\n\n", "no braces at all",
    "{{ home | upper }}/x", "{% if true %}/a{% endif %}", "{# note #}/b", "{{ 'lit' }}/c",
])
def test_paths_render_as_jinja2_renders_them(text: str, monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    import jinja2.sandbox

    from harness.assets import sets

    monkeypatch.setenv("HARNESS_HOME", str(tmp_path))
    monkeypatch.setattr(sets, "demo_assets_dir", lambda: tmp_path / "demo")
    templates = sets._Templates()
    env = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined,
                                              autoescape=False)
    want = env.from_string(text).render(templates.context)
    assert templates._render(text, None) == want  # type: ignore[arg-type]
