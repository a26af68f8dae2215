"""Damaged catalogs are noticed: an emptied, missing, truncated, garbage-headed or
page-corrupted catalog is refused (CorruptStore, naming the file and how to recover) or
reported by ``verify``; and a backup restores a store end to end."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import damage_blob

from dreamflare_store import Conflict, CorruptStore, Store
from dreamflare_store.cli import cli
from dreamflare_store.http import errors as http_errors


def _make_store(path: Path, count: int = 40) -> dict[str, bytes]:
    """A closed store with ``count`` contents (its log checkpointed into the catalog)."""
    made = {}
    with Store(path) as store:
        for n in range(count):
            data = os.urandom(1000 + n)
            content = store.upload(file=data, user_id="alice", description="d" * 300, tags=f"t{n}")
            made[content.content_id] = data
    assert not (path / "catalog.db-wal").exists() or (path / "catalog.db-wal").stat().st_size == 0
    return made


def _refused(path: Path) -> CorruptStore:
    with pytest.raises(CorruptStore) as caught:
        Store(path)
    error = caught.value
    assert str(path / "catalog.db") in error.message
    assert "pull" in error.message and "restore" in error.message
    return error


def _cli_error(path: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--store", str(path), *args])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_a_new_store_writes_its_marker(tmp_path: Path) -> None:
    with Store(tmp_path / "s") as store:
        marker = json.loads((tmp_path / "s" / "store.json").read_text())
        assert marker["replicaId"] == store.replica_id and marker["format"] == 1


def test_an_older_store_gets_its_marker_on_open(tmp_path: Path) -> None:
    _make_store(tmp_path / "s", 2)
    (tmp_path / "s" / "store.json").unlink()
    with Store(tmp_path / "s") as store:
        assert store.list_content("alice").total == 2
    assert (tmp_path / "s" / "store.json").is_file()


def test_an_emptied_catalog_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s"
    _make_store(path, 5)
    (path / "catalog.db").write_bytes(b"")
    error = _refused(path)
    assert "empty" in error.message
    assert (path / "catalog.db").stat().st_size == 0  # nothing was made in its place
    assert "empty" in _cli_error(path, "verify")


def test_a_missing_catalog_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s"
    _make_store(path, 5)
    (path / "catalog.db").unlink()
    assert Store.exists(path)
    assert "missing" in _refused(path).message
    assert not (path / "catalog.db").exists()
    assert "missing" in _cli_error(path, "ls", "-u", "alice")


def test_a_truncated_catalog_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s"
    _make_store(path)
    catalog = path / "catalog.db"
    with open(catalog, "r+b") as file:
        file.truncate(catalog.stat().st_size // 2)
    assert "truncated" in _refused(path).message
    _cli_error(path, "verify")


def test_a_garbage_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s"
    _make_store(path, 5)
    catalog = path / "catalog.db"
    with open(catalog, "r+b") as file:
        file.write(random.Random(1).randbytes(100))
    _refused(path)
    assert str(catalog) in _cli_error(path, "ls", "-u", "alice")


def test_a_corrupt_page_is_refused_or_reported(tmp_path: Path) -> None:
    """4 KiB of random bytes at offset 8192: reads may still work, so verify runs SQLite's
    own check (quick by default, full with ``full``)."""
    path = tmp_path / "s"
    _make_store(path, 200)
    with open(path / "catalog.db", "r+b") as file:
        file.seek(8192)
        file.write(random.Random(2).randbytes(4096))
    try:
        store = Store(path)
    except CorruptStore:
        return  # refused at open: as good as reported
    with store:
        for full in (False, True):
            problems = store.verify(full=full)
            assert problems and {p.kind for p in problems} == {"corrupt_catalog"}
            assert all(str(path / "catalog.db") in p.message for p in problems)
    result = CliRunner().invoke(cli, ["--store", str(path), "verify", "--full"])
    assert result.exit_code == 1 and "corrupt_catalog" in result.output


def test_corrupt_store_over_http_is_500_with_its_own_code() -> None:
    error = CorruptStore("the catalog x is damaged")
    assert http_errors.status_of(error) == 500 and error.code == "corrupt_store"
    assert http_errors.CLASSES["corrupt_store"] is CorruptStore


def test_backup_then_restore_after_the_catalog_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "s"
    made = _make_store(path, 12)
    with Store(path) as store:
        replica = store.replica_id
        first = next(iter(made))
        store.update_metadata(first, "alice", description="after")  # in the log, unsaved
        report = store.backup(tmp_path / "backup")
        assert (report.blobs, report.problems) == (12, ())
        assert report.bytes == sum(len(d) for d in made.values())
        with pytest.raises(Conflict):
            store.backup(tmp_path / "backup")
    (path / "catalog.db").write_bytes(b"")
    _refused(path)
    restored = Store.restore(tmp_path / "backup", tmp_path / "restored")
    assert restored.problems == ()
    with Store(tmp_path / "restored") as store:
        assert store.replica_id == replica
        assert store.get_content(first, "alice").description == "after"
        for content_id, data in made.items():
            assert store.read_content(content_id, "alice") == data
        assert store.verify() == []


def test_backup_reports_a_blob_it_could_not_copy(tmp_path: Path) -> None:
    path = tmp_path / "s"
    made = _make_store(path, 3)
    with Store(path) as store:
        digest = store.get_content(next(iter(made)), "alice").hash
        damage_blob(store, digest, "deleted blob")
        report = store.backup(tmp_path / "backup")
    assert report.blobs == 2
    assert ("missing_blob", digest) in {(p.kind, p.subject) for p in report.problems}


def test_cli_backup_and_restore(tmp_path: Path) -> None:
    path = tmp_path / "s"
    made = _make_store(path, 4)
    runner = CliRunner()
    done = runner.invoke(cli, ["--store", str(path), "backup", str(tmp_path / "b")])
    assert done.exit_code == 0 and "Copied 4 files" in done.stdout, done.output
    back = runner.invoke(cli, ["restore", str(tmp_path / "b"), str(tmp_path / "r"), "--json"])
    assert back.exit_code == 0, back.output
    assert json.loads(back.stdout)["blobs"] == 4
    with Store(tmp_path / "r") as store:
        assert store.list_content("alice").total == len(made)
