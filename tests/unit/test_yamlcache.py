"""Parsed YAML kept between commands: used only while the file is provably the one parsed."""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness import yamlcache
from harness.errors import ConfigError
from harness.statkey import RACY_NS
from harness.yamlpos import load_yaml
from tests.unit.test_yamlpos import positions

TEXT = "servers:\n  - {name: desk, port: 5037}\nsim: true\ntags: [a, b]\nratio: 0.5\n"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _age_entry(path: Path, seconds: float) -> None:
    """As if the entry had been written ``seconds`` after the file last changed."""
    entry = yamlcache._entry_path(path)
    fields = list(marshal.loads(entry.read_bytes()))
    fields[4] += int(seconds * 1e9)
    entry.write_bytes(marshal.dumps(tuple(fields)))


def _cached(path: Path) -> tuple[bool, Any]:
    return yamlcache.get(path, path.stat())


def test_a_hit_gives_the_same_data_and_positions(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "farm.yaml"
    path.write_text(TEXT)
    parsed = load_yaml(path)
    assert _cached(path) == (False, None)  # written in the file's own tick: racy
    _age_entry(path, RACY_NS / 1e9 + 1)
    hit, data = _cached(path)
    assert hit and positions(data) == positions(parsed)
    assert positions(load_yaml(path)) == positions(parsed)


def test_an_edit_that_keeps_size_and_mtime_is_parsed_again(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "farm.yaml"
    path.write_text(TEXT)
    load_yaml(path)
    _age_entry(path, RACY_NS / 1e9 + 1)
    before = path.stat()
    path.write_text(TEXT.replace("5037", "5038"))  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # touch -r
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == \
        before.st_mtime_ns
    assert _cached(path)[0] is False  # ctime moved
    assert load_yaml(path)["servers"][0]["port"] == 5038


def test_a_racy_entry_is_rewritten_by_the_next_parse(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "farm.yaml"
    path.write_text(TEXT)
    load_yaml(path)
    entry = yamlcache._entry_path(path)
    first = marshal.loads(entry.read_bytes())[4]
    load_yaml(path)  # not trusted (racy): parsed and written again, later
    assert marshal.loads(entry.read_bytes())[4] >= first


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other-parser", "other-path"])
def test_a_damaged_or_foreign_entry_is_a_miss(home: Path, tmp_path: Path, damage: str) -> None:
    path = tmp_path / "farm.yaml"
    path.write_text(TEXT)
    load_yaml(path)
    _age_entry(path, RACY_NS / 1e9 + 1)
    entry = yamlcache._entry_path(path)
    fields = list(marshal.loads(entry.read_bytes()))
    if damage == "garbage":
        entry.write_bytes(b"\x00not marshal")
    elif damage == "truncated":
        entry.write_bytes(entry.read_bytes()[:20])
    elif damage == "other-parser":  # another PyYAML (or format) wrote it
        fields[1] = ("another",)
        entry.write_bytes(marshal.dumps(tuple(fields)))
    else:  # another file whose name shares the entry's
        fields[2] = "/elsewhere/farm.yaml"
        entry.write_bytes(marshal.dumps(tuple(fields)))
    assert _cached(path) == (False, None)
    assert positions(load_yaml(path))  # parsed as if there were no cache


def test_values_marshal_cannot_hold_are_never_cached(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "dated.yaml"
    path.write_text("when: 2026-12-03\n")  # a YAML timestamp: datetime.date
    assert str(load_yaml(path)["when"]) == "2026-12-03"
    assert not yamlcache._entry_path(path).exists()


def test_errors_are_never_cached(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("a: 1\na: 2\n")
    for _ in range(2):
        with pytest.raises(ConfigError, match="duplicate key"):
            load_yaml(path)
    assert not yamlcache._entry_path(path).exists()


def test_a_cache_that_cannot_be_written_only_costs_the_parse(home: Path,
                                                              tmp_path: Path) -> None:
    home.mkdir(parents=True)
    (home / "cache").write_text("a file where the cache folder goes")  # (root ignores modes)
    path = tmp_path / "farm.yaml"
    path.write_text(TEXT)
    for _ in range(2):
        assert load_yaml(path)["sim"] is True
    assert (home / "cache").read_text().startswith("a file")


def test_an_unusable_harness_home_only_costs_the_parse(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("HARNESS_HOME", str(blocker / "home"))  # cannot be created
    path = tmp_path / "farm.yaml"
    path.write_text(TEXT)
    assert load_yaml(path)["sim"] is True


def test_a_hit_does_not_import_pyyaml(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "farm.yaml"
    path.write_text(TEXT)
    load_yaml(path)
    _age_entry(path, RACY_NS / 1e9 + 1)
    code = ("import sys; from pathlib import Path; from harness.yamlpos import load_yaml; "
            "d = load_yaml(Path(sys.argv[1])); "
            "print(d.pos_of('sim').line, 'yaml' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], check=True,
                         capture_output=True, text=True, env={**os.environ}).stdout
    assert out.split() == ["3", "False"]
