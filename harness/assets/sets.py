"""Named asset sets: which local files go where on the phone.

Sets are defined in ``assets.yaml`` files, read in this order (a later definition of a set
replaces an earlier one whole): the built-in ``harness/recipes/builtin/assets.yaml``, then
``$HARNESS_HOME/recipes/assets.yaml``, then ``assets.yaml`` in each ``--recipes-dir``::

    root: "{{ demo_assets }}"        # optional: default root for the sets of this file
    sets:
      sdxl-weights:
        description: SDXL CLML weights
        root: "{{ demo_assets }}"    # optional: where relative ``src`` paths start
        entries:
          - src: sdxl_clml/sdxl_clml_weights        # a file or a folder
            dest: /data/local/tmp/sdxl_clml/sdxl_clml_weights
            mode: "0755"                            # optional, octal

``src`` and ``root`` may use ``{{ demo_assets }}`` (the virtual farm's demo asset tree,
:func:`demo_assets_dir`) and ``{{ home }}`` (``$HARNESS_HOME``). The root of a set is, first
match wins: ``assets.<set>.root`` in the user's ``config.yaml``, its ``assets_root``, the set's
``root``, the file's ``root``, the file's folder. A relative ``dest`` is relative to
``/data/local/tmp``; a ``dest`` with ``..`` or outside the allowed device roots is refused.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import UserConfig, load_user_config
from harness.errors import ConfigError
from harness.home import harness_home
from harness.yamlpos import (
    Pos,
    PosDict,
    check_keys,
    ensure_dict,
    ensure_list,
    expect,
    load_yaml,
    suggest,
)

ASSETS_FILE = "assets.yaml"
DEVICE_TMP = "/data/local/tmp"
DEMO_ASSETS_SUBDIR = Path("sim", "demo_assets")  # the same as harness.sim.assets uses
_FILE_KEYS = ("root", "sets")
_SET_KEYS = ("description", "root", "entries")
_ENTRY_KEYS = ("src", "dest", "mode")


@dataclass(frozen=True)
class AssetEntry:
    src: Path  # local file or folder
    dest: str  # device path (normalised, confined)
    mode: int | None = None  # None: keep the local file's mode


@dataclass(frozen=True)
class AssetSet:
    name: str
    entries: list[AssetEntry]
    description: str = ""
    root: Path | None = None
    source: str = ""  # file:line of the definition


def demo_assets_dir() -> Path:
    """Where the virtual farm's demo asset tree lives: ``$HARNESS_HOME/sim/demo_assets``.

    Only the path: ``harness.farm.inventory.ensure_demo_assets()`` builds (or refreshes) the
    tree there, which the runner does before syncing a set rooted in it.
    """
    return harness_home() / DEMO_ASSETS_SUBDIR


def builtin_recipes_dir() -> Path:
    # harness/recipes/builtin, beside this package: what importlib.resources.files gives for
    # an installed (unzipped) package, without importing it (~4 ms of every command).
    return Path(__file__).resolve().parent.parent / "recipes" / "builtin"


def user_recipes_dir() -> Path:
    return harness_home() / "recipes"


def recipe_dirs(extra: Sequence[Path] = ()) -> list[Path]:
    """Recipe folders, lowest precedence first: built-in, $HARNESS_HOME/recipes, extras."""
    return [builtin_recipes_dir(), user_recipes_dir(), *extra]


def confine_dest(dest: str, where: Pos | str,
                 allowed_roots: Sequence[str] = (DEVICE_TMP,)) -> str:
    """Normalise a device destination and refuse one outside ``allowed_roots``."""
    if not dest or "\0" in dest or "\n" in dest:
        raise ConfigError(f"{where}: bad device path {dest!r}")
    if "{{" in dest or "{%" in dest or "}}" in dest:
        raise ConfigError(f"{where}: device path {dest!r} holds an unrendered template "
                          "(asset dest is not a template: only src and root are)")
    if ".." in dest.split("/"):
        raise ConfigError(f"{where}: device path {dest!r} may not contain '..'")
    full = dest if dest.startswith("/") else posixpath.join(DEVICE_TMP, dest)
    full = posixpath.normpath(full)
    for root in allowed_roots:
        if root == "/" or full == root or full.startswith(root.rstrip("/") + "/"):
            return full
    raise ConfigError(f"{where}: device path {full!r} is outside the allowed folders "
                      f"({', '.join(allowed_roots)})")


def _mode(value: Any, where: Pos) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    elif isinstance(value, str):
        try:
            mode = int(value.removeprefix("0o"), 8)
        except ValueError:
            raise ConfigError(f"{where}: mode {value!r} is not an octal number") from None
    else:
        raise ConfigError(f"{where}: mode must be an octal string such as \"0755\"")
    if not 0 <= mode <= 0o7777:
        raise ConfigError(f"{where}: mode {oct(mode)} is out of range")
    return mode


# A path that is plain text and ``{{ name }}`` of the context only: rendered without jinja2
# (what jinja2 renders for it, byte for byte; importing jinja2 is ~25 ms of a push).
_PLAIN_TEMPLATE_RE = re.compile(r"(?:[^{}]|\{\{ *(?:demo_assets|home) *\}\})*")
_NAME_RE = re.compile(r"\{\{ *(demo_assets|home) *\}\}")


class _Templates:
    def __init__(self) -> None:
        self._env: Any = None
        self.context = {"demo_assets": str(demo_assets_dir()), "home": str(harness_home())}

    def _render(self, text: str, where: Pos) -> str:
        if _PLAIN_TEMPLATE_RE.fullmatch(text):
            # jinja2 drops one trailing newline (keep_trailing_newline=False)
            plain = text[:-1] if text.endswith("\n") else text
            return _NAME_RE.sub(lambda m: self.context[m[1]], plain)
        from jinja2 import StrictUndefined
        from jinja2.exceptions import TemplateError
        from jinja2.sandbox import SandboxedEnvironment

        if self._env is None:
            self._env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
        try:
            return str(self._env.from_string(text).render(self.context))
        except TemplateError as exc:
            raise ConfigError(f"{where}: {exc.message or exc}") from exc
        except (ArithmeticError, TypeError, ValueError, LookupError, AttributeError) as exc:
            raise ConfigError(f"{where}: template {text!r} failed: {type(exc).__name__}: "
                              f"{exc}") from exc

    def path(self, text: str, where: Pos) -> Path:
        rendered = self._render(text, where)
        if not rendered.strip() or "\0" in rendered:
            raise ConfigError(f"{where}: {text!r} renders to no usable path")
        return Path(rendered).expanduser()


def _root(name: str, spec: PosDict, file_root: Path, config: UserConfig,
          tpl: _Templates) -> Path:
    if name in config.asset_roots:
        return config.asset_roots[name]
    if config.assets_root is not None:
        return config.assets_root
    if spec.get("root") is not None:
        return tpl.path(expect(spec, "root", (str,), "root"), spec.pos_of("root"))
    return file_root


def _parse_set(name: str, spec: PosDict, file_root: Path, config: UserConfig,
               tpl: _Templates) -> AssetSet:
    check_keys(spec, _SET_KEYS, f"asset set {name!r}")
    root = _root(name, spec, file_root, config, tpl)
    entries_raw = ensure_list(spec.get("entries"), spec.pos_of("entries"), "entries")
    entries: list[AssetEntry] = []
    for index, item in enumerate(entries_raw):
        where = entries_raw.pos_of(index)
        entry = ensure_dict(item, where, f"an entry of asset set {name!r}")
        check_keys(entry, _ENTRY_KEYS, f"an entry of asset set {name!r}")
        for key in ("src", "dest"):
            if key not in entry:
                raise ConfigError(f"{where}: asset entry needs {key!r}")
        src = tpl.path(expect(entry, "src", (str,), "src"), entry.pos_of("src"))
        dest = confine_dest(expect(entry, "dest", (str,), "dest"), entry.pos_of("dest"),
                            config.allowed_dest_roots)
        entries.append(AssetEntry(src if src.is_absolute() else root / src, dest,
                                  _mode(entry.get("mode"), entry.pos_of("mode"))))
    description = str(spec.get("description") or "")
    return AssetSet(name, entries, description, root, str(spec.pos))


def _load_file(path: Path, config: UserConfig, tpl: _Templates) -> dict[str, AssetSet]:
    data = load_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, PosDict):
        raise ConfigError(f"{path}:1: an assets file must be a mapping with 'sets'")
    check_keys(data, _FILE_KEYS, ASSETS_FILE)
    file_root = path.parent
    if data.get("root") is not None:
        file_root = tpl.path(expect(data, "root", (str,), "root"), data.pos_of("root"))
    sets = ensure_dict(data.get("sets"), data.pos_of("sets"), "sets")
    return {name: _parse_set(name, ensure_dict(sets[name], sets.pos_of(name), name),
                             file_root, config, tpl) for name in sets}


def load_asset_sets(extra_dirs: Sequence[Path] = (),
                    config: UserConfig | None = None) -> dict[str, AssetSet]:
    """Every asset set, by name (later files override earlier ones)."""
    config = config if config is not None else load_user_config()
    tpl = _Templates()
    found: dict[str, AssetSet] = {}
    for directory in recipe_dirs(extra_dirs):
        path = directory / ASSETS_FILE
        if path.is_file():
            found.update(_load_file(path, config, tpl))
    config.check_set_names(found)
    return found


def require_sets(names: Sequence[str], sets: dict[str, AssetSet],
                 where: Sequence[Pos | str]) -> list[AssetSet]:
    """Look the named sets up; an unknown name is a ConfigError with a suggestion."""
    chosen: list[AssetSet] = []
    for name, pos in zip(names, where, strict=True):
        if name not in sets:
            raise ConfigError(f"{pos}: unknown asset set {name!r}{suggest(name, sets)}; "
                              f"known: {', '.join(sorted(sets)) or 'none'}")
        chosen.append(sets[name])
    return chosen
