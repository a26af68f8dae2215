"""Small blobs kept as rows of the catalog: one commit per upload holds the bytes and the
version, readers treat rows and files alike, and stores made before rows keep working."""

from __future__ import annotations

import io
import os
import sqlite3
from pathlib import Path

import pytest
from helpers import blob_rows, damage_blob, file_blobs_only, png_bytes, stored_blobs

from backends import Remote
from dreamflare_store import IntegrityError, NotFound, QuotaExceeded, Store
from dreamflare_store import replica as replica_module
from dreamflare_store.blobs.inline import INLINE_MAX
from dreamflare_store.catalog.db import _migrations
from dreamflare_store.replica import Replica

SMALL = 20_000
LARGE = INLINE_MAX + 1


def _files(store: Store) -> set[str]:
    return {digest for digest, _ in store.replica.blobs.iter_digests()}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "store") as made:
        yield made


def test_a_small_upload_is_a_row_and_a_large_one_a_file(store: Store, tmp_path: Path) -> None:
    small, large = os.urandom(SMALL), os.urandom(LARGE)
    edge = os.urandom(INLINE_MAX)
    source = tmp_path / "small.bin"
    source.write_bytes(os.urandom(SMALL))
    made = [store.upload(file=data, user_id="alice") for data in (small, large, edge)]
    from_path = store.upload(file=source, user_id="alice")
    from_stream = store.upload(file=io.BytesIO(small + b"s"), user_id="alice")
    rows = blob_rows(store)
    assert set(rows) == {made[0].hash, made[2].hash, from_path.hash, from_stream.hash}
    assert _files(store) == {made[1].hash}
    assert list((store.path / "tmp").iterdir()) == []
    for content, data in zip(made, (small, large, edge), strict=True):
        assert store.read_content(content.content_id, "alice") == data
    assert store.read_content(from_stream.content_id, "alice") == small + b"s"
    with store.open_content(made[0].content_id, "alice") as reader:
        reader.seek(SMALL - 10)
        assert reader.read() == small[-10:]
    assert store.verify() == []


def test_a_large_stream_is_a_file_with_every_byte(store: Store) -> None:
    data = os.urandom(LARGE + 5000)
    content = store.upload(file=io.BytesIO(data), user_id="alice")
    assert _files(store) == {content.hash} and blob_rows(store) == {}
    assert store.read_content(content.content_id, "alice") == data


def test_same_small_bytes_are_one_row_and_count_once_per_user(store: Store) -> None:
    data = os.urandom(SMALL)
    a = store.upload(file=data, user_id="alice")
    b = store.upload(file=data, user_id="alice")
    assert a.hash == b.hash and list(blob_rows(store)) == [a.hash]
    assert store.get_storage_usage("alice").history_bytes == len(data)  # what quotas count


def test_upload_many_keeps_small_ones_as_rows_in_its_one_transaction(
    store: Store, tmp_path: Path
) -> None:
    paths = []
    for i, size in enumerate((10, SMALL, LARGE, 2 * LARGE)):
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(os.urandom(size))
        paths.append(path)
    out = store.upload_many([*paths, b"x" * 100], "alice")
    hashes = [c.hash for c in out]  # type: ignore[union-attr]
    assert set(blob_rows(store)) == {hashes[0], hashes[1], hashes[4]}
    assert _files(store) == {hashes[2], hashes[3]}
    for content, path in zip(out, paths, strict=False):
        assert store.read_content(content.content_id, "alice") == path.read_bytes()  # type: ignore[union-attr]
    assert store.verify() == []


def test_the_quota_refuses_small_bytes_and_stores_nothing(tmp_path: Path) -> None:
    with Store(tmp_path / "store", quota_bytes=SMALL + 100) as store:
        store.upload(file=os.urandom(SMALL), user_id="alice")
        with pytest.raises(QuotaExceeded):
            store.upload(file=os.urandom(SMALL), user_id="alice")
        (refused,) = store.upload_many([os.urandom(SMALL)], "alice")
        assert isinstance(refused, QuotaExceeded)
        assert len(blob_rows(store)) == 1


def test_a_batch_keeps_repeated_small_bytes_once_and_none_past_the_quota(
    tmp_path: Path,
) -> None:
    first, second, third = (os.urandom(SMALL) for _ in range(3))
    with Store(tmp_path / "store", quota_bytes=2 * SMALL + 100) as store:
        out = store.upload_many([first, first, second, third], "alice")
        assert isinstance(out[3], QuotaExceeded)
        made = [content for content in out[:3] if not isinstance(content, Exception)]
        assert len(made) == 3 and made[0].hash == made[1].hash
        assert set(blob_rows(store)) == {made[0].hash, made[2].hash}  # not the refused one
        for content, data in zip(made, (first, first, second), strict=True):
            assert store.read_content(content.content_id, "alice") == data
        assert store.get_storage_usage("alice").history_bytes == 2 * SMALL
        assert store.verify() == []


