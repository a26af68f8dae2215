"""The content operations (1-6, 15), byte reads, dedup, verified reads, verify and gc."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import blob_files, damage_blob, disk_state, png_bytes, stored_blobs

from dreamflare_store import (
    Content,
    IntegrityError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Store,
)
from dreamflare_store.catalog import reads as catalog_reads


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "store") as s:
        yield s


# -- 1. upload ---------------------------------------------------------------------------


def test_upload_bytes_returns_content_with_sniffed_type_and_size(store: Store) -> None:
    data = png_bytes(7, 5)
    c = store.upload(file=data, user_id="alice", description="a cat", tags="cat, cute,cat")
    assert isinstance(c, Content)
    assert c.content_id.startswith("cnt_")
    assert (c.user_id, c.mime_type, c.size, c.width, c.height) == (
        "alice",
        "image/png",
        len(data),
        7,
        5,
    )
    assert c.tags == ("cat", "cute")
    assert c.description == "a cat"
    assert c.version == 1
    assert c.filename == "upload"
    assert c.created_at == c.updated_at and c.created_at.endswith("Z")
    assert store.read_content(c.content_id, "alice") == data


def test_upload_from_path_uses_its_name(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "picture.png"
    path.write_bytes(png_bytes(3, 2))
    c = store.upload(file=path, user_id="alice")
    assert c.filename == "picture.png"
    c2 = store.upload(file=str(path), user_id="alice", filename="renamed.png")
    assert c2.filename == "renamed.png"


def test_upload_from_file_object_streams(store: Store) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    c = store.upload(file=io.BytesIO(data), user_id="alice")
    assert c.size == len(data) and c.mime_type == "application/octet-stream"
    with store.open_content(c.content_id, "alice") as f:
        assert f.read() == data


def test_upload_file_object_name_becomes_filename(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "clip.bin"
    path.write_bytes(b"abc")
    with open(path, "rb") as f:
        assert store.upload(file=f, user_id="alice").filename == "clip.bin"


def test_upload_empty_file(store: Store) -> None:
    c = store.upload(file=b"", user_id="alice")
    assert c.size == 0
    assert store.read_content(c.content_id, "alice") == b""


def test_new_version_with_content_id_keeps_other_fields(store: Store) -> None:
    c = store.upload(file=b"one", user_id="alice", description="d", tags="t", filename="a.txt")
    c2 = store.upload(file=png_bytes(2, 2), user_id="alice", content_id=c.content_id)
    assert c2.content_id == c.content_id
    assert c2.version == 2
    assert (c2.description, c2.tags, c2.filename) == ("d", ("t",), "a.txt")
    assert c2.mime_type == "image/png" and c2.width == 2
    assert store.read_content(c.content_id, "alice", version=1) == b"one"
    assert store.read_content(c.content_id, "alice") == png_bytes(2, 2)
    c3 = store.upload(
        file=b"three", user_id="alice", content_id=c.content_id, tags="", filename="b.txt"
    )
    assert c3.tags == () and c3.filename == "b.txt" and c3.width is None


# -- 2. get, 3. delete, 4. list ------------------------------------------------------------


def test_get_content(store: Store) -> None:
    c = store.upload(file=b"x", user_id="alice")
    assert store.get_content(c.content_id, "alice") == c


def test_delete_content_removes_it_everywhere(store: Store) -> None:
    c = store.upload(file=b"x", user_id="alice")
    store.delete_content(c.content_id, "alice")
    with pytest.raises(NotFound):
        store.get_content(c.content_id, "alice")
    with pytest.raises(NotFound):
        store.delete_content(c.content_id, "alice")
    with pytest.raises(NotFound):
        store.read_content(c.content_id, "alice")
    assert store.list_content("alice").total == 0
    usage = store.get_storage_usage("alice")
    assert (usage.content_count, usage.version_count, usage.bytes, usage.history_bytes) == (
        0,
        0,
        0,
        0,
    )


def test_list_content_pages_newest_first(store: Store) -> None:
    ids = [store.upload(file=f"f{i}".encode(), user_id="alice").content_id for i in range(12)]
    store.upload(file=b"other", user_id="bob")
    page = store.list_content("alice", limit=5, offset=0)
    assert page.total == 12 and (page.limit, page.offset) == (5, 0)
    assert [c.content_id for c in page.items] == ids[::-1][:5]
    everything = [c.content_id for c in store.list_content("alice", limit=1000).items]
    assert everything == ids[::-1]
    assert [c.content_id for c in store.list_content("alice", limit=5, offset=10).items] == ids[
        1::-1
    ]
    assert store.list_content("alice", offset=12).items == ()
    assert store.list_content("alice", offset=10**9).items == ()
    assert store.list_content("nobody").total == 0


def test_list_content_across_blocks_after_deletes(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrival numbers group in blocks (1024 normally; 16 here so that a few hundred
    # uploads cross many block boundaries).
    monkeypatch.setattr(catalog_reads, "BLOCK_BITS", 4)  # read by the fold too
    ids = []
    for i in range(150):
        ids.append(store.upload(file=i.to_bytes(4, "big"), user_id="alice").content_id)
        store.upload(file=i.to_bytes(4, "big"), user_id="bob")  # interleaved owners
    for cid in ids[::3]:
        store.delete_content(cid, "alice")
    live = [cid for cid in ids if cid not in set(ids[::3])][::-1]
    assert store.list_content("alice").total == len(live)
    for offset in range(0, len(live) + 2):
        page = store.list_content("alice", limit=7, offset=offset)
        assert [c.content_id for c in page.items] == live[offset : offset + 7], offset


# -- 5. update metadata, 15. versions ------------------------------------------------------


def test_update_metadata_appends_versions_with_changes(store: Store) -> None:
    c = store.upload(file=b"x", user_id="alice", description="old", tags="a")
    u = store.update_metadata(c.content_id, "alice", tags=["b", "c"])
    assert u.tags == ("b", "c") and u.description == "old" and u.version == 2
    u = store.update_metadata(c.content_id, "alice", description="new")
    assert u.tags == ("b", "c") and u.description == "new" and u.version == 3
    versions = store.get_content_versions(c.content_id, "alice")
    assert [v.version for v in versions] == [1, 2, 3]
    assert versions[0].changes == ("file", "filename", "description", "tags")
    assert versions[1].changes == ("tags",) and versions[1].description == "old"
    assert versions[2].changes == ("description",) and versions[2].tags == ("b", "c")
    assert all(v.hash == c.hash for v in versions)
    # Snapshots are immutable: a later change does not rewrite them.
    store.update_metadata(c.content_id, "alice", description="newer")
    assert store.get_content_versions(c.content_id, "alice")[:3] == versions


def test_update_metadata_needs_a_field(store: Store) -> None:
    c = store.upload(file=b"x", user_id="alice")
    with pytest.raises(InvalidArgument):
        store.update_metadata(c.content_id, "alice")


# -- 6. storage usage --------------------------------------------------------------------


def test_storage_usage_counts_current_and_history(store: Store) -> None:
    a = store.upload(file=b"12345", user_id="alice")
    store.upload(file=b"123", user_id="alice", content_id=a.content_id)
    store.upload(file=b"12345", user_id="alice")  # same bytes again: history counts them once
    usage = store.get_storage_usage("alice")
    assert (usage.content_count, usage.version_count, usage.bytes, usage.history_bytes) == (
        2,
        3,
        8,
        8,
    )
    assert usage.quota_bytes is None
    assert store.get_storage_usage("nobody").bytes == 0


# -- dedup, verified reads, verify, gc ---------------------------------------------------


def test_same_bytes_stored_once_across_users(store: Store) -> None:
    data = os.urandom(10_000)
    a = store.upload(file=data, user_id="alice")
    b = store.upload(file=data, user_id="bob")
    assert a.hash == b.hash
    assert stored_blobs(store) == {a.hash}
    store.delete_content(a.content_id, "alice")
    store.gc(min_age=0)
    assert store.read_content(b.content_id, "bob") == data
    store.delete_content(b.content_id, "bob")
    report = store.gc(min_age=0)
    assert report.blobs_removed == 1 and report.bytes_freed == len(data)
    assert stored_blobs(store) == set()


def test_corrupt_blob_raises_and_verify_reports_it(store: Store) -> None:
    data = os.urandom(5000)
    c = store.upload(file=data, user_id="alice")
    damage_blob(store, c.hash, "flipped byte")
    with pytest.raises(IntegrityError):
        store.read_content(c.content_id, "alice")
    with pytest.raises(IntegrityError), store.open_content(c.content_id, "alice") as f:
        f.read()
    with pytest.raises(IntegrityError), store.open_content(c.content_id, "alice") as f:
        f.seek(4000)  # a ranged read verifies the whole blob first
    problems = store.verify()
    assert [(p.kind, p.subject) for p in problems] == [("corrupt_blob", c.hash)]


def test_missing_blob_is_reported(store: Store) -> None:
    c = store.upload(file=b"bytes", user_id="alice")
    damage_blob(store, c.hash, "deleted blob")
    assert [p.kind for p in store.verify()] == ["missing_blob"]
    with pytest.raises(IntegrityError):
        store.read_content(c.content_id, "alice")


def test_open_content_is_seekable_and_partial_reads_work(store: Store) -> None:
    data = os.urandom(100_000)
    c = store.upload(file=data, user_id="alice")
    with store.open_content(c.content_id, "alice") as f:
        f.seek(50_000)
        assert f.read(10) == data[50_000:50_010]
        assert f.tell() == 50_010


def test_gc_removes_stale_temp_files_and_keeps_fresh_ones(store: Store) -> None:
    stale = store.path / "tmp" / "stale.part"
    stale.write_bytes(b"partial")
    os.utime(stale, (0, 0))
    fresh = store.path / "tmp" / "fresh.part"
    fresh.write_bytes(b"in flight")
    report = store.gc()
    assert report.temp_files_removed == 1
    assert not stale.exists() and fresh.exists()


def test_gc_keeps_recent_unreferenced_blobs(store: Store) -> None:
    c = store.upload(file=b"recent", user_id="alice")
    store.delete_content(c.content_id, "alice")
    assert store.gc().blobs_removed == 0  # younger than min_age: an upload may be using it
    assert store.gc(min_age=0).blobs_removed == 1


def test_verify_is_clean_on_a_healthy_store(store: Store) -> None:
    c = store.upload(file=b"a", user_id="alice", tags="x")
    store.update_metadata(c.content_id, "alice", description="y")
    store.upload(file=b"b", user_id="alice", content_id=c.content_id)
    assert store.verify() == []


def test_store_reopens_with_everything(tmp_path: Path) -> None:
    with Store(tmp_path / "s") as s:
        c = s.upload(file=b"persist", user_id="alice", tags="t")
        replica = s.replica_id
    with Store(tmp_path / "s") as s:
        assert s.replica_id == replica
        assert s.get_content(c.content_id, "alice").tags == ("t",)
        assert s.read_content(c.content_id, "alice") == b"persist"
        u = s.update_metadata(c.content_id, "alice", tags="u")
        assert u.version == 2 and u.updated_at >= c.updated_at


# -- bad input: a clear error, the store unchanged -----------------------------------------


class _Exploding(io.RawIOBase):
    def __init__(self) -> None:
        self.calls = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.calls += 1
        if self.calls > 2:
            raise OSError("device went away")
        return b"x" * 1024


BAD_CALLS = {
    "empty user": lambda s, c: s.upload(file=b"x", user_id=""),
    "oversize user": lambda s, c: s.upload(file=b"x", user_id="u" * 129),
    "user not a string": lambda s, c: s.get_content(c, 42),
    "control char user": lambda s, c: s.list_content("a\nb"),
    "malformed id": lambda s, c: s.get_content("cnt_nope", "alice"),
    "wrong id type": lambda s, c: s.get_content(c.replace("cnt_", "ver_"), "alice"),
    "path trick id": lambda s, c: s.get_content("../../etc/passwd", "alice"),
    "id not a string": lambda s, c: s.delete_content(None, "alice"),
    "unknown id": lambda s, c: s.get_content("cnt_" + "0" * 26, "alice"),
    "unknown id delete": lambda s, c: s.delete_content("cnt_" + "0" * 26, "alice"),
    "unknown id update": lambda s, c: s.update_metadata("cnt_" + "0" * 26, "alice", tags="a"),
    "unknown id new version": lambda s, c: s.upload(
        file=b"v", user_id="alice", content_id="cnt_" + "0" * 26
    ),
    "negative limit": lambda s, c: s.list_content("alice", limit=-1),
    "zero limit": lambda s, c: s.list_content("alice", limit=0),
    "huge limit": lambda s, c: s.list_content("alice", limit=10**12),
    "negative offset": lambda s, c: s.list_content("alice", offset=-5),
    "huge offset": lambda s, c: s.list_content("alice", offset=10**30),
    "bool limit": lambda s, c: s.list_content("alice", limit=True),
    "float limit": lambda s, c: s.list_content("alice", limit=2.5),
    "tag too long": lambda s, c: s.upload(file=b"x", user_id="alice", tags="t" * 65),
    "tag control char": lambda s, c: s.update_metadata(c, "alice", tags=["ok", "bad\x07"]),
    "tag with comma in list": lambda s, c: s.update_metadata(c, "alice", tags=["a,b"]),
    "too many tags": lambda s, c: s.upload(
        file=b"x", user_id="alice", tags=[f"t{i}" for i in range(33)]
    ),
    "tags wrong type": lambda s, c: s.upload(file=b"x", user_id="alice", tags=123),
    "description too long": lambda s, c: s.upload(
        file=b"x", user_id="alice", description="d" * 4097
    ),
    "description wrong type": lambda s, c: s.update_metadata(c, "alice", description=5),
    "filename with slash": lambda s, c: s.upload(file=b"x", user_id="alice", filename="../evil"),
    "file wrong type": lambda s, c: s.upload(file=12345, user_id="alice"),
    "file text mode": lambda s, c: s.upload(file=io.StringIO("text"), user_id="alice"),
    "file raises mid-read": lambda s, c: s.upload(file=_Exploding(), user_id="alice"),
    "nonexistent path": lambda s, c: s.upload(
        file=Path("/nonexistent/dir/file.png"), user_id="alice"
    ),
    "directory path": lambda s, c: s.upload(file=Path(s.path), user_id="alice"),
    "path name too long": lambda s, c: s.upload(file="n" * 5000, user_id="alice"),
    "path with a NUL": lambda s, c: s.upload(file="a\0b.png", user_id="alice"),
    "version zero": lambda s, c: s.read_content(c, "alice", version=0),
    "version missing": lambda s, c: s.read_content(c, "alice", version=99),
    "version wrong type": lambda s, c: s.read_content(c, "alice", version="two"),
    "stranger reads": lambda s, c: s.get_content(c, "mallory"),
    "stranger deletes": lambda s, c: s.delete_content(c, "mallory"),
    "stranger versions": lambda s, c: s.get_content_versions(c, "mallory"),
    "stranger uploads version": lambda s, c: s.upload(file=b"m", user_id="mallory", content_id=c),
}


@pytest.mark.parametrize("name", sorted(BAD_CALLS))
def test_bad_input_raises_clear_error_and_changes_nothing(store: Store, name: str) -> None:
    c = store.upload(file=b"keep", user_id="alice", tags="a").content_id
    before = disk_state(store)
    with pytest.raises((InvalidArgument, NotFound, PermissionDenied)) as info:
        BAD_CALLS[name](store, c)
    assert str(info.value)
    assert disk_state(store) == before
    assert store.verify() == []


def test_errors_carry_codes_and_statuses() -> None:
    assert (InvalidArgument.code, InvalidArgument.status) == ("invalid_argument", 400)
    assert (NotFound.code, NotFound.status) == ("not_found", 404)
    assert issubclass(NotFound, LookupError) and issubclass(InvalidArgument, ValueError)
    assert NotFound("gone", content_id="cnt_x").content_id == "cnt_x"
    assert InvalidArgument("bad").to_dict() == {
        "error": {"code": "invalid_argument", "message": "bad"}
    }


def test_store_path_that_is_a_file_is_rejected(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("not a store")
    with pytest.raises(InvalidArgument):
        Store(target)


def test_a_blob_verified_once_is_not_hashed_again_until_it_changes(store: Store) -> None:
    data = os.urandom(200_000)
    c = store.upload(file=data, user_id="alice")
    assert store.read_content(c.content_id, "alice") == data  # verified whole, remembered
    with store.open_content(c.content_id, "alice") as f:
        f.seek(150_000)  # no second hashing pass for a blob known to be right
        assert f.read(5) == data[150_000:150_005]
    (path,) = blob_files(store.path)
    raw = bytearray(path.read_bytes())
    raw[160_000] ^= 0xFF
    path.write_bytes(bytes(raw))  # a change of the file: checked again
    with pytest.raises(IntegrityError), store.open_content(c.content_id, "alice") as f:
        f.seek(150_000)


def test_ids_are_well_formed_distinct_and_differ_between_forked_processes() -> None:
    from dreamflare_store import ids

    made = {ids.new_id("content", 1_700_000_000_000, ids.randbits) for _ in range(5000)}
    assert len(made) == 5000 and all(ids.check_id("content", i) for i in made)
    # The fork happens in a process of its own, with no other thread running (forking a
    # process that runs threads is deprecated), after the buffer was drawn from.
    program = """
import os
from dreamflare_store import ids
ids.randbits(80)  # the buffer holds unused bits now: the child must not reuse them
reader, writer = os.pipe()
child = os.fork()
if child == 0:
    os.write(writer, ids.new_id("op", 0, ids.randbits).encode())
    os._exit(0)
os.close(writer)
os.waitpid(child, 0)
print(os.read(reader, 100).decode(), ids.new_id("op", 0, ids.randbits))
"""
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    theirs, ours = done.stdout.split()
    assert theirs != ours
    assert ids.check_id("op", theirs) and ids.check_id("op", ours)
