"""Render a merged recipe into a :class:`~harness.recipes.plan.Plan`: templates, shapes, token ids.

Templates run in Jinja2's sandbox with ``StrictUndefined``; every error names the file and
line of the value that failed. See :mod:`harness.recipes.load` for the format.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined
from jinja2.exceptions import TemplateError
from jinja2.sandbox import SandboxedEnvironment

from harness.assets.sets import AssetSet, confine_dest, require_sets
from harness.device.facts import Requirements
from harness.errors import ConfigError, UsageError
from harness.recipes.plan import OutputSpec, Plan, PlanAsset, PlanStep, TokenFile
from harness.recipes.schema import ParamSpec, ParamValue, Recipe, check_value
from harness.recipes.tokencache import sd15_rows, sdxl_rows
from harness.recipes.tokens import load_bpe
from harness.yamlpos import Pos, PosDict, PosList, pos_of, quote

DEVICE_TMP = "/data/local/tmp"
DEFAULT_STEP_TIMEOUT_S = 3600.0  # the seed's SDXL UNet alone takes ~130 s; leave headroom
OMIT = "\x1eharness-omit\x1e"  # what ``{{ omit }}`` renders to; items containing it are dropped
LATENT_SCALE = 8  # SD/SDXL VAEs: latent side = image side / 8
IMAGE_CHANNELS = 3
LATENT_CHANNELS = 4
_TEMPLATE_KEYS_FIRST = ("device_tmp", "omit")


MAX_POWER_EXPONENT = 1000  # `{{ 7 ** 999999999 }}` would compute for minutes in the sandbox
MAX_REPEAT_ITEMS = 1_000_000  # `{{ "a" * 10 ** 9 }}` would build a gigabyte string


class _Sandbox(SandboxedEnvironment):
    """Jinja's sandbox, plus bounds on ``**`` and on repeating a string or list with ``*``
    (the sandbox bounds ``range`` only)."""

    intercepted_binops = frozenset(["**", "*"])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_POWER_EXPONENT:
            raise ValueError(f"exponent {right} is too large")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(count, int) \
                        and len(seq) * count > MAX_REPEAT_ITEMS:
                    raise ValueError(f"repeating {len(seq)} item(s) {count} times is too much")
        return super().call_binop(context, operator, left, right)


class _Renderer:
    def __init__(self, context: dict[str, Any]) -> None:
        self.env = _Sandbox(undefined=StrictUndefined, autoescape=False,
                            keep_trailing_newline=True)
        self.context = context

    def text(self, value: Any, where: Pos) -> str:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: write {value!r} as a string (\"1\", \"true\", ...)")
        if not isinstance(value, str):
            return str(value)
        try:
            return self.env.from_string(value).render(self.context)
        except TemplateError as exc:
            raise ConfigError(f"{where}: template {quote(value)}: {exc.message or exc}") from exc
        except (ArithmeticError, TypeError, ValueError, LookupError, AttributeError,
                RecursionError, MemoryError) as exc:
            # Python errors of the values themselves ({{ 1 // 0 }}, {{ "a" - 1 }}, ...).
            raise ConfigError(f"{where}: template {quote(value)} failed: "
                              f"{type(exc).__name__}: {quote(str(exc))[1:-1]}") from exc

    def number(self, value: Any, where: Pos, what: str) -> float:
        text = self.text(value, where)
        try:
            number = float(text)
        except ValueError:
            raise ConfigError(f"{where}: {what} {text!r} is not a number") from None
        if not math.isfinite(number) or number <= 0:
            raise ConfigError(f"{where}: {what} must be positive, not {text}")
        return number

    def items(self, items: Any) -> tuple[str, ...]:
        if not isinstance(items, PosList):
            return ()
        rendered = (self.text(v, items.pos_of(i)) for i, v in enumerate(items))
        return tuple(v for v in rendered if OMIT not in v)


def resolve_params(specs: Mapping[str, ParamSpec],
                   chosen: Mapping[str, ParamValue]) -> dict[str, ParamValue]:
    values = {name: spec.default for name, spec in specs.items()}
    for name, value in chosen.items():
        values[name] = check_value(specs[name], value, name)
    return values


def _render_vars(raw: Any, renderer: _Renderer) -> None:
    """Render ``vars`` in any order they need (a var may use another)."""
    pending = dict(raw) if isinstance(raw, PosDict) else {}
    last_error: ConfigError | None = None
    while pending:
        progressed = False
        for name in list(pending):
            try:
                renderer.context[name] = renderer.text(pending[name], raw.pos_of(name))
            except ConfigError as exc:
                last_error = exc
                continue
            del pending[name]
            progressed = True
        if not progressed:
            raise last_error or ConfigError(f"{raw.pos}: vars cannot be rendered")


def _shape(out: PosDict, renderer: _Renderer) -> tuple[int, ...]:
    shape_raw = out.get("shape")
    where = out.pos_of("shape")
    if not isinstance(shape_raw, PosList):
        raise ConfigError(f"{out.pos}: output {out['name']!r} needs a shape")
    dims: list[int] = []
    for index, dim in enumerate(shape_raw):
        text = renderer.text(dim, shape_raw.pos_of(index))
        try:
            dims.append(int(text))
        except ValueError:
            raise ConfigError(f"{where}: shape dimension {text!r} is not an integer") from None
    if len(dims) != 4:
        raise ConfigError(f"{where}: shape {dims} must have rank 4 (N, C, H, W)")
    if any(d <= 0 for d in dims):
        raise ConfigError(f"{where}: shape {dims} has a non-positive dimension")
    return tuple(dims)


def _check_shape(out: OutputSpec, where: Pos, params: Mapping[str, ParamValue]) -> None:
    channels = IMAGE_CHANNELS if out.kind == "image" else LATENT_CHANNELS
    if out.shape[1] != channels:
        raise ConfigError(f"{where}: {out.kind} {out.name!r} must have {channels} channels, "
                          f"shape is {list(out.shape)}")
    height, width = params.get("height"), params.get("width")
    if not isinstance(height, int) or not isinstance(width, int):
        return
    if out.kind == "image":
        want = (height, width)
    else:
        if height % LATENT_SCALE or width % LATENT_SCALE:
            raise ConfigError(f"{where}: height and width must be multiples of "
                              f"{LATENT_SCALE} for a latent, not {height}x{width}")
        want = (height // LATENT_SCALE, width // LATENT_SCALE)
    if out.shape[2:] != want:
        raise ConfigError(f"{where}: {out.kind} {out.name!r} shape {list(out.shape)} does not "
                          f"match height x width {height}x{width} (expected H, W = {want})")


def _outputs(step: PosDict, renderer: _Renderer, params: Mapping[str, ParamValue],
             roots: Sequence[str]) -> tuple[OutputSpec, ...]:
    outputs: list[OutputSpec] = []
    for item in step.get("outputs") or ():
        for key in ("path", "kind"):
            if key not in item:
                raise ConfigError(f"{item.pos}: output {item['name']!r} needs {key!r}")
        path = renderer.text(item["path"], item.pos_of("path"))
        if not path.startswith("/"):
            raise ConfigError(f"{item.pos_of('path')}: output path {path!r} must be absolute")
        # Pulled to the host: confined like asset destinations (normalised, no '..').
        path = confine_dest(path, item.pos_of("path"), roots)
        out = OutputSpec(item["name"], path, item["kind"], item.get("dtype", "float32"),
                         _shape(item, renderer))
        _check_shape(out, item.pos_of("shape"), params)
        outputs.append(out)
    return tuple(outputs)


def _env(step: PosDict, renderer: _Renderer) -> dict[str, str]:
    raw = step.get("env") or PosDict()
    env: dict[str, str] = {}
    for raw_key, value in raw.items():
        # A name may be a template too: a recipe parameter can say which variable a binary
        # reads (sd15-512's seed_env / clip_ids_env).
        key = renderer.text(raw_key, raw.pos_of(raw_key)) if "{" in raw_key else raw_key
        if not key.isidentifier() or not key.isascii():
            raise ConfigError(f"{raw.pos_of(raw_key)}: {key!r} is not a valid variable name")
        text = renderer.text(value, raw.pos_of(raw_key))
        if OMIT not in text:
            env[key] = text
    return env


def _step(step: PosDict, renderer: _Renderer, params: Mapping[str, ParamValue],
          roots: Sequence[str]) -> PlanStep:
    name = step["name"]
    if not step.get("binary"):
        raise ConfigError(f"{step.pos}: step {name!r} needs a binary")
    binary = renderer.text(step["binary"], step.pos_of("binary"))
    cwd = renderer.text(step["cwd"], step.pos_of("cwd")) if step.get("cwd") else None
    timeout = step.get("timeout_s", DEFAULT_STEP_TIMEOUT_S)
    memory = step.get("memory_gb")
    return PlanStep(
        name=name, binary=binary,
        argv=(binary, *renderer.items(step.get("args"))),
        env=_env(step, renderer), cwd=cwd,
        timeout_s=renderer.number(timeout, step.pos_of("timeout_s"), "timeout_s"),
        stages=tuple(str(s) for s in step.get("stages") or ()),
        outputs=_outputs(step, renderer, params, roots),
        inputs=renderer.items(step.get("inputs")),
        perf=tuple(str(p) for p in step.get("perf") or ()),
        memory_gb=None if memory is None else renderer.number(memory, step.pos_of("memory_gb"),
                                                             "memory_gb"),
    )


def _token_files(data: PosDict, renderer: _Renderer, tokenizer_dir: Path | None,
                 roots: Sequence[str]) -> tuple[tuple[TokenFile, ...], list[str]]:
    files: list[TokenFile] = []
    warnings: list[str] = []
    for item in data.get("tokens") or ():
        dest = confine_dest(renderer.text(item["dest"], item.pos_of("dest")),
                            item.pos_of("dest"), roots)
        prompt = renderer.text(item.get("prompt", "{{ prompt }}"), item.pos_of("prompt"))
        negative = renderer.text(item.get("negative", "{{ negative_prompt }}"),
                                 item.pos_of("negative"))
        if item["kind"] == "sd15":  # plain lists: a cached prompt needs no numpy
            ids, found = sd15_rows(prompt, negative, tokenizer_dir)
        else:
            ids_l, ids_g, found = sdxl_rows(prompt, negative, tokenizer_dir)
            ids = ids_l if item["kind"] == "clip_l" else ids_g
        files.append(TokenFile(item["kind"], dest, tuple(tuple(int(v) for v in row)
                                                         for row in ids)))
        warnings += [w for w in found if w not in warnings]
    return tuple(files), warnings


def _assets(data: PosDict, sets: Mapping[str, AssetSet]) -> tuple[tuple[str, ...],
                                                                   tuple[PlanAsset, ...]]:
    names_raw = data.get("assets") or PosList()
    names = [str(n) for n in names_raw]
    where = [pos_of(names_raw, i) for i in range(len(names))]
    chosen = require_sets(names, dict(sets), where)
    assets = tuple(PlanAsset(s.name, str(e.src), e.dest, e.mode)
                   for s in chosen for e in s.entries)
    return tuple(names), assets


_TRUE_TEXT = ("true", "1", "yes")
_FALSE_TEXT = ("false", "0", "no", "")


def _run_checks(data: PosDict, renderer: _Renderer, recipe: str) -> None:
    """The recipe's ``checks``: each ``assert`` template must render true."""
    checks = data.get("checks") or PosList()
    for index, check in enumerate(checks):
        where = pos_of(checks, index)
        text = renderer.text(check["assert"], where).strip().lower()
        if text in _TRUE_TEXT:
            continue
        if text not in _FALSE_TEXT:
            raise ConfigError(f"{where}: check {quote(check['assert'])} rendered {quote(text)}, "
                              "not true or false")
        message = renderer.text(check.get("message") or check["assert"], where)
        raise UsageError(f"recipe {recipe!r}: {message}")


