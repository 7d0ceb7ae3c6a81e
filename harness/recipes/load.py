"""Recipes: YAML + Jinja2 descriptions of a pipeline run, rendered into a :class:`Plan`.

Where recipes come from (a later folder shadows a recipe of the same name in an earlier one):
the built-in ``harness/recipes/*.yaml``, then ``$HARNESS_HOME/recipes/*.yaml``, then every
``--recipes-dir``. ``assets.yaml`` in those folders defines asset sets
(:mod:`harness.assets.sets`), not a recipe. A recipe's file name is its name.

A recipe file::

    name: sdxl-1024                 # optional; must equal the file name
    description: One line.
    extends: other-recipe           # optional, see "extends" below
    family: sdxl                    # model family, used by lint (sdxl, sd15, ...)
    requirements: {min_ram_gb: 16, socs: [SM8650]}
    assets: [sdxl-binaries, sdxl-weights]        # asset set names
    expect_lint: [RULE_ID]          # findings this recipe reproduces on purpose
    params:                         # typed; --set NAME=VALUE overrides the default
      steps: {type: int, default: 20, min: 1, max: 200, help: denoising steps}
      seed: {type: int, default: null}           # null default: optional (may stay unset)
    checks:                         # conditions on the parameters, refused with the message
      - {assert: "{{ early_decode_k < steps }}", message: "k must be below steps"}
    vars:                           # derived values, templates over params and other vars
      latent: "{{ device_tmp }}/latent_k{{ early_decode_k }}.qfp32"
    tokens:                         # CLIP id files written before the steps run
      - {kind: clip_l, dest: "{{ device_tmp }}/clip_l_ids.i32"}   # clip_l | clip_g | sd15
    steps:                          # processes, run in order
      - name: unet
        stages: [clip, unet]        # what the process does (clip, unet, vae), for lint
        binary: "{{ device_tmp }}/sdxl_pipeline_run"
        args: ["{{ steps }}", "{{ guidance }}"]
        env: {CLML_NO_REUSE_TNN: "1", SDXL_EXPORT_X0: "{{ '1' if k == 0 else omit }}"}
        cwd: /data/local/tmp        # optional
        timeout_s: 1800
        inputs: ["{{ device_tmp }}/clip_l_ids.i32"]   # checked on the phone before the step
        outputs:
          - {name: latent, path: "{{ latent }}", kind: latent, dtype: float32,
             shape: [1, 4, "{{ height // 8 }}", "{{ width // 8 }}"]}
        perf: [clip.ms, unet.loop_s, unet.s/step]   # expected metrics: their stored names
        memory_gb: 9.5              # optional declared peak footprint

Step and output names are plain names (``[A-Za-z0-9_][A-Za-z0-9_.-]*``: they name files in
the run folder); output paths are confined to the allowed device folders like asset
destinations. Every string is a Jinja2 template rendered in a sandbox with
``StrictUndefined`` (a misspelt name is an error): the parameters, ``vars``, ``device_tmp``
(``/data/local/tmp``) and ``omit`` are in scope. An ``args``, ``env`` or ``inputs`` item
that renders to ``omit`` is left out (so a switch can depend on a parameter). Parameter
values are data, never templates.
An ``env`` name may be a template too (``"{{ seed_env }}": ...``), so that a parameter can
say which variable a binary reads. ``inputs`` are device files the step reads: ``harness
run`` checks them before the step starts. ``perf`` names the metrics the step must print;
a figure printed under other label words or another time unit is stored under that name
(:func:`harness.run.perf.expect_metrics`), a missing one is a warning and a verdict. Token
files may not lie inside an asset set's folder (harness never writes into a weights tree).

``extends`` merge rules (the child is applied over its fully merged parent):

- scalars (``description``, ``family``) and lists (``assets``, ``tokens``, ``checks``) are
  replaced;
- ``requirements``, ``vars`` and ``params`` are merged by key; a ``params`` entry is merged
  field by field (``steps: {default: 30}`` only changes the default); a key set to null is
  removed;
- ``expect_lint`` is not inherited: a recipe states its own expected findings;
- ``steps`` are merged by name: a step of the parent's name is merged field by field; its
  ``env`` is merged by variable (a variable set to null is removed; overridden variables keep
  their place, new ones go last), its ``outputs`` by output name (``{name: x, remove: true}``
  drops one), ``args``/``inputs``/``perf``/``stages`` are replaced whole;
  ``{name: x, remove: true}`` drops a step; a step with a new name is appended, starting from
  a copy of the parent's step ``from: other`` when given.
- A recipe may extend a recipe of its own name: that means the one it shadows (e.g. a user's
  ``sdxl-1024`` extending the built-in ``sdxl-1024``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.assets.sets import AssetSet, load_asset_sets, recipe_dirs
from harness.config import UserConfig, load_user_config
from harness.errors import ConfigError, UsageError
from harness.recipes.lint import RULES, Finding, lint, unexpected
from harness.recipes.plan import Plan
from harness.recipes.render import render_recipe_data
from harness.recipes.schema import (
    ParamValue,
    Recipe,
    check_file,
    parse_param,
    parse_sets,
)
from harness.yamlpos import PosDict, PosList, load_yaml, suggest

ASSETS_FILE = "assets.yaml"
RECIPE_SUFFIX = ".yaml"
_MAX_EXTENDS_DEPTH = 16


@dataclass(frozen=True)
class RecipeFile:
    name: str
    path: Path
    layer: int  # index into the search folders: 0 built-in, 1 user, 2.. --recipes-dir


@dataclass(frozen=True)
class RecipeSummary:
    name: str
    description: str
    family: str
    source: str
    extends: str | None
    error: str | None = None  # set when the recipe does not load


# ---- merging --------------------------------------------------------------------------------


def _copy_dict(data: PosDict) -> PosDict:
    out = PosDict(data)
    out.pos = data.pos
    out.key_pos = dict(data.key_pos)
    return out


def _merge_map(parent: Any, child: PosDict, deep: bool = False) -> PosDict:
    """Merge by key; null removes; ``deep`` merges nested mappings one level down."""
    out = _copy_dict(parent) if isinstance(parent, PosDict) else PosDict()
    if not isinstance(parent, PosDict):
        out.pos = child.pos
    for key, value in child.items():
        if value is None:
            out.pop(key, None)
            continue
        base = out.get(key)
        if deep and isinstance(base, PosDict) and isinstance(value, PosDict):
            value = _merge_map(base, value)
        out[key] = value
        out.key_pos[key] = child.pos_of(key)
    return out


def _merge_named(parent: list[PosDict], child: PosList, what: str, merge: Any) -> PosList:
    out = PosList(copy.copy(parent))
    out.pos = child.pos
    for item in child:
        names = [p.get("name") for p in out]
        name = item.get("name")
        if item.get("remove"):
            if name not in names:
                raise ConfigError(f"{item.pos}: cannot remove {what} {name!r}: the parent has "
                                  f"no such {what}{suggest(str(name), map(str, names))}")
            del out[names.index(name)]
        elif name in names:
            out[names.index(name)] = merge(out[names.index(name)], item)
        elif item.get("from") is not None:
            base = item["from"]
            if base not in names:
                raise ConfigError(f"{item.pos_of('from')}: no {what} {base!r} to start from"
                                  f"{suggest(str(base), map(str, names))}")
            start = _copy_dict(out[names.index(base)])
            start["name"] = name
            out.append(merge(start, item))
        else:
            out.append(item)
    return out


def _merge_step(parent: PosDict, child: PosDict) -> PosDict:
    out = _copy_dict(parent)
    for key, value in child.items():
        if key in ("from", "remove"):
            continue
        if key == "env" and isinstance(value, PosDict):
            value = _merge_map(parent.get("env"), value)
        elif key == "outputs" and isinstance(value, PosList):
            value = _merge_named(parent.get("outputs") or [], value, "output", _merge_map)
        out[key] = value
        out.key_pos[key] = child.pos_of(key)
    return out


def merge_recipe(parent: PosDict, child: PosDict) -> PosDict:
    """Apply ``child`` over ``parent`` (see the module docstring for the rules)."""
    out = _copy_dict(parent)
    out.pos = child.pos
    out.pop("expect_lint", None)
    for key, value in child.items():
        if key in ("requirements", "vars") and isinstance(value, PosDict):
            value = _merge_map(parent.get(key), value)
        elif key == "params" and isinstance(value, PosDict):
            value = _merge_map(parent.get(key), value, deep=True)
        elif key == "steps" and isinstance(value, PosList):
            value = _merge_named(parent.get("steps") or [], value, "step", _merge_step)
        out[key] = value
        out.key_pos[key] = child.pos_of(key)
    return out


# ---- the book of recipes --------------------------------------------------------------------


class RecipeBook:
    """Every recipe and asset set visible from the search folders."""

    def __init__(self, extra_dirs: Sequence[Path] = (), config: UserConfig | None = None):
        for directory in extra_dirs:
            if not directory.is_dir():
                raise UsageError(f"--recipes-dir {directory}: "
                                 f"{'not a folder' if directory.exists() else 'no such folder'}")
        self.dirs = recipe_dirs(extra_dirs)
        self.extra_dirs = list(extra_dirs)
        self.config = config if config is not None else load_user_config()
        self._files: dict[str, list[RecipeFile]] = {}
        self._sets: dict[str, AssetSet] | None = None
        for layer, directory in enumerate(self.dirs):
            if not directory.is_dir():
                continue
            for path in sorted(directory.glob(f"*{RECIPE_SUFFIX}")):
                if path.name != ASSETS_FILE:
                    self._files.setdefault(path.stem, []).append(
                        RecipeFile(path.stem, path, layer))

    def names(self) -> list[str]:
        return sorted(self._files)

    def asset_sets(self) -> dict[str, AssetSet]:
        if self._sets is None:
            self._sets = load_asset_sets(self.extra_dirs, self.config)
        return self._sets

    def _file(self, name: str, below: int | None = None) -> RecipeFile:
        candidates = [f for f in self._files.get(name, []) if below is None or f.layer < below]
        if not candidates:
            raise UsageError(f"unknown recipe {name!r}{suggest(name, self._files)}; "
                             f"see `harness recipes list`")
        return candidates[-1]

    def _read(self, rfile: RecipeFile) -> PosDict:
        data = load_yaml(rfile.path)
        if not isinstance(data, PosDict):
            raise ConfigError(f"{rfile.path}:1: a recipe must be a YAML mapping")
        check_file(data)
        if data.get("name") not in (None, rfile.name):
            raise ConfigError(f"{data.pos_of('name')}: name {data['name']!r} differs from the "
                              f"file name {rfile.name!r}")
        return data

    def _merged(self, rfile: RecipeFile, depth: int = 0) -> tuple[PosDict, list[str]]:
        if depth > _MAX_EXTENDS_DEPTH:
            raise ConfigError(f"{rfile.path}: extends chain is too deep (a cycle?)")
        data = self._read(rfile)
        parent_name = data.get("extends")
        if parent_name is None:
            return data, [str(rfile.path)]
        below = rfile.layer if parent_name == rfile.name else None
        try:
            parent_file = self._file(parent_name, below)
        except UsageError as exc:
            raise ConfigError(f"{data.pos_of('extends')}: extends: {exc}") from exc
        parent, chain = self._merged(parent_file, depth + 1)
        return merge_recipe(parent, data), [*chain, str(rfile.path)]

    def load(self, name: str) -> Recipe:
        """The merged recipe ``name`` (UsageError if unknown, ConfigError if malformed)."""
        rfile = self._file(name)
        data, chain = self._merged(rfile)
        data["name"] = name
        params_raw = data.get("params") or PosDict()
        params = {key: parse_param(key, value) for key, value in params_raw.items()}
        expected = data.get("expect_lint") or PosList()
        for index, rule in enumerate(expected):
            if rule not in RULES:
                raise ConfigError(f"{expected.pos_of(index)}: expect_lint: unknown rule "
                                  f"{rule!r}{suggest(str(rule), RULES)}")
        return Recipe(name, str(data.get("description") or ""), str(data.get("family") or ""),
                      str(rfile.path), tuple(chain), params, data,
                      tuple(str(v) for v in data.get("expect_lint") or ()))

    def summaries(self) -> list[RecipeSummary]:
        out: list[RecipeSummary] = []
        for name in self.names():
            source = str(self._file(name).path)
            try:
                recipe = self.load(name)
            except UsageError as exc:
                out.append(RecipeSummary(name, "", "", source, None, str(exc)))
                continue
            out.append(RecipeSummary(name, recipe.description, recipe.family, source,
                                     recipe.data.get("extends")))
        return out

    def render(self, name: str | Recipe, values: Mapping[str, ParamValue] | None = None,
               set_pairs: Sequence[str] = (), tokenizer_dir: Path | None = None) -> Plan:
        """Render a recipe: defaults, then ``values``, then ``--set`` pairs."""
        recipe = name if isinstance(name, Recipe) else self.load(name)
        chosen = dict(values or {})
        for key in chosen:
            if key not in recipe.params:
                raise UsageError(f"recipe {recipe.name!r} has no parameter {key!r}"
                                 f"{suggest(key, recipe.params)}")
        chosen.update(parse_sets(list(set_pairs), recipe.params))
        return render_recipe_data(recipe, chosen, self.asset_sets(), tokenizer_dir,
                                  self.config.allowed_dest_roots)


@dataclass(frozen=True)
class LintReport:
    """Lint of one recipe rendered with its defaults."""

    recipe: str
    findings: list[Finding]
    unexpected: list[Finding]  # findings whose rule the recipe does not expect
    missing: list[str]  # rules listed in expect_lint that were not found
    error: str | None = None  # the recipe did not load or render

    @property
    def ok(self) -> bool:
        return self.error is None and not self.unexpected


def lint_recipe(book: RecipeBook, name: str) -> LintReport:
    """Render ``name`` with its defaults and lint it; a load error becomes ``error``."""
    try:
        plan = book.render(name)
    except UsageError as exc:
        return LintReport(name, [], [], [], str(exc))
    findings = lint(plan)
    found = {f.rule for f in findings}
    return LintReport(name, findings, unexpected(findings, plan.expect_lint),
                      [rule for rule in plan.expect_lint if rule not in found])


def render_recipe(name: str, values: Mapping[str, ParamValue] | None = None,
                  set_pairs: Sequence[str] = (), extra_dirs: Sequence[Path] = (),
                  tokenizer_dir: Path | None = None) -> Plan:
    """Load and render one recipe in one call (what ``harness run`` needs)."""
    return RecipeBook(extra_dirs).render(name, values, set_pairs, tokenizer_dir)


def plain(data: Any) -> Any:
    """A merged recipe document as plain JSON-ready dicts and lists."""
    if isinstance(data, dict):
        return {str(k): plain(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [plain(v) for v in data]
    return data
