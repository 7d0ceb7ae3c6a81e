"""Bundles: a stored run packed and read back whole; damaged or hostile archives refused."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from harness.recipes.load import render_recipe
from harness.repro.bundle import BundleError, read_bundle, write_bundle
from harness.repro.replay import original_side, telemetry
from harness.results.runextras import Sample, set_provenance
from harness.results.store import OutputRecord, StepRecord, Store

DIGESTS = {"sd15-weights": {"/data/local/tmp/sd15_clml/sd15_clml_weights/unet.bin": "ab" * 32}}


@pytest.fixture()
def stored_run(tmp_path: Path) -> tuple[Path, str]:
    db = tmp_path / "results.sqlite"
    plan = render_recipe("sd15-512")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "00-pipeline.stdout").write_text("[Perf] steps=20 total_s=9.2 s/step=0.46\n")
    (run_dir / "pipeline-image.png").write_bytes(b"\x89PNG fake")
    (run_dir / "pipeline-image.qfp32").write_bytes(b"\0" * 64)
    (run_dir / "samples.csv").write_text("t,name,value\n0.1,rss_kb,100\n")
    with Store.open(db) as store:
        run_id = store.begin_run(plan, serial="S1", device={"model": "Phone",
                                                           "mem_total_kb": 15600000,
                                                           "marketed_ram_gb": 16},
                                 run_dir=run_dir)
        store.record_step(run_id, StepRecord(0, "pipeline", "cmd", 0, 1.5), {"total_s": 9.2})
        store.record_output(run_id, OutputRecord("pipeline", "image", "/d/o.qfp32", "image",
                                                 (1, 3, 512, 512), None, 0, 0,
                                                 str(run_dir / "pipeline-image.png")))
        store.finish_run(run_id, "ok")
        set_provenance(store, run_id, {"asset_sets": DIGESTS})
        store.conn.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?)",
                               [(run_id, "pipeline", t, "power_w", 4.0) for t in (0, 1, 2)])
    return db, run_id


def test_round_trip(tmp_path: Path, stored_run: tuple[Path, str]) -> None:
    db, run_id = stored_run
    path = write_bundle(run_id[:12], tmp_path / "b.tar.gz", db_path=db)
    bundle = read_bundle(path)
    assert bundle.manifest["format"] == 1 and bundle.manifest["run"]["id"] == run_id
    assert bundle.plan == render_recipe("sd15-512")
    assert bundle.assets == DIGESTS
    names = set(bundle.manifest["files"])
    assert {"plan.json", "run.sh", "device.json", "verdicts.json", "assets.json",
            "telemetry/samples.csv", "run/00-pipeline.stdout", "run/pipeline-image.png",
            "run/samples.csv"} <= names
    assert "run/pipeline-image.qfp32" not in names
    assert bundle.verdicts["detected"]["kind"] == "clean"
    side = original_side(bundle)
    assert side.ram.startswith("16 GB") and side.energy_j == pytest.approx(8.0)
    with_raw = read_bundle(write_bundle(run_id, tmp_path / "r.tar.gz", db_path=db, qfp32=True))
    assert "run/pipeline-image.qfp32" in with_raw.manifest["files"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_missing_run_writes_nothing(tmp_path: Path, stored_run: tuple[Path, str]) -> None:
    from harness.errors import UsageError

    with pytest.raises(UsageError, match="no run"):
        write_bundle("ZZZZ", tmp_path / "x.tar.gz", db_path=stored_run[0])
    assert not (tmp_path / "x.tar.gz").exists()


def _rewrite(src: Path, dest: Path, extra: tarfile.TarInfo | None = None,
             data: bytes = b"", change: str | None = None) -> Path:
    with tarfile.open(src, "r:gz") as old, tarfile.open(dest, "w:gz") as new:
        for info in old:
            body = old.extractfile(info).read()  # type: ignore[union-attr]
            if info.name == change:
                body = body + b" "
                info.size = len(body)
            new.addfile(info, io.BytesIO(body))
        if extra is not None:
            extra.size = len(data)
            new.addfile(extra, io.BytesIO(data))
    return dest


@pytest.mark.parametrize(("name", "kind", "match"), [
    ("../evil", tarfile.REGTYPE, "unsafe member name"),
    ("/etc/evil", tarfile.REGTYPE, "unsafe member name"),
    ("run/../../evil", tarfile.REGTYPE, "unsafe member name"),
    ("run/link", tarfile.SYMTYPE, "not a regular file"),
    ("run/extra.txt", tarfile.REGTYPE, "not in the manifest"),
])
def test_hostile_members_are_refused(tmp_path: Path, stored_run: tuple[Path, str], name: str,
                                     kind: bytes, match: str) -> None:
    db, run_id = stored_run
    good = write_bundle(run_id, tmp_path / "b.tar.gz", db_path=db)
    info = tarfile.TarInfo(name)
    info.type = kind
    if kind == tarfile.SYMTYPE:
        info.linkname = "/etc/passwd"
    with pytest.raises(BundleError, match=match):
        read_bundle(_rewrite(good, tmp_path / "bad.tar.gz", info, b"x"))


def test_damaged_bundles_are_refused(tmp_path: Path, stored_run: tuple[Path, str]) -> None:
    db, run_id = stored_run
    good = write_bundle(run_id, tmp_path / "b.tar.gz", db_path=db)
    with pytest.raises(BundleError, match="does not match its digest"):
        read_bundle(_rewrite(good, tmp_path / "c.tar.gz", change="plan.json"))
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(BundleError, match="not a readable harness bundle"):
        read_bundle(cut)
    junk = tmp_path / "junk.tar.gz"
    junk.write_text("hello")
    with pytest.raises(BundleError, match="not a readable harness bundle"):
        read_bundle(junk)
    with pytest.raises(BundleError, match="no such bundle"):
        read_bundle(tmp_path / "absent.tar.gz")


def test_a_newer_format_is_refused(tmp_path: Path, stored_run: tuple[Path, str]) -> None:
    db, run_id = stored_run
    good = write_bundle(run_id, tmp_path / "b.tar.gz", db_path=db)
    dest = tmp_path / "new.tar.gz"
    with tarfile.open(good, "r:gz") as old, tarfile.open(dest, "w:gz") as new:
        for info in old:
            body = old.extractfile(info).read()  # type: ignore[union-attr]
            if info.name == "manifest.json":
                body = json.dumps({**json.loads(body), "format": 99}).encode()
                info.size = len(body)
            new.addfile(info, io.BytesIO(body))
    with pytest.raises(BundleError, match="newer"):
        read_bundle(dest)


def test_telemetry_prefers_the_samplers_metrics() -> None:
    rows = [Sample("unet", t, "rss_kb", v) for t, v in ((0, 10.0), (1, 30.0))]
    rows += [Sample("unet", t, "mem_available_kb", v) for t, v in ((0, 500.0), (1, 200.0))]
    assert telemetry({}, rows) == (30.0, 200.0, None)
    assert telemetry({"unet.peak_rss_kb": 99.0, "unet.energy_j": 5.0}, rows) == (99.0, 200.0,
                                                                                  5.0)


def _rewrite_assets(src: Path, dest: Path) -> Path:
    """``src`` re-signed with other asset digests (a run that used other weights)."""
    import hashlib

    with tarfile.open(src, "r:gz") as old:
        members = {i.name: old.extractfile(i).read() for i in old}  # type: ignore[union-attr]
    assets = json.loads(members["assets.json"])
    for files in assets.values():
        for path in files:
            files[path] = "0" * 64
    members["assets.json"] = json.dumps(assets).encode()
    manifest = json.loads(members["manifest.json"])
    manifest["files"]["assets.json"]["sha256"] = hashlib.sha256(members["assets.json"]).hexdigest()
    members["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(dest, "w:gz") as new:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            new.addfile(info, io.BytesIO(body))
    return dest


def test_re_signed_bundle_reads(tmp_path: Path, stored_run: tuple[Path, str]) -> None:
    db, run_id = stored_run
    other = read_bundle(_rewrite_assets(write_bundle(run_id, tmp_path / "b.tar.gz", db_path=db),
                                        tmp_path / "o.tar.gz"))
    assert set(next(iter(other.assets.values())).values()) == {"0" * 64}


def test_the_cli_refuses_a_traversal_bundle_in_one_line(
        tmp_path: Path, stored_run: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    from harness import cli

    db, run_id = stored_run
    good = write_bundle(run_id, tmp_path / "b.tar.gz", db_path=db)
    evil = _rewrite(good, tmp_path / "evil.tar.gz", tarfile.TarInfo("../../evil"), b"x")
    with pytest.raises(SystemExit) as exc:
        cli.main(["replay", str(evil), "-d", "sim"])
    assert exc.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "unsafe member name" in lines[0]
    assert not (tmp_path.parent / "evil").exists()


def test_the_side_by_side_table(tmp_path: Path, stored_run: tuple[Path, str],
                                capsys: pytest.CaptureFixture[str]) -> None:
    from dataclasses import replace

    from harness.cli.bundle import _print_sides
    from harness.repro.replay import ReplayResult

    db, run_id = stored_run
    original = original_side(read_bundle(write_bundle(run_id, tmp_path / "b.tar.gz",
                                                      db_path=db)))
    again = replace(original, label="replay", verdict="oom", ram="8 GB (MemTotal 7.19 GiB)",
                    exit_codes={"pipeline": 137})
    _print_sides(ReplayResult(tmp_path / "b.tar.gz", "on the phone", original, again, ()))
    text = capsys.readouterr().out
    assert "original" in text and "replay" in text and "oom" in text and "137" in text
    assert "16 GB" in text and "8 GB" in text and "energy J" in text