def _keep_out_of_assets(tokens: Sequence[TokenFile], assets: Sequence[PlanAsset],
                        data: PosDict) -> None:
    """Harness never writes inside an asset set's tree (a weights folder): a token file there
    would re-create a deleted folder and hide that the set is missing."""
    for token in tokens:
        for asset in assets:
            if token.dest.startswith(asset.dest.rstrip("/") + "/") or token.dest == asset.dest:
                raise ConfigError(f"{data.pos_of('tokens')}: token file {token.dest} lies "
                                  f"inside asset set {asset.set}'s {asset.dest}: harness "
                                  "does not write into an asset tree; put it beside it")


def _check_unique(steps: Sequence[PlanStep], data: PosDict) -> None:
    seen: set[str] = set()
    for step in steps:
        if step.name in seen:
            raise ConfigError(f"{data.pos_of('steps')}: two steps are named {step.name!r}")
        seen.add(step.name)
        names = [o.name for o in step.outputs]
        if len(set(names)) != len(names):
            raise ConfigError(f"{data.pos_of('steps')}: step {step.name!r} repeats an output")


def render_recipe_data(recipe: Recipe, chosen: Mapping[str, ParamValue],
                       sets: Mapping[str, AssetSet], tokenizer_dir: Path | None,
                       roots: Sequence[str]) -> Plan:
    """Resolve parameters, render every template and check the result."""
    data = recipe.data
    try:
        params = resolve_params(recipe.params, chosen)
    except UsageError as exc:
        raise UsageError(f"recipe {recipe.name!r}: {exc}") from exc
    clash = [n for n in (data.get("vars") or {}) if n in params or n in _TEMPLATE_KEYS_FIRST]
    if clash:
        raise ConfigError(f"{data.pos_of('vars')}: vars {clash} clash with parameters")
    renderer = _Renderer({"device_tmp": DEVICE_TMP, "omit": OMIT, **params})
    _render_vars(data.get("vars"), renderer)
    _run_checks(data, renderer, recipe.name)
    steps = tuple(_step(s, renderer, params, roots) for s in data.get("steps") or ())
    if not steps:
        raise ConfigError(f"{data.pos}: recipe {recipe.name!r} has no steps")
    _check_unique(steps, data)
    if data.get("tokens") and tokenizer_dir is not None:
        load_bpe(tokenizer_dir)  # fail early on a bad --tokenizer-dir (the embedded one: never)
    tokens, warnings = _token_files(data, renderer, tokenizer_dir, roots)
    asset_names, assets = _assets(data, sets)
    _keep_out_of_assets(tokens, assets, data)
    req = data.get("requirements") or {}
    min_ram = req.get("min_ram_gb")
    return Plan(
        recipe=recipe.name, description=recipe.description, family=recipe.family,
        source=recipe.source, params=params,
        requirements=Requirements(None if min_ram is None else float(min_ram),
                                  tuple(str(s) for s in req.get("socs") or ())),
        asset_sets=asset_names, assets=assets, token_files=tokens, steps=steps,
        warnings=tuple(warnings), expect_lint=recipe.expect_lint, device_tmp=DEVICE_TMP,
    )


__all__ = ["OMIT", "render_recipe_data", "resolve_params"]