def test_a_small_file_gone_before_the_batch_reads_it_is_reported_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file deleted between the batch's stat and its read: that file's NotFound, the
    others stored, no row for it."""
    paths = [tmp_path / f"f{k}.bin" for k in range(3)]
    for path in paths:
        path.write_bytes(os.urandom(SMALL))
    kept = paths[2].read_bytes()
    real_read = replica_module.read_small

    def read_small(path: str, size: int) -> bytes:
        if path == str(paths[0]):
            paths[1].unlink()  # gone after the stat, before its turn to be read
        return real_read(path, size)

    monkeypatch.setattr(replica_module, "read_small", read_small)
    with Store(tmp_path / "store") as store:
        out = store.upload_many(paths, "alice")
        assert isinstance(out[1], NotFound)
        made = [out[0], out[2]]
        assert not any(isinstance(content, Exception) for content in made)
        assert store.read_content(out[2].content_id, "alice") == kept  # type: ignore[union-attr]
        assert len(blob_rows(store)) == 2
        assert store.get_storage_usage("alice").content_count == 2
        assert store.verify() == []


def test_gc_between_hashing_and_commit_cannot_take_a_row(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small blob's row is written by the transaction that references it, under the
    write lock gc takes: a gc in between (which refuses a file upload with Conflict)
    has nothing to take, and the upload goes through."""
    old = store.upload(b"stored before", "alice")
    store.delete_content(old.content_id, "alice")
    real = Replica.store_bytes

    def then_gc(self: Replica, *args: object) -> object:
        out = real(self, *args)  # type: ignore[arg-type]
        self.gc(min_age=0)
        return out

    monkeypatch.setattr(Replica, "store_bytes", then_gc)
    again = store.upload(b"stored before", "alice")
    new = store.upload(b"new bytes", "alice")
    monkeypatch.undo()
    assert store.read_content(again.content_id, "alice") == b"stored before"
    assert store.read_content(new.content_id, "alice") == b"new bytes"
    assert store.verify() == []


def test_bit_rot_in_a_row_is_caught_quarantined_and_healed(store: Store) -> None:
    data = os.urandom(SMALL)
    content = store.upload(file=data, user_id="alice")
    damage_blob(store, content.hash, "flipped byte")
    with pytest.raises(IntegrityError):
        store.read_content(content.content_id, "alice")
    assert (store.path / "bad" / content.hash).read_bytes() != data
    assert content.hash not in blob_rows(store)
    assert [(p.kind, p.subject) for p in store.verify()] == [("corrupt_blob", content.hash)]
    store.upload(file=data, user_id="bob")  # the same bytes again: healed
    assert store.read_content(content.content_id, "alice") == data
    assert store.verify() == []


def test_verify_finds_and_quarantines_a_rotten_row(store: Store) -> None:
    content = store.upload(file=os.urandom(SMALL), user_id="alice")
    damage_blob(store, content.hash, "truncation")
    report = store.verify_report()
    assert [(p.kind, p.subject) for p in report.problems] == [("corrupt_blob", content.hash)]
    assert not store.replica.blobs.exists(content.hash)
    assert (store.path / "bad" / content.hash).is_file()


def test_gc_removes_unreferenced_rows_and_compact_gives_the_space_back(store: Store) -> None:
    contents = [store.upload(file=os.urandom(100_000), user_id="alice") for _ in range(20)]
    kept = contents[0]
    for content in contents[1:]:
        store.delete_content(content.content_id, "alice")
    dry = store.gc(min_age=0, dry_run=True)
    assert (dry.blobs_removed, dry.bytes_freed) == (19, 19 * 100_000)
    assert len(blob_rows(store)) == 20
    assert store.gc(min_age=3600).blobs_removed == 0  # rows too young yet
    report = store.gc(min_age=0)
    assert (report.blobs_removed, report.bytes_freed) == (19, 19 * 100_000)
    assert list(blob_rows(store)) == [kept.hash]
    before, after = store.replica.compact()
    assert after < before - 15 * 100_000
    assert store.read_content(kept.content_id, "alice")
    assert store.verify() == []


