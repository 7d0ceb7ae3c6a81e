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

from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError
from harness.home import harness_home
from harness.yamlpos import PosDict, check_keys, ensure_dict, expect, load_yaml

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


def _path(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def config_path() -> Path:
    return harness_home() / CONFIG_NAME


def load_user_config(path: Path | None = None) -> UserConfig:
    """Read the config file; a missing file is an empty configuration."""
    path = path or config_path()
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
        root = _path(expect(data, "assets_root", (str,), "assets_root"), base)
    roots: dict[str, Path] = {}
    sets = ensure_dict(data.get("assets"), data.pos_of("assets"), "assets")
    for name in sets:
        entry = ensure_dict(sets[name], sets.pos_of(name), f"assets.{name}")
        check_keys(entry, _SET_KEYS, f"assets.{name}")
        if "root" in entry:
            roots[name] = _path(expect(entry, "root", (str,), f"assets.{name}.root"), base)
    dest_roots: tuple[str, ...] = DEFAULT_DEST_ROOTS
    if data.get("allowed_dest_roots") is not None:
        items = expect(data, "allowed_dest_roots", (list,), "allowed_dest_roots")
        for index in range(len(items)):
            expect(items, index, (str,), "allowed_dest_roots entries")
        dest_roots = tuple(str(v).rstrip("/") or "/" for v in items)
    return UserConfig(root, roots, dest_roots, str(path))
