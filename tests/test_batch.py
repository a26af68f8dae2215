"""The batch path, ``Store.upload_many``: the same outcome as one upload per file, faster.

It writes a group's bytes unsynced and makes them durable with one ``syncfs`` (where the
kernel reports write errors through it), or with an fsync per file (elsewhere, or with
DREAMFLARE_NO_SYNCFS=1); both are run here. Its catalog rows come from one bulk insert, so
the tables must equal what folding its ops one at a time gives.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from helpers import file_blobs_only, replay, state_rows

from dreamflare_store import Content, InvalidArgument, NotFound, QuotaExceeded, Store
from dreamflare_store.blobs import batch
from dreamflare_store.replica import Replica


@pytest.fixture(params=["syncfs", "fsync"])
def durability(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs with both ways of making a group durable."""
    if request.param == "fsync":
        monkeypatch.setenv("DREAMFLARE_NO_SYNCFS", "1")
    elif batch._syncfs() is None:
        pytest.skip("this kernel has no syncfs that reports write errors")
    return str(request.param)


def test_upload_many_stores_each_file_and_reports_each_failure(
    tmp_path: Path, durability: str
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(300):  # more than one group of small files on the fsync path
        (src / f"f{i:03d}.bin").write_bytes(bytes([i % 256]) * (100 + i))
    (src / "same.bin").write_bytes((src / "f001.bin").read_bytes())  # a duplicate
    (src / "big.bin").write_bytes(b"\x01" * (5 << 20))  # the one-file path
    (src / "empty.bin").write_bytes(b"")
    files: list[object] = [*sorted(src.iterdir()), src / "missing.bin", b"raw bytes", src]
    with Store(tmp_path / "store") as store:
        out = store.upload_many(files, "alice", description="batch", tags="a,b")  # type: ignore[arg-type]
        assert len(out) == len(files)
        assert isinstance(out[-3], NotFound) and isinstance(out[-1], InvalidArgument)
        made = [c for c in out if isinstance(c, Content)]
        assert len(made) == len(files) - 2
        for file, content in zip(files, out, strict=True):
            if isinstance(file, Path) and isinstance(content, Content):
                assert store.read_content(content.content_id, "alice") == file.read_bytes()
                assert content.filename == file.name and content.tags == ("a", "b")
        raw = out[-2]
        assert isinstance(raw, Content) and raw.filename == "upload" and raw.size == 9
        assert store.verify() == []
        assert store.get_storage_usage("alice").content_count == len(made)
        store.flush()
        uploads = store.get_api_usage("alice").by_operation["upload"]
        assert uploads["calls"] == len(files) and uploads["errors"] == 2
        again = store.upload_many(files[:10], "alice")  # type: ignore[arg-type]
        assert [c.hash for c in again] == [c.hash for c in out[:10]]  # type: ignore[union-attr]
        assert list((tmp_path / "store" / "tmp").iterdir()) == []


def test_upload_many_refuses_over_quota_files_and_keeps_the_others(
    tmp_path: Path, durability: str
) -> None:
    with Store(tmp_path / "store") as store:
        store.set_quota("bob", 1000)
        out = store.upload_many([b"x" * 600, b"y" * 600, b"x" * 600, b"z" * 10], "bob")
        assert isinstance(out[0], Content) and isinstance(out[3], Content)
        assert isinstance(out[1], QuotaExceeded)
        assert isinstance(out[2], Content)  # bytes bob holds already cost nothing more
        usage = store.get_storage_usage("bob")
        assert (usage.content_count, usage.bytes) == (3, 1210)
        assert store.verify() == []
        assert (
            store.replica.catalog.reads.stored_storage()
            == store.replica.catalog.reads.recount_storage()
        )


def test_batch_rows_equal_the_fold_of_its_ops(tmp_path: Path, durability: str) -> None:
    """The bulk insert against ``Catalog.apply`` one op at a time, on a store with history."""
    with Store(tmp_path / "store") as store:
        first = store.upload(b"kept", "alice", tags="old")
        gone = store.upload(b"gone", "alice")
        store.upload(b"bob's", "bob")
        store.delete_content(gone.content_id, "alice")
        store.update_metadata(first.content_id, "alice", description="edited")
        batch: list[object] = [b"kept", b"new 1", b"new 1", b"gone", b"bob's", b"new 2"]
        out = store.upload_many(batch * 3, "alice", tags="batch")  # type: ignore[arg-type]
        assert all(isinstance(c, Content) for c in out)
        store.upload(b"after", "alice")  # a later single upload continues the numbering
        page = store.list_content("alice", limit=100)
        assert page.total == 20
        assert [c.content_id for c in page.items[1:19]] == [c.content_id for c in out][::-1]
        replayed = replay(tmp_path / "replayed", store.replica.catalog.log.all_ops())
        assert state_rows(replayed) == state_rows(store)
        assert (
            replayed.replica.catalog.reads.stored_storage()
            == store.replica.catalog.reads.stored_storage()
        )
        assert (
            store.replica.catalog.reads.stored_storage()
            == store.replica.catalog.reads.recount_storage()
        )
        usage = store.get_storage_usage("alice")
        assert usage.content_count == 20
        assert usage.bytes == sum(c.size for c in page.items)
        replayed.close()


def test_a_write_error_fails_the_batch_and_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """syncfs cannot say which file failed: the whole group is refused, nothing renamed."""
    if batch._syncfs() is None:
        pytest.skip("this kernel has no syncfs that reports write errors")

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "syncfs: Input/output error")

    with file_blobs_only(Store(tmp_path / "store")) as store:
        kept = store.upload(b"already here", "alice")
        monkeypatch.setattr(batch, "_syncfs", lambda: failing)
        with pytest.raises(OSError):
            store.upload_many([b"one", b"two", b"already here"], "alice")
        monkeypatch.undo()
        assert store.list_content("alice").total == 1
        assert list((tmp_path / "store" / "tmp").iterdir()) == []
        on_disk = {digest for digest, _ in store.replica.blobs.iter_digests()}
        assert on_disk == {kept.hash}
        assert store.verify() == []


