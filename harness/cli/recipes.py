"""CLI commands for recipes, token ids and qfp32 conversion.

Each command parses its options, calls one library function and renders the result; errors
are :class:`~harness.errors.HarnessError` subclasses that ``harness.cli.main`` turns into one
line. Register with ``for command in COMMANDS: cli.add_command(command)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from harness.cli.options import Output, output_options
from harness.errors import HarnessError, UsageError

if TYPE_CHECKING:
    from harness.recipes.load import LintReport, RecipeBook
    from harness.recipes.plan import Plan
    from harness.recipes.schema import Recipe

# Library modules are imported inside the commands: `harness --help` and unrelated commands
# should not pay for numpy, jinja2, sqlite3 and the tokenizer.

# markup off by default: recipe text and prompts are printed verbatim; markup is opt-in
# (with escape()) where this module adds its own colours.
from harness.console import err, escape, out


class LintFailed(HarnessError):
    """``harness recipes lint`` found problems a recipe does not expect."""


def _warn(messages: Sequence[str]) -> None:
    for message in messages:
        err.print(f"[yellow]warning:[/] {escape(message)}", markup=True)


recipes_dir_option = click.option(
    "--recipes-dir", "recipes_dirs", multiple=True, metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Another folder of recipes (and assets.yaml); repeatable, later ones win.")


def _book(recipes_dirs: Sequence[Path]) -> RecipeBook:
    from harness.recipes.load import RecipeBook

    return RecipeBook(list(recipes_dirs))


# ---- recipes ------------------------------------------------------------------------------


@click.group("recipes")
def recipes() -> None:
    """Recipes: list, show, render to a shell script, lint for known pitfalls."""


@recipes.command("list")
@recipes_dir_option
@output_options("Print the recipes as JSON.")
def recipes_list(recipes_dirs: tuple[Path, ...], output: Output) -> None:
    """List recipes (built-in, $HARNESS_HOME/recipes, --recipes-dir)."""
    from rich.table import Table
    from rich.text import Text

    items = _book(recipes_dirs).summaries()
    table = Table("recipe", "family", "extends", "description")
    for item in items:
        text = Text(item.description) if item.error is None else Text(f"error: {item.error}",
                                                                      style="red")
        table.add_row(item.name, item.family, item.extends or "", text)
    output.emit([asdict(s) for s in items], lambda: out.print(table))


def _param_rows(recipe: Recipe) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for spec in recipe.params.values():
        limits = []
        if spec.choices:
            limits.append("one of " + ", ".join(repr(c) for c in spec.choices))
        if spec.min is not None:
            limits.append(f">= {spec.min:g}")
        if spec.max is not None:
            limits.append(f"<= {spec.max:g}")
        rows.append((spec.name, spec.type, repr(spec.default), "; ".join(limits), spec.help))
    return rows


@recipes.command("show")
@click.argument("name")
@recipes_dir_option
@output_options("Print the recipe and its default plan as JSON.")
def recipes_show(name: str, recipes_dirs: tuple[Path, ...], output: Output) -> None:
    """Show a recipe: parameters, requirements, assets and the commands it runs."""
    from harness.recipes.load import plain

    book = _book(recipes_dirs)
    recipe = book.load(name)
    plan = book.render(recipe)
    output.emit({"name": recipe.name, "description": recipe.description,
                 "family": recipe.family, "source": recipe.source,
                 "chain": list(recipe.chain),
                 "params": {n: asdict(p) | {"pos": str(p.pos) if p.pos else None}
                            for n, p in recipe.params.items()},
                 "document": plain(recipe.data), "plan": plan.to_dict()},
                lambda: _print_recipe(recipe, plan))


def _print_recipe(recipe: Recipe, plan: Plan) -> None:
    from rich.table import Table

    from harness.recipes.script import step_command

    out.print(f"[bold]{escape(recipe.name)}[/] ({escape(recipe.family or 'no family')}): "
              f"{escape(recipe.description)}", markup=True)
    out.print(f"defined in: {' <- '.join(reversed(recipe.chain))}")
    req = plan.requirements
    ram = "?" if req.min_ram_gb is None else f"{req.min_ram_gb:g}"
    out.print(f"requires: {ram} GB RAM"
              + (f", SoC {', '.join(req.socs)}" if req.socs else ""))
    out.print(f"asset sets: {', '.join(plan.asset_sets) or 'none'}")
    table = Table("param", "type", "default", "limits", "help")
    for row in _param_rows(recipe):
        table.add_row(*row)
    out.print(table)
    for step in plan.steps:
        out.print(f"\n[bold]step {escape(step.name)}[/] ({'+'.join(step.stages) or '-'}):",
                  markup=True)
        click.echo(step_command(step))


def _values(prompt: str | None, negative: str | None, seed: int | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in (("prompt", prompt), ("negative_prompt", negative), ("seed", seed)):
        if value is not None:
            values[key] = value
    return values


@recipes.command("render")
@click.argument("name")
@click.option("--set", "set_pairs", multiple=True, metavar="K=V",
              help="A recipe parameter (steps=30), or a step override as for `harness run`: "
                   "STEP.env.KEY=VALUE, STEP.unset=KEY, STEP.cwd=DIR. Repeatable.")
@click.option("--prompt", default=None, help="The prompt (same as --set prompt=...).")
@click.option("--negative", default=None, help="The negative prompt.")
@click.option("--seed", type=int, default=None, help="The seed (same as --set seed=N).")
@click.option("--tokenizer-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Tokenizer files (vocab.json + merges.txt; diffusers "
              "tokenizer/ and tokenizer_2/ folders) instead of the embedded CLIP BPE.")
@recipes_dir_option
@output_options("Print the plan as JSON instead.")
def recipes_render(name: str, set_pairs: tuple[str, ...], prompt: str | None,
                   negative: str | None, seed: int | None, tokenizer_dir: Path | None,
                   recipes_dirs: tuple[Path, ...], output: Output) -> None:
    """Render a recipe into the exact adb commands, as a POSIX shell script."""
    from harness.recipes.overrides import apply_overrides, split_set_pairs
    from harness.recipes.script import render_shell

    params, overrides = split_set_pairs(set_pairs)
    plan = apply_overrides(_book(recipes_dirs).render(name, _values(prompt, negative, seed),
                                                      params, tokenizer_dir), overrides)
    _warn(plan.warnings)
    output.emit(plan.to_dict(), lambda: click.echo(render_shell(plan), nl=False))


def _print_lints(reports: Sequence[LintReport]) -> None:
    for report in reports:
        _print_lint(report)


def _print_lint(report: LintReport) -> None:
    name = escape(report.recipe)
    if report.error:
        out.print(f"[red]✗[/] {name}: {escape(report.error)}", markup=True)
        return
    out.print(f"{'[red]✗[/]' if report.unexpected else '[green]✓[/]'} {name}", markup=True)
    for finding in report.findings:
        tag = "" if finding in report.unexpected else " (expected)"
        where = f" \\[{escape(finding.step)}]" if finding.step else ""
        out.print(f"    {finding.severity} {finding.rule}{where}: {escape(finding.message)}{tag}",
                  markup=True)
        out.print(f"        [dim]{escape(finding.reason)}[/]", markup=True)
    for rule in report.missing:
        out.print(f"    note: expect_lint lists {rule} but it was not found")


def _lint_dict(report: LintReport) -> dict[str, Any]:
    return {"recipe": report.recipe, "ok": report.ok, "error": report.error,
            "findings": [asdict(f) | {"expected": f not in report.unexpected}
                         for f in report.findings],
            "unexpected": [f.rule for f in report.unexpected], "missing": report.missing}


@recipes.command("lint")
@click.argument("name", required=False)
@recipes_dir_option
@output_options("Print the findings as JSON.")
def recipes_lint(name: str | None, recipes_dirs: tuple[Path, ...], output: Output) -> None:
    """Check recipes (default parameters) for the seed's known pitfalls.

    Exits non-zero when a recipe does not load or has a finding it does not list in
    expect_lint.
    """
    from harness.recipes.load import lint_recipe

    book = _book(recipes_dirs)
    names = [name] if name else book.names()
    if name:
        book.load(name)  # an unknown or malformed recipe is an error of its own
    reports = [lint_recipe(book, n) for n in names]
    output.emit([_lint_dict(r) for r in reports], lambda: _print_lints(reports))
    failing = [r.recipe for r in reports if not r.ok]
    if failing:
        raise LintFailed(f"lint failed for {', '.join(failing)}")


# ---- tokenize, convert --------------------------------------------------------------------


def _trim(row: Any, end: int) -> list[int]:
    values = [int(v) for v in row]
    return values[: values.index(end) + 1] if end in values else values


@click.command("tokenize")
@click.argument("prompt")
@click.option("--negative", default="", help="Negative prompt (the uncond row; default empty).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path(), show_default=True, help="Folder for the .i32 files.")
@click.option("--tokenizer-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="vocab.json + merges.txt (or diffusers tokenizer/ and "
              "tokenizer_2/) instead of the embedded CLIP BPE.")
@click.option("--sd15", is_flag=True, help="Write SD1.5's clip_ids.i32 instead of SDXL's "
              "clip_l_ids.i32 and clip_g_ids.i32.")
@output_options("Print files and ids as JSON.")
def tokenize_cmd(prompt: str, negative: str, out_dir: Path, tokenizer_dir: Path | None,
                 sd15: bool, output: Output) -> None:
    """Write CLIP token ids (2 x 77 int32, rows [uncond, cond]) for a prompt."""
    from harness.clip import CLIP_END_TOKEN
    from harness.recipes.tokens import sd15_ids, tokenize_prompt, write_ids, write_sd15_ids

    if sd15:
        rows = sd15_ids(prompt, negative, tokenizer_dir)
        files = {"clip_ids": (write_sd15_ids(rows, out_dir), rows.ids)}
        warnings = rows.warnings
    else:
        ids = tokenize_prompt(prompt, negative, tokenizer_dir)
        path_l, path_g = write_ids(ids, out_dir)
        files = {"clip_l": (path_l, ids.l), "clip_g": (path_g, ids.g)}
        warnings = ids.warnings

    def render() -> None:
        _warn(warnings)
        for key, (path, arr) in files.items():
            click.echo(f"{path}  ({key}, 2x77 int32)")
            click.echo(f"  cond:   {_trim(arr[1], CLIP_END_TOKEN)}")
            click.echo(f"  uncond: {_trim(arr[0], CLIP_END_TOKEN)}")

    output.emit({"warnings": warnings, "files": {
        key: {"path": str(path), "ids": arr.tolist()} for key, (path, arr) in files.items()}},
        render)


def _parse_shape(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        raise UsageError(f"--shape {text!r}: expected N,C,H,W such as 1,3,1024,1024") from None
    if len(shape) != 4 or any(d <= 0 for d in shape):
        raise UsageError(f"--shape {text!r}: expected four positive sizes N,C,H,W")
    return shape


@click.command("convert")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--shape", default=None, metavar="N,C,H,W", help="Tensor shape (default: a "
              "square 3-channel image or 4-channel latent inferred from the size).")
@click.option("--out", "dest", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PNG to write (default: FILE with .png).")
@click.option("--family", type=click.Choice(["sdxl", "sd15"]), default="sdxl",
              show_default=True, help="Model family, for the latent preview colours.")
@output_options("Print the result as JSON.")
def convert_cmd(file: Path, shape: str | None, dest: Path | None, family: str,
                output: Output) -> None:
    """Convert a qfp32 tensor (VAE image or latent) to PNG, counting NaN/Inf values."""
    from harness.run.images import convert_qfp32

    dest = dest or file.with_suffix(".png")
    stats = convert_qfp32(file, dest, _parse_shape(shape), family)
    output.emit({"png": str(dest), "shape": list(stats.shape), "nan_count": stats.nan_count,
                 "inf_count": stats.inf_count},
                lambda: click.echo(f"wrote {dest} from {file} (shape "
                                   f"{'x'.join(map(str, stats.shape))}, NaN {stats.nan_count}, "
                                   f"Inf {stats.inf_count})"))


COMMANDS: list[click.Command] = [recipes, tokenize_cmd, convert_cmd]
