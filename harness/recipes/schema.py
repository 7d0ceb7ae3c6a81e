"""The recipe file format: allowed keys and types, parameter specs and ``--set`` values.

Each recipe file is checked on its own, before ``extends`` merging, so that every error can
name the file and line where it was written (:mod:`harness.yamlpos`). The format itself is
documented in :mod:`harness.recipes.load`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError, UsageError
from harness.yamlpos import (
    Pos,
    PosDict,
    PosList,
    check_keys,
    ensure_dict,
    ensure_list,
    expect,
    quote,
    suggest,
)

TOP_KEYS = ("name", "description", "extends", "family", "requirements", "assets", "params",
            "vars", "tokens", "steps", "expect_lint", "checks")
CHECK_KEYS = ("assert", "message")
# Step and output names become file names in the run folder: plain names only.
PLAIN_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
REQUIREMENT_KEYS = ("min_ram_gb", "socs")
PARAM_KEYS = ("type", "default", "choices", "min", "max", "help")
STEP_KEYS = ("name", "from", "remove", "description", "stages", "binary", "args", "env", "cwd",
             "timeout_s", "outputs", "inputs", "perf", "memory_gb")
OUTPUT_KEYS = ("name", "remove", "path", "kind", "dtype", "shape")
TOKEN_KEYS = ("kind", "dest", "prompt", "negative")
TOKEN_KINDS = ("clip_l", "clip_g", "sd15")
OUTPUT_KINDS = ("image", "latent")
OUTPUT_DTYPES = ("float32",)
STAGES = ("clip", "unet", "vae")
PARAM_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}

ParamValue = int | float | str | bool | None
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_NULL = ("null", "none", "~")
_SCALAR = (str, int, float)


@dataclass(frozen=True)
class ParamSpec:
    """A typed recipe parameter."""

    name: str
    type: str  # int, float, str, bool
    default: ParamValue
    choices: tuple[ParamValue, ...] = ()
    min: float | None = None
    max: float | None = None
    help: str = ""
    pos: Pos | None = None

    @property
    def nullable(self) -> bool:
        return self.default is None


def _typed(value: Any, kind: str) -> bool:
    if value is None:
        return True
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, PARAM_TYPES[kind])


def check_value(spec: ParamSpec, value: ParamValue, where: str) -> ParamValue:
    """Check a value against the spec's type, choices and bounds; return it normalised."""
    if value is None:
        if spec.nullable:
            return None
        raise UsageError(f"{where}: {spec.name} may not be null")
    if not _typed(value, spec.type):
        raise UsageError(f"{where}: {spec.name} must be {spec.type}, not {value!r}")
    if spec.type == "float":
        value = float(value)
        if not math.isfinite(value):
            raise UsageError(f"{where}: {spec.name} must be a finite number, not {value!r}")
    if spec.choices and value not in spec.choices:
        shown = ", ".join(repr(c) for c in spec.choices)
        raise UsageError(f"{where}: {spec.name}={value!r} is not one of {shown}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if spec.min is not None and value < spec.min:
            raise UsageError(f"{where}: {spec.name}={value!r} is below the minimum {spec.min:g}")
        if spec.max is not None and value > spec.max:
            raise UsageError(f"{where}: {spec.name}={value!r} is above the maximum {spec.max:g}")
    return value


def parse_param(name: str, raw: PosDict) -> ParamSpec:
    """A fully merged parameter definition -> :class:`ParamSpec` (ConfigError on mistakes)."""
    where = raw.pos
    kind = raw.get("type")
    if kind not in PARAM_TYPES:
        raise ConfigError(f"{raw.pos_of('type')}: parameter {name!r} needs type: int, float, "
                          f"str or bool, not {kind!r}{suggest(str(kind), PARAM_TYPES)}")
    if "default" not in raw:
        raise ConfigError(f"{where}: parameter {name!r} needs a default (null for optional)")
    choices = tuple(ensure_list(raw.get("choices"), raw.pos_of("choices"), "choices"))
    bounds = {}
    for key in ("min", "max"):
        if raw.get(key) is not None:
            if kind not in ("int", "float"):
                raise ConfigError(f"{raw.pos_of(key)}: {key} only applies to int and float")
            bounds[key] = float(expect(raw, key, (float,), f"{name}.{key}"))
    spec = ParamSpec(name, kind, raw["default"], choices, bounds.get("min"), bounds.get("max"),
                     str(raw.get("help") or ""), where)
    for index, choice in enumerate(choices):
        if choice is None or not _typed(choice, kind):
            raise ConfigError(f"{raw['choices'].pos_of(index)}: choice {choice!r} of "
                              f"{name!r} is not {kind}")
    try:
        default = check_value(spec, spec.default, "default")
    except UsageError as exc:
        raise ConfigError(f"{raw.pos_of('default')}: {exc}") from exc
    return ParamSpec(spec.name, kind, default, spec.choices, spec.min, spec.max, spec.help,
                     where)


def coerce_set(spec: ParamSpec, text: str) -> ParamValue:
    """Turn the text of ``--set name=text`` into a value of the parameter's type."""
    where = f"--set {spec.name}={text}"
    lowered = text.strip().lower()
    if spec.nullable and spec.type != "str" and lowered in _NULL:
        return check_value(spec, None, where)
    value: ParamValue
    try:
        if spec.type == "int":
            value = int(text.strip())
        elif spec.type == "float":
            value = float(text.strip())
        elif spec.type == "bool":
            if lowered not in _TRUE + _FALSE:
                raise ValueError(text)
            value = lowered in _TRUE
        else:
            value = text
    except ValueError:
        raise UsageError(f"{where}: {spec.name} must be {spec.type}, not {text!r}") from None
    return check_value(spec, value, where)


def parse_sets(pairs: list[str], specs: Mapping[str, ParamSpec]) -> dict[str, ParamValue]:
    """``["k=v", ...]`` -> typed values; unknown names get a "did you mean"."""
    values: dict[str, ParamValue] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"--set {pair!r}: expected NAME=VALUE")
        if name not in specs:
            raise UsageError(f"--set {name}: unknown parameter{suggest(name, specs)}; "
                             f"known: {', '.join(specs) or 'none'}")
        values[name] = coerce_set(specs[name], text)
    return values