def _make_old_store(path: Path, datas: list[bytes]) -> list[str]:
    """A store as made before small blobs became rows: every blob a file, and a catalog
    without the table for rows."""
    with file_blobs_only(Store(path)) as store:
        ids = [store.upload(file=data, user_id="alice").content_id for data in datas]
    conn = sqlite3.connect(path / "catalog.db")
    conn.execute("DROP TABLE blob_data")
    # The catalog's version as it was before rows: the count of migration scripts that
    # come before the one that makes their table.
    before = next(i for i, script in enumerate(_migrations()) if "TABLE blob_data" in script)
    conn.execute(f"PRAGMA user_version = {before}")
    conn.commit()
    conn.close()
    return ids


def test_a_store_made_before_rows_reads_dedups_syncs_and_gcs(tmp_path: Path) -> None:
    datas = [os.urandom(SMALL + i) for i in range(3)]
    ids = _make_old_store(tmp_path / "old", datas)
    with Store(tmp_path / "old") as store:
        assert blob_rows(store) == {}  # migrated: the table is there, empty
        for content_id, data in zip(ids, datas, strict=True):
            assert store.read_content(content_id, "alice") == data
        again = store.upload(file=datas[0], user_id="bob")  # its file serves: no row
        new = store.upload(file=b"new small bytes", user_id="alice")
        assert set(blob_rows(store)) == {new.hash}
        assert again.hash in _files(store)
        store.add_remote("origin", str(tmp_path / "remote"))
        store.push("origin")
        store.delete_content(ids[1], "alice")
        assert store.gc(min_age=0).blobs_removed == 1
        assert store.verify() == []
    with Store(tmp_path / "other") as other:
        other.pull(str(tmp_path / "remote"), blobs="eager")
        assert other.read_content(ids[0], "alice") == datas[0]
        assert other.read_content(new.content_id, "alice") == b"new small bytes"


def test_a_mixed_store_syncs_both_kinds_through_a_remote(remote: Remote, tmp_path: Path) -> None:
    """Files and rows in one store; the remote gets the same objects/ keys for both, and
    another replica gets them back eagerly (as rows, small ones) and lazily."""
    with Store(tmp_path / "a") as a:
        a.add_remote("origin", remote.url, **remote.storage_options)
        file_blobs_only(a)
        old_small = a.upload(file=os.urandom(SMALL), user_id="alice")
        a.replica.blobs.inline_max = INLINE_MAX
        row = a.upload(file=os.urandom(SMALL + 1), user_id="alice")
        large = a.upload(file=os.urandom(LARGE), user_id="alice")
        assert _files(a) == {old_small.hash, large.hash} and list(blob_rows(a)) == [row.hash]
        a.push("origin")
        made = (old_small, row, large)
        want = {c.content_id: a.read_content(c.content_id, "alice") for c in made}
    for mode in ("eager", "lazy"):
        with Store(tmp_path / f"b-{mode}") as b:
            b.add_remote("origin", remote.url, **remote.storage_options)
            b.pull("origin", blobs=mode)
            for content_id, data in want.items():
                assert b.read_content(content_id, "alice") == data
            # Small blobs arrive as rows, whichever way the sender kept them.
            assert set(blob_rows(b)) == {old_small.hash, row.hash}
            assert _files(b) == {large.hash}
            assert b.verify() == []
            b.upload(file=b"from b", user_id="alice")
            b.push("origin")
    with Store(tmp_path / "a") as a:
        a.pull("origin")
        assert a.list_content("alice").total == 5  # with the two b-eager and b-lazy made
        assert stored_blobs(a) >= {old_small.hash, row.hash, large.hash}
        assert a.verify() == []


def test_a_backup_carries_rows_and_restores(store: Store, tmp_path: Path) -> None:
    small = store.upload(file=os.urandom(SMALL), user_id="alice")
    large = store.upload(file=os.urandom(LARGE), user_id="alice")
    report = store.backup(tmp_path / "backup")
    assert report.problems == () and report.blobs == 2
    Store.restore(tmp_path / "backup", tmp_path / "restored")
    with Store(tmp_path / "restored") as back:
        for content in (small, large):
            assert back.read_content(content.content_id, "alice") == store.read_content(
                content.content_id, "alice"
            )
        assert list(blob_rows(back)) == [small.hash]
        assert back.verify() == []


def test_thumbnails_and_stripping_read_rows(store: Store) -> None:
    content = store.upload(file=png_bytes(64, 48), user_id="alice")
    assert list(blob_rows(store)) == [content.hash]
    assert store.thumbnail(content.content_id, "alice", 32)[:4] == b"RIFF"
    assert store.read_content(content.content_id, "alice", strip_metadata=True)
