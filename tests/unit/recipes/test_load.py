"""Recipes: built-ins match the seed's commands, extends rules, validation messages."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from harness.clip import CLIP_END_TOKEN
from harness.errors import ConfigError, UsageError
from harness.recipes.load import RecipeBook, render_recipe
from harness.recipes.plan import Plan
from harness.recipes.script import step_command
from harness.recipes.tokens import tokenize_prompt
from tests import handrun


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(needle)


# ---- built-ins ------------------------------------------------------------------------------


def test_builtins_are_listed_and_render() -> None:
    book = RecipeBook()
    assert {"sd15-512", "sdxl-1024", "sdxl-1024-unet", "sdxl-1024-single"} <= set(book.names())
    for name in book.names():
        plan = book.render(name)
        assert plan.steps and plan.recipe == name
        assert Plan.from_dict(plan.to_dict()) == plan


def test_sdxl_1024_is_the_seeds_split_flow() -> None:
    plan = render_recipe("sdxl-1024")
    unet, vae = plan.steps
    assert (unet.name, vae.name) == ("unet", "vae")
    assert unet.env == handrun.SDXL_UNET_ENV
    assert list(unet.env) == list(handrun.SDXL_UNET_ENV)  # order too
    assert list(unet.argv) == handrun.SDXL_UNET_ARGV
    assert unet.cwd is None
    assert vae.env == handrun.SDXL_VAE_ENV and list(vae.env) == list(handrun.SDXL_VAE_ENV)
    assert list(vae.argv) == handrun.SDXL_VAE_ARGV
    assert vae.cwd == handrun.DEVICE_TMP
    assert step_command(unet) == handrun.shell_line(handrun.SDXL_UNET_ENV, handrun.SDXL_UNET_ARGV)
    assert step_command(vae) == handrun.shell_line(handrun.SDXL_VAE_ENV, handrun.SDXL_VAE_ARGV,
                                                   cwd=handrun.DEVICE_TMP)
    image = vae.output("image")
    assert (image.path, image.shape, image.kind) == (handrun.SDXL_OUTPUT, (1, 3, 1024, 1024),
                                                    "image")
    latent = unet.output("latent")
    assert latent.path == handrun.SDXL_UNET_ENV["SDXL_LATENT_OUT"] == vae.argv[-1]
    assert (latent.shape, latent.kind) == ((1, 4, 128, 128), "latent")
    assert plan.requirements.min_ram_gb == 16
    assert plan.asset_sets == ("sdxl-binaries", "sdxl-weights", "mnn-clip", "mnn-fuse")


def test_sdxl_token_files_are_the_seeds() -> None:
    plan = render_recipe("sdxl-1024")
    files = {t.kind: t for t in plan.token_files}
    assert files["clip_l"].dest == "/data/local/tmp/clip_l_ids.i32"
    assert files["clip_g"].dest == "/data/local/tmp/clip_g_ids.i32"
    assert files["clip_l"].data() == handrun.token_rows(handrun.A_PHOTO_OF_A_CAT, CLIP_END_TOKEN)
    assert files["clip_g"].data() == handrun.token_rows(handrun.A_PHOTO_OF_A_CAT, 0)
    assert {t.dest for t in plan.token_files} <= set(plan.steps[0].inputs)
    # every declared input comes from somewhere harness can name
    for step in plan.steps:
        assert all(plan.provider(path) for path in step.inputs), step.name
    assert plan.provider(plan.steps[1].inputs[-1]) == "the output 'latent' of step 'unet'"
    assert plan.provider("/data/local/tmp/MNN_fuse/libMNN.so") == "asset set mnn-fuse"


def test_sd15_is_the_seeds_single_process() -> None:
    plan = render_recipe("sd15-512")
    (step,) = plan.steps
    assert step_command(step) == handrun.shell_line(
        {"CLML_NO_REUSE_TNN": "1", "SD15_CLIP_IDS": "/data/local/tmp/sd15_clip_ids.i32"},
        ["/data/local/tmp/sd15_pipeline_run", "/data/local/tmp/sd15_clml/sd15_clml_weights",
         "20"])
    assert step.output("image").path == handrun.SD15_OUTPUT
    assert step.output("image").shape == (1, 3, 512, 512)
    (token,) = plan.token_files
    # outside the weights tree: harness never writes into an asset set's folder
    assert token.dest == "/data/local/tmp/sd15_clip_ids.i32"
    assert token.data() == handrun.token_rows(handrun.A_PHOTO_OF_A_CAT, CLIP_END_TOKEN)


def test_sd15_seed_and_steps() -> None:
    plan = render_recipe("sd15-512", {"seed": 42}, ["steps=8"])
    step = plan.steps[0]
    assert step.env == {"CLML_NO_REUSE_TNN": "1",
                        "SD15_CLIP_IDS": "/data/local/tmp/sd15_clip_ids.i32", "SD15_SEED": "42"}
    assert step.argv[-1] == "8"


def test_sd15_ids_path_and_variable_names_are_parameters() -> None:
    plan = render_recipe("sd15-512", {"seed": 5}, ["clip_ids=/data/local/tmp/my/ids.i32",
                                                   "clip_ids_env=MY_IDS", "seed_env=MY_SEED"])
    step = plan.steps[0]
    assert step.env == {"CLML_NO_REUSE_TNN": "1", "MY_IDS": "/data/local/tmp/my/ids.i32",
                        "MY_SEED": "5"}
    assert plan.token_files[0].dest == "/data/local/tmp/my/ids.i32"
    assert "/data/local/tmp/my/ids.i32" in step.inputs


def test_a_token_file_inside_a_weights_tree_is_refused() -> None:
    with pytest.raises(ConfigError, match="inside asset set sd15-weights"):
        render_recipe("sd15-512", {}, ["clip_ids=/data/local/tmp/sd15_clml/sd15_clml_weights/"
                                       "clip_ids.i32"])


def test_a_bad_variable_name_from_a_parameter_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a valid variable name"):
        render_recipe("sd15-512", {}, ["seed_env=NOT-A-NAME"])


def test_sdxl_params_reach_the_command() -> None:
    plan = render_recipe("sdxl-1024", {"prompt": "a dog"},
                         ["seed=7", "guidance=5", "early_decode_k=0", "steps=30"])
    unet = plan.steps[0]
    assert unet.argv[5:8] == ("30", "5.0", "7")
    assert unet.env["SDXL_EARLY_DECODE_K"] == "0"
    assert unet.env["SDXL_EXPORT_X0"] == "1"  # k = 0 needs the explicit x0 export
    assert unet.env["SDXL_LATENT_OUT"].endswith("early0_x0.qfp32")
    clip_l = plan.token_files[0]
    assert clip_l.ids[1] == tuple(int(v) for v in tokenize_prompt("a dog").l[1])


def test_sdxl_unet_variant() -> None:
    plan = render_recipe("sdxl-1024-unet")
    (unet,) = plan.steps
    assert unet.env["SDXL_TEXT_EMBEDS"].endswith("sdxl_text_embeds.f32")
    assert unet.env["SDXL_POOLED_EMBEDS"].endswith("sdxl_pooled_embeds.f32")
    assert unet.env["SDXL_EARLY_DECODE_K"] == "0" and unet.env["SDXL_EXPORT_X0"] == "1"
    assert unet.stages == ("unet",)
    assert "sdxl-embeds" in plan.asset_sets
    assert plan.outputs[0][1].kind == "latent"


def test_sdxl_single_variant() -> None:
    plan = render_recipe("sdxl-1024-single")
    (step,) = plan.steps
    assert step.name == "pipeline" and step.stages == ("clip", "unet", "vae")
    assert "SDXL_UNET_ONLY" not in step.env and "SDXL_LATENT_OUT" not in step.env
    assert step.env["CLML_NO_REUSE_TNN"] == "1"
    assert step.argv[-1] == step.output("image").path
    assert [o.name for o in step.outputs] == ["image"]
    assert plan.expect_lint == ("SDXL_SINGLE_PROCESS",)


def test_prompt_is_data_not_a_template() -> None:
    plan = render_recipe("sdxl-1024", {"prompt": "{{ 7*7 }} cats"})
    assert plan.params["prompt"] == "{{ 7*7 }} cats"


# ---- extends ---------------------------------------------------------------------------------


def test_variant_is_a_few_lines(tmp_path: Path) -> None:
    write(tmp_path, "sdxl-fast", """\
        extends: sdxl-1024
        description: fewer steps, k=1
        params:
          steps: {default: 12}
          early_decode_k: {default: 1, max: 4}
        steps:
          - name: unet
            env:
              CLML_MNN_ATTN_FP32: null
              EXTRA_FLAG: "yes"
              SDXL_EARLY_DECODE_X0: "1"
        """)
    book = RecipeBook([tmp_path])
    recipe = book.load("sdxl-fast")
    assert recipe.params["early_decode_k"].max == 4
    assert recipe.params["early_decode_k"].type == "int"  # fields merged, not replaced
    plan = book.render(recipe)
    unet = plan.steps[0]
    assert unet.argv[5] == "12"
    assert "CLML_MNN_ATTN_FP32" not in unet.env
    env_keys = list(unet.env)
    assert env_keys[-1] == "EXTRA_FLAG"  # new keys go last
    assert env_keys.index("SDXL_EARLY_DECODE_X0") < env_keys.index("SDXL_UNET_ONLY")
    assert plan.steps[1].name == "vae"  # untouched steps inherited
    assert plan.description == "fewer steps, k=1"
    assert recipe.chain[-1].endswith("sdxl-fast.yaml")


def test_steps_remove_from_and_append(tmp_path: Path) -> None:
    write(tmp_path, "three", """\
        extends: sdxl-1024
        steps:
          - name: vae2
            from: vae
            args: ["{{ weights }}", "2", "1", "1", "0.1", "128", "128", "1", "{{ latent }}"]
          - {name: vae, remove: true}
          - name: probe
            binary: /system/bin/true
            stages: []
        """)
    plan = RecipeBook([tmp_path]).render("three")
    assert [s.name for s in plan.steps] == ["unet", "vae2", "probe"]
    vae2 = plan.step("vae2")
    assert vae2.cwd == "/data/local/tmp" and vae2.argv[0] == "./sdxl_vae_decoder_run"
    assert vae2.argv[2] == "2"
    assert vae2.outputs[0].name == "image"


def test_expect_lint_is_not_inherited(tmp_path: Path) -> None:
    write(tmp_path, "single-30", "extends: sdxl-1024-single\nparams: {steps: {default: 30}}\n")
    plan = RecipeBook([tmp_path]).render("single-30")
    assert plan.expect_lint == ()


def test_user_recipe_shadows_and_extends_the_builtin(home: Path) -> None:
    write(home / "recipes", "sdxl-1024", """\
        extends: sdxl-1024
        params: {seed: {default: 5}}
        """)
    book = RecipeBook()
    plan = book.render("sdxl-1024")
    assert plan.params["seed"] == 5
    assert plan.steps[0].argv[7] == "5"
    assert len(book.load("sdxl-1024").chain) == 2


def test_output_merge_by_name(tmp_path: Path) -> None:
    write(tmp_path, "moved", """\
        extends: sdxl-1024
        steps:
          - name: vae
            outputs:
              - {name: image, path: /data/local/tmp/output/other.qfp32}
        """)
    out = RecipeBook([tmp_path]).render("moved").step("vae").output("image")
    assert out.path == "/data/local/tmp/output/other.qfp32"
    assert out.shape == (1, 3, 1024, 1024)


# ---- validation -------------------------------------------------------------------------------


def error_of(tmp_path: Path, name: str, text: str, sets: tuple[str, ...] = (),
             kind: type[Exception] = ConfigError) -> tuple[str, Path]:
    path = write(tmp_path, name, text)
    with pytest.raises(kind) as info:
        RecipeBook([tmp_path]).render(name, set_pairs=sets)
    return str(info.value), path


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    message, path = error_of(tmp_path, "broken", "name: broken\nsteps:\n  - name: [x\n")
    assert message.startswith(f"{path}:")
    assert "YAML syntax error" in message


def test_unknown_key_did_you_mean(tmp_path: Path) -> None:
    message, path = error_of(tmp_path, "typo", """\
        extends: sdxl-1024
        steps:
          - name: unet
            evn: {A: "1"}
        """)
    assert f"{path}:{line_of(path, 'evn')}" in message
    assert "unknown key 'evn'" in message and "did you mean 'env'" in message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    message, path = error_of(tmp_path, "top", "extends: sdxl-1024\nparms: {}\n")
    assert f"{path}:2" in message and "did you mean 'params'" in message


def test_wrong_type(tmp_path: Path) -> None:
    message, path = error_of(tmp_path, "wrong", """\
        extends: sdxl-1024
        steps:
          - name: unet
            args: {a: 1}
        """)
    assert f"{path}:{line_of(path, 'args')}" in message and "must be a list" in message


def test_duplicate_key(tmp_path: Path) -> None:
    message, path = error_of(tmp_path, "dup", "extends: sdxl-1024\ndescription: a\n"
                             "description: b\n")
    assert f"{path}:3" in message and "duplicate key" in message


def test_param_default_of_wrong_type(tmp_path: Path) -> None:
    message, path = error_of(tmp_path, "badparam", """\
        extends: sdxl-1024
        params:
          steps: {default: many}
        """)
    assert f"{path}:{line_of(path, 'steps')}" in message and "must be int" in message


def test_unknown_set_parameter_did_you_mean() -> None:
    with pytest.raises(UsageError, match=r"--set stpes: unknown parameter \(did you mean "
                                         r"'steps'\?\)"):
        render_recipe("sdxl-1024", set_pairs=["stpes=3"])


@pytest.mark.parametrize(("pair", "fragment"), [
    ("steps=many", "must be int"),
    ("guidance=high", "must be float"),
    ("steps=0", "below the minimum"),
    ("steps", "expected NAME=VALUE"),
])
def test_bad_set_values(pair: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        render_recipe("sdxl-1024", set_pairs=[pair])


def test_choices_are_enforced() -> None:
    with pytest.raises(UsageError, match="not one of 512"):
        render_recipe("sd15-512", set_pairs=["height=768"])


def test_missing_asset_set_did_you_mean(tmp_path: Path) -> None:
    message, path = error_of(tmp_path, "needs-assets", """\
        extends: sdxl-1024
        assets: [sdxl-binaries, sdxl-weight]
        """)
    assert f"{path}:2" in message
    assert "unknown asset set 'sdxl-weight'" in message and "did you mean 'sdxl-weights'" in message


@pytest.mark.parametrize(("shape", "fragment"), [
    ("[1, 3, 0, 1024]", "non-positive"),
    ("[3, 1024, 1024]", "rank 4"),
    ("[1, 3, 512, 512]", "does not match height x width 1024x1024"),
    ("[1, 4, 1024, 1024]", "must have 3 channels"),
    ("[1, 3, big, 1024]", "not an integer"),
])
def test_bad_shapes(tmp_path: Path, shape: str, fragment: str) -> None:
    message, path = error_of(tmp_path, "shape", f"""\
        extends: sdxl-1024
        steps:
          - name: vae
            outputs:
              - name: image
                shape: {shape}
        """)
    assert f"{path}:{line_of(path, 'shape:')}" in message
    assert fragment in message


def test_latent_shape_follows_height(tmp_path: Path) -> None:
    message, _ = error_of(tmp_path, "lat", """\
        extends: sdxl-1024
        steps:
          - name: unet
            outputs:
              - {name: latent, shape: [1, 4, 64, 64]}
        """)
    assert "expected H, W = (128, 128)" in message


def test_undefined_template_variable(tmp_path: Path) -> None:
    message, path = error_of(tmp_path, "undef", """\
        extends: sdxl-1024
        steps:
          - name: unet
            env: {X: "{{ stepz }}"}
        """)
    assert f"{path}:{line_of(path, 'stepz')}" in message and "'stepz' is undefined" in message


def test_sandbox_blocks_unsafe_attributes(tmp_path: Path) -> None:
    message, _ = error_of(tmp_path, "evil", """\
        extends: sdxl-1024
        steps:
          - name: unet
            env: {X: "{{ prompt.__class__.__mro__ }}"}
        """)
    assert "unsafe" in message or "__class__" in message


def test_unknown_extends(tmp_path: Path) -> None:
    message, path = error_of(tmp_path, "orphan", "extends: sdxl-1025\n")
    assert f"{path}:1" in message and "did you mean 'sdxl-1024'" in message


def test_extends_cycle(tmp_path: Path) -> None:
    write(tmp_path, "a", "extends: b\n")
    write(tmp_path, "b", "extends: a\n")
    with pytest.raises(ConfigError, match="too deep"):
        RecipeBook([tmp_path]).load("a")


def test_unknown_recipe() -> None:
    with pytest.raises(UsageError, match="did you mean 'sdxl-1024'"):
        RecipeBook().load("sdxl-1042")


def test_name_must_match_file(tmp_path: Path) -> None:
    message, path = error_of(tmp_path, "x", "name: y\nextends: sdxl-1024\n")
    assert f"{path}:1" in message and "differs from the file name" in message


def test_unknown_expect_lint_rule(tmp_path: Path) -> None:
    message, path = error_of(tmp_path, "exp", "extends: sdxl-1024\n"
                             "expect_lint: [SDXL_SINGLE_PROCES]\n")
    assert f"{path}:2" in message and "did you mean 'SDXL_SINGLE_PROCESS'" in message


def test_remove_missing_step(tmp_path: Path) -> None:
    message, path = error_of(tmp_path, "rm", "extends: sdxl-1024\nsteps:\n"
                             "  - {name: vea, remove: true}\n")
    assert f"{path}:3" in message and "did you mean 'vae'" in message


def test_token_dest_is_confined(tmp_path: Path) -> None:
    message, _ = error_of(tmp_path, "tok", """\
        extends: sdxl-1024
        tokens:
          - {kind: clip_l, dest: /system/clip_l_ids.i32}
        """)
    assert "outside the allowed folders" in message


def test_broken_recipe_does_not_hide_the_others(tmp_path: Path) -> None:
    write(tmp_path, "broken", "steps: [\n")
    summaries = {s.name: s for s in RecipeBook([tmp_path]).summaries()}
    assert summaries["broken"].error and "YAML syntax error" in summaries["broken"].error
    assert summaries["sdxl-1024"].error is None


def test_requirements_unmet() -> None:
    req = render_recipe("sdxl-1024").requirements
    assert req.unmet(16, "SM8650") == []
    assert req.unmet(12, None) == ["needs 16 GB of RAM, the phone has 12 GB"]
    assert req.unmet(None, None) == []
    pinned = dataclasses.replace(req, socs=("SM8650",))
    assert pinned.unmet(24, "sm8650") == []
    assert "needs SoC SM8650" in pinned.unmet(24, "SM8550")[0]