# ---- structure of one file ------------------------------------------------------------------


def _check_str_list(data: PosDict, key: str, what: str) -> None:
    items = ensure_list(data.get(key), data.pos_of(key), what)
    for index in range(len(items)):
        expect(items, index, _SCALAR, f"an item of {what}")


def _check_outputs(step: PosDict, what: str) -> None:
    outputs = ensure_list(step.get("outputs"), step.pos_of("outputs"), f"{what}.outputs")
    for index, item in enumerate(outputs):
        out = ensure_dict(item, outputs.pos_of(index), f"an output of {what}")
        check_keys(out, OUTPUT_KEYS, f"an output of {what}")
        if "name" not in out:
            raise ConfigError(f"{out.pos}: an output of {what} needs a name")
        _plain_name(out, "output name")
        for key, allowed in (("kind", OUTPUT_KINDS), ("dtype", OUTPUT_DTYPES)):
            if key in out and out[key] not in allowed:
                raise ConfigError(f"{out.pos_of(key)}: output {key} {out[key]!r} is not one of "
                                  f"{', '.join(allowed)}{suggest(str(out[key]), allowed)}")
        if "shape" in out:
            _check_str_list(out, "shape", "shape")


def _plain_name(data: PosDict, what: str) -> None:
    name = expect(data, "name", (str,), what)
    if not PLAIN_NAME_RE.fullmatch(name):
        raise ConfigError(f"{data.pos_of('name')}: {what} {quote(name)} must be a plain name "
                          "(letters, digits, _ . -; not starting with . or -)")


def _check_checks(data: PosDict) -> None:
    checks = ensure_list(data.get("checks"), data.pos_of("checks"), "checks")
    for index, item in enumerate(checks):
        check = ensure_dict(item, checks.pos_of(index), "a check")
        check_keys(check, CHECK_KEYS, "a check")
        if "assert" not in check:
            raise ConfigError(f"{check.pos}: a check needs assert (a template that renders "
                              "true or false)")
        for key in CHECK_KEYS:
            if key in check:
                expect(check, key, (str,), f"check {key}")


