"""The user's configuration file, ``$HARNESS_HOME/config.yaml`` (optional).

Only what differs per user lives there; today that is where the local asset files are::

    assets_root: /srv/sd-assets          # default root of every asset set
    assets:
      sdxl-weights:
        root: /mnt/weights/sdxl          # root of one set (wins over assets_root)
    allowed_dest_roots: [/data/local/tmp] # device folders assets may be pushed under

Relative paths in the file are relative to the file's folder; ``~`` is expanded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError
from harness.home import harness_home
from harness.yamlpos import (
    PosDict,
    check_keys,
    ensure_dict,
    expect,
    load_yaml,
    quote,
    suggest,
)

CONFIG_NAME = "config.yaml"
DEFAULT_DEST_ROOTS: tuple[str, ...] = ("/data/local/tmp",)
_TOP_KEYS = ("assets_root", "assets", "allowed_dest_roots")
_SET_KEYS = ("root",)


@dataclass(frozen=True)
class UserConfig:
    assets_root: Path | None = None
    asset_roots: dict[str, Path] = field(default_factory=dict)
    allowed_dest_roots: tuple[str, ...] = DEFAULT_DEST_ROOTS
    source: str | None = None
    asset_pos: dict[str, str] = field(default_factory=dict)  # set name -> file:line

    def check_set_names(self, known: Iterable[str]) -> None:
        """Refuse ``assets.<name>`` entries that name no asset set (a typo moves nothing)."""
        known = list(known)
        for name in self.asset_roots:
            if name not in known:
                raise ConfigError(f"{self.asset_pos.get(name, self.source)}: assets: unknown "
                                  f"asset set {quote(name)}{suggest(name, known)}; known: "
                                  f"{', '.join(sorted(known)) or 'none'}")


def _path(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def config_path() -> Path:
    return harness_home() / CONFIG_NAME


def load_user_config(path: Path | None = None) -> UserConfig:
    """Read the config file; a missing file is an empty configuration."""
    path = path or config_path()
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a configuration file")
    if not path.is_file():
        return UserConfig()
    data = load_yaml(path)
    if data is None:
        return UserConfig(source=str(path))
    if not isinstance(data, PosDict):
        raise ConfigError(f"{path}:1: the configuration must be a mapping")
    check_keys(data, _TOP_KEYS, "config.yaml")
    base = path.parent
    root = None
    if data.get("assets_root") is not None:
        root = _path(_nonempty(data, "assets_root", "assets_root"), base)
    roots: dict[str, Path] = {}
    where: dict[str, str] = {}
    sets = ensure_dict(data.get("assets"), data.pos_of("assets"), "assets")
    for name in sets:
        entry = ensure_dict(sets[name], sets.pos_of(name), f"assets.{name}")
        check_keys(entry, _SET_KEYS, f"assets.{name}")
        where[name] = str(sets.pos_of(name))
        if "root" in entry:
            roots[name] = _path(_nonempty(entry, "root", f"assets.{name}.root"), base)
    dest_roots: tuple[str, ...] = DEFAULT_DEST_ROOTS
    if data.get("allowed_dest_roots") is not None:
        items = expect(data, "allowed_dest_roots", (list,), "allowed_dest_roots")
        for index in range(len(items)):
            value = expect(items, index, (str,), "allowed_dest_roots entries")
            if not value.startswith("/") or ".." in value.split("/") or "\0" in value:
                raise ConfigError(f"{items.pos_of(index)}: allowed_dest_roots entries must be "
                                  f"absolute device folders without '..', not {quote(value)}")
        if not items:
            raise ConfigError(f"{data.pos_of('allowed_dest_roots')}: allowed_dest_roots is "
                              "empty (nothing could be pushed)")
        dest_roots = tuple(str(v).rstrip("/") or "/" for v in items)
    return UserConfig(root, roots, dest_roots, str(path), where)


def _nonempty(data: PosDict, key: str, what: str) -> str:
    value: str = expect(data, key, (str,), what)
    if not value.strip() or "\0" in value:
        raise ConfigError(f"{data.pos_of(key)}: {what} must be a folder, not {quote(value)}")
    return value
