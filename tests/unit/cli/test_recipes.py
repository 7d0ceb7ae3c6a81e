"""The recipes / tokenize / convert / runs commands, through click and through main()."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from harness import cli as cli_module
from harness.cli import recipes as cli_recipes
from harness.cli import runs as cli_runs
from harness.errors import EXIT_ERROR, EXIT_USAGE, UsageError
from harness.recipes.load import render_recipe
from harness.recipes.plan import Plan
from harness.recipes.script import render_shell
from harness.recipes.tokens import read_ids, tokenize_prompt
from harness.results.store import StepRecord, Store

COMMANDS = [*cli_recipes.COMMANDS, *cli_runs.COMMANDS]
GROUP = click.Group("harness", commands={c.name or "": c for c in COMMANDS})


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def main_cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``harness.cli.main`` with these commands registered (as cli.py will do)."""
    for command in COMMANDS:
        if command.name not in cli_module.cli.commands:
            monkeypatch.setitem(cli_module.cli.commands, command.name or "", command)
    yield


def run(*args: str) -> Result:
    return CliRunner().invoke(GROUP, list(args), catch_exceptions=True)


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        cli_module.main(args)
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out, captured.err


def test_every_command_has_help() -> None:
    def walk(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
        yield path, command
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from walk(sub, f"{path} {name}")

    for command in COMMANDS:
        for path, sub in walk(command, command.name or ""):
            assert sub.help and sub.help.strip(), path
            assert run(*path.split(), "--help").exit_code == 0, path


def test_recipes_list() -> None:
    result = run("recipes", "list")
    assert result.exit_code == 0
    assert "sdxl-1024-single" in result.output
    data = json.loads(run("recipes", "list", "--json").output)
    assert {d["name"] for d in data} >= {"sd15-512", "sdxl-1024", "sdxl-1024-unet"}
    assert next(d for d in data if d["name"] == "sdxl-1024-unet")["extends"] == "sdxl-1024"


def test_recipes_show() -> None:
    result = run("recipes", "show", "sdxl-1024")
    assert result.exit_code == 0, result.output
    assert "early_decode_k" in result.output
    assert "./sdxl_vae_decoder_run" in result.output
    data = json.loads(run("recipes", "show", "sd15-512", "--json").output)
    assert data["params"]["steps"]["default"] == 20
    assert Plan.from_dict(data["plan"]) == render_recipe("sd15-512")


def test_recipes_render_prints_the_script() -> None:
    result = run("recipes", "render", "sdxl-1024", "--prompt", "a dog", "--seed", "3",
                 "--set", "steps=25")
    assert result.exit_code == 0, result.output
    expected = render_recipe("sdxl-1024", {"prompt": "a dog", "seed": 3}, ["steps=25"])
    assert result.output == render_shell(expected)
    data = json.loads(run("recipes", "render", "sd15-512", "--json").output)
    assert Plan.from_dict(data) == render_recipe("sd15-512")


def test_recipes_render_errors_are_one_line(main_cli: None,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["recipes", "render", "sdxl-1024", "--set", "stpes=3"], capsys)
    assert code == EXIT_USAGE
    assert err.count("\n") == 1
    assert "unknown parameter" in err and "did you mean 'steps'" in err
    code, _, err = run_main(["recipes", "render", "sdxl-1042"], capsys)
    assert code == EXIT_USAGE and "did you mean 'sdxl-1024'" in err


def test_recipe_file_error_names_the_line(tmp_path: Path, main_cli: None,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yaml").write_text("extends: sdxl-1024\nstesp: []\n")
    code, _, err = run_main(["recipes", "show", "bad", "--recipes-dir", str(tmp_path)], capsys)
    assert code == EXIT_USAGE
    assert f"{tmp_path / 'bad.yaml'}:2: unknown key 'stesp'" in err and "did you mean" in err


def test_recipes_lint(tmp_path: Path, main_cli: None,
                      capsys: pytest.CaptureFixture[str]) -> None:
    result = run("recipes", "lint")
    assert result.exit_code == 0, result.output
    assert "SDXL_SINGLE_PROCESS" in result.output and "(expected)" in result.output
    data = json.loads(run("recipes", "lint", "sdxl-1024-single", "--json").output)
    assert data[0]["ok"] and data[0]["findings"][0]["expected"]
    (tmp_path / "reuse.yaml").write_text(
        "extends: sdxl-1024\nsteps:\n  - name: vae\n    env: {CLML_NO_REUSE_TNN: '0'}\n")
    code, out, err = run_main(["recipes", "lint", "--recipes-dir", str(tmp_path)], capsys)
    assert code == EXIT_ERROR
    assert "CLML_NO_REUSE_TNN" in out and "colour blocks" in out
    assert err.strip().endswith("lint failed for reuse")


def test_tokenize_writes_files(tmp_path: Path) -> None:
    result = run("tokenize", "a photo of a cat", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "[49406, 320, 1125, 539, 320, 2368, 49407]" in result.output
    ids_l = read_ids(tmp_path / "clip_l_ids.i32")
    ids_g = read_ids(tmp_path / "clip_g_ids.i32")
    assert list(ids_l[1][:8]) == [49406, 320, 1125, 539, 320, 2368, 49407, 49407]
    assert list(ids_g[1][:8]) == [49406, 320, 1125, 539, 320, 2368, 49407, 0]


def test_tokenize_json_sd15_and_warning(tmp_path: Path) -> None:
    result = run("tokenize", " ".join(["cat"] * 90), "--negative", "blurry", "--sd15",
                 "--json", "--out", str(tmp_path))
    data = json.loads(result.output)
    assert data["files"]["clip_ids"]["path"] == str(tmp_path / "clip_ids.i32")
    blurry = [int(v) for v in tokenize_prompt("blurry").l[1][:3]]
    assert data["files"]["clip_ids"]["ids"][0][:3] == blurry
    assert data["warnings"] and "dropped" in data["warnings"][0]


def test_convert_image_and_latent(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, (1, 3, 64, 64)).astype("<f4")
    image[0, 0, 0, 0] = np.nan
    (tmp_path / "img.qfp32").write_bytes(image.tobytes())
    result = run("convert", str(tmp_path / "img.qfp32"))
    assert result.exit_code == 0, result.output
    assert "1x3x64x64" in result.output and "NaN 1" in result.output
    assert Image.open(tmp_path / "img.png").size == (64, 64)
    latent = rng.normal(size=(1, 4, 32, 32)).astype("<f4")
    (tmp_path / "lat.qfp32").write_bytes(latent.tobytes())
    out = tmp_path / "preview.png"
    data = json.loads(run("convert", str(tmp_path / "lat.qfp32"), "--out", str(out),
                          "--json").output)
    assert data["shape"] == [1, 4, 32, 32] and data["nan_count"] == 0
    assert Image.open(out).size == (32, 32) and Image.open(out).mode == "RGB"


def test_convert_errors(tmp_path: Path) -> None:
    (tmp_path / "odd.qfp32").write_bytes(b"\0" * 4 * 1000)
    result = run("convert", str(tmp_path / "odd.qfp32"))
    assert isinstance(result.exception, UsageError)
    assert "not the size of a square" in str(result.exception)
    result = run("convert", str(tmp_path / "odd.qfp32"), "--shape", "1,3,10,10")
    assert isinstance(result.exception, UsageError) and "bytes" in str(result.exception)
    result = run("convert", str(tmp_path / "odd.qfp32"), "--shape", "1,3,ten,10")
    assert isinstance(result.exception, UsageError) and "N,C,H,W" in str(result.exception)


def test_runs_list_and_show(tmp_path: Path, main_cli: None,
                            capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.sqlite"
    with Store.open(db) as store:
        run_id = store.begin_run(render_recipe("sd15-512"), serial="SIM42")
        store.record_step(run_id, StepRecord(0, "pipeline", "x", 0, 9.5),
                          {"total_s": 9.19277, "s/step": 0.459639})
        store.finish_run(run_id, "ok", verdict="valid")
    result = run("runs", "list", "--db", str(db))
    assert result.exit_code == 0 and run_id in result.output and "SIM42" in result.output
    listed = json.loads(run("runs", "list", "--db", str(db), "--json").output)
    assert listed[0]["id"] == run_id and listed[0]["status"] == "ok"
    shown = run("runs", "show", run_id[:10], "--db", str(db))
    assert shown.exit_code == 0 and "9.19277" in shown.output and "valid" in shown.output
    data = json.loads(run("runs", "show", run_id, "--db", str(db), "--json").output)
    assert data["metrics"][0]["name"] == "total_s"
    assert Plan.from_dict(data["plan"]).recipe == "sd15-512"
    code, _, err = run_main(["runs", "show", "NOPE", "--db", str(db)], capsys)
    assert code == EXIT_USAGE and "no run 'NOPE'" in err


def test_recipes_render_takes_the_step_overrides_of_run() -> None:
    result = run("recipes", "render", "sdxl-1024", "--set", "vae.env.CLML_NO_REUSE_TNN=0",
                 "--set", "vae.cwd=/data", "--set", "unet.unset=SDXL_EARLY_DECODE_X0",
                 "--set", "steps=25", "--json")
    assert result.exit_code == 0, result.output
    plan = Plan.from_dict(json.loads(result.output))
    assert plan.step("vae").env["CLML_NO_REUSE_TNN"] == "0"
    assert plan.step("vae").cwd == "/data"
    assert "SDXL_EARLY_DECODE_X0" not in plan.step("unet").env
    assert plan.params["steps"] == 25
    script = run("recipes", "render", "sdxl-1024", "--set", "vae.env.MY_SWITCH=on").output
    assert "MY_SWITCH=on" in script
    bad = run("recipes", "render", "sdxl-1024", "--set", "vea.env.X=1")
    assert isinstance(bad.exception, UsageError) and "did you mean 'vae'" in str(bad.exception)


def test_runs_show_prints_temperatures_and_each_verdict(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    with Store.open(db) as store:
        run_id = store.begin_run(render_recipe("sd15-512"), serial="SIM42",
                                 temps_before={"battery_c": 36.5,
                                               "zones": {"cpu-1-0-0": 41.0, "gpuss-0": 39.0}})
        store.finish_run(run_id, "ok", verdict="hot-start: battery 36.5 °C > 35 °C; again\n"
                                               "pipeline: expected metric total_s was not "
                                               "printed",
                         temps_after={"battery_c": 38.0, "zones": {}})
    shown = run("runs", "show", run_id, "--db", str(db)).output
    assert ("temperatures: before battery 36.5 °C, hottest zone 41.0 °C (cpu-1-0-0); after "
            "battery 38.0 °C") in shown
    assert "verdicts: 2" in shown
    assert "  - hot-start: battery 36.5 °C > 35 °C; again" in shown
    assert "  - pipeline: expected metric total_s was not printed" in shown
