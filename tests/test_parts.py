"""The small parts: exported names, ids, the hybrid logical clock, the op codec, migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dreamflare_store
from dreamflare_store import IntegrityError, InvalidArgument, Store, ids, oplog
from dreamflare_store import clock as clock_module
from dreamflare_store.blobs import BlobStore
from dreamflare_store.clock import MAX_WALL_MS, HybridClock, Timestamp, is_hlc


def test_public_api_is_exported_and_sorted() -> None:
    exported = dreamflare_store.__all__
    assert exported == sorted(exported)
    for name in exported:
        assert hasattr(dreamflare_store, name), name
    assert {"Store", "DreamflareError", "NotFound", "PermissionDenied", "Content"} <= set(exported)


def test_ids_are_typed_url_safe_and_time_ordered() -> None:
    a = ids.new_id("content", 1_700_000_000_000)
    b = ids.new_id("content", 1_700_000_000_001)
    assert a.startswith("cnt_") and len(a) == 30 and a < b
    assert ids.check_id("content", a) == a
    for bad in [
        "",
        "cnt_",
        a.lower(),
        a + "A",
        a.replace("cnt_", "ver_"),
        "cnt_" + "I" * 26,
        5,
        None,
    ]:
        with pytest.raises(InvalidArgument):
            ids.check_id("content", bad)


class _Wall:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def time_ms(self) -> int:
        return self.ms


def test_hlc_never_goes_backwards_even_if_the_wall_clock_does() -> None:
    wall = _Wall(1000)
    clock = HybridClock("r1", wall)
    first = clock.now()
    wall.ms = 10  # the wall clock jumps back
    second = clock.now()
    assert second > first
    clock.observe(Timestamp(5000, 7, "r2").encode())
    third = clock.now()
    assert third > Timestamp(5000, 7, "r2").encode()
    assert Timestamp.decode(third).wall_ms == 5000


@given(st.lists(st.tuples(st.integers(0, 10**14), st.booleans()), max_size=50))
def test_hlc_is_strictly_increasing(steps: list[tuple[int, bool]]) -> None:
    wall = _Wall(0)
    clock = HybridClock("abc", wall)
    last = clock.now()
    for ms, observe in steps:
        wall.ms = ms
        if observe and ms <= MAX_WALL_MS:
            clock.observe(Timestamp(ms, 3, "zzz").encode())
        now = clock.now()
        assert now > last
        last = now


def test_hlc_counter_overflow_moves_to_the_next_millisecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(clock_module, "MAX_COUNTER", 999)  # the real limit is 999,999
    clock = HybridClock("r", _Wall(5))
    stamps = [clock.now() for _ in range(1003)]
    assert all(is_hlc(s) for s in stamps[-5:])
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert Timestamp.decode(stamps[-1]).wall_ms == 6


def test_op_codec_round_trips_and_rejects_garbage() -> None:
    op = oplog.Op(
        "op_X", "0000000000001.000000.r", "r", 1, oplog.KEY_REVOKE, "key_Y", {"a": [1, b"\0"]}
    )
    assert oplog.decode_op(op.encode()) == op
    assert oplog.decode_segment(oplog.encode_segment([op, op])) == [op, op]
    for raw in [
        b"",
        b"\xc1",
        msgpack.packb([1, 2]),
        msgpack.packb({"id": "x"}),
        msgpack.packb({**msgpack.unpackb(op.encode()), "kind": "drop.tables"}),
    ]:
        with pytest.raises(InvalidArgument):
            oplog.decode_op(raw)
    with pytest.raises(InvalidArgument):
        oplog.decode_segment(msgpack.packb([1]))


def test_blob_paths_and_digests_are_exact_inverses(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    digest = "ab" * 32
    path = blobs.path(digest)
    assert blobs.digest_of(path) == digest
    assert blobs.digest_of(tmp_path / "objects" / "ab" / "ab" / "foreign.txt") is None
    assert blobs.digest_of(tmp_path / "objects" / "cd" / "ab" / digest) is None
    for bad in ["../../etc/passwd", "AB" * 32, "ab" * 31, "ab" * 33]:
        with pytest.raises(InvalidArgument):
            blobs.path(bad)


def test_store_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    Store(tmp_path / "s").close()
    with sqlite3.connect(tmp_path / "s" / "catalog.db") as conn:
        conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(IntegrityError):
        Store(tmp_path / "s")


def test_migrations_run_once(tmp_path: Path) -> None:
    Store(tmp_path / "s").close()
    with Store(tmp_path / "s") as store:
        version = store.replica.catalog.db.conn.execute("PRAGMA user_version").fetchone()[0]
        assert version >= 1
        assert store.replica.catalog.db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