def test_bytes_gc_takes_during_an_upload_are_refused_not_referenced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gc may take an old unreferenced blob after an upload found it and before the upload
    commits (or any unreferenced one, with min_age=0): the upload (one or many) refuses
    with a Conflict and references nothing."""
    from dreamflare_store import Conflict

    # Files only: a small blob kept as a row is written in the transaction that references
    # it, where gc cannot reach it (test_inline_blobs.py).
    with file_blobs_only(Store(tmp_path / "store")) as store:
        old = store.upload(b"stored before", "alice")
        store.delete_content(old.content_id, "alice")  # its blob is now unreferenced
        real = Replica.store_bytes
        real_many = Replica.store_many

        def then_gc(self: Replica, *args: object) -> object:
            out = real(self, *args)  # type: ignore[arg-type]
            self.gc(min_age=0)  # what a concurrent gc could do at this moment
            return out

        def many_then_gc(self: Replica, *args: object) -> object:
            written, settle = real_many(self, *args)  # type: ignore[arg-type]
            settle()  # the bytes durable and named, not yet referenced:
            self.gc(min_age=0)  # what a concurrent gc could do at this moment
            return written, settle

        monkeypatch.setattr(Replica, "store_bytes", then_gc)
        monkeypatch.setattr(Replica, "store_many", many_then_gc)
        with pytest.raises(Conflict):
            store.upload(b"stored before", "alice")
        with pytest.raises(Conflict):
            store.upload(b"new bytes", "alice")  # gc(min_age=0) takes even new bytes
        monkeypatch.setattr(Replica, "store_bytes", real)
        store.upload(b"stored before", "bob")  # stored anew, and referenced
        monkeypatch.setattr(Replica, "store_bytes", then_gc)
        again = store.upload(b"stored before", "bob")  # found and referenced: gc keeps it
        out = store.upload_many([b"stored before", b"fresh"], "carol")
        assert isinstance(out[0], Content)  # bob's contents keep the blob from gc
        assert isinstance(out[1], Conflict)
        monkeypatch.undo()
        assert store.list_content("alice").total == 0
        assert store.read_content(again.content_id, "bob") == b"stored before"
        assert store.verify() == []


def test_a_write_error_in_a_later_group_leaves_no_temp_and_no_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Groups are flushed while the next is written: an error in the third group's flush
    fails the call; the groups before stay as unreferenced blobs (gc takes them), no temp
    file is left behind, and no content is made."""
    real = batch._syncfs()
    if real is None:
        pytest.skip("this kernel has no syncfs that reports write errors")
    calls = 0

    def fails_on_the_fifth_call(fd: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 5:  # the first flush of the third group
            raise OSError(errno.EIO, "syncfs: Input/output error")
        assert real is not None
        real(fd)

    monkeypatch.setattr(batch, "_SYNCFS_GROUP", 16)
    monkeypatch.setattr(batch, "_syncfs", lambda: fails_on_the_fifth_call)
    with file_blobs_only(Store(tmp_path / "store")) as store:
        with pytest.raises(OSError):
            store.upload_many([f"file {i}".encode() for i in range(80)], "alice")
        assert calls == 5
        assert store.list_content("alice").total == 0
        assert list((tmp_path / "store" / "tmp").iterdir()) == []
        assert len(list(store.replica.blobs.iter_digests())) == 32  # two groups, renamed
        assert store.verify() == []
        assert store.gc(min_age=0).blobs_removed == 32
