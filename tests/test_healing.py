"""Damaged blobs heal: a flipped byte, a truncation and a deleted blob, each mended by a
re-upload of the same bytes and by ``verify(repair=True)`` from a remote; blobs found bad
go to the quarantine, and reads keep failing until a good copy comes back. Blob files and
small blobs kept as rows of the catalog alike (the ``kind`` fixture)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import damage_blob, file_blobs_only

from backends import Remote
from dreamflare_store import IntegrityError, Store
from dreamflare_store.blobs import SMALL_FILE
from dreamflare_store.cli import cli


@pytest.fixture(params=["file", "s3"])
def remote_kind(request: pytest.FixtureRequest) -> str:
    """A local folder and S3 (the plugin's own list has GCS too)."""
    return str(request.param)


@pytest.fixture(params=["file", "row"])
def kind(request: pytest.FixtureRequest) -> str:
    """How small blobs are kept: files (as stores made before rows), or catalog rows."""
    return str(request.param)


def _store(path: Path, kind: str, **options: bool) -> Store:
    store = Store(path, **options)
    return file_blobs_only(store) if kind == "file" else store


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


# The damages ``damage_blob`` does, to a file or to a row alike.
DAMAGES = ("flipped byte", "truncation", "deleted blob")


def _damage(store: Store, digest: str, how: str) -> None:
    # File times tick with the kernel's clock (a few ms): let one pass, so a write of the
    # file is seen, as any later write would be.
    time.sleep(0.02)
    damage_blob(store, digest, how)


@pytest.mark.parametrize("how", list(DAMAGES))
@pytest.mark.parametrize("path", ["upload bytes", "upload file", "upload_many", "large file"])
def test_reupload_heals_a_damaged_blob(tmp_path: Path, how: str, path: str, kind: str) -> None:
    size = SMALL_FILE + 123_457 if path == "large file" else 70_000
    data = os.urandom(size)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    with _store(tmp_path / "store", kind) as store:
        first = store.upload(file=data, user_id="alice")
        _damage(store, first.hash, how)
        if path == "upload bytes":
            again = store.upload(file=data, user_id="bob")
        elif path == "upload_many":
            (outcome,) = store.upload_many([data], "bob")
            assert not isinstance(outcome, Exception)
            again = outcome
        else:
            again = store.upload(file=source, user_id="bob")
        assert again.hash == first.hash
        assert store.read_content(first.content_id, "alice") == data
        assert store.verify() == []


def test_a_bad_read_quarantines_the_blob_until_a_good_copy_comes(tmp_path: Path, kind: str) -> None:
    data = os.urandom(50_000)
    with _store(tmp_path / "store", kind) as store:
        content = store.upload(file=data, user_id="alice")
        damage_blob(store, content.hash, "flipped byte")
        with pytest.raises(IntegrityError):
            store.read_content(content.content_id, "alice")
        bad = store.path / "bad" / content.hash
        assert bad.is_file() and not store.replica.blobs.exists(content.hash)
        for _ in range(2):  # reads keep failing, and say what to do
            with pytest.raises(IntegrityError, match="repair"):
                store.read_content(content.content_id, "alice")
        problems = store.verify()
        assert [(p.kind, p.subject) for p in problems] == [("corrupt_blob", content.hash)]
        store.upload(file=data, user_id="alice")
        assert store.read_content(content.content_id, "alice") == data
        assert store.verify() == []


def test_verify_quarantines_a_corrupt_blob(tmp_path: Path, kind: str) -> None:
    with _store(tmp_path / "store", kind) as store:
        content = store.upload(file=os.urandom(10_000), user_id="alice")
        damage_blob(store, content.hash, "flipped byte")
        problems = store.verify()
        assert [(p.kind, p.subject) for p in problems] == [("corrupt_blob", content.hash)]
        assert (store.path / "bad" / content.hash).is_file()
        assert store.verify() == problems  # still reported until repaired


def test_a_damage_that_keeps_the_file_identity_needs_rehash_on_dedup(tmp_path: Path) -> None:
    """The cheap check compares size, inode and mtime; a write that restores the mtime
    slips by it (verify finds it). ``rehash_on_dedup`` re-hashes instead: off by default."""
    data = os.urandom(30_000)
    with file_blobs_only(Store(tmp_path / "store")) as store:
        digest = store.upload(file=data, user_id="alice").hash
        path = store.replica.blobs.path(digest)
        before = path.stat()
        _flip(path)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        store.upload(file=data, user_id="alice")
        assert store.replica.blobs.check(digest) is False  # kept: the default trusts it
    with file_blobs_only(Store(tmp_path / "store", rehash_on_dedup=True)) as store:
        store.upload(file=data, user_id="alice")
        assert store.replica.blobs.check(digest)
        assert store.verify() == []


@pytest.mark.parametrize("how", list(DAMAGES))
def test_verify_repair_fetches_good_copies_from_a_remote(
    remote: Remote, tmp_path: Path, how: str, kind: str
) -> None:
    with _store(tmp_path / "store", kind) as store:
        store.add_remote("origin", remote.url, **remote.storage_options)
        datas = [os.urandom(20_000 + n) for n in range(3)]
        contents = [store.upload(file=data, user_id="alice") for data in datas]
        store.push("origin")
        _damage(store, contents[0].hash, how)
        _damage(store, contents[2].hash, how)
        assert {p.subject for p in store.verify(repair=True)} == set()
        for content, data in zip(contents, datas, strict=True):
            assert store.read_content(content.content_id, "alice") == data
        assert store.verify() == []


def test_verify_repair_says_what_it_could_not_repair(
    remote: Remote, tmp_path: Path, kind: str
) -> None:
    with _store(tmp_path / "store", kind) as store:
        store.add_remote("origin", remote.url, **remote.storage_options)
        pushed = store.upload(file=os.urandom(5_000), user_id="alice")
        store.push("origin")
        local_only = store.upload(file=os.urandom(6_000), user_id="alice")
        _damage(store, pushed.hash, "deleted blob")
        _damage(store, local_only.hash, "flipped byte")
        problems = store.verify(repair=True)
        assert [(p.kind, p.subject) for p in problems] == [("corrupt_blob", local_only.hash)]
        assert "not repaired" in problems[0].message and "origin" in problems[0].message
        assert store.read_content(pushed.content_id, "alice")


def test_cli_verify_repair(tmp_path: Path) -> None:
    store_path = tmp_path / "store"
    with Store(store_path) as store:
        store.add_remote("backup", str(tmp_path / "remote"))
        content = store.upload(file=os.urandom(9_000), user_id="alice")
        store.push("backup")
        _damage(store, content.hash, "truncation")
    found = CliRunner().invoke(cli, ["--store", str(store_path), "verify", "--full"])
    assert found.exit_code == 1 and "corrupt_blob" in found.stdout
    fixed = CliRunner().invoke(cli, ["--store", str(store_path), "verify", "--repair", "--full"])
    assert fixed.exit_code == 0, fixed.output
    assert "No problems found" in fixed.stdout