def _check_step(step: PosDict, index: int, steps: PosList) -> None:
    what = f"step {quote(step.get('name', index + 1))}"
    check_keys(step, STEP_KEYS, what)
    if "name" not in step:
        raise ConfigError(f"{steps.pos_of(index)}: every step needs a name")
    _plain_name(step, "step name")
    for key in ("from", "description", "binary", "cwd"):
        if step.get(key) is not None:
            expect(step, key, (str,), f"{what}.{key}")
    for key in ("timeout_s", "memory_gb"):
        if step.get(key) is not None:
            expect(step, key, (float, str), f"{what}.{key}")
    if "remove" in step:
        expect(step, "remove", (bool,), f"{what}.remove")
    for key in ("args", "inputs", "perf", "stages"):
        _check_str_list(step, key, f"{what}.{key}")
    for stage in step.get("stages") or ():
        if stage not in STAGES:
            raise ConfigError(f"{step.pos_of('stages')}: unknown stage {stage!r}"
                              f"{suggest(str(stage), STAGES)}; stages: {', '.join(STAGES)}")
    env = ensure_dict(step.get("env"), step.pos_of("env"), f"{what}.env")
    for key in env:
        if env[key] is not None:
            expect(env, key, _SCALAR, f"env {key}")
    _check_outputs(step, what)


def _check_params(data: PosDict) -> None:
    params = ensure_dict(data.get("params"), data.pos_of("params"), "params")
    for name in params:
        if params[name] is None:
            continue
        spec = ensure_dict(params[name], params.pos_of(name), f"parameter {name!r}")
        check_keys(spec, PARAM_KEYS, f"parameter {name!r}")


def _check_tokens(data: PosDict) -> None:
    tokens = ensure_list(data.get("tokens"), data.pos_of("tokens"), "tokens")
    for index, item in enumerate(tokens):
        token = ensure_dict(item, tokens.pos_of(index), "a token file")
        check_keys(token, TOKEN_KEYS, "a token file")
        kind = token.get("kind")
        if kind not in TOKEN_KINDS:
            raise ConfigError(f"{token.pos_of('kind')}: token kind {kind!r} is not one of "
                              f"{', '.join(TOKEN_KINDS)}{suggest(str(kind), TOKEN_KINDS)}")
        if "dest" not in token:
            raise ConfigError(f"{token.pos}: a token file needs dest")


def check_file(data: PosDict) -> None:
    """Check one recipe file's structure (keys and types); values are checked at render."""
    check_keys(data, TOP_KEYS, "a recipe")
    for key in ("name", "description", "extends", "family"):
        if data.get(key) is not None:
            expect(data, key, (str,), key)
    req = ensure_dict(data.get("requirements"), data.pos_of("requirements"), "requirements")
    check_keys(req, REQUIREMENT_KEYS, "requirements")
    if req.get("min_ram_gb") is not None:
        expect(req, "min_ram_gb", (float,), "min_ram_gb")
    _check_str_list(req, "socs", "requirements.socs")
    _check_str_list(data, "assets", "assets")
    _check_str_list(data, "expect_lint", "expect_lint")
    _check_params(data)
    ensure_dict(data.get("vars"), data.pos_of("vars"), "vars")
    _check_tokens(data)
    _check_checks(data)
    steps = ensure_list(data.get("steps"), data.pos_of("steps"), "steps")
    for index, item in enumerate(steps):
        _check_step(ensure_dict(item, steps.pos_of(index), "a step"), index, steps)


@dataclass(frozen=True)
class Recipe:
    """A recipe after ``extends`` merging, before rendering."""

    name: str
    description: str
    family: str
    source: str  # the file that defines it
    chain: tuple[str, ...]  # files from the base to this one
    params: dict[str, ParamSpec]
    data: PosDict  # the merged document (for rendering and ``recipes show``)
    expect_lint: tuple[str, ...]
